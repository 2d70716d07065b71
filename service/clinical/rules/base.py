"""The shape every rule has: an id, the data it needs, where it runs, and a pure evaluate()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.clinical.findings import Finding, RuleContext
from service.clinical.terminology import TDM1


@dataclass(frozen=True)
class Rule:
    rule_id: str
    needs: frozenset[str]  # data categories (service.clinical.record); missing ones skip the rule
    evaluate: Callable[[RuleContext], list[Finding]]
    on_orders: bool = True
    on_patient_view: bool = False
    families: frozenset[str] = frozenset({TDM1})  # draft order families the rule looks at
    patient_view_needs: frozenset[str] | None = None  # when patient-view needs other data than orders
    # On patient-view, run only when the next dose is due within the lab window (pre-dose checks).
    only_when_due: bool = False

    def needs_for(self, on_patient_view: bool) -> frozenset[str]:
        if on_patient_view and self.patient_view_needs is not None:
            return self.patient_view_needs
        return self.needs
