"""The card preview in Debian's Chromium against the real server: what an informaticist clicks through.

Waits use Playwright's auto-waiting `expect` (the page talks to the server asynchronously); nothing
here asserts how long anything takes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.browser.conftest import NARROW, WIDE, PreviewServer, screenshot

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture fails (CI) or skips (locally) with the reason
    expect = None  # type: ignore[assignment]

pytestmark = pytest.mark.integration

INDICATOR_LABELS = {"info": "Info", "warning": "Warning", "critical": "Critical"}


def open_preview(page: Any, base: str) -> None:
    page.goto(f"{base}/preview/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def run_scenario(page: Any, name: str, service_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Click a scenario; return the request the page sent and the JSON the service answered."""
    with page.expect_response(
        lambda r: r.url.endswith(f"/cds-services/{service_id}") and r.request.method == "POST"
    ) as answer:
        page.locator(f"button[data-scenario='{name}']").click()
    response = answer.value
    assert response.status == 200, response.text()
    body = response.json()
    expect(page.locator("#results .cds-card")).to_have_count(len(body["cards"]))
    return {"headers": response.request.headers, "body": response.request.post_data_json}, body


def card_by_rule(page: Any, rule: str) -> Any:
    return page.locator(f"#results .cds-card[data-rule='{rule}']")


def assert_rendered_as_returned(page: Any, cards: list[dict[str, Any]]) -> None:
    for card in cards:
        node = page.locator(f"#results .cds-card[data-card-uuid='{card['uuid']}']")
        expect(node.locator(".cds-card__summary")).to_have_text(card["summary"])
        expect(node).to_have_attribute("data-indicator", card["indicator"])
        expect(node).to_have_class(re.compile(rf"\bcds-card--{card['indicator']}\b"))
        expect(node.locator(".cds-card__indicator-label")).to_have_text(INDICATOR_LABELS[card["indicator"]])


def test_two_scenarios_render_and_feedback_lands_in_the_card_log(
    page: Any, preview_server: PreviewServer
) -> None:
    before = preview_server.report()
    open_preview(page, preview_server.base)
    items = page.locator(".scenario-list button")
    expect(items).to_have_count(3)
    first = page.locator("button[data-scenario='first-line']")
    expect(first.locator(".scenario__title")).to_have_text("T-DM1 ordered first line")
    expect(first.locator(".scenario__hook")).to_have_text("order-sign")
    expect(first.locator(".scenario__story")).to_have_text(
        "Liver metastases, no HER2-directed therapy yet; T-DM1 is ordered."
    )

    # Scenario 1: the real endpoint, at the scenario's `now`; accept the suggestion.
    sent, answer = run_scenario(page, "first-line", "tdm1-order-sign")
    assert sent["headers"]["x-tdm1-cds-now"] == "2026-11-25T09:00:00Z"
    request_file = json.loads((preview_server.fixtures / "first-line.json").read_text())
    assert sent["body"] == request_file
    assert_rendered_as_returned(page, answer["cards"])
    card = next(c for c in answer["cards"] if c["source"]["topic"]["code"] == "first-line-use")
    node = card_by_rule(page, "first-line-use")
    expect(node.locator(".cds-card__summary")).to_contain_text("T-DM1 ordered first line")
    expect(node.locator(".cds-card__detail strong").first).to_have_text(
        "no HER2-directed therapy for advanced disease"
    )
    expect(node.locator(".cds-card__source a")).to_have_attribute("href", card["source"]["url"])
    expect(node.locator(".cds-card__links a")).to_have_count(len(card["links"]))
    suggestion = card["suggestions"][0]
    button = node.locator(f"button[data-suggestion-uuid='{suggestion['uuid']}']")
    expect(button).to_have_text(suggestion["label"])
    button.click()
    expect(node.locator(".cds-card__status")).to_contain_text("Feedback recorded by the service (HTTP 200)")
    [row] = preview_server.feedback_rows(card["uuid"])
    assert row["outcome"] == "accepted"
    assert json.loads(row["accepted_suggestions"]) == [suggestion["uuid"]]
    assert row["known_card"] == 1  # the card the page rendered is the one the service logged
    screenshot(page, "preview-accepted.png")

    # Scenario 2: dismiss with an override reason offered by the card.
    _sent, answer = run_scenario(page, "platelets-missing", "tdm1-order-sign")
    assert_rendered_as_returned(page, answer["cards"])
    card = next(c for c in answer["cards"] if c["source"]["topic"]["code"] == "platelets-missing")
    node = card_by_rule(page, "platelets-missing")
    expect(node.locator(".cds-card__summary")).to_have_text(
        "No platelet count in the 3 days before this T-DM1 dose: check platelets before every dose"
    )
    expect(node.locator(".cds-card__indicator-label")).to_have_text("Warning")
    node.locator(".cds-card__dismiss").click()
    node.get_by_label("Drawn today; result pending before administration").check()
    node.get_by_label(re.compile("^Comment")).fill("Patient Alice Testpatient, pending")
    node.get_by_role("button", name="Dismiss card").click()
    expect(node.locator(".cds-card__status")).to_contain_text("Dismissed (Drawn today; result pending")
    [row] = preview_server.feedback_rows(card["uuid"])
    assert row["outcome"] == "overridden"
    assert (row["override_system"], row["override_code"]) == (
        "urn:tdm1-cds:override-reason",
        "labs-pending-today",
    )
    assert row["has_comment"] == 1
    screenshot(page, "preview-dismissed.png")
    assert page.js_errors == []

    # ...and `tdm1-cds report` counts both.
    after = preview_server.report()

    def count(rule: str, what: str) -> int:
        return after[rule][what] - before.get(rule, {}).get(what, 0)

    assert (count("first-line-use", "accepted"), count("first-line-use", "overridden")) == (1, 0)
    assert (count("platelets-missing", "accepted"), count("platelets-missing", "overridden")) == (0, 1)
    reasons = after["platelets-missing"]["override_reasons"]
    earlier = before.get("platelets-missing", {}).get("override_reasons", {})
    assert reasons.get("labs-pending-today", 0) - earlier.get("labs-pending-today", 0) == 1


def test_markdown_subset_is_rendered_as_elements(page: Any, preview_server: PreviewServer) -> None:
    open_preview(page, preview_server.base)
    markdown = (
        "Intro with **bold**, _italics_, *stars*, `code`, snake_case_name and an escaped \\*star\\*.\n"
        "Same paragraph.\n\n"
        "- first item\n  continued\n- second [DailyMed](https://dailymed.nlm.nih.gov/x) item\n"
        "- [bad](javascript:alert(1)) item\n\n"
        "1. one\n2. two\n\n"
        "| | |\n|---|---|\n| Setting | metastatic \\| early |\n| Cycles | 3 |\n"
    )
    shape = page.evaluate(
        """(source) => {
            const root = window.TDM1Preview.renderMarkdown(source);
            const texts = (selector) => [...root.querySelectorAll(selector)].map((n) => n.textContent);
            return {
                children: [...root.children].map((n) => n.tagName),
                paragraph: root.querySelector('p').textContent,
                strong: texts('p strong'), em: texts('p em'), code: texts('p code'),
                items: texts('ul > li'), ordered: texts('ol > li'),
                links: [...root.querySelectorAll('a')].map((a) => [a.textContent, a.href, a.rel]),
                rows: [...root.querySelectorAll('tbody tr')].map((r) => [...r.children].map((c) => c.tagName + ':' + c.textContent)),
            };
        }""",
        markdown,
    )
    assert shape["children"] == ["P", "UL", "OL", "DIV"]
    assert shape["paragraph"] == (
        "Intro with bold, italics, stars, code, snake_case_name and an escaped *star*. Same paragraph."
    )
    assert (shape["strong"], shape["em"], shape["code"]) == (["bold"], ["italics", "stars"], ["code"])
    assert shape["items"] == ["first item continued", "second DailyMed item", "bad item"]
    assert shape["ordered"] == ["one", "two"]
    assert shape["links"] == [["DailyMed", "https://dailymed.nlm.nih.gov/x", "noopener noreferrer"]]
    assert shape["rows"] == [["TH:Setting", "TD:metastatic | early"], ["TH:Cycles", "TD:3"]]


HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


def hostile_response() -> dict[str, Any]:
    return {
        "cards": [
            {
                "uuid": "hostile-card",
                "summary": f"Summary {HOSTILE}",
                "indicator": "critical",
                "detail": (
                    f"Detail {HOSTILE} **bold <svg onload=window.__pwned=3>**\n\n"
                    f"- item <iframe src=javascript:window.__pwned=4></iframe>\n"
                    f"- [click me](javascript:window.__pwned=5)\n\n"
                    f"| a | <b onmouseover=window.__pwned=6>b</b> |\n|---|---|\n| {HOSTILE} | x |\n"
                ),
                "source": {
                    "label": f"Source {HOSTILE}",
                    "url": "javascript:window.__pwned=7",
                    "topic": {"system": "urn:tdm1-cds:rule", "code": "<b>rule</b>"},
                },
                "suggestions": [
                    {
                        "label": f"Fix {HOSTILE}",
                        "uuid": "s-1",
                        "actions": [{"type": "create", "description": HOSTILE}],
                    }
                ],
                "selectionBehavior": "at-most-one",
                "overrideReasons": [{"system": "urn:x", "code": "c", "display": f"Reason {HOSTILE}"}],
                "links": [
                    {"label": f"Link {HOSTILE}", "url": "javascript:window.__pwned=8", "type": "absolute"},
                    {"label": "data", "url": "data:text/html,<script>alert(1)</script>", "type": "absolute"},
                ],
            }
        ]
    }


def test_hostile_card_text_never_becomes_markup(page: Any, preview_server: PreviewServer) -> None:
    def fulfil(route: Any) -> None:
        if route.request.method == "POST":
            route.fulfill(status=200, content_type="application/json", body=json.dumps(hostile_response()))
        else:
            route.continue_()

    page.route("**/cds-services/tdm1-order-sign", fulfil)
    open_preview(page, preview_server.base)
    page.locator("button[data-scenario='first-line']").click()
    card = page.locator("#results .cds-card")
    expect(card).to_have_count(1)
    card.locator(".cds-card__dismiss").click()  # the override reasons are rendered too
    expect(card.locator(".cds-card__summary")).to_have_text(f"Summary {HOSTILE}")
    injected = page.locator("#results").locator("img, script, svg, iframe, b, object, embed")
    expect(injected).to_have_count(0)
    hrefs = card.locator("a").evaluate_all("(links) => links.map((a) => a.href)")
    assert hrefs == [], hrefs  # only http(s) becomes a link; every URL here was javascript: or data:
    for where in (
        ".cds-card__detail",
        ".cds-card__source",
        ".cds-card__suggestions",
        ".cds-card__links",
        ".override",
    ):
        text = card.locator(where).inner_text()
        assert "<img src=x onerror=" in text and "<script>" in text, (where, text)
    assert page.evaluate("window.__pwned") is None


def test_paste_a_bundle_or_a_request_and_see_errors_as_returned(
    page: Any, preview_server: PreviewServer
) -> None:
    open_preview(page, preview_server.base)
    scenario = json.loads((preview_server.fixtures / "first-line.json").read_text())
    draft = scenario["context"]["draftOrders"]["entry"][0]["resource"]
    record = [
        scenario["prefetch"]["patient"],
        *(
            e["resource"]
            for key, value in scenario["prefetch"].items()
            if key != "patient"
            for e in value["entry"]
        ),
    ]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in record]}

    page.get_by_label(re.compile("^CDS Hooks request, or a FHIR Bundle")).fill(json.dumps(bundle))
    page.get_by_label("Hook", exact=True).select_option("order-select")
    page.get_by_label(re.compile("^Draft order")).fill(json.dumps(draft))
    page.get_by_label(re.compile("^Evaluate as of")).fill("2026-11-25T09:00:00Z")
    with page.expect_response(lambda r: r.url.endswith("/cds-services/tdm1-order-select")) as answer:
        page.get_by_role("button", name="Send to the service").click()
    built = answer.value.request.post_data_json
    discovery = page.request.get(f"{preview_server.base}/cds-services").json()
    select_service = next(s for s in discovery["services"] if s["hook"] == "order-select")
    assert set(built["prefetch"]) == set(select_service["prefetch"])
    assert built["context"]["patientId"] == "pat-1"
    assert built["context"]["selections"] == ["MedicationRequest/draft-tdm1"]
    assert built["prefetch"]["observations"]["type"] == "searchset"
    assert answer.value.status == 200
    expect(card_by_rule(page, "first-line-use")).to_have_count(1)

    # No separate order: the Bundle's own draft MedicationRequest is the order, not history.
    with_draft = {**bundle, "entry": [*bundle["entry"], {"resource": draft}]}
    page.get_by_label(re.compile("^CDS Hooks request, or a FHIR Bundle")).fill(json.dumps(with_draft))
    page.get_by_label("Hook", exact=True).select_option("order-sign")
    page.get_by_label(re.compile("^Draft order")).fill("")
    with page.expect_response(lambda r: r.url.endswith("/cds-services/tdm1-order-sign")) as answer:
        page.get_by_role("button", name="Send to the service").click()
    built = answer.value.request.post_data_json
    assert [e["resource"]["id"] for e in built["context"]["draftOrders"]["entry"]] == ["draft-tdm1"]
    history_ids = [e["resource"]["id"] for e in built["prefetch"]["medicationRequests"]["entry"]]
    assert "draft-tdm1" not in history_ids
    expect(card_by_rule(page, "first-line-use")).to_have_count(1)

    # A malformed request: the service's status and OperationOutcome diagnostics, as returned.
    broken = {"hook": "order-sign", "hookInstance": "not-a-uuid-but-fine", "context": {"userId": "x"}}
    page.get_by_label(re.compile("^CDS Hooks request, or a FHIR Bundle")).fill(json.dumps(broken))
    with page.expect_response(lambda r: r.url.endswith("/cds-services/tdm1-order-sign")) as answer:
        page.get_by_role("button", name="Send to the service").click()
    outcome = answer.value.json()
    assert answer.value.status == 400
    error = page.locator("#results .service-error")
    expect(error).to_contain_text("HTTP 400")
    for issue in outcome["issue"]:
        expect(error).to_contain_text(issue["diagnostics"])

    # Not JSON at all: said on the form, nothing sent.
    page.get_by_label(re.compile("^CDS Hooks request, or a FHIR Bundle")).fill("{not json")
    page.get_by_role("button", name="Send to the service").click()
    expect(page.locator("#paste-error")).to_contain_text("not valid JSON")


def test_keyboard_only_run_and_accept(page: Any, preview_server: PreviewServer) -> None:
    open_preview(page, preview_server.base)
    target = page.locator("button[data-scenario='platelets-missing']")
    for _ in range(20):
        page.keyboard.press("Tab")
        if target.evaluate("(node) => node === document.activeElement"):
            break
    else:
        pytest.fail("the scenario button cannot be reached with Tab")
    assert target.evaluate("(node) => getComputedStyle(node).outlineStyle") != "none"
    page.keyboard.press("Enter")
    card = card_by_rule(page, "platelets-missing")
    suggestion = card.locator("button[data-suggestion-uuid]")
    expect(suggestion).to_have_count(1)
    for _ in range(60):
        page.keyboard.press("Tab")
        if suggestion.evaluate("(node) => node === document.activeElement"):
            break
    else:
        pytest.fail("the suggestion button cannot be reached with Tab")
    assert suggestion.evaluate("(node) => node.matches(':focus-visible')")
    assert suggestion.evaluate("(node) => getComputedStyle(node).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    expect(card.locator(".cds-card__status")).to_contain_text("Feedback recorded")
    card_uuid = card.get_attribute("data-card-uuid")
    assert [r["outcome"] for r in preview_server.feedback_rows(card_uuid)] == ["accepted"]


CONTRAST_PROBE = """() => {
    const channels = (css) => css.match(/[\\d.]+/g).map(Number);
    const background = (node) => {
        for (let n = node; n; n = n.parentElement) {
            const [r, g, b, a] = channels(getComputedStyle(n).backgroundColor).concat([1]);
            if (a > 0 && getComputedStyle(n).backgroundColor !== 'rgba(0, 0, 0, 0)') return [r, g, b];
        }
        return [255, 255, 255];
    };
    const selector = [
        '.topbar h1', '.topbar p', '.muted', '.scenario__title', '.scenario__hook', '.scenario__story',
        '.cds-card__summary', '.cds-card__indicator-label', '.cds-card__detail p', '.cds-card__detail li',
        '.cds-card__detail td', '.cds-card__source', '.cds-card__source a', '.cds-card__links a',
        '.suggestion__actions li', '.button', '.expectation', '.results__label', '.paste-form label',
        '.cds-card__status', 'dt', 'dd', 'summary'
    ].join(',');
    return [...document.querySelectorAll(selector)]
        .filter((n) => n.offsetParent !== null && n.textContent.trim())
        .map((n) => ({
            what: n.className || n.tagName,
            text: n.textContent.trim().slice(0, 40),
            fg: channels(getComputedStyle(n).color).slice(0, 3),
            bg: background(n),
        }));
}"""


def _luminance(rgb: list[float]) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: list[float], bg: list[float]) -> float:
    light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_text_contrast_is_at_least_4_5_to_1(page: Any, preview_server: PreviewServer) -> None:
    open_preview(page, preview_server.base)
    for name, service in (("first-line", "tdm1-order-sign"), ("summary", "tdm1-patient-view")):
        run_scenario(page, name, service)
        samples = page.evaluate(CONTRAST_PROBE)
        assert len(samples) > 20
        poor = [(s["what"], s["text"], round(contrast(s["fg"], s["bg"]), 2)) for s in samples]
        poor = [p for p in poor if p[2] < 4.5]
        assert poor == []
    placeholder = page.evaluate(
        """() => {
            const channels = (css) => css.match(/[\\d.]+/g).map(Number).slice(0, 3);
            const input = document.querySelector('#paste-now');
            return [channels(getComputedStyle(input, '::placeholder').color), channels(getComputedStyle(input).backgroundColor)];
        }"""
    )
    assert contrast(*placeholder) >= 4.5, placeholder
    # Every indicator, whatever the current scenarios return.
    for indicator in ("info", "warning", "critical"):
        page.evaluate(
            """(indicator) => {
                const card = {uuid: 'c-' + indicator, summary: 'S', indicator, source: {label: 'x'}};
                document.querySelector('#results').replaceChildren(window.TDM1Preview.renderCard(card, 'svc', 9));
            }""",
            indicator,
        )
        for sample in page.evaluate(CONTRAST_PROBE):
            assert contrast(sample["fg"], sample["bg"]) >= 4.5, (indicator, sample)


def test_wide_and_narrow_windows(page: Any, preview_server: PreviewServer) -> None:
    for viewport, name in ((WIDE, "preview-1280.png"), (NARROW, "preview-400.png")):
        page.set_viewport_size(viewport)
        open_preview(page, preview_server.base)
        run_scenario(page, "first-line", "tdm1-order-sign")
        card_by_rule(page, "first-line-use").locator(".cds-card__dismiss").click()
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{viewport['width']} px window scrolls sideways by {overflow} px"
        screenshot(page, name)
        run_scenario(page, "summary", "tdm1-patient-view")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{viewport['width']} px window scrolls sideways by {overflow} px"
    assert page.js_errors == []


def test_every_shared_fixture_renders_what_it_expects(page: Any, shared_fixtures_server: str) -> None:
    """`make run`'s preview: each scenario in fhir_fixtures/requests/ is listed, sent and rendered."""
    open_preview(page, shared_fixtures_server)
    listed = page.request.get(f"{shared_fixtures_server}/preview/scenarios").json()["scenarios"]
    if not listed:
        pytest.skip("fhir_fixtures/requests/ has no scenarios yet")
    expect(page.locator(".scenario-list button")).to_have_count(len(listed))
    mismatches = []
    for scenario in listed:
        with page.expect_response(
            lambda r: "/cds-services/tdm1-" in r.url and r.request.method == "POST"
        ) as answer:
            page.locator(f"button[data-scenario='{scenario['name']}']").click()
        body = answer.value.json()
        if answer.value.status != 200:
            mismatches.append((scenario["name"], answer.value.status, body))
            continue
        expect(page.locator("#results .cds-card")).to_have_count(len(body["cards"]))
        expect(page.locator("#results .expectation")).to_have_count(1)
        rendered = sorted(
            page.locator("#results .cds-card").evaluate_all("(n) => n.map((c) => c.dataset.rule)")
        )
        if rendered != sorted(scenario["expectCards"]):
            mismatches.append((scenario["name"], rendered, scenario["expectCards"]))
    assert mismatches == []
