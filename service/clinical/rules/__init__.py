"""The rule registry and the engine that runs it. One module per rule family beside this file."""

from __future__ import annotations

from service.clinical.rules.base import Rule
from service.clinical.rules.dose import RULE as DOSE_CHECK
from service.clinical.rules.first_line import RULE as FIRST_LINE
from service.clinical.rules.fixed_duration import RULE as FIXED_DURATION
from service.clinical.rules.hepatotoxicity import RULE as HEPATOTOXICITY
from service.clinical.rules.her2 import RULE as HER2_STATUS
from service.clinical.rules.lab_monitoring import LIVER_RULE, PLATELETS_RULE
from service.clinical.rules.lvef_decline import RULE as LVEF_DECLINE
from service.clinical.rules.lvef_monitoring import RULE as LVEF_MONITORING
from service.clinical.rules.product_mixup import RULE as PRODUCT_MIXUP
from service.clinical.rules.pulmonary import RULE as PULMONARY
from service.clinical.rules.tdxd_preferred import RULE as TDXD_PREFERRED
from service.clinical.rules.thrombocytopenia import RULE as THROMBOCYTOPENIA
from service.clinical.rules.treatment_summary import RULE as TREATMENT_SUMMARY

# Card order in a response follows this list within each indicator.
RULES: tuple[Rule, ...] = (
    FIRST_LINE,
    FIXED_DURATION,
    PLATELETS_RULE,
    LIVER_RULE,
    THROMBOCYTOPENIA,
    HEPATOTOXICITY,
    LVEF_DECLINE,
    PULMONARY,
    LVEF_MONITORING,
    PRODUCT_MIXUP,
    DOSE_CHECK,
    HER2_STATUS,
    TDXD_PREFERRED,
    TREATMENT_SUMMARY,
)
