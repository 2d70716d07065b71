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
