"""What the rules return: findings, with the facts the card text needs and the fixes to offer."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from service.clinical.knowledge import Knowledge
from service.clinical.memo import Memo
from service.clinical.orders import DraftOrder
from service.clinical.record import PatientRecord
from service.clinical.terminology import Terminology

T = TypeVar("T")
Indicator = Literal["info", "warning", "critical"]
Hook = Literal["order-select", "order-sign", "patient-view"]


@dataclass(frozen=True)
class Action:
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resource_id: str | None = None


@dataclass(frozen=True)
class Suggestion:
    """A one-click fix; `key` names its label template in cards/<rule>.yaml."""

    key: str
    actions: tuple[Action, ...]
    recommended: bool = False


@dataclass(frozen=True)
class Finding:
    rule_id: str
    indicator: Indicator
    facts: dict[str, Any]
    variant: str = "default"
    order_ref: str | None = None
    suggestions: tuple[Suggestion, ...] = ()
    sources: tuple[str, ...] = ()  # knowledge entry ids whose source the card cites


@dataclass(frozen=True)
class Params:
    """Operational windows and tolerances (settings), next to the label's numbers (knowledge)."""

    knowledge: Knowledge
    terminology: Terminology
    lab_window: timedelta = timedelta(days=3)
    weight_stale: timedelta = timedelta(days=30)
    lvef_interval: timedelta = timedelta(days=90)
    dose_tolerance: float = 0.05


@dataclass(frozen=True)
class RuleContext:
    hook: Hook
    record: PatientRecord
    now: datetime
    params: Params
    order: DraftOrder | None = None  # None on patient-view
    draft_orders: tuple[DraftOrder, ...] = ()
    dose_time: datetime | None = None  # when the next dose is planned
    notes: list[str] = field(default_factory=list)
    # Facts several rules derive from the record (the T-DM1 doses, the placed HER2 therapy), kept
    # for this context: the engine runs every rule on one context, and the record never changes.
    _memo: Memo = field(default_factory=Memo, init=False, repr=False, compare=False)

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """build(), computed once per key for this context."""
        return self._memo.get(key, build)

    @property
    def cycle(self) -> timedelta:
        return timedelta(days=self.params.knowledge.value("dosing.schedule")["cycle_days"])

    @property
    def at(self) -> datetime:
        return self.dose_time or self.now
