"""One declaration per CDS service, beside its handler; discovery is generated from these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.protocol import prefetch


@dataclass(frozen=True)
class ServiceDeclaration:
    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str]
    usage_requirements: str = ""

    def discovery(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": self.prefetch,
        }
        if self.usage_requirements:
            entry["usageRequirements"] = self.usage_requirements
        return entry


REGISTRY: dict[str, tuple[ServiceDeclaration, Callable[..., Any]]] = {}


def cds_service(
    *, id: str, hook: str, title: str, description: str, usage_requirements: str = ""
) -> Callable:
    """Declare a service where it is implemented, so discovery cannot drift from what is served."""

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        declaration = ServiceDeclaration(
            id=id,
            hook=hook,
            title=title,
            description=description,
            prefetch=prefetch.templates(),
            usage_requirements=usage_requirements,
        )
        REGISTRY[id] = (declaration, handler)
        return handler

    return register
