"""Finding → CDS Hooks 2.0.1 card, with the wording from cards/<rule-id>.yaml.

Card content (summary, Markdown detail, links, override reasons, suggestion labels) lives in
cards/ so clinicians can review and change it without touching code. This module adds what the
spec requires: a uuid on every card and suggestion, selectionBehavior whenever there are
suggestions, a display on every override reason, links typed, optional fields omitted when empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from service.clinical.findings import Finding
from service.clinical.knowledge import Knowledge
from service.ids import random_uuid

RULE_SYSTEM = "urn:tdm1-cds:rule"
OVERRIDE_SYSTEM = "urn:tdm1-cds:override-reason"
SUMMARY_LIMIT = 139  # the spec: "<140-character summary"
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


class CardContentError(ValueError):
    """cards/ is missing a rule, a variant or a field; the service must not start on it."""


def escape_markdown(text: str) -> str:
    """Facts can carry text the EHR sent; in a Markdown detail they must stay text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


@dataclass(frozen=True)
class CardContent:
    rule_id: str
    display: str
    source: dict[str, str]
    variants: dict[str, dict[str, str]]
    suggestions: dict[str, str]
    links: tuple[dict[str, str], ...]
    override_reasons: tuple[dict[str, str], ...]
    selection_behavior: str


def load(directory: Path) -> dict[str, CardContent]:
    if not directory.is_dir():
        raise CardContentError(f"card directory {directory} does not exist")
    contents: dict[str, CardContent] = {}
    for path in sorted(directory.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        rule_id = path.stem
        try:
            variants = raw["variants"]
            for name, variant in variants.items():
                if "summary" not in variant:
                    raise CardContentError(f"{path.name}: variant {name} has no summary")
            contents[rule_id] = CardContent(
                rule_id=rule_id,
                display=raw["display"],
                source=raw["source"],
                variants=variants,
                suggestions=raw.get("suggestions", {}),
                links=tuple(raw.get("links", [])),
                override_reasons=tuple(raw.get("override_reasons", [])),
                selection_behavior=raw.get("selection_behavior", "at-most-one"),
            )
        except KeyError as exc:
            raise CardContentError(f"{path.name}: missing {exc}") from exc
    return contents


def _format(template: str, facts: dict[str, Any], markdown: bool) -> str:
    values = {}
    for key, value in facts.items():
        if isinstance(value, list):
            value = "\n".join(f"- {escape_markdown(str(v)) if markdown else v}" for v in value)
        elif isinstance(value, str) and markdown:
            value = escape_markdown(value)
        values[key] = value
    return template.format_map(values).strip()


def _summary(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1].rstrip() + "…"


def _sources_markdown(finding: Finding, knowledge: Knowledge) -> str:
    lines = []
    for entry_id in finding.sources:
        entry = knowledge.entry(entry_id)
        flag = "" if entry.status == "confirmed" else f" _(status: {entry.status}; awaiting clinical review)_"
        lines.append(f"- {escape_markdown(entry.source)}{flag}")
    return "**Source**\n\n" + "\n".join(lines) if lines else ""


def render(finding: Finding, contents: dict[str, CardContent], knowledge: Knowledge) -> dict[str, Any]:
    content = contents.get(finding.rule_id)
    if content is None:
        raise CardContentError(f"no card content for rule {finding.rule_id}")
    variant = content.variants.get(finding.variant)
    if variant is None:
        raise CardContentError(f"cards/{finding.rule_id}.yaml has no variant {finding.variant!r}")
    card: dict[str, Any] = {
        "uuid": random_uuid(),
        "summary": _summary(_format(variant["summary"], finding.facts, markdown=False)),
        "indicator": finding.indicator,
        "source": {
            **{k: v for k, v in content.source.items() if k in ("label", "url", "icon") and v},
            "topic": {"system": RULE_SYSTEM, "code": finding.rule_id, "display": content.display},
        },
    }
    detail = "\n\n".join(
        part
        for part in (
            _format(variant.get("detail", ""), finding.facts, markdown=True),
            _sources_markdown(finding, knowledge),
        )
        if part
    )
    if detail:
        card["detail"] = detail
    suggestions = [
        {
            "label": content.suggestions.get(s.key, s.key),
            "uuid": random_uuid(),
            **({"isRecommended": True} if s.recommended else {}),
            "actions": [_action(a) for a in s.actions],
        }
        for s in finding.suggestions
    ]
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = content.selection_behavior
    if content.override_reasons:
        card["overrideReasons"] = [
            {"system": OVERRIDE_SYSTEM, "code": r["code"], "display": r["display"]}
            for r in content.override_reasons
        ]
    if content.links:
        card["links"] = [
            {"label": link["label"], "url": link["url"], "type": link.get("type", "absolute")}
            for link in content.links
        ]
    return card


def _action(action: Any) -> dict[str, Any]:
    rendered: dict[str, Any] = {"type": action.type, "description": action.description}
    if action.resource is not None:
        rendered["resource"] = action.resource
    if action.resource_id is not None:
        rendered["resourceId"] = action.resource_id
    return rendered
