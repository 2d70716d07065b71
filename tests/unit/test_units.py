"""units: every conversion factor re-derived from UCUM arithmetic, not copied from the tables.

A factor typed into service/clinical/units.py by hand can be off by a power of ten (10*6/L was read
as 0.001/mm3, so a normal count of 150,000 x 10*6/L looked like 150/mm3). These tests take each
unit the tables accept, work out its factor from the unit's own definition, and compare.
"""

from __future__ import annotations

import re

import pytest

from service.clinical import units

# --- platelets: cells per uL (= per mm3) ---------------------------------------------------------

# Volumes in uL: UCUM defines L as dm3, so 1 L = 10*6 mm3 = 10*6 uL, 1 mL = 1 cm3 = 10*3 uL.
_VOLUME_IN_UL = {"ul": 1.0, "mm3": 1.0, "ml": 1e3, "l": 1e6}
# Count prefixes labs write in words (K/uL, thou/uL: thousands; giga/L: 10*9).
_COUNT_WORDS = {"": 1.0, "1": 1.0, "{cells}": 1.0, "cells": 1.0, "k": 1e3, "thou": 1e3, "giga": 1e9}
# 10*3, 10^3, x10*9, x10e3: a power of ten.
_POWER_OF_TEN = re.compile(r"^x?10[*^e](\d+)$")


def cells_per_ul_by_arithmetic(key: str) -> float:
    """The factor from a unit key such as "10*9/l": count multiplier over volume in uL."""
    count, volume = key.split("/")
    power = _POWER_OF_TEN.match(count)
    multiplier = 10.0 ** int(power.group(1)) if power else _COUNT_WORDS[count]
    return multiplier / _VOLUME_IN_UL[volume]


@pytest.mark.parametrize("key", sorted(units._PLATELET_FACTORS))
def test_every_platelet_factor_is_ucum_arithmetic(key: str) -> None:
    assert units.platelets_per_mm3({"value": 1, "code": key}) == pytest.approx(
        cells_per_ul_by_arithmetic(key), rel=1e-12
    )


@pytest.mark.parametrize(
    ("value", "unit", "per_mm3"),
    [
        (150_000, "10*6/L", 150_000),  # a normal count: 10*6/L is one cell per uL
        (75_000, "10*6/L", 75_000),
        (75, "10*9/L", 75_000),
        (75, "10*3/uL", 75_000),
        (75_000, "/uL", 75_000),
        (75_000, "/mm3", 75_000),
    ],
)
def test_the_same_count_in_each_unit(value: float, unit: str, per_mm3: float) -> None:
    assert units.platelets_per_mm3({"value": value, "unit": unit, "code": unit}) == pytest.approx(per_mm3)


# --- body weight: kg -----------------------------------------------------------------------------

# UCUM: [lb_av] = 7000 [gr], [gr] = 64.79891 mg; g = 10*-3 kg. "lb" and "lbs" are the same pound
# in text (the table already accepts them, as it accepts K/uL for platelets).
_GRAIN_KG = 64.79891e-6
_KG_BY_DEFINITION = {"kg": 1.0, "g": 1e-3, "[lb_av]": 7000 * _GRAIN_KG, "lb": 7000 * _GRAIN_KG}
_KG_BY_DEFINITION["lbs"] = _KG_BY_DEFINITION["lb"]


@pytest.mark.parametrize("key", sorted(units._WEIGHT_FACTORS))
def test_every_weight_factor_is_ucum_arithmetic(key: str) -> None:
    assert units.weight_kg({"value": 1, "code": key}) == pytest.approx(_KG_BY_DEFINITION[key], rel=1e-12)


# --- liver tests: one canonical unit per kind, so a result and its ULN divide ---------------------

# UCUM: U = umol/min, kat = mol/s. So 1 ukat = 10*-6 mol/s = 60 x 10*-6 mol/min = 60 U; mU/mL = U/L.
_U_PER_KAT = 1e6 * 60
_ENZYME_U_PER_L = {
    "u/l": 1.0,
    "[iu]/l": 1.0,  # the same U/L as labs print it for ALT and AST
    "iu/l": 1.0,
    "mu/ml": 1e-3 / 1e-3,
    "ukat/l": 1e-6 * _U_PER_KAT,
    "µkat/l": 1e-6 * _U_PER_KAT,
    "nkat/l": 1e-9 * _U_PER_KAT,
}
# Bilirubin, C33H36N4O6, 584.66 g/mol: 1 umol/L = 584.66 ug/L = 0.058466 mg/dL. Labs and the
# table use the conventional 17.1 umol/L per mg/dL, within 0.03 % of it.
_BILIRUBIN_G_PER_MOL = 584.66
_BILIRUBIN_MG_PER_DL = {
    "mg/dl": 1.0,
    "umol/l": 1e-6 * _BILIRUBIN_G_PER_MOL * 1e3 / 10,
    "µmol/l": 1e-6 * _BILIRUBIN_G_PER_MOL * 1e3 / 10,
    "mmol/l": 1e-3 * _BILIRUBIN_G_PER_MOL * 1e3 / 10,
}


@pytest.mark.parametrize("kind", ["alt", "ast"])
@pytest.mark.parametrize("key", sorted(units._ACTIVITY_TO_U_L))
def test_every_enzyme_factor_is_ucum_arithmetic(kind: str, key: str) -> None:
    value, unit = units.comparable(kind, {"value": 1, "code": key})
    assert unit == "U/L"
    assert value == pytest.approx(_ENZYME_U_PER_L[key], rel=1e-12)


@pytest.mark.parametrize("key", sorted(units._BILIRUBIN_TO_MG_DL))
def test_every_bilirubin_factor_is_its_molar_mass(key: str) -> None:
    value, unit = units.comparable("bilirubin", {"value": 1, "code": key})
    assert unit == "mg/dL"
    assert value == pytest.approx(_BILIRUBIN_MG_PER_DL[key], rel=1e-3)


def test_ukat_and_u_per_l_are_one_scale() -> None:
    assert units.comparable("alt", {"value": 5.0, "code": "ukat/L"}) == (pytest.approx(300.0), "U/L")
    assert units.comparable("alt", {"value": 0.58, "code": "ukat/L"}) == (pytest.approx(34.8), "U/L")


@pytest.mark.parametrize(("kind", "unit"), [("alt", "mg/dL"), ("ast", "umol/L"), ("bilirubin", "U/L")])
def test_a_unit_of_another_kind_is_not_converted(kind: str, unit: str) -> None:
    assert units.comparable(kind, {"value": 1, "code": unit}) is None
