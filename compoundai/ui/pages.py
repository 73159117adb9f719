"""Server-rendered pages, part one: the layout, the list of runs, one run, errors and login.

Every page is plain HTML built from the typed models with every value escaped; the script
(`static/ui.js`) only sorts and filters tables and drives the start form, the job page and the
playground. Nothing is fetched from outside the machine: the CSS and JS are served by the app,
the plots are inline SVG from the report renderer (`compoundai_evaluators.html`), the favicon
is an empty data URL (so the browser does not ask for /favicon.ico).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from compoundai.ui.runs import RunEntry, Scan
from compoundai_evaluators.report import MetricValue, Report, signed, signed_interval

NAV = [("/", "Runs"), ("/compare", "Compare"), ("/start", "Start a run"), ("/play", "Playground")]


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def url(path: str, **params: Any) -> str:
    """`path?query`, leaving out empty parameters."""
    query = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(query)}" if query else path


def layout(title: str, body: str, active: str = "") -> str:
    nav = "".join(
        f'<a href="{href}"{" class=active" if href == active else ""}>{e(text)}</a>'
        for href, text in NAV
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="/static/ui.css">'
        '<script src="/static/ui.js" defer></script>'
        f"<title>{e(title)} · compoundai</title></head><body>"
        f'<header class="top"><a class="brand" href="/">compoundai</a><nav>{nav}</nav></header>'
        f"<main>{body}</main></body></html>\n"
    )


def table(
    head: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "", id: str = ""
) -> str:
    """A table of already-escaped cells; `cls="sortable"` makes ui.js sort it by a header."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    attrs = (f' class="{cls}"' if cls else "") + (f' id="{id}"' if id else "")
    return f"<table{attrs}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def message(text: str, kind: str = "warn") -> str:
    return f'<p class="msg {kind}">{e(text)}</p>'


def interval(m: MetricValue | None) -> str:
    if m is None:
        return "–"
    return f"{m.value:.3f} <span class=ci>[{m.ci_low:.3f}, {m.ci_high:.3f}]</span>"


def seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 60:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


OUTCOME = {
    "matched": ("ok", "matched"),
    "tied": ("ok", "tied"),
    "wrong": ("bad", "wrong"),
    None: ("unk", "not checkable"),
}


def outcome_badge(outcome: str | None) -> str:
    css, text = OUTCOME.get(outcome, OUTCOME[None])
    return f'<span class="badge {css}">{e(text)}</span>'


# -- the list of runs ---------------------------------------------------------------------------


def runs_page(scan: Scan, roots: Sequence[str]) -> str:
    parts = ["<h1>Runs</h1>"]
    where = ", ".join(f"<code>{e(r)}</code>" for r in roots) or "no directories"
    parts.append(f'<p class="sub">Reports found under {where}.</p>')
    parts += [message(p, "bad") for p in scan.problems]
    ok = [r for r in scan.runs if r.report is not None]
    broken = [r for r in scan.runs if r.report is None]
    if not scan.runs:
        parts.append(
            message(
                "No runs yet: start one (Start a run) or point `compoundai ui` at a directory "
                "written by `compoundai run`.",
                "info",
            )
        )
    rows = [_run_row(r) for r in ok]
    if ok:
        parts.append(
            '<p><input type="search" class="filter" data-filter="runs" '
            'placeholder="filter runs (task, winner, outcome...)" aria-label="filter runs"></p>'
        )
        head = ["task", "date", "cases", "lanes", "winner", "score", "decision", "time", "folder"]
        parts.append(table(head, rows, cls="sortable", id="runs"))
    if broken:
        parts.append("<h2>Unreadable runs</h2>")
        rows = [[f"<code>{e(r.path)}</code>", e(r.error)] for r in broken]
        parts.append(table(["folder", "problem"], rows, id="broken-runs"))
    if scan.systems:
        parts.append("<h2>Built systems</h2>")
        rows = [
            [
                f'<a href="{e(url("/play", system=s.id))}">{e(s.name or s.path.name)}</a>',
                e(s.lane),
                f"<code>{e(s.path)}</code>",
                e(s.error or ""),
            ]
            for s in scan.systems
        ]
        parts.append(table(["system", "lane", "folder", "problem"], rows, id="systems"))
    return layout("Runs", "".join(parts), "/")


def _run_row(run: RunEntry) -> list[str]:
    report = run.report
    assert report is not None
    winner = report.winner
    score = ""
    if winner:
        m = next(x.metrics.get(report.primary_metric) for x in report.lanes if x.name == winner)
        score = f"{m.value:.3f}" if m else ""
    ok_lanes = sum(1 for lane in report.lanes if lane.status == "ok")
    n = report.cases.get("n", "")
    return [
        f'<a class="run-link" href="{e(url("/run", id=run.id))}">{e(report.task)}</a>',
        f'<span data-value="{e(report.created)}">{e(report.created[:16].replace("T", " "))}</span>',
        f'<span data-value="{e(n)}">{e(n)}</span>',
        f'<span data-value="{ok_lanes}">{ok_lanes}/{len(report.lanes)}</span>',
        e(winner or "none"),
        f'<span data-value="{e(score)}">{e(score)} {e(report.primary_metric if score else "")}'
        "</span>",
        outcome_badge(run.outcome),
        f'<span data-value="{run.wall_seconds:.2f}">{seconds(run.wall_seconds)}</span>',
        f"<code>{e(run.id)}</code>",
    ]


# -- one run ----------------------------------------------------------------------------------


def run_page(run: RunEntry, problems: Sequence[str] = ()) -> str:
    report = run.report
    assert report is not None
    links = [
        f'<a class="button" id="open-cases" href="{e(url("/cases", run=run.id))}">Cases</a>',
        f'<a class="button" href="{e(url("/compare", a=run.id))}">Compare with another run</a>',
    ]
    if (run.path / "report.html").is_file():
        links.append(f'<a class="button" href="{e(url("/run/report", id=run.id))}">Static page</a>')
    body = [
        f"<h1>{e(report.task)}</h1>",
        f'<p class="sub">{e(report.cases.get("sampling", ""))} · split '
        f"<code>{e(report.cases.get('split', ''))}</code> · {e(report.created)} · "
        f"<code>{e(run.path)}</code></p>",
        f'<p class="actions">{"".join(links)}</p>',
        *[message(p) for p in problems],
        _cards(run),
        "<h2>Lanes</h2>",
        _lanes(report),
        "<h2>Plots</h2>",
        _plots(report),
        '<h2 id="decision">The decision</h2>',
        decision_section(report),
        "<h2>Verdict</h2>",
        _verdict(report),
    ]
    return layout(report.task, "".join(body), "/")


def _cards(run: RunEntry) -> str:
    report = run.report
    assert report is not None
    v = report.verdict
    check = report.decision_check or (v.decision_check if v else None)
    regret = ""
    if check is not None and check.regret is not None and check.outcome != "matched":
        r = check.regret
        regret = f"regret {signed_interval(r.value, r.ci_low, r.ci_high)}"
    cards = [
        (e(report.winner or "none"), f"winner on {e(report.primary_metric)}"),
        (
            outcome_badge(run.outcome),
            f"plan <code>{e(report.decision.get('plan', ''))}</code> against the test split"
            + (f"; {e(regret)}" if regret else ""),
        ),
        (e(report.cases.get("n", "?")), "held-out cases"),
        (seconds(run.wall_seconds), "build and answer time"),
    ]
    if v and v.release:
        ships = [g.lane for g in v.release if g.ships]
        cards.append((e(", ".join(ships) or "nothing ships"), "release gate (fine-tuned lanes)"))
    if v and v.tied_with_winner:
        cards.append((e(v.cheapest_equivalent or ""), "cheapest lane tied with the winner"))
    inner = "".join(f'<div class="card"><b>{a}</b><span>{b}</span></div>' for a, b in cards)
    return f'<div class="cards" id="cards">{inner}</div>'


def _lanes(report: Report) -> str:
    metrics = report.metric_names()
    tied = set(report.verdict.tied_with_winner) if report.verdict else set()
    head = ["lane", "status", *map(e, metrics), "p50 / p95 ms", "$ / 1k cases", "build", "answer"]
    rows = []
    for lane in report.lanes:
        mark = " <b>winner</b>" if lane.name == report.winner else ""
        mark += " <span class=ci>tied</span>" if lane.name in tied else ""
        cells = [
            e(lane.name) + mark,
            e(lane.status + (f": {lane.message}" if lane.message else "")),
        ]
        cells += [interval(lane.metrics.get(m)) for m in metrics]
        lat = lane.latency_ms
        cells.append(f"{lat.p50:.0f} / {lat.p95:.0f}" if lat else "–")
        usd = lane.cost.get("usd_per_1k_cases")
        cells.append(f"{usd:.4f}" if usd is not None and lane.status == "ok" else "–")
        cells.append(seconds(lane.cost.get("build_seconds", 0.0)) if lane.cost else "–")
        cells.append(seconds(lane.cost.get("eval_seconds", 0.0)) if lane.cost else "–")
        rows.append(cells)
    return table(head, rows, cls="sortable", id="lanes")


def _plots(report: Report) -> str:
    # The static report's own plots (one owner for the drawing), inline SVG, no script.
    from compoundai_evaluators.html import _plots as report_plots

    return f'<div class="plots">{report_plots(report)}</div>'


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return e(value)
    return e(f"{value:.{digits}f}") if math.isfinite(value) else "–"


def _estimate(row: dict[str, Any]) -> str:
    """`value [ci_low, ci_high]` of a measurement (a dict), or a dash when nothing was measured."""
    if not isinstance(row.get("value"), int | float):
        return "–"
    low, high = _number(row.get("ci_low")), _number(row.get("ci_high"))
    return f"{_number(row['value'])} <span class=ci>[{low}, {high}]</span>"


def decision_section(report: Report) -> str:
    """Plan, mode, ranking and reasons; the probe and the measured evidence when present."""
    d = report.decision
    mode = d.get("mode") or ("rules + probe" if d.get("probe") else "rules")
    ranked = ", ".join(f"{e(r.get('lane'))} ({_number(r.get('score'), 2)})" for r in d["ranked"])
    parts = [
        f"<p>Plan <code>{e(d.get('plan'))}</code>, building <code>{e(d.get('lane') or '')}</code>"
        f'; mode <span class="badge info" id="decision-mode">{e(mode)}</span>; ranked {ranked}.</p>'
    ]
    if d.get("stages"):
        parts.append(f"<p>Stages: {e(' → '.join(d['stages']))}</p>")
    reasons = [
        [
            e(r.get("lane")),
            f"<code>{e(r.get('signal'))}</code>",
            e(r.get("value")),
            e(r.get("text")),
        ]
        for r in d.get("reasons", [])
    ]
    if reasons:
        parts.append(table(["lane", "signal", "value", "reason"], reasons, id="reasons"))
    evidence = [row for row in d.get("evidence") or [] if isinstance(row, dict)]
    if evidence:
        parts.append("<h3>Measured evidence</h3>")
        head = ["lane", "stage", "data share", "cases", "value [95% CI]", "seconds", "note"]
        rows = [
            [
                e(row.get("lane")),
                e(row.get("stage")),
                _number(row.get("data_share"), 2),
                _number(row.get("cases")),
                _estimate(row),
                _number(row.get("seconds"), 1),
                e(row.get("note", "")),
            ]
            for row in evidence
        ]
        parts.append(table(head, rows, cls="sortable", id="evidence"))
    probe = d.get("probe")
    if isinstance(probe, dict):
        parts.append(
            f"<h3>Probe on {e(probe.get('cases'))} dev cases</h3><p>{e(probe.get('note'))}</p>"
        )
        rows = [
            [e(p.get("lane")), e(p.get("status")), _estimate(p)]
            for p in probe.get("lanes", [])
            if isinstance(p, dict)
        ]
        parts.append(table(["lane", "status", e(probe.get("metric", ""))], rows, id="probe"))
    check = report.decision_check or (report.verdict.decision_check if report.verdict else None)
    if check is not None:
        parts.append(
            f'<p id="decision-check">Against the test split: {outcome_badge(check.outcome)} '
            f"{e(check.note)}</p>"
        )
    return "".join(parts)


def _verdict(report: Report) -> str:
    v = report.verdict
    if v is None:
        return "<p>This report has no verdict.</p>"
    parts = [f"<p>{e(v.overall_note)}.</p>"]
    if v.versus_winner:
        rows = [
            [
                e(x.lane),
                f"{signed(x.value)} "
                f"<span class=ci>[{signed(x.ci_low)}, {signed(x.ci_high)}]</span>",
                str(x.n),
                f"{x.p_holm:.3g}",
                "tied" if x.tied else "clearly worse" if x.clearly_worse else "not clear",
            ]
            for x in v.versus_winner
        ]
        head = ["lane", "winner − lane", "n", "p (Holm)", "reading"]
        parts.append(table(head, rows, id="versus-winner"))
    if v.excluded:
        items = "".join(f"<li>{e(k)}: {e(w)}</li>" for k, w in v.excluded.items())
        parts.append(f"<p>Excluded by the constraints:</p><ul>{items}</ul>")
    if v.below_baseline:
        items = "".join(f"<li>{e(k)}: {e(w)}</li>" for k, w in v.below_baseline.items())
        parts.append(f"<p>Below a non-LLM baseline:</p><ul>{items}</ul>")
    parts.append('<h3 id="release-gate">Release gate</h3>')
    if not v.release:
        parts.append("<p>No fine-tuned lane was evaluated in this run.</p>")
    for gate in v.release:
        css, word = ("ok", "ships") if gate.ships else ("bad", "does not ship")
        items = "".join(f"<li>{e(r)}</li>" for r in gate.reasons)
        parts.append(f'<p><b>{e(gate.lane)}</b> <span class="badge {css}">{word}</span></p>')
        parts.append(f"<ul>{items}</ul>")
    return "".join(parts)


# -- errors and login -----------------------------------------------------------------------


def error_page(title: str, text: str, hint: str = "") -> str:
    body = f"<h1>{e(title)}</h1>{message(text, 'bad')}"
    if hint:
        body += f"<p>{e(hint)}</p>"
    body += '<p><a href="/">Back to the runs</a></p>'
    return layout(title, body)


def login_page(wrong: bool) -> str:
    body = (
        "<h1>API key</h1><p>This UI was started with <code>--api-key</code>.</p>"
        + (message("That key is not right.", "bad") if wrong else "")
        + '<form method="get" action="/"><label>Key <input type="password" name="key" '
        'autocomplete="current-password" required></label> '
        '<button type="submit">Open</button></form>'
    )
    return layout("API key", body)
