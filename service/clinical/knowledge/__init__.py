"""The label's tables, guideline parameters and value sets, as reviewed data (YAML beside this file).

Rules never carry a clinical number of their own: they ask this module for an entry by id and cite
the entry's source in the card. `tdm1-cds knowledge` lists every entry with its source and status.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

from service.clinical.memo import Memo

HERE = Path(__file__).resolve().parent
STATUSES = ("confirmed", "secondary", "unverified")
SETTINGS = ("any", "metastatic", "early")


T = TypeVar("T")


class KnowledgeError(ValueError):
    """The knowledge files are malformed; the service must not start on them."""


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    value: Any
    setting: str
    source: str
    status: str
    note: str = ""

    @property
    def verified(self) -> bool:
        return self.status == "confirmed"


@dataclass(frozen=True)
class Knowledge:
    """The loaded entries. Treated as immutable once loaded: what is derived from them is cached."""

    entries: dict[str, Entry]
    terminology: dict[str, Any]
    # Structures the rules derive from the entries (compiled tables, the dose ladder), built once per
    # Knowledge object rather than on every call; a Knowledge with other entries has its own.
    _derived: Memo = field(default_factory=Memo, init=False, repr=False, compare=False)

    def derived(self, key: Hashable, build: Callable[[], T]) -> T:
        """build(), computed once per key for this Knowledge (a failed build is not cached)."""
        return self._derived.get(key, build)

    def entry(self, entry_id: str) -> Entry:
        try:
            return self.entries[entry_id]
        except KeyError:
            raise KnowledgeError(f"no knowledge entry {entry_id!r}") from None

    def value(self, entry_id: str) -> Any:
        return self.entry(entry_id).value


def _entry(raw: dict[str, Any], origin: str) -> Entry:
    missing = [k for k in ("id", "title", "value", "source", "status") if k not in raw]
    if missing:
        raise KnowledgeError(f"{origin}: entry {raw.get('id', '?')} lacks {', '.join(missing)}")
    status = str(raw["status"])
    setting = str(raw.get("setting", "any"))
    if status not in STATUSES:
        raise KnowledgeError(f"{origin}: entry {raw['id']} has status {status!r}, not one of {STATUSES}")
    if setting not in SETTINGS:
        raise KnowledgeError(f"{origin}: entry {raw['id']} has setting {setting!r}, not one of {SETTINGS}")
    return Entry(
        id=str(raw["id"]),
        title=str(raw["title"]),
        value=raw["value"],
        setting=setting,
        source=str(raw["source"]),
        status=status,
        note=str(raw.get("note", "")),
    )


def load(directory: Path = HERE) -> Knowledge:
    entries: dict[str, Entry] = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "terminology.yaml":
            continue
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for raw in document.get("entries", []):
            item = _entry(raw, path.name)
            if item.id in entries:
                raise KnowledgeError(f"{path.name}: duplicate entry id {item.id}")
            entries[item.id] = item
    terminology = yaml.safe_load((directory / "terminology.yaml").read_text(encoding="utf-8"))
    return Knowledge(entries=entries, terminology=terminology)


@cache
def default() -> Knowledge:
    return load()
