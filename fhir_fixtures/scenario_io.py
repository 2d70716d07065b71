"""What every fixture generator shares: deterministic ids and writing a scenario with its expectations.

A scenario is a CDS Hooks request with complete prefetch (requests/<name>.json) and its
expectations (requests/<name>.meta.json: title, story, hook, the instant it is evaluated at, and
exactly the rule ids the response must contain).
"""

from __future__ import annotations

import itertools
import json
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import fhir_builders as fb

HERE = Path(__file__).resolve().parent
NOW = fb.iso(fb.NOW)


def deterministic_ids(prefix: str) -> None:
    """Resource ids prefix-1, prefix-2, … so that regenerating gives byte-identical files."""
    counter = itertools.count(1)
    fb.new_id = lambda: f"{prefix}-{next(counter)}"  # type: ignore[assignment]


def write(
    name: str,
    title: str,
    story: str,
    request: dict[str, Any],
    expect: list[str],
    *,
    ensure_ascii: bool = True,
) -> None:
    request["hookInstance"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:tdm1-cds:fixture:{name}"))
    (HERE / "requests" / f"{name}.json").write_text(
        json.dumps(request, indent=2, ensure_ascii=ensure_ascii) + "\n"
    )
    meta = {
        "title": title,
        "story": story,
        "hook": request["hook"],
        "now": NOW,
        "expect_cards": sorted(expect),
    }
    (HERE / "requests" / f"{name}.meta.json").write_text(
        json.dumps(meta, indent=2, ensure_ascii=ensure_ascii) + "\n"
    )
