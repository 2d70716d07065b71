"""`tdm1-cds knowledge` lists every clinical entry with source and status, unverified ones loudly;
and every knowledge entry a rule cites exists."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from service import cards
from service.cli import main
from service.clinical import knowledge
from service.clinical.findings import Finding
from tests import fhir_builders as fb
from tests.unit.rule_helpers import on_order, on_patient_view

KB = knowledge.default()
RULES_DIR = Path(__file__).resolve().parents[2] / "service" / "clinical" / "rules"
CARDS_DIR = Path(__file__).resolve().parents[2] / "cards"


def test_text_listing_names_every_entry_with_source_and_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["knowledge"]) == 0
    out = capsys.readouterr().out
    for entry in KB.entries.values():
        assert entry.id in out
        assert entry.source in out
    unverified = [e for e in KB.entries.values() if e.status != "confirmed"]
    assert unverified, "the EBC tables at least are unverified"
    assert f"{len(KB.entries)} entries; {len(unverified)} NOT confirmed" in out


def test_text_listing_puts_unverified_first_and_flags_them(capsys: pytest.CaptureFixture[str]) -> None:
    main(["knowledge"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line and not line.startswith(" ")]
    entry_lines = [line for line in lines if line.split()[0] in KB.entries]
    statuses = [KB.entries[line.split()[0]].status for line in entry_lines]
    first_confirmed = statuses.index("confirmed")
    assert all(s != "confirmed" for s in statuses[:first_confirmed])
    assert all(s == "confirmed" for s in statuses[first_confirmed:])
    for line in entry_lines:
        entry = KB.entries[line.split()[0]]
        if entry.status == "unverified":
            assert "!! UNVERIFIED" in line
        elif entry.status == "secondary":
            assert "!! SECONDARY" in line
        else:
            assert "confirmed" in line and "!!" not in line


def test_ebc_tables_and_the_mbc_grade2_policy_are_listed_as_unverified(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["knowledge"])
    out = capsys.readouterr().out
    for entry_id in (
        "ebc.alt",
        "ebc.ast",
        "ebc.bilirubin",
        "ebc.thrombocytopenia",
        "ebc.lvef",
        "mbc.thrombocytopenia-grade2",
    ):
        line = next(line for line in out.splitlines() if line.startswith(entry_id + " "))
        assert "!! UNVERIFIED" in line


def test_json_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["knowledge", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {item["id"] for item in listed} == set(KB.entries)
    for item in listed:
        assert set(item) >= {"id", "title", "value", "setting", "source", "status"}
        assert item["status"] == KB.entries[item["id"]].status
    statuses = [item["status"] for item in listed]
    assert statuses.index("confirmed") == sum(1 for s in statuses if s != "confirmed")  # unverified first
    mbc = next(item for item in listed if item["id"] == "mbc.thrombocytopenia")
    assert mbc["value"][0]["platelets_below_per_mm3"] == 50000  # tables come out as data


def _entry_like_strings() -> set[tuple[str, str]]:
    prefixes = {entry_id.split(".")[0] for entry_id in KB.entries}
    pattern = re.compile(r"^(?:" + "|".join(map(re.escape, sorted(prefixes))) + r")\.[a-z0-9][a-z0-9.-]*$")
    found = set()
    for path in RULES_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and pattern.match(node.value):
                found.add((path.name, node.value))
    return found


def test_every_entry_id_written_in_a_rule_exists() -> None:
    cited = _entry_like_strings()
    assert ("thrombocytopenia.py", "mbc.thrombocytopenia") in cited  # the scan sees the rules
    missing = sorted(f"{module}: {entry_id}" for module, entry_id in cited if entry_id not in KB.entries)
    assert missing == []


def _scenario_findings() -> list[Finding]:
    ild = fb.condition("233703007", "Interstitial lung disease")
    nrh = fb.condition("x", "Nodular regenerative hyperplasia", system="urn:local")
    hf = fb.condition("42343007", "Congestive heart failure")
    labs = fb.fresh_labs(platelets=20, alt=30 * 40, bilirubin=3 * 1.2)
    findings: list[Finding] = []
    for setting in ([fb.breast_cancer(), fb.liver_metastases()], [fb.breast_cancer()], []):
        findings += on_order(fb.medication_request(), [*setting, *labs, ild, nrh])
        findings += on_order(fb.medication_request(), [*setting, hf])
        findings += on_order(
            fb.medication_request(), [*setting, fb.observation("lvef", 35, fb.ago(days=1)), *fb.fresh_labs()]
        )
        findings += on_patient_view([*setting, *labs, fb.administration("tdm1", fb.ago(days=20))])
        recovered = [
            fb.administration("tdm1", fb.ago(days=21)),
            fb.observation("platelets", 20, fb.ago(days=10)),
            fb.observation("alt", 10 * 40, fb.ago(days=10)),
            fb.observation("lvef", 38, fb.ago(days=10)),
            fb.observation("lvef", 37, fb.ago(days=2)),
            *fb.fresh_labs(),
        ]
        findings += on_order(fb.medication_request(), [*setting, *recovered])
    return findings


def test_every_source_a_finding_cites_exists_and_every_card_renders() -> None:
    findings = _scenario_findings()
    ids = {f.rule_id for f in findings}
    variants = {(f.rule_id, f.variant) for f in findings}
    assert variants >= {
        ("thrombocytopenia-hold", "resume-reduced"),
        ("hepatotoxicity", "resume-reduced"),
        ("lvef-decline", "confirmed"),
        ("lvef-decline", "heart-failure"),
    }
    assert ids >= {
        "thrombocytopenia-hold",
        "hepatotoxicity",
        "lvef-monitoring",
        "lvef-decline",
        "pulmonary-toxicity",
    }
    contents = cards.load(CARDS_DIR)
    for finding in findings:
        for entry_id in finding.sources:
            assert entry_id in KB.entries, f"{finding.rule_id} cites unknown {entry_id}"
        card = cards.render(finding, contents, KB)
        assert len(card["summary"]) < 140 and not card["summary"].endswith("…"), card["summary"]
        if any(KB.entries[e].status != "confirmed" for e in finding.sources):
            assert "awaiting clinical review" in card["detail"]
