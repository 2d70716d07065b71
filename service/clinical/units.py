"""UCUM normalisation for the quantities the label compares against.

The label states platelets in /mm3; FHIR labs send 10*3/uL (US Core), 10*9/L (same number),
/uL or /mm3, and sometimes the non-UCUM K/uL. Anything not in these tables is unreadable: the
caller reports it rather than guessing a conversion.
"""

from __future__ import annotations

import re
from typing import Any

from service.clinical.resources import as_number

# factor to multiply the value by to get cells per mm3 (= per uL). UCUM arithmetic: 1 L = 10*6 uL
# and 1 uL = 1 mm3, so 10*3/uL = 10*9/L = 1000/mm3 and 10*6/L = 1/uL = 1/mm3.
# tests/unit/test_units.py re-derives every factor from that arithmetic.
_PLATELET_FACTORS = {
    "10*3/ul": 1_000.0,
    "10^3/ul": 1_000.0,
    "10*3/mm3": 1_000.0,
    "k/ul": 1_000.0,
    "k/mm3": 1_000.0,
    "thou/ul": 1_000.0,
    "x10e3/ul": 1_000.0,
    "10*9/l": 1_000.0,
    "10^9/l": 1_000.0,
    "x10*9/l": 1_000.0,
    "giga/l": 1_000.0,
    "/ul": 1.0,
    "/mm3": 1.0,
    "1/ul": 1.0,
    "1/mm3": 1.0,
    "{cells}/ul": 1.0,
    "cells/ul": 1.0,
    "10*6/l": 1.0,
}

_WEIGHT_FACTORS = {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237, "lbs": 0.45359237}

_PERCENT = {"%", "percent"}

# Liver tests: the ratio to ULN needs value and ULN in one unit, and a lab may state them in two
# (ALT in ukat/L against a ULN in U/L). Both are converted to one canonical unit per kind.
# Enzyme activities (ALT, AST) to U/L. UCUM: U = umol/min and kat = mol/s, so 1 ukat/L = 60 U/L,
# 1 nkat/L = 0.06 U/L, and mU/mL = U/L. [IU]/L and IU/L are how labs print the same U/L.
ACTIVITY_UNIT = "U/L"
_ACTIVITY_TO_U_L = {
    "u/l": 1.0,
    "[iu]/l": 1.0,
    "iu/l": 1.0,
    "mu/ml": 1.0,
    "ukat/l": 60.0,
    "µkat/l": 60.0,
    "nkat/l": 0.06,
}
# Total bilirubin to mg/dL: 1 mg/dL = 17.1 umol/L (molar mass 584.66 g/mol).
BILIRUBIN_UNIT = "mg/dL"
_BILIRUBIN_TO_MG_DL = {"mg/dl": 1.0, "umol/l": 1 / 17.1, "µmol/l": 1 / 17.1, "mmol/l": 1000 / 17.1}

_ANNOTATION = re.compile(r"\{[^}]*\}")


def unit_key(quantity: Any) -> str:
    """The UCUM code if present, else the human unit; lower-cased, spaces and annotations dropped."""
    if not isinstance(quantity, dict):
        return ""
    raw = quantity.get("code")
    if not (isinstance(raw, str) and raw.strip()):
        raw = quantity.get("unit")
        if not (isinstance(raw, str) and raw.strip()):
            return ""
    key = _UNIT_KEYS.get(raw)
    if key is None:
        key = _normalised_unit(raw)
        if len(_UNIT_KEYS) < _UNIT_KEYS_KEPT and len(raw) <= 40:
            _UNIT_KEYS[raw] = key
    return key


def _normalised_unit(raw: str) -> str:
    key = raw.strip().lower().replace(" ", "")
    return key if key in _PLATELET_FACTORS else _ANNOTATION.sub("", key)


# unit_key per unit text: a lab system writes a handful of spellings thousands of times. Bounded,
# because the text comes from the request; past the bound keys are computed each time.
_UNIT_KEYS: dict[str, str] = {}
_UNIT_KEYS_KEPT = 512


def _value(quantity: Any) -> float | None:
    if not isinstance(quantity, dict):
        return None
    value = quantity.get("value")
    if type(value) is float and value - value == 0.0:  # as_number's answer for a finite float
        return value
    return as_number(value)


def platelets_per_mm3(quantity: Any) -> float | None:
    value = _value(quantity)
    if value is None:
        return None
    factor = _PLATELET_FACTORS.get(unit_key(quantity))
    return None if factor is None else value * factor


def weight_kg(quantity: Any) -> float | None:
    value = _value(quantity)
    if value is None:
        return None
    factor = _WEIGHT_FACTORS.get(unit_key(quantity))
    return None if factor is None else value * factor


def percent(quantity: Any) -> float | None:
    value = _value(quantity)
    return value if value is not None and unit_key(quantity) in _PERCENT else None


def liver_unit(kind: str) -> str:
    """The canonical unit comparable() gives a liver test of this kind in."""
    return BILIRUBIN_UNIT if kind == "bilirubin" else ACTIVITY_UNIT


def comparable(kind: str, quantity: Any) -> tuple[float, str] | None:
    """A liver test value (or its ULN) in the kind's canonical unit, so result and ULN can be
    divided whatever unit each came in; None when the value or the unit cannot be read."""
    value = _value(quantity)
    if value is None:
        return None
    factors = _BILIRUBIN_TO_MG_DL if kind == "bilirubin" else _ACTIVITY_TO_U_L
    factor = factors.get(unit_key(quantity))
    return None if factor is None else (value * factor, liver_unit(kind))
