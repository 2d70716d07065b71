"""Value sets loaded from knowledge/terminology.yaml, and the matchers the record and rules use.

Drugs are matched on each family's own codes at every level an EHR may send (ingredient, clinical
and branded drug, brand name, NDC, HCPCS), then on text as a last resort. Never through an
ingredient roll-up: T-DM1 and T-DXd products hang under the trastuzumab ingredient in RxNorm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from service.clinical import knowledge
from service.clinical.resources import Coding

TDM1 = "tdm1"
TDXD = "tdxd"
TRASTUZUMAB = "trastuzumab"
# Orders the service looks at: T-DM1 itself and the products it is mistaken for.
LOOKALIKES = frozenset({TDM1, TDXD, TRASTUZUMAB})


def normalise_ndc(code: str) -> str:
    """NDCs arrive as 4-4-2, 5-3-2, 5-4-1 or 11 digits; compare them as 11 digits (5-4-2)."""
    parts = code.strip().split("-")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return parts[0].zfill(5) + parts[1].zfill(4) + parts[2].zfill(2)
    return code.replace("-", "").strip()


@dataclass(frozen=True)
class DrugFamily:
    family: str
    display: str
    her2_directed: bool
    codes: frozenset[Coding]
    text_pattern: re.Pattern[str] | None


def _first_ranks(code_sets: Iterable[frozenset[Coding]]) -> dict[Coding, int]:
    """Each coding's position among code_sets, the first set naming it winning.

    The matchers used to try the sets in order and return the first one any coding is in; the
    lowest rank among a resource's codings is that same answer, found with one lookup per coding.
    """
    ranks: dict[Coding, int] = {}
    for rank, codes in enumerate(code_sets):
        for coding in codes:
            ranks.setdefault(coding, rank)
    return ranks


@dataclass(frozen=True)
class ConditionSet:
    """One entry of `conditions`, read once: SNOMED codes, ICD-10-CM prefixes, text phrases."""

    snomed: tuple[str, ...]
    icd10cm_prefixes: tuple[str, ...]
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class StagingValue:
    """One entry of `staging.values`, read once: (system, code) pairs and whole texts."""

    codes: frozenset[Coding]
    texts: frozenset[str]


def _whole_text(text: str) -> str:
    # Case and spacing vary ("Stage  IV", "stage iv"); nothing else does, so "IVA" stays "iva".
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class Terminology:
    systems: dict[str, str]
    drugs: tuple[DrugFamily, ...]
    observations: dict[str, frozenset[Coding]]
    conditions: dict[str, dict[str, Any]]
    qualifiers: dict[str, frozenset[str]]
    lab_panels: dict[str, dict[str, Any]]
    # Extension URLs per element read (treatment_intent): the canonical ones, from data.
    extensions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Stage values that are metastatic evidence (stage_iv, m1), as in terminology.yaml `staging`.
    staging: dict[str, Any] = field(default_factory=dict)
    # Every URI an NDC may come under (the canonical one and its aliases): each is compared as 11 digits.
    ndc_systems: frozenset[str] = frozenset()
    # How a HER2 result given as text is read, as in terminology.yaml `her2_text`.
    her2_text: dict[str, Any] = field(default_factory=dict)
    # Derived from the fields above (which nothing mutates): the order-respecting lookups.
    _drug_ranks: dict[Coding, int] = field(init=False, repr=False, compare=False)
    _observation_kinds: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _observation_ranks: dict[Coding, int] = field(init=False, repr=False, compare=False)
    _condition_sets: dict[str, ConditionSet] = field(init=False, repr=False, compare=False)
    _extension_suffixes: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _staging_values: dict[str, StagingValue] = field(init=False, repr=False, compare=False)
    _her2_patterns: dict[str, re.Pattern[str] | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_drug_ranks", _first_ranks(d.codes for d in self.drugs))
        object.__setattr__(self, "_observation_kinds", tuple(self.observations))
        object.__setattr__(self, "_observation_ranks", _first_ranks(self.observations.values()))
        condition_sets = {
            name: ConditionSet(
                tuple(spec.get("snomed", ())),
                tuple(p.upper().replace(".", "") for p in spec.get("icd10cm_prefix", ())),
                tuple(spec.get("text", ())),
            )
            for name, spec in self.conditions.items()
        }
        object.__setattr__(self, "_condition_sets", condition_sets)
        suffixes = {
            name: tuple("/" + url.rstrip("/").rsplit("/", 1)[-1] for url in urls)
            for name, urls in self.extensions.items()
        }
        object.__setattr__(self, "_extension_suffixes", suffixes)
        ajcc = self.staging.get("ajcc_system", "")
        staging_values = {
            name: StagingValue(
                frozenset((self.systems["snomed"], c) for c in spec.get("snomed", ()))
                | frozenset((ajcc, c.upper()) for c in spec.get("ajcc", ())),
                frozenset(_whole_text(t) for t in spec.get("text", ())),
            )
            for name, spec in self.staging.get("values", {}).items()
        }
        object.__setattr__(self, "_staging_values", staging_values)
        her2_patterns = {
            name: _text_pattern(list(phrases))
            for name, phrases in self.her2_text.items()
            if isinstance(phrases, list) and name != "negations"
        }
        negations = self.her2_text.get("negations") or []
        # A negation word, then at most two more words, right before a phrase: "not positive",
        # "not HER2-positive", "non-amplified" (a phrase of its own where it is meant).
        her2_patterns["negations"] = (
            re.compile(
                r"(?<!\w)(?:" + "|".join(map(re.escape, negations)) + r")(?:[\s\-]+[\w/+]+){0,2}[\s\-]*$"
            )
            if negations
            else None
        )
        object.__setattr__(self, "_her2_patterns", her2_patterns)

    # -- drugs ---------------------------------------------------------------------------------
    def drug_family(self, coding_list: Iterable[Coding], text: str = "") -> str | None:
        """The first family, in terminology order, naming any of the codings; else by text."""
        ranks, ndc = self._drug_ranks, self.ndc_systems or {self.systems["ndc"]}
        best: int | None = None
        for system, code in coding_list:
            rank = ranks.get((system, normalise_ndc(code)) if system in ndc else (system, code))
            if rank is not None and (best is None or rank < best):
                best = rank
        if best is not None:
            return self.drugs[best].family
        if text:
            for drug in self.drugs:
                if drug.text_pattern and drug.text_pattern.search(text):
                    return drug.family
        return None

    def display(self, family: str) -> str:
        return next((d.display for d in self.drugs if d.family == family), family)

    def is_her2_directed(self, family: str | None) -> bool:
        return any(d.family == family and d.her2_directed for d in self.drugs)

    # -- observations and conditions ------------------------------------------------------------
    def observation_kind(self, coding_list: Iterable[Coding]) -> str | None:
        """The first kind, in terminology order, naming any of the codings."""
        ranks = self._observation_ranks
        best: int | None = None
        for coding in coding_list:
            rank = ranks.get(coding)
            if rank is not None and (best is None or rank < best):
                best = rank
        return None if best is None else self._observation_kinds[best]

    def in_condition_set(self, name: str, coding_list: Iterable[Coding], text: str = "") -> bool:
        spec = self._condition_sets[name]
        snomed, icd = self.systems["snomed"], self.systems["icd10cm"]
        for system, code in coding_list:
            if system == snomed and code in spec.snomed:
                return True
            # str.startswith with a tuple: any of the prefixes. ICD-10-CM arrives with and without
            # its dot ("C77.3", "C773"); prefixes are kept without it.
            if (
                system == icd
                and spec.icd10cm_prefixes
                and code.upper().replace(".", "").startswith(spec.icd10cm_prefixes)
            ):
                return True
        lowered = text.lower()
        return bool(lowered) and any(phrase in lowered for phrase in spec.phrases)

    def extension_suffixes(self, name: str) -> tuple[str, ...]:
        """The endings ("/" and the last path segment) of the URLs listed for extension `name`, for
        resources.extension_values: the same extension republished under another canonical base
        (profiles move) still reads. None listed: nothing matches."""
        return self._extension_suffixes.get(name, ())

    def is_staging_value(self, name: str, coding_list: Iterable[Coding], texts: Iterable[str]) -> bool:
        """Whether a stage value is the `staging` value `name` (stage_iv, m1): by its SNOMED or AJCC
        code (AJCC's in any case: "cM1", "CM1"); only a value with neither is read by its texts,
        each taken whole, so that "Stage IV" typed beside a code for IIIC does not overrule it."""
        value = self._staging_values[name]
        ajcc, snomed = self.staging.get("ajcc_system"), self.systems["snomed"]
        coded = False
        for system, code in coding_list:
            if system == ajcc:
                code = code.upper()
            elif system != snomed:
                continue
            if (system, code) in value.codes:
                return True
            coded = True
        return not coded and any(_whole_text(text) in value.texts for text in texts)

    def her2_says(self, name: str, clause: str) -> bool:
        """Whether a clause of a HER2 result's text holds a phrase of `her2_text` list `name`
        (ish_words, ish_negative, ...); a result phrase only where no negation word just before it
        denies it. ISH words name the test, negated or not: "not amplified" is an ISH result."""
        pattern = self._her2_patterns.get(name)
        if pattern is None:
            return False
        negated = None if name == "ish_words" else self._her2_patterns.get("negations")
        return any(
            negated is None or not negated.search(clause, 0, match.start())
            for match in pattern.finditer(clause)
        )

    def has_qualifier(self, name: str, coding_list: Iterable[Coding]) -> bool:
        return any(code in self.qualifiers[name] for _system, code in coding_list)

    def loinc(self, code: str) -> Coding:
        return self.systems["loinc"], code


# A space or hyphen inside a name matches any run of them, en and em dashes included: order text
# reads "ado-trastuzumab-emtansine" as often as "ado-trastuzumab emtansine", and a T-DM1 name that
# failed to match fell through to trastuzumab (a false mix-up card and no T-DM1 checks at all).
_SEPARATORS = re.compile(r"[\s\-]+")
_SEPARATOR_RUN = r"[\s\-\u2010-\u2015]+"


def _phrase_regex(phrase: str) -> str:
    return _SEPARATOR_RUN.join(re.escape(part) for part in _SEPARATORS.split(phrase.lower().strip()))


def _text_pattern(phrases: list[str]) -> re.Pattern[str] | None:
    if not phrases:
        return None
    # Word boundaries so "tdm1" does not match inside another token; hyphens are boundaries, so
    # "fam-trastuzumab deruxtecan" and "trastuzumab-anns" match. T-DM1 and T-DXd are tried before
    # trastuzumab (family order in terminology.yaml), so "ado-trastuzumab" never reads as trastuzumab.
    alternatives = sorted((_phrase_regex(p) for p in phrases), key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def from_data(data: dict[str, Any]) -> Terminology:
    systems = data["systems"]
    aliases = data.get("system_aliases", {})

    def uris(name: str) -> list[str]:
        return [systems[name], *aliases.get(name, ())]

    drugs = []
    for raw in data["drugs"]:
        codes: set[Coding] = {(uri, c) for uri in uris("rxnorm") for c in raw.get("rxnorm", [])}
        codes |= {(uri, normalise_ndc(c)) for uri in uris("ndc") for c in raw.get("ndc", [])}
        codes |= {(uri, c) for uri in uris("hcpcs") for c in raw.get("hcpcs", [])}
        drugs.append(
            DrugFamily(
                family=raw["family"],
                display=raw["display"],
                her2_directed=bool(raw.get("her2_directed")),
                codes=frozenset(codes),
                text_pattern=_text_pattern(raw.get("text", [])),
            )
        )
    observations = {
        kind: frozenset((systems["loinc"], c) for c in spec["loinc"])
        for kind, spec in data["observations"].items()
    }
    qualifiers = {
        name: frozenset(spec.get("snomed", []) + spec.get("loinc_answer", []))
        for name, spec in data["qualifiers"].items()
    }
    return Terminology(
        systems=systems,
        drugs=tuple(drugs),
        observations=observations,
        conditions=data["conditions"],
        qualifiers=qualifiers,
        lab_panels=data["lab_panels"],
        extensions={name: tuple(spec["urls"]) for name, spec in data.get("extensions", {}).items()},
        staging=data.get("staging", {}),
        ndc_systems=frozenset(uris("ndc")),
        her2_text=data.get("her2_text", {}),
    )


@cache
def default() -> Terminology:
    return from_data(knowledge.default().terminology)
