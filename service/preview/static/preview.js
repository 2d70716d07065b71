// tdm1-cds card preview. Cards carry text that came from the EHR, so this script never parses
// markup: every element is made with createElement and every piece of text goes in through
// textContent or a text node. No DOM call here parses an HTML string (tests/api/test_preview.py
// checks), and the page's Content-Security-Policy would refuse an injected script anyway.
"use strict";

(function () {
  const SERVICES_URL = new URL("../cds-services", document.baseURI).href;
  const SCENARIOS_URL = new URL("scenarios", document.baseURI).href;
  const NOW_HEADER = "X-TDM1-CDS-Now";
  const INDICATORS = {
    info: { label: "Info", glyph: "i" },
    warning: { label: "Warning", glyph: "!" },
    critical: { label: "Critical", glyph: "!!" },
  };
  const INDICATOR_ORDER = { critical: 0, warning: 1, info: 2 };

  // ---------------------------------------------------------------- DOM helpers

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "className") node.className = value;
      else if (name === "hidden") node.hidden = true;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children || []) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // Only http(s) URLs become links: javascript:, data: and the like stay text.
  function safeUrl(raw) {
    if (typeof raw !== "string" || !raw.trim()) return null;
    try {
      const url = new URL(raw.trim());
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_error) {
      return null;
    }
  }

  function externalLink(label, url) {
    const href = safeUrl(url);
    if (!href) return el("span", { className: "unsafe-link", text: label });
    return el("a", { href, target: "_blank", rel: "noopener noreferrer", text: label });
  }

  // ---------------------------------------------------------------- Markdown (the subset cards/ uses)
  // Paragraphs, **bold**, _italics_ / *italics*, `code`, [links](http...), "- " and "1. " lists with
  // indented continuation lines, GFM pipe tables and backslash escapes. Anything else is text.

  const ESCAPABLE = "\\`*_{}[]()#+-.!|<>~";

  function renderInline(text, target) {
    let buffer = "";
    const flush = () => {
      if (buffer) target.append(document.createTextNode(buffer));
      buffer = "";
    };
    let i = 0;
    while (i < text.length) {
      const ch = text[i];
      if (ch === "\\" && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) {
        buffer += text[i + 1];
        i += 2;
        continue;
      }
      if (ch === "`") {
        const end = text.indexOf("`", i + 1);
        if (end > i + 1) {
          flush();
          target.append(el("code", { text: text.slice(i + 1, end) }));
          i = end + 1;
          continue;
        }
      }
      if ((ch === "*" || ch === "_") && text[i + 1] === ch && opensEmphasis(text, i)) {
        const end = findClosing(text, ch + ch, i + 2);
        if (end > i + 2) {
          flush();
          const strong = el("strong");
          renderInline(text.slice(i + 2, end), strong);
          target.append(strong);
          i = end + 2;
          continue;
        }
      }
      if ((ch === "*" || ch === "_") && text[i + 1] && text[i + 1] !== " " && opensEmphasis(text, i)) {
        const end = findClosing(text, ch, i + 1);
        if (end > i + 1 && text[end - 1] !== " ") {
          flush();
          const em = el("em");
          renderInline(text.slice(i + 1, end), em);
          target.append(em);
          i = end + 1;
          continue;
        }
      }
      if (ch === "[") {
        const link = parseLink(text, i);
        if (link) {
          flush();
          const href = safeUrl(link.url);
          const node = href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }) : el("span");
          renderInline(link.label, node);
          target.append(node);
          i = link.end;
          continue;
        }
      }
      buffer += ch;
      i += 1;
    }
    flush();
    return target;
  }

  // Underscores inside words (snake_case, file_names) are not emphasis in GFM.
  function opensEmphasis(text, i) {
    return text[i] === "*" || i === 0 || !/[A-Za-z0-9]/.test(text[i - 1]);
  }

  function findClosing(text, marker, from) {
    let i = from;
    while (i < text.length) {
      if (text[i] === "\\") {
        i += 2;
        continue;
      }
      if (text.startsWith(marker, i)) {
        if (marker.length === 1 && text[i + 1] === marker) {
          i += 2; // a ** inside *...* belongs to a nested strong
          continue;
        }
        if (marker[0] === "_" && /[A-Za-z0-9]/.test(text[i + marker.length] || "")) {
          i += 1;
          continue;
        }
        return i;
      }
      i += 1;
    }
    return -1;
  }

  function parseLink(text, start) {
    let depth = 0;
    let i = start;
    for (; i < text.length; i += 1) {
      if (text[i] === "\\") {
        i += 1;
        continue;
      }
      if (text[i] === "[") depth += 1;
      if (text[i] === "]") {
        depth -= 1;
        if (depth === 0) break;
      }
    }
    if (i >= text.length || text[i + 1] !== "(") return null;
    // Destinations may hold balanced parentheses (GFM), e.g. a DailyMed URL or javascript:f(1).
    let close = i + 2;
    for (let parens = 0; close < text.length; close += 1) {
      if (text[close] === "(") parens += 1;
      else if (text[close] === ")") {
        if (parens === 0) break;
        parens -= 1;
      }
    }
    if (close >= text.length) return null;
    const url = text.slice(i + 2, close).trim().split(/\s+/)[0];
    return { label: text.slice(start + 1, i), url, end: close + 1 };
  }

  function splitRow(line) {
    let row = line.trim();
    if (row.startsWith("|")) row = row.slice(1);
    if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
    const cells = [];
    let cell = "";
    for (let i = 0; i < row.length; i += 1) {
      if (row[i] === "\\" && row[i + 1] === "|") {
        cell += "\\|";
        i += 1;
      } else if (row[i] === "|") {
        cells.push(cell.trim());
        cell = "";
      } else {
        cell += row[i];
      }
    }
    cells.push(cell.trim());
    return cells;
  }

  const TABLE_RULE = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;
  const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

  function isTableStart(lines, i) {
    return lines[i].includes("|") && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1]);
  }

  function renderTable(lines, start, parent) {
    const header = splitRow(lines[start]);
    const table = el("table");
    const headRow = el("tr");
    const emptyHeader = header.every((cell) => cell === "");
    for (const cell of header) headRow.append(renderInline(cell, el("th", { scope: "col" })));
    if (!emptyHeader) table.append(el("thead", {}, [headRow]));
    const body = el("tbody");
    let i = start + 2;
    for (; i < lines.length && lines[i].trim() && lines[i].includes("|"); i += 1) {
      const cells = splitRow(lines[i]);
      const row = el("tr");
      header.forEach((_h, index) => {
        const cellText = cells[index] || "";
        // A two-column key/value table reads better with its first cell as a row header.
        const cellNode = index === 0 && emptyHeader ? el("th", { scope: "row" }) : el("td");
        row.append(renderInline(cellText, cellNode));
      });
      body.append(row);
    }
    table.append(body);
    parent.append(el("div", { className: "table-wrap", tabindex: "0", role: "region", "aria-label": "Table" }, [table]));
    return i;
  }

  function renderList(lines, start, parent) {
    const first = LIST_ITEM.exec(lines[start]);
    const ordered = /\d/.test(first[2]);
    const list = el(ordered ? "ol" : "ul");
    const baseIndent = first[1].length;
    let item = null;
    let itemText = [];
    const finish = () => {
      if (item) {
        renderInline(itemText.join(" "), item);
        list.append(item);
      }
    };
    let i = start;
    for (; i < lines.length; i += 1) {
      const line = lines[i];
      if (!line.trim()) break;
      const match = LIST_ITEM.exec(line);
      if (match && match[1].length <= baseIndent + 1) {
        finish();
        item = el("li");
        itemText = [match[3]];
      } else if (/^\s+/.test(line) || !isBlockStart(lines, i)) {
        itemText.push(line.trim()); // an indented or lazy continuation of the item
      } else {
        break;
      }
    }
    finish();
    parent.append(list);
    return i;
  }

  function isBlockStart(lines, i) {
    return LIST_ITEM.test(lines[i]) || isTableStart(lines, i) || /^#{1,6}\s/.test(lines[i]);
  }

  function renderMarkdown(source) {
    const root = el("div", { className: "markdown" });
    const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) {
        i += 1;
        continue;
      }
      if (isTableStart(lines, i)) {
        i = renderTable(lines, i, root);
        continue;
      }
      if (LIST_ITEM.test(line)) {
        i = renderList(lines, i, root);
        continue;
      }
      const heading = /^(#{1,6})\s+(.*)$/.exec(line);
      if (heading) {
        // Card headings sit under the card's own h3, so they are shown one level lower at least.
        const level = Math.min(6, heading[1].length + 3);
        root.append(renderInline(heading[2], el(`h${level}`)));
        i += 1;
        continue;
      }
      const paragraph = [];
      while (i < lines.length && lines[i].trim() && (paragraph.length === 0 || !isBlockStart(lines, i))) {
        paragraph.push(lines[i].trim());
        i += 1;
      }
      root.append(renderInline(paragraph.join(" "), el("p")));
    }
    return root;
  }

  // ---------------------------------------------------------------- talking to the service

  let services = [];

  async function loadServices() {
    const response = await fetch(SERVICES_URL, { headers: { Accept: "application/json" } });
    const body = await response.json();
    services = Array.isArray(body.services) ? body.services : [];
    return services;
  }

  function serviceForHook(hook) {
    return services.find((service) => service.hook === hook) || null;
  }

  async function readBody(response) {
    const text = await response.text();
    try {
      return { json: JSON.parse(text), text };
    } catch (_error) {
      return { json: null, text };
    }
  }

  async function callService(serviceId, requestBody, now) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (now) headers[NOW_HEADER] = now;
    const url = new URL(`../cds-services/${encodeURIComponent(serviceId)}`, document.baseURI).href;
    const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(requestBody) });
    const body = await readBody(response);
    return { status: response.status, ok: response.ok, url, ...body };
  }

  async function postFeedback(serviceId, item) {
    const url = new URL(`../cds-services/${encodeURIComponent(serviceId)}/feedback`, document.baseURI).href;
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ feedback: [{ ...item, outcomeTimestamp: new Date().toISOString() }] }),
    });
    const body = await readBody(response);
    return { status: response.status, ok: response.ok, ...body };
  }

  // ---------------------------------------------------------------- rendering cards

  function diagnostics(json) {
    if (!json || json.resourceType !== "OperationOutcome" || !Array.isArray(json.issue)) return [];
    return json.issue.map((issue) => [issue.severity, issue.code, issue.diagnostics].filter(Boolean).join(" · "));
  }

  function renderError(container, result) {
    const lines = diagnostics(result.json);
    const box = el("div", { className: "service-error", role: "alert" }, [
      el("p", { className: "service-error__status" }, [el("strong", { text: `HTTP ${result.status}` }), " from the service"]),
    ]);
    if (lines.length) box.append(el("ul", {}, lines.map((line) => el("li", { text: line }))));
    else if (result.text) box.append(el("pre", { className: "json", text: result.text.slice(0, 4000) }));
    container.append(box);
  }

  function feedbackStatus(card, message, isError) {
    const status = card.querySelector(".cds-card__status");
    status.textContent = message;
    status.classList.toggle("cds-card__status--error", Boolean(isError));
  }

  function feedbackMessage(result, done) {
    if (result.ok) return `${done} Feedback recorded by the service (HTTP ${result.status}).`;
    const lines = diagnostics(result.json);
    return `Feedback refused: HTTP ${result.status}${lines.length ? ` — ${lines.join("; ")}` : ""}`;
  }

  function lockCard(cardNode, outcome) {
    cardNode.dataset.outcome = outcome;
    for (const button of cardNode.querySelectorAll("button")) button.disabled = true;
  }

  function renderSuggestions(card, cardNode, serviceId) {
    if (!Array.isArray(card.suggestions) || !card.suggestions.length) return null;
    const group = el("div", { className: "cds-card__suggestions", role: "group", "aria-label": "Suggestions" });
    for (const suggestion of card.suggestions) {
      const button = el("button", {
        type: "button",
        className: suggestion.isRecommended ? "button button--primary" : "button",
        "data-suggestion-uuid": suggestion.uuid,
      }, [suggestion.label || "Accept suggestion"]);
      button.addEventListener("click", async () => {
        lockCard(cardNode, "accepted");
        feedbackStatus(cardNode, "Sending feedback…");
        try {
          const result = await postFeedback(serviceId, {
            card: card.uuid,
            outcome: "accepted",
            acceptedSuggestions: [{ id: suggestion.uuid }],
          });
          feedbackStatus(cardNode, feedbackMessage(result, `Accepted “${suggestion.label}”.`), !result.ok);
          if (!result.ok) unlock(cardNode);
        } catch (error) {
          feedbackStatus(cardNode, `Feedback not sent: ${error.message}`, true);
          unlock(cardNode);
        }
      });
      const actions = (suggestion.actions || []).map((action) =>
        el("li", { text: `${action.type || "action"}${action.resource ? ` ${action.resource.resourceType || ""}` : ""}${action.resourceId ? ` ${action.resourceId}` : ""}: ${action.description || ""}` })
      );
      const wrapper = el("div", { className: "suggestion" }, [button]);
      if (actions.length) {
        wrapper.append(el("ul", { className: "suggestion__actions", "aria-label": `What “${suggestion.label}” does` }, actions));
      }
      group.append(wrapper);
    }
    if (card.selectionBehavior) {
      group.append(el("p", { className: "muted small", text: `selectionBehavior: ${card.selectionBehavior}` }));
    }
    return group;
  }

  function unlock(cardNode) {
    delete cardNode.dataset.outcome;
    for (const button of cardNode.querySelectorAll("button")) button.disabled = false;
  }

  function renderOverride(card, cardNode, serviceId, index) {
    const reasons = Array.isArray(card.overrideReasons) ? card.overrideReasons : [];
    const idBase = `card-${index}`;
    const form = el("form", { className: "override", hidden: true, "aria-label": "Dismiss this card" });
    const fieldset = el("fieldset", {}, [el("legend", { text: "Why are you dismissing this card?" })]);
    reasons.forEach((reason, reasonIndex) => {
      const id = `${idBase}-reason-${reasonIndex}`;
      fieldset.append(
        el("div", { className: "override__reason" }, [
          el("input", { type: "radio", name: `${idBase}-reason`, id, value: String(reasonIndex) }),
          el("label", { for: id, text: reason.display || reason.code || "Reason" }),
        ])
      );
    });
    if (!reasons.length) fieldset.append(el("p", { className: "muted", text: "This card offers no override reasons." }));
    const commentId = `${idBase}-comment`;
    fieldset.append(
      el("label", { for: commentId, text: "Comment (optional; the service keeps only whether there was one)" }),
      el("textarea", { id: commentId, rows: "2" })
    );
    const confirm = el("button", { type: "submit", className: "button button--danger" }, ["Dismiss card"]);
    const cancel = el("button", { type: "button", className: "button" }, ["Cancel"]);
    form.append(fieldset, el("div", { className: "form-actions" }, [confirm, cancel]));
    cancel.addEventListener("click", () => {
      form.hidden = true;
      cardNode.querySelector(".cds-card__dismiss").focus();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = form.querySelector("input[type=radio]:checked");
      const comment = form.querySelector("textarea").value.trim();
      const item = { card: card.uuid, outcome: "overridden" };
      const overrideReason = {};
      if (chosen) {
        const reason = reasons[Number(chosen.value)];
        overrideReason.reason = { system: reason.system, code: reason.code, display: reason.display };
      }
      if (comment) overrideReason.userComment = comment;
      if (Object.keys(overrideReason).length) item.overrideReason = overrideReason;
      lockCard(cardNode, "overridden");
      feedbackStatus(cardNode, "Sending feedback…");
      try {
        const result = await postFeedback(serviceId, item);
        const why = chosen ? ` (${overrideReason.reason.display || overrideReason.reason.code})` : " (no reason given)";
        feedbackStatus(cardNode, feedbackMessage(result, `Dismissed${why}.`), !result.ok);
        if (result.ok) form.hidden = true;
        else unlock(cardNode);
      } catch (error) {
        feedbackStatus(cardNode, `Feedback not sent: ${error.message}`, true);
        unlock(cardNode);
      }
    });
    return form;
  }

  function renderCard(card, serviceId, index) {
    const indicator = INDICATORS[card.indicator] ? card.indicator : "info";
    const meta = INDICATORS[indicator];
    const titleId = `card-${index}-summary`;
    const topic = (card.source && card.source.topic) || {};
    const cardNode = el("article", {
      className: `cds-card cds-card--${indicator}`,
      "aria-labelledby": titleId,
      "data-indicator": card.indicator,
      "data-card-uuid": card.uuid,
      "data-rule": topic.code,
    });
    cardNode.append(
      el("div", { className: "cds-card__head" }, [
        el("span", { className: "cds-card__indicator" }, [
          el("span", { className: "cds-card__icon", "aria-hidden": "true", text: meta.glyph }),
          el("span", { className: "cds-card__indicator-label", text: meta.label }),
        ]),
        el("h3", { id: titleId, className: "cds-card__summary", text: card.summary || "" }),
      ])
    );
    if (card.detail) {
      const detail = renderMarkdown(card.detail);
      detail.classList.add("cds-card__detail");
      cardNode.append(detail);
    }
    if (card.source) {
      const source = el("p", { className: "cds-card__source" }, ["Source: "]);
      source.append(card.source.url ? externalLink(card.source.label || card.source.url, card.source.url) : el("span", { text: card.source.label || "" }));
      if (topic.code) source.append(` · rule `, el("code", { text: topic.code }));
      cardNode.append(source);
    }
    const suggestions = renderSuggestions(card, cardNode, serviceId);
    if (suggestions) cardNode.append(suggestions);
    if (Array.isArray(card.links) && card.links.length) {
      cardNode.append(
        el("ul", { className: "cds-card__links", "aria-label": "Links" },
          card.links.map((link) => el("li", {}, [
            externalLink(link.label || link.url || "link", link.url),
            link.type === "smart" ? el("span", { className: "muted", text: " (SMART app)" }) : null,
          ])))
      );
    }
    const dismiss = el("button", { type: "button", className: "button cds-card__dismiss", "aria-expanded": "false" }, ["Dismiss…"]);
    const override = renderOverride(card, cardNode, serviceId, index);
    dismiss.addEventListener("click", () => {
      override.hidden = !override.hidden;
      dismiss.setAttribute("aria-expanded", String(!override.hidden));
      if (!override.hidden) {
        const first = override.querySelector("input, textarea");
        if (first) first.focus();
      }
    });
    cardNode.append(el("div", { className: "cds-card__footer" }, [dismiss]), override);
    cardNode.append(el("p", { className: "cds-card__status", role: "status" }));
    return cardNode;
  }

  function showResult(label, serviceId, result) {
    const container = document.getElementById("results");
    clear(container);
    container.append(el("p", { className: "results__label" }, [`${label} → `, el("code", { text: `POST ${new URL(result.url).pathname}` }), ` · HTTP ${result.status}`]));
    if (!result.ok || !result.json || !Array.isArray(result.json.cards)) {
      renderError(container, result);
    } else if (!result.json.cards.length) {
      container.append(el("p", { className: "no-cards", text: "No cards: the service had nothing to say." }));
    } else {
      const cards = [...result.json.cards].sort(
        (a, b) => (INDICATOR_ORDER[a.indicator] ?? 3) - (INDICATOR_ORDER[b.indicator] ?? 3)
      );
      const list = el("div", { className: "cards" });
      cards.forEach((card, index) => list.append(renderCard(card, serviceId, index)));
      container.append(list);
    }
    const details = document.getElementById("response-details");
    details.hidden = false;
    document.getElementById("response-json").textContent = result.json ? JSON.stringify(result.json, null, 2) : result.text;
    container.setAttribute("aria-busy", "false");
  }

  async function send(label, requestBody, now) {
    const container = document.getElementById("results");
    container.setAttribute("aria-busy", "true");
    clear(container);
    container.append(el("p", { className: "muted", text: `Sending ${label}…` }));
    const service = serviceForHook(requestBody.hook);
    if (!service) {
      container.setAttribute("aria-busy", "false");
      clear(container);
      container.append(el("div", { className: "service-error", role: "alert" }, [
        el("p", { text: `No service of this deployment answers the hook ${JSON.stringify(requestBody.hook)}. Discovery lists: ${services.map((s) => s.hook).join(", ")}.` }),
      ]));
      return null;
    }
    try {
      const result = await callService(service.id, requestBody, now);
      showResult(label, service.id, result);
      return result;
    } catch (error) {
      container.setAttribute("aria-busy", "false");
      clear(container);
      container.append(el("div", { className: "service-error", role: "alert" }, [el("p", { text: `The service could not be reached: ${error.message}` })]));
      return null;
    }
  }

  // ---------------------------------------------------------------- scenarios

  function expectedRules(expectCards) {
    return (Array.isArray(expectCards) ? expectCards : []).map((item) => {
      if (typeof item === "string") return item;
      if (item && typeof item === "object") {
        const topic = item.source && item.source.topic;
        return item.rule || item.rule_id || item.ruleId || item.code || (topic && topic.code) || JSON.stringify(item);
      }
      return String(item);
    });
  }

  function showScenario(scenario) {
    document.getElementById("scenario-title").textContent = scenario.title;
    document.getElementById("scenario-story").textContent = scenario.story || "";
    const facts = document.getElementById("scenario-facts");
    clear(facts);
    const expected = expectedRules(scenario.expectCards);
    const rows = [
      ["Hook", scenario.hook],
      [
        "Evaluated as of",
        !scenario.now
          ? "the server's clock"
          : scenario.nowHonoured
            ? scenario.now
            : `the server's clock (this scenario's ${scenario.now} is honoured in dev mode only)`,
      ],
      ["Expected cards", expected.length ? expected.join(", ") : "none"],
      ["Fixture", `fhir_fixtures/requests/${scenario.name}.json`],
    ];
    for (const [term, value] of rows) facts.append(el("dt", { text: term }), el("dd", { text: value }));
    facts.hidden = false;
    document.getElementById("request-json").textContent = JSON.stringify(scenario.request, null, 2);
    document.getElementById("request-details").hidden = false;
  }

  function compareWithExpectation(scenario, result) {
    if (!result || !result.ok || !result.json || !Array.isArray(result.json.cards)) return;
    const expected = expectedRules(scenario.expectCards).sort();
    const got = result.json.cards.map((card) => (card.source && card.source.topic && card.source.topic.code) || "?").sort();
    const same = expected.length === got.length && expected.every((rule, i) => rule === got[i]);
    const container = document.getElementById("results");
    container.prepend(
      el("p", { className: same ? "expectation expectation--ok" : "expectation expectation--off" }, [
        same ? "As expected by the fixture: " : "Differs from the fixture's expect_cards: ",
        el("code", { text: got.length ? got.join(", ") : "no cards" }),
        same ? "" : ` (expected ${expected.length ? expected.join(", ") : "no cards"})`,
      ])
    );
  }

  async function runScenario(name, button) {
    for (const other of document.querySelectorAll(".scenario-list button")) other.removeAttribute("aria-current");
    if (button) button.setAttribute("aria-current", "true");
    const response = await fetch(`${SCENARIOS_URL}/${encodeURIComponent(name)}`);
    if (!response.ok) {
      showResult(`Scenario ${name}`, null, { status: response.status, ok: false, url: response.url, ...(await readBody(response)) });
      return;
    }
    const scenario = await response.json();
    showScenario(scenario);
    if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
    const result = await send(`Scenario “${scenario.title}”`, scenario.request, scenario.now);
    compareWithExpectation(scenario, result);
    // In one column the cards are far below the list: bring them up, without moving focus.
    if (window.matchMedia("(max-width: 760px)").matches) {
      document.getElementById("scenario-panel").scrollIntoView({ block: "start" });
    }
  }

  async function loadScenarios() {
    const status = document.getElementById("scenarios-status");
    const list = document.getElementById("scenario-list");
    let scenarios = [];
    try {
      const response = await fetch(SCENARIOS_URL, { headers: { Accept: "application/json" } });
      scenarios = (await response.json()).scenarios || [];
    } catch (error) {
      status.textContent = `Scenarios could not be loaded: ${error.message}`;
      return;
    }
    clear(list);
    for (const scenario of scenarios) {
      const button = el("button", { type: "button", className: "scenario", "data-scenario": scenario.name }, [
        el("span", { className: "scenario__title", text: scenario.title }),
        el("span", { className: "scenario__hook", text: scenario.hook || "?" }),
        el("span", { className: "scenario__story", text: scenario.storyLine || "" }),
      ]);
      button.addEventListener("click", () => runScenario(scenario.name, button));
      list.append(el("li", {}, [button]));
    }
    status.textContent = scenarios.length
      ? `${scenarios.length} scenario${scenarios.length === 1 ? "" : "s"} from fhir_fixtures/requests/.`
      : "No scenarios in fhir_fixtures/requests/ yet.";
    const wanted = decodeURIComponent(location.hash.slice(1));
    const initial = wanted && list.querySelector(`button[data-scenario="${CSS.escape(wanted)}"]`);
    if (initial) {
      initial.scrollIntoView({ block: "nearest" });
      initial.click();
    }
  }

  // ---------------------------------------------------------------- the paste form

  function resourcesOf(bundle) {
    return (Array.isArray(bundle.entry) ? bundle.entry : []).map((entry) => entry && entry.resource).filter(Boolean);
  }

  function searchset(resources) {
    return {
      resourceType: "Bundle",
      type: "searchset",
      total: resources.length,
      entry: resources.map((resource) => ({
        fullUrl: `${resource.resourceType}/${resource.id || ""}`,
        resource,
        search: { mode: "match" },
      })),
    };
  }

  function patientIdFrom(resources, orders) {
    const patient = resources.find((r) => r.resourceType === "Patient");
    if (patient && patient.id) return patient.id;
    for (const resource of [...orders, ...resources]) {
      const reference = resource.subject && resource.subject.reference;
      if (typeof reference === "string" && reference.startsWith("Patient/")) return reference.slice(8);
    }
    return null;
  }

  function newUuid() {
    return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  }

  // The page plays the EHR: each discovery prefetch template names a resource type, by an
  // instance read (Patient/{{context.patientId}}) or a search (Observation?patient=...).
  function buildRequest(bundle, hook, orderText) {
    const service = serviceForHook(hook);
    if (!service) throw new Error(`No service answers ${hook}.`);
    let resources = resourcesOf(bundle);
    let orders = [];
    if (hook !== "patient-view") {
      if (orderText.trim()) {
        const order = JSON.parse(orderText);
        orders = order.resourceType === "Bundle" ? resourcesOf(order) : [order];
      } else {
        // No separate order: the Bundle's draft MedicationRequests are what is being ordered.
        orders = resources.filter((r) => r.resourceType === "MedicationRequest" && r.status === "draft");
        resources = resources.filter((r) => !orders.includes(r));
      }
      if (!orders.length) {
        throw new Error("Paste the draft order (a MedicationRequest), or include one with status draft in the Bundle.");
      }
    }
    const patientId = patientIdFrom(resources, orders);
    if (!patientId) throw new Error("No Patient resource, and no subject reference to a Patient, in the Bundle.");
    const prefetch = {};
    const claimed = new Set();
    for (const [key, template] of Object.entries(service.prefetch || {})) {
      const match = /^([A-Za-z]+)([/?])/.exec(template);
      if (!match) continue;
      const [, type, kind] = match;
      const ofType = resources.filter((r) => r.resourceType === type);
      ofType.forEach((r) => claimed.add(r));
      prefetch[key] = kind === "/" ? ofType[0] || null : searchset(ofType);
    }
    // Resources no key asks for (a Medication a request points to) ride along in the first search,
    // where the service looks for referenced Medications too.
    const extra = resources.filter((r) => !claimed.has(r) && r.resourceType !== "Patient");
    const firstSearch = Object.values(prefetch).find((value) => value && value.type === "searchset");
    if (extra.length && firstSearch) {
      for (const resource of extra) {
        firstSearch.entry.push({ fullUrl: `${resource.resourceType}/${resource.id || ""}`, resource, search: { mode: "include" } });
      }
    }
    const context = { userId: "Practitioner/preview", patientId };
    if (hook !== "patient-view") {
      context.draftOrders = { resourceType: "Bundle", type: "collection", entry: orders.map((resource) => ({ resource })) };
    }
    if (hook === "order-select") {
      context.selections = orders.map((order) => `${order.resourceType}/${order.id}`);
    }
    return { hook, hookInstance: newUuid(), context, prefetch };
  }

  async function onPaste(event) {
    event.preventDefault();
    const errorBox = document.getElementById("paste-error");
    errorBox.textContent = "";
    const raw = document.getElementById("paste-json").value;
    let document_;
    try {
      document_ = JSON.parse(raw);
    } catch (error) {
      errorBox.textContent = `The request is not valid JSON: ${error.message}`;
      return;
    }
    let requestBody;
    let label;
    try {
      if (document_ && document_.resourceType === "Bundle") {
        const hook = document.getElementById("paste-hook").value;
        requestBody = buildRequest(document_, hook, document.getElementById("paste-order").value);
        label = `Request built from the pasted Bundle (${hook})`;
      } else if (document_ && typeof document_.hook === "string") {
        requestBody = document_;
        label = "Pasted request";
      } else {
        errorBox.textContent = "Paste a CDS Hooks request (with a hook) or a FHIR Bundle.";
        return;
      }
    } catch (error) {
      errorBox.textContent = error.message;
      return;
    }
    document.getElementById("scenario-title").textContent = label;
    document.getElementById("scenario-story").textContent = "";
    document.getElementById("scenario-facts").hidden = true;
    document.getElementById("request-json").textContent = JSON.stringify(requestBody, null, 2);
    document.getElementById("request-details").hidden = false;
    for (const other of document.querySelectorAll(".scenario-list button")) other.removeAttribute("aria-current");
    const now = document.getElementById("paste-now").value.trim();
    await send(label, requestBody, now || null);
    document.getElementById("cards-heading").focus();
  }

  // ---------------------------------------------------------------- start

  window.TDM1Preview = { renderMarkdown, renderCard, buildRequest, safeUrl };

  document.addEventListener("DOMContentLoaded", async () => {
    document.getElementById("paste-form").addEventListener("submit", onPaste);
    try {
      await loadServices();
    } catch (error) {
      document.getElementById("scenarios-status").textContent = `Discovery failed: ${error.message}`;
    }
    await loadScenarios();
    document.body.dataset.ready = "true";
  });
})();
