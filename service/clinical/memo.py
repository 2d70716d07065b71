"""A per-object cache of derived values: computed once per key, never shared between owners."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Memo:
    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """build(), once per key; a build that raises is not kept, so the next call tries again."""
        try:
            return self._values[key]
        except KeyError:
            value = self._values[key] = build()
            return value
