"""Server-rendered pages, part two: the cases of a run, one case, and two runs compared.

The filters are a plain GET form (lanes A and B, the metric, which cases, a search), so every
view has its own address and works without the script; scores come from `cases.case_table`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from compoundai.ui.cases import FILTERS, Case, CaseTable, RunDiff, filter_cases, reported_flips
from compoundai.ui.pages import e, interval, layout, message, table, url
from compoundai.ui.runs import RunEntry
from compoundai_evaluators.report import signed

PAGE_SIZE = 100
SHOWN_CHARS = 160


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A value as short text: strings as they are, anything else as JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def score_badge(score: float) -> str:
    if math.isnan(score):
        return '<span class="score na">–</span>'
    if score in (0.0, 1.0):
        css, text = ("right", "✓") if score == 1.0 else ("wrong", "✗")
        return f'<span class="score {css}">{text}</span>'
    css = "right" if score >= 0.5 else "wrong"
    return f'<span class="score {css}">{score:.2f}</span>'


def _select(name: str, options: Sequence[tuple[str, str]], chosen: str | None, label: str) -> str:
    opts = "".join(
        f'<option value="{e(v)}"{" selected" if v == chosen else ""}>{e(t)}</option>'
        for v, t in options
    )
    return f'<label>{e(label)} <select name="{e(name)}" id="pick-{e(name)}">{opts}</select></label>'


def _defaults(run: RunEntry, table_: CaseTable) -> tuple[str | None, str | None]:
    report = run.report
    assert report is not None
    lanes = table_.lanes
    a = report.winner if report.winner in lanes else (lanes[0] if lanes else None)
    planned = report.decision_check.chosen_lane if report.decision_check else None
    b = planned if planned in lanes and planned != a else None
    b = b or next((lane for lane in lanes if lane != a), None)
    return a, b


def cases_page(
    run: RunEntry,
    table_: CaseTable,
    *,
    a: str | None,
    b: str | None,
    metric: str | None,
    show: str,
    query: str,
    page: int,
) -> str:
    report = run.report
    assert report is not None
    da, db = _defaults(run, table_)
    a = a if a in table_.lanes else da
    b = b if b in table_.lanes else db
    metric = metric if metric in table_.metrics else next(iter(table_.metrics), None)
    show = show if show in FILTERS else "all"
    kept = filter_cases(table_, show, a, b, metric, query)
    pages = max(1, math.ceil(len(kept) / PAGE_SIZE))
    page = min(max(page, 1), pages)
    lanes = [(lane, lane) for lane in table_.lanes]
    form = (
        f'<form method="get" action="/cases" class="filters" id="case-filters">'
        f'<input type="hidden" name="run" value="{e(run.id)}">'
        + _select("a", lanes, a, "lane A")
        + _select("b", lanes, b, "lane B")
        + _select("metric", [(m, m) for m in table_.metrics], metric, "metric")
        + _select("show", list(FILTERS.items()), show, "show")
        + f'<label>search <input type="search" name="q" value="{e(query)}"></label>'
        '<button type="submit" id="apply-filters">Apply</button></form>'
    )
    parts = [
        f'<h1>Cases: <a href="{e(url("/run", id=run.id))}">{e(report.task)}</a></h1>',
        f'<p class="sub">{len(table_.cases)} held-out cases, {len(table_.lanes)} lanes; '
        "a score is the case's share of the metric (✓ right, ✗ wrong).</p>",
        *[message(p) for p in table_.problems],
    ]
    if table_.not_reproduced:
        items = "".join(f"<li>{e(k)}: {e(v)}</li>" for k, v in table_.not_reproduced.items())
        parts.append(
            '<details class="msg info"><summary>Metrics without a per-case score here</summary>'
            f"<ul>{items}</ul></details>"
        )
    parts.append(form)
    if a and b and metric:
        ours = sum(1 for c in table_.cases if c.score(a, metric) > c.score(b, metric))
        theirs = sum(1 for c in table_.cases if c.score(b, metric) > c.score(a, metric))
        counted = reported_flips(report, a, b, metric)
        check = ""
        if counted is not None:
            same = counted == (ours, theirs)
            check = f" (the report counts {counted[0]} / {counted[1]}{'' if same else ': differs'})"
        parts.append(
            f'<p id="flip-summary"><b>{e(a)}</b> scores higher on {ours} cases, <b>{e(b)}</b> '
            f"on {theirs}{e(check)}.</p>"
        )
    parts.append(f'<p id="shown-count">{len(kept)} cases shown ({e(FILTERS[show])}).</p>')
    head = ["case", "input", "gold"]
    for lane in table_.lanes:
        tag = " (A)" if lane == a else " (B)" if lane == b else ""
        head.append(e(lane + tag))
    rows = []
    for case in kept[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]:
        link = url("/case", run=run.id, id=case.id, a=a, b=b)
        cells = [
            f'<a class="case-link" href="{e(link)}">{e(case.id)}</a>',
            e(shown(case.input, 120)),
            e(shown(case.reference, 80)),
        ]
        for lane in table_.lanes:
            cells.append(_answer_cell(case, lane, metric, lane in (a, b)))
        rows.append(cells)
    parts.append(table(head, rows, id="cases"))
    if pages > 1:
        common = {"run": run.id, "a": a, "b": b, "metric": metric, "show": show, "q": query}
        links = [
            f'<a href="{e(url("/cases", **common, page=p))}"'
            f"{' class=active' if p == page else ''}>{p}</a>"
            for p in range(1, pages + 1)
        ]
        parts.append(f'<p class="pages">pages: {" ".join(links)}</p>')
    return layout(f"Cases · {report.task}", "".join(parts), "/")


def _answer_cell(case: Case, lane: str, metric: str | None, picked: bool) -> str:
    answer = case.answers.get(lane)
    if answer is None:
        return "–"
    marks = ""
    if answer.abstained:
        marks += ' <span class="badge unk">abstained</span>'
    if answer.invalid:
        marks += ' <span class="badge bad">invalid</span>'
    score = score_badge(case.score(lane, metric)) if metric else ""
    css = ' class="picked"' if picked else ""
    return f"<div{css}>{score} {e(shown(answer.output, 100))}{marks}</div>"


def case_page(
    run: RunEntry, table_: CaseTable, case: Case, a: str | None = None, b: str | None = None
) -> str:
    report = run.report
    assert report is not None
    ids = [c.id for c in table_.cases]
    at = ids.index(case.id)
    nav = []
    for label, index in (("← previous", at - 1), ("next →", at + 1)):
        if 0 <= index < len(ids):
            nav.append(
                f'<a href="{e(url("/case", run=run.id, id=ids[index], a=a, b=b))}">{label}</a>'
            )
    back = url("/cases", run=run.id, a=a, b=b)
    parts = [
        f'<h1>Case <code>{e(case.id)}</code></h1><p class="sub"><a href="{e(back)}">'
        f"all cases of {e(report.task)}</a> · {' · '.join(nav)}</p>",
        f'<div class="case-head"><h3>Input</h3><pre id="case-input">{e(case.input)}</pre>'
        f'<h3>Gold answer</h3><pre id="case-gold">{e(shown(case.reference, 4000))}</pre></div>',
        '<div class="answers">',
    ]
    order = [x for x in (a, b) if x in case.answers]
    order += [lane for lane in table_.lanes if lane in case.answers and lane not in order]
    for lane in order:
        parts.append(_answer_card(case, lane, table_.metrics))
    parts.append("</div>")
    return layout(f"Case {case.id}", "".join(parts), "/")


def _answer_card(case: Case, lane: str, metrics: Sequence[str]) -> str:
    answer = case.answers[lane]
    scores = " ".join(f"{e(m)} {score_badge(case.score(lane, m))}" for m in metrics)
    badges = ""
    if answer.abstained:
        reason = answer.extra.get("abstain_reason", "")
        badges += f' <span class="badge unk" title="{e(reason)}">abstained</span>'
    if answer.invalid:
        badges += ' <span class="badge bad">invalid output</span>'
    parts = [
        f'<section class="answer" data-lane="{e(lane)}"><h3>{e(lane)}{badges}</h3>',
        f"<p>{scores} · {answer.latency_ms:.0f} ms</p>",
        f'<pre class="output">{e(shown(answer.output, 4000))}</pre>',
    ]
    if answer.text and answer.text != answer.output:
        parts.append(f"<details><summary>raw text</summary><pre>{e(answer.text)}</pre></details>")
    extra = answer.extra
    cited = extra.get("cited") or []
    citations = extra.get("citations") or []
    if citations or cited:
        shown_cites = ", ".join(str(c) for c in (citations or cited))
        parts.append(f'<p class="citations">cites: <code>{e(shown_cites)}</code></p>')
    ids = extra.get("retrieved_ids") or []
    texts = extra.get("contexts") or extra.get("neighbours") or []
    if ids or texts:
        kind = "passages" if extra.get("contexts") else "retrieved examples"
        score = extra.get("retrieval_score")
        head = f"{len(ids or texts)} {kind}" + (
            f", best score {score}" if score is not None else ""
        )
        items = []
        for i in range(max(len(ids), len(texts))):
            rid = ids[i] if i < len(ids) else ""
            body = texts[i] if i < len(texts) else ""
            mark = " cited" if rid and rid in citations else ""
            items.append(
                f'<li class="passage{mark}"><code>[{i + 1}] {e(rid)}</code>'
                f"<div>{e(shown(body, 1200))}</div></li>"
            )
        parts.append(f'<details class="retrieved" open><summary>{e(head)}</summary><ol>')
        parts.append("".join(items) + "</ol></details>")
    parts.append("</section>")
    return "".join(parts)


# -- two runs ---------------------------------------------------------------------------------


def compare_page(
    runs: Sequence[RunEntry],
    a: RunEntry | None,
    b: RunEntry | None,
    diff: RunDiff | None,
    problem: str = "",
) -> str:
    readable = [r for r in runs if r.report is not None]
    options = [("", "choose a run")] + [
        (r.id, f"{r.task} · {r.report.created[:16] if r.report else ''} · {r.id}") for r in readable
    ]
    form = (
        '<form method="get" action="/compare" class="filters" id="compare-form">'
        + _select("a", options, a.id if a else None, "run A")
        + _select("b", options, b.id if b else None, "run B")
        + '<button type="submit">Compare</button></form>'
    )
    parts = ["<h1>Compare two runs</h1>", form]
    if problem:
        parts.append(message(problem, "bad"))
    if a is None or b is None or diff is None or a.report is None or b.report is None:
        if not problem:
            parts.append("<p>Choose two runs of the same task.</p>")
        return layout("Compare", "".join(parts), "/compare")
    parts.append(
        f'<p class="sub">A: <a href="{e(url("/run", id=a.id))}">{e(a.id)}</a> · B: '
        f'<a href="{e(url("/run", id=b.id))}">{e(b.id)}</a> · on {e(diff.metric)}</p>'
    )
    changed = (
        "".join(f"<li>{e(c)}</li>" for c in diff.changes) or "<li>nothing but the numbers</li>"
    )
    parts.append(f'<h2>What changed</h2><ul id="changes">{changed}</ul>')
    rows = []
    for d in diff.lanes:
        delta = "–" if d.delta is None else signed(d.delta)
        rows.append([e(d.lane), interval(d.a), interval(d.b), delta])
    parts.append(table(["lane", "A", "B", "B − A"], rows, cls="sortable", id="lane-deltas"))
    parts += [message(n, "info") for n in diff.notes]
    if diff.flips:
        parts.append("<h2>Cases that changed</h2>")
    for lane, changes in diff.flips.items():
        better = sum(1 for c in changes if c.score_b > c.score_a)
        parts.append(
            f'<h3 class="flip-lane">{e(lane)}: {len(changes)} cases changed, {better} better in B, '
            f"{len(changes) - better} worse</h3>"
        )
        rows = [
            [
                f'<a href="{e(url("/case", run=a.id, id=c.id))}">{e(c.id)}</a> · '
                f'<a href="{e(url("/case", run=b.id, id=c.id))}">B</a>',
                e(shown(c.input, 120)),
                score_badge(c.score_a),
                score_badge(c.score_b),
            ]
            for c in changes[:50]
        ]
        if rows:
            parts.append(table(["case (A · B)", "input", "A", "B"], rows))
    return layout("Compare", "".join(parts), "/compare")
