"""`report.html`: one self-contained page, verdict first, then the plots, then the tables.

No scripts, no external fonts, styles or images: the page is a single file that renders the
same offline, in a mail client's preview, or in a headless browser in CI. Plots come from
`svg`. Rendered only from a `Report`, so a saved `report.json` is enough to draw it again.
"""

from __future__ import annotations

import re
from html import escape as _escape

from compoundai_evaluators.markdown import (
    ABSTENTION_NOTE,
    DEV_TEST_HEAD,
    EVIDENCE_HEAD,
    VERSUS_HEAD,
    decision_check_lines,
    dev_test_rows,
    evidence_rows,
    versus_rows,
)
from compoundai_evaluators.report import LaneResult, Report, signed, signed_interval
from compoundai_evaluators.svg import PALETTE, Bar, forest, interval_bars, latency_bars, scatter

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2433;
margin:0;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px}
h3{font-size:16px;margin:18px 0 6px}
.sub{color:#5b6475;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:12px}
.card{background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:12px 14px}
.card b{display:block;font-size:18px}.card span{color:#5b6475;font-size:13px}
.ok{color:#1a7f37}.bad{color:#c62828}.unk{color:#8a6d00}
figure{background:#fff;border:1px solid #e2e5ea;border-radius:8px;margin:12px 0;padding:10px}
figcaption{font-weight:600;margin:0 0 4px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13.5px;margin:8px 0}
th,td{border:1px solid #e2e5ea;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}
code{background:#eef1f5;padding:1px 4px;border-radius:3px}
.chart{width:100%;height:auto;font-family:inherit}
.chart .grid{stroke:#e6e8ec}.chart .zero{stroke:#1d2433;stroke-dasharray:4 3}
.chart .tick{font-size:11px;fill:#5b6475}.chart .label{font-size:12.5px;fill:#1d2433}
.chart .value{font-size:12px;fill:#1d2433}.chart .value.inside{fill:#fff;font-weight:600}
.chart .axis{font-size:12px;fill:#5b6475}
.chart .whisker{stroke:#1d2433;stroke-width:1.6;fill:none}
.chart .p95{stroke:#1d2433;stroke-width:2.5}
footer{color:#5b6475;font-size:12.5px;margin-top:28px}
"""


def escape(text: str) -> str:
    """HTML-escape, and show `code` spans (the notes use Markdown backticks) as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _escape(text))


def _colors(report: Report) -> dict[str, str]:
    return {lane.name: PALETTE[i % len(PALETTE)] for i, lane in enumerate(report.lanes)}


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _figure(caption: str, svg: str, chart_id: str) -> str:
    return (
        f'<figure id="{chart_id}" class="plot"><figcaption>{escape(caption)}</figcaption>'
        f"{svg}</figure>"
    )


def _cards(report: Report) -> str:
    v = report.verdict
    cards = []
    winner = (v.overall if v else report.winner) or "none"
    where = "" if v is None or v.constraints_met else ", <b class='bad'>breaks the constraints</b>"
    cards.append(
        f"<b>{escape(winner)}</b><span>winner on {escape(report.primary_metric)}{where}</span>"
    )
    if v and v.tied_with_winner:
        cards.append(
            f"<b>{escape(v.cheapest_equivalent or '')}</b><span>cheapest lane tied with the "
            f"winner ({escape(', '.join(v.tied_with_winner))})</span>"
        )
    check = report.decision_check or (v.decision_check if v else None)
    outcome = check.outcome if check else None
    if check is None:
        outcome = {True: "matched", False: "wrong", None: None}[report.router_correct]
    css, text = {
        "matched": ("ok", "decision matched"),
        "tied": ("ok", "decision tied with the winner"),
        "wrong": ("bad", "decision was wrong"),
        None: ("unk", "decision not checkable yet"),
    }[outcome]
    regret = ""
    if check is not None and check.regret is not None and outcome != "matched":
        r = check.regret
        regret = f", regret {signed_interval(r.value, r.ci_low, r.ci_high)}"
    cards.append(
        f'<b class="{css}">{escape(text)}</b><span>plan '
        f"<code>{escape(report.decision.get('plan', ''))}</code>{escape(regret)}</span>"
    )
    if v and v.release:
        ships = [g.lane for g in v.release if g.ships]
        css = "ok" if ships else "bad"
        cards.append(
            f'<b class="{css}">{escape(", ".join(ships) or "nothing ships")}</b>'
            "<span>release gate for fine-tuned lanes</span>"
        )
    n = report.cases.get("n", "?")
    cards.append(f"<b>{n} cases</b><span>{escape(str(report.cases.get('sampling', '')))}</span>")
    return '<div class="cards">' + "".join(f'<div class="card">{c}</div>' for c in cards) + "</div>"


def _plots(report: Report) -> str:
    colors = _colors(report)
    ok = [lane for lane in report.lanes if lane.status == "ok"]
    if not ok:
        return "<p>No lane produced results, so there is nothing to plot.</p>"
    parts = []
    for i, metric in enumerate(report.metric_names()):
        bars = [
            Bar(lane.name, m.value, m.ci_low, m.ci_high, colors[lane.name], f" (n={m.n})")
            for lane in ok
            if (m := lane.metrics.get(metric))
        ]
        desc = report.metric_descriptions.get(metric, "")
        caption = f"{metric} per lane, with 95% bootstrap intervals" + (f": {desc}" if desc else "")
        parts.append(_figure(caption, interval_bars(metric, bars), f"plot-metric-{i}"))
    diffs = [d for d in report.comparisons if d.metric == report.primary_metric]
    if diffs:
        bars = [
            Bar(
                f"{d.a} - {d.b}",
                d.value,
                d.ci_low,
                d.ci_high,
                "#1a7f37" if d.ci_low > 0 else "#c62828" if d.ci_high < 0 else "#8a94a6",
                f" [{signed(d.ci_low)}, {signed(d.ci_high)}]",
            )
            for d in diffs
        ]
        caption = (
            f"Paired differences on {report.primary_metric} (an interval off zero is a real gap)"
        )
        parts.append(_figure(caption, forest("differences", bars), "plot-differences"))
    primary = [lane for lane in ok if report.primary_metric in lane.metrics]
    if primary:
        bars = [_bar(lane, report.primary_metric, colors[lane.name]) for lane in primary]
        xs = [lane.cost.get("usd_per_1k_cases", 0.0) for lane in primary]
        caption = f"Cost vs quality: {report.primary_metric} against estimated $ per 1,000 cases"
        svg = scatter("cost vs quality", bars, xs, "estimated USD per 1,000 cases")
        parts.append(_figure(caption, svg, "plot-cost"))
    timed = [lane for lane in ok if lane.latency_ms]
    if timed:
        rows = [
            (lane.name, lane.latency_ms.p50, lane.latency_ms.p95, colors[lane.name])
            for lane in timed
            if lane.latency_ms
        ]
        limit = report.constraints.get("max_latency_ms")
        caption = "Latency per case: p50 bar, p95 tick (ms)" + (
            f"; the task allows {limit:g} ms" if limit else ""
        )
        svg = latency_bars("latency", rows, limit)
        parts.append(_figure(caption, svg, "plot-latency"))
    return "".join(parts)


def _bar(lane: LaneResult, metric: str, color: str) -> Bar:
    m = lane.metrics[metric]
    return Bar(lane.name, m.value, m.ci_low, m.ci_high, color)


def _lanes_table(report: Report) -> str:
    metrics = report.metric_names()
    head = ["lane", "status", *metrics, "p50 / p95 ms", "cases/s", "$ / 1k cases", "cached"]
    rows = []
    for lane in report.lanes:
        cells = [escape(lane.name) + (" <b>(winner)</b>" if lane.name == report.winner else "")]
        cells.append(escape(lane.status + (f": {lane.message}" if lane.message else "")))
        for metric in metrics:
            m = lane.metrics.get(metric)
            cells.append(f"{m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]" if m else "-")
        lat = lane.latency_ms
        cells.append(f"{lat.p50:.0f} / {lat.p95:.0f}" if lat else "-")
        cells.append(f"{lane.throughput.get('cases_per_s', 0):.2f}" if lane.throughput else "-")
        usd = lane.cost.get("usd_per_1k_cases")
        cells.append(f"{usd:.4f}" if usd is not None and lane.status == "ok" else "-")
        cells.append(str(lane.cached) if lane.status == "ok" else "-")
        rows.append(cells)
    return _table(head, rows)


def _verdict(report: Report) -> str:
    v = report.verdict
    if v is None:
        return ""
    head = f"<b>Winner: {escape(v.overall)}</b>: " if v.overall else "No winner: "
    parts = [f"<p>{head}{escape(v.overall_note)}.</p>"]
    check = "".join(f"<p>{escape(line).replace('**', '')}</p>" for line in decision_check_lines(v))
    parts.append(f'<div id="decision-check">{check}</div>')
    if v.tied_with_winner:
        parts.append(
            f"<p>Tied with the winner (within {v.margin:g} on {escape(v.primary_metric)}): "
            f"{escape(', '.join(v.tied_with_winner))}; the cheapest of these (training spread "
            f"over {v.volume:,} cases) is <b>{escape(v.cheapest_equivalent or '')}</b>.</p>"
        )
    if v.versus_winner:
        rows = [[escape(cell) for cell in row] for row in versus_rows(v)]
        parts.append(
            f"<p>The winner against every other lane (Holm's correction over these "
            f"{len(rows)} comparisons):</p>"
        )
        parts.append(_table(VERSUS_HEAD, rows))
    if report.profile.get("output_type") == "free_text":
        parts.append(f"<p class='sub'>How abstention is scored: {escape(ABSTENTION_NOTE)}.</p>")
    if v.excluded:
        parts.append(
            "<ul>"
            + "".join(f"<li>excluded {escape(k)}: {escape(w)}</li>" for k, w in v.excluded.items())
            + "</ul>"
        )
    if v.baselines:
        names = escape(", ".join(v.baselines))
        if v.below_baseline:
            parts.append(
                f"<p>Clearly <b>below the non-LLM baseline(s)</b> {names} on "
                f"{escape(v.primary_metric)}:</p><ul>"
                + "".join(f"<li>{escape(k)}: {escape(w)}</li>" for k, w in v.below_baseline.items())
                + "</ul>"
            )
        else:
            parts.append(f"<p>No lane is clearly below the non-LLM baseline(s) {names}.</p>")
    rows = [
        [
            escape(w.metric),
            escape(w.lane),
            f"{w.value:.3f}",
            escape(w.note),
            "yes" if w.clear else "no",
        ]
        for w in v.per_metric
    ]
    parts.append(_table(["metric", "best lane", "value", "vs runner-up", "clear win"], rows))
    parts.append("<h3>Release gate</h3>")
    if not v.release:
        parts.append("<p>No fine-tuned lane was evaluated in this run.</p>")
    for gate in v.release:
        css, word = ("ok", "ships") if gate.ships else ("bad", "does not ship")
        items = "".join(f"<li>{escape(r)}</li>" for r in gate.reasons)
        parts.append(
            f'<p><b>{escape(gate.lane)}</b>: <b class="{css}">{word}</b></p><ul>{items}</ul>'
        )
    return "".join(parts)


def _flips(report: Report) -> str:
    rows = [
        [
            escape(f"{d.a} vs {d.b}"),
            escape(d.metric),
            d.signed(),
            str(d.compared),
            f"{d.a_better} / {d.b_better}",
            escape(", ".join(d.a_better_ids[:5])) or "-",
            escape(", ".join(d.b_better_ids[:5])) or "-",
        ]
        for d in report.comparisons
    ]
    if not rows:
        return "<p>Fewer than two lanes were scored, so there is nothing to pair.</p>"
    head = [
        "pair (a vs b)",
        "metric",
        "a - b [95% CI], unadjusted",
        "n",
        "flips a / b",
        "a better on",
        "b better on",
    ]
    return _table(head, rows)


def _decision(report: Report) -> str:
    d = report.decision
    ranked = ", ".join(f"{escape(r['lane'])} ({r['score']:g})" for r in d.get("ranked", []))
    reasons = "".join(
        f"<li><b>{escape(r['lane'])}</b> ({escape(str(r['signal']))} = "
        f"{escape(str(r['value']))}): {escape(r['text'])}</li>"
        for r in d.get("reasons", [])
    )
    head = (
        f"<p>Plan <code>{escape(d.get('plan', ''))}</code>, lane "
        f"<code>{escape(str(d.get('lane')))}</code>, decided by "
        f"<b>{escape(d.get('mode', 'rules'))}</b>; ranked {ranked}.</p>"
    )
    measured = ""
    if d.get("mode") == "measured":
        evidence = [[escape(c) for c in row] for row in evidence_rows(d)]
        dev_test = [[escape(c) for c in row] for row in dev_test_rows(report)]
        measured = (
            f"<p>Measured on {escape(str(d.get('split')))} ({escape(str(d.get('metric')))}) in "
            f"{d.get('seconds') or 0:.0f} s; the rules alone planned "
            f"<code>{escape(str(d.get('rule_plan')))}</code>.</p>"
            f'<div id="evidence">{_table(EVIDENCE_HEAD, evidence)}</div>'
            "<h3>Dev (how it was decided) against test (this report)</h3>"
            f'<div id="dev-test">{_table(DEV_TEST_HEAD, dev_test)}</div>'
        )
    return f"{head}{measured}<ul>{reasons}</ul>"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page.

    >>> from compoundai_evaluators import load_report
    >>> html = render_html(load_report("out/banking77"))  # doctest: +SKIP
    >>> "<script" in html                                   # doctest: +SKIP
    False
    """
    prices = escape(str(report.prices.get("note", ""))) if report.prices else ""
    versions = escape(", ".join(f"{k} {v}" for k, v in report.versions.items()))
    body = [
        f"<h1>compoundai report: {escape(report.task)}</h1>",
        f'<p class="sub">Every lane on the same {report.cases.get("n", "?")} held-out cases '
        f"(split <code>{escape(str(report.cases.get('split', '')))}</code>); intervals are 95% "
        "paired bootstrap.</p>",
        _cards(report),
        "<h2>Verdict</h2>",
        _verdict(report),
        "<h2>Plots</h2>",
        _plots(report),
        "<h2>Lanes</h2>",
        _lanes_table(report),
        "<h2>Lane vs lane, with flips</h2>",
        _flips(report),
        "<h2>The router's decision</h2>",
        _decision(report),
        f"<footer>Prices: {prices}. Generated {escape(report.created)}; {versions}.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>compoundai report: {escape(report.task)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
