"""`report.md`: the report as text a reviewer reads in a pull request or a terminal.

Rendered only from a `Report`, so it can be rebuilt from a saved `report.json`. Order: the
router's decision, the lanes table (values with 95% intervals), the verdict, then the paired
differences with flips, then the assumptions (prices, sampling).
"""

from __future__ import annotations

from typing import Any

from compoundai_evaluators.report import MetricValue, Report, Verdict, signed_interval


def _fmt(m: MetricValue) -> str:
    return f"{m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _decision(report: Report) -> list[str]:
    d = report.decision
    mode = d.get("mode", "rules")
    how = (
        f"measured on {d.get('split')} ({d.get('metric')}) in {d.get('seconds') or 0:.0f} s; "
        f"the rules alone planned `{d.get('rule_plan')}`"
        if mode == "measured"
        else "from the rules alone"
    )
    lines = [f"**Router's plan:** `{d['plan']}`, lane `{d.get('lane')}` ({how})  ", ""]
    if mode == "measured":
        lines += ["### How the decision was measured", ""]
        lines += _table(EVIDENCE_HEAD, evidence_rows(d))
        lines += ["", "### Dev (how it was decided) against test (this report)", ""]
        lines += _table(DEV_TEST_HEAD, dev_test_rows(report))
        lines += [""]
    lines += _table(
        ["rank", "family", "score"],
        [[str(i), r["lane"], str(r["score"])] for i, r in enumerate(d["ranked"], 1)],
    )
    lines += ["", "Reasons:", ""]
    lines += [
        f"- **{r['lane']}** ({r['signal']} = {r['value']}): {r['text']}" for r in d["reasons"]
    ]
    return lines


EVIDENCE_HEAD = ["stage", "lane", "data", "cases", "value [95% CI]", "s", "p95 ms", "note"]
DEV_TEST_HEAD = ["lane", "data", "dev", "predicted at full data", "test"]


def evidence_rows(decision: dict[str, Any]) -> list[list[str]]:
    """Every measurement of a measured decision, in order (findings without a value too)."""
    rows = []
    for e in decision.get("evidence", []):
        value = (
            f"{e['value']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"
            if e.get("value") is not None
            else "-"
        )
        share = f"{e['data_share']:.0%}" if e.get("data_share") is not None else "-"
        seconds = f"{e['seconds']:.0f}" if e.get("seconds") is not None else "-"
        p95 = f"{e['p95_ms']:.0f}" if e.get("p95_ms") is not None else "-"
        cases = str(e.get("cases") or "-")
        rows.append([e["stage"], e["lane"], share, cases, value, seconds, p95, e["note"]])
    return rows


def dev_test_rows(report: Report) -> list[list[str]]:
    """Per lane of this report: its dev score (at its data share), the decision's prediction
    of its full-data dev score, and its test score here."""
    d = report.decision
    predictions = d.get("predictions", {})
    dev: dict[str, dict[str, Any]] = {}
    for e in d.get("evidence", []):
        if e.get("value") is not None:
            dev[e["lane"]] = e  # the last measurement of that exact lane wins
    rows = []
    for lane in report.lanes:
        if lane.status != "ok" or report.primary_metric not in lane.metrics:
            continue
        base = lane.name.split("@", 1)[0]
        m = lane.metrics[report.primary_metric]
        measured = dev.get(lane.name)
        p = predictions.get(base)
        rows.append(
            [
                lane.name,
                f"{lane.data_share:.0%}",
                f"{measured['value']:.3f}" if measured else "-",
                f"{p['value']:.3f} [{p['ci_low']:.3f}, {p['ci_high']:.3f}]" if p else "-",
                f"{m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]",
            ]
        )
    return rows


def _lanes(report: Report) -> list[str]:
    c = report.cases
    lines = [
        f"## Lanes on the same {c.get('n', '?')} held-out cases",
        "",
        f"Split `{c.get('split')}`, {c.get('sampling', '')}; "
        "95% paired-bootstrap intervals in brackets.",
        "",
    ]
    metric_names = report.metric_names()
    head = ["lane", *metric_names, "latency p50 / p95 (ms)", "prompt tokens / case"]
    head += ["$ / 1k cases", "status"]
    rows = []
    for lane in report.lanes:
        cells = [f"**{lane.name}**" if lane.name == report.winner else lane.name]
        cells += [_fmt(lane.metrics[m]) if m in lane.metrics else "-" for m in metric_names]
        lat = lane.latency_ms
        cells.append(f"{lat.p50:.0f} / {lat.p95:.0f}" if lat else "-")
        per_case = lane.cost.get("prompt_tokens", 0) / lane.n_cases if lane.n_cases else 0
        cells.append(f"{per_case:.0f}" if lane.n_cases else "-")
        usd = lane.cost.get("usd_per_1k_cases")
        cells.append(f"{usd:.4f}" if usd is not None and lane.status == "ok" else "-")
        cells.append(lane.status if lane.status == "ok" else f"{lane.status}: {lane.message}")
        rows.append(cells)
    lines += _table(head, rows)
    return lines


def _verdict(report: Report) -> list[str]:
    lines = ["## Verdict", ""]
    v = report.verdict
    if v is None:
        lines.append(f"Winner on `{report.primary_metric}`: **{report.winner}**.")
        return lines
    if v.overall:
        lines.append(f"**Winner: {v.overall}** ({v.overall_note}).")
    else:
        lines.append(f"No overall winner: {v.overall_note}.")
    if v.tied_with_winner:
        lines.append(
            f"Statistically tied with the winner on `{v.primary_metric}`: "
            f"{', '.join(v.tied_with_winner)}; "
            f"the cheapest of these is **{v.cheapest_equivalent}**."
        )
    for lane, why in v.excluded.items():
        lines.append(f"- excluded {lane}: {why}")
    lines += ["", *decision_check_lines(v), ""]
    lines += versus_lines(v)
    lines += baseline_lines(v)
    lines += _table(
        ["metric", "best lane", "value", "against the runner-up", "clear win"],
        [
            [w.metric, w.lane, f"{w.value:.3f}", w.note, "yes" if w.clear else "no"]
            for w in v.per_metric
        ],
    )
    lines += ["", "### Release gate (fine-tuned lanes)", ""]
    if not v.release:
        lines.append("No fine-tuned lane was evaluated in this run.")
    for gate in v.release:
        lines.append(f"- **{gate.lane}**: {'ships' if gate.ships else 'does not ship'}")
        lines += [f"  - {reason}" for reason in gate.reasons]
    return lines


OUTCOME_WORDS = {
    "matched": "**matched**: the plan's lane is the measured winner",
    "tied": "**tied** with the measured winner, within the equivalence margin",
    "wrong": "**wrong**: the plan's lane is clearly behind the measured winner",
    None: "could not be checked",
}


def decision_check_lines(v: Verdict) -> list[str]:
    """The router's plan against the winner: outcome, regret with its interval, the rule."""
    c = v.decision_check
    if c is None:
        return [f"Router's prediction: {v.router.note}"]
    lines = [
        f"**Decision check** (plan `{c.plan}`, built as `{c.chosen_lane}`; winner "
        f"`{c.winner}`): {OUTCOME_WORDS[c.outcome]}."
    ]
    if c.regret is not None:
        lines.append(
            f"Regret (winner minus plan, `{c.metric}`): "
            f"{signed_interval(c.regret.value, c.regret.ci_low, c.regret.ci_high)} over {c.n} "
            f"cases; margin {c.margin:g}. {c.note}."
        )
    else:
        lines.append(f"{c.note}.")
    return lines


VERSUS_HEAD = ["lane", "winner minus lane", "n", "p", "p (Holm)", "reading"]


def versus_rows(v: Verdict) -> list[list[str]]:
    """The winner against every other lane: difference, n, raw and Holm-adjusted p, tie."""
    return [
        [
            w.lane,
            signed_interval(w.value, w.ci_low, w.ci_high),
            str(w.n),
            f"{w.p_value:.3g}",
            f"{w.p_holm:.3g}",
            "tied" if w.tied else ("clearly behind" if w.clearly_worse else "inside the noise"),
        ]
        for w in v.versus_winner
    ]


def versus_lines(v: Verdict) -> list[str]:
    if not v.versus_winner:
        return []
    rows = versus_rows(v)
    head = [*VERSUS_HEAD[:1], f"winner minus lane ({v.primary_metric})", *VERSUS_HEAD[2:]]
    return [
        f"The winner against every other lane (Holm's correction over these {len(rows)} "
        f"comparisons; tied means within {v.margin:g}):",
        "",
        *_table(head, rows),
        "",
    ]


def baseline_lines(v: Verdict) -> list[str]:
    """What the non-LLM baselines say: which lanes lose to them (empty without baselines)."""
    if not v.baselines:
        return []
    names = ", ".join(f"`{b}`" for b in v.baselines)
    if not v.below_baseline:
        return [f"No lane is clearly below the non-LLM baseline(s) {names}.", ""]
    lines = [f"Lanes clearly **below the non-LLM baseline(s)** {names} on `{v.primary_metric}`:"]
    lines += [f"- {lane}: {why}" for lane, why in v.below_baseline.items()]
    return [*lines, ""]


def _differences(report: Report) -> list[str]:
    diffs = [d for d in report.comparisons if d.metric == report.primary_metric]
    if not diffs:
        return []
    lines = [
        f"## Lane vs lane on `{report.primary_metric}`",
        "",
        "Paired over the cases both lanes are scored on (n); flips count cases where one "
        "lane scored higher. Each row alone, unadjusted for the number of rows: the "
        "conclusions above use Holm's correction.",
        "",
    ]
    rows = [
        [
            f"{d.a} - {d.b}",
            d.signed(),
            str(d.compared),
            "yes" if d.significant else "no",
            f"{d.a_better} / {d.b_better}",
            ", ".join(d.a_better_ids[:3]) or "-",
            ", ".join(d.b_better_ids[:3]) or "-",
        ]
        for d in diffs
    ]
    head = ["difference", "value [95% CI]", "n", "clear of zero (unadjusted)", "flips a / b"]
    lines += _table([*head, "a better on", "b better on"], rows)
    return lines


ABSTENTION_NOTE = (
    "abstention: a free-text answer abstains when its lane flags it, when it is empty, or "
    'when it is a refusal ("I don\'t know", "I\'m not sure", "the passages don\'t say", '
    "...; one rule for every lane, `compoundai.contract`); it is scored as the empty answer, "
    "which SQuAD v2 EM/F1 count right on an unanswerable question and wrong otherwise"
)


def _notes(report: Report) -> list[str]:
    lines = ["## Assumptions", ""]
    v = report.verdict
    if v is not None:
        lines.append(
            f"- tied: within {v.margin:g} of the winner on `{v.primary_metric}` (regret at most "
            "the margin, its interval reaching 0 or inside the margin); cheapest: $ per 1k "
            f"cases with training spread over {v.volume:,} cases; significance: Holm-adjusted "
            f"p < {v.alpha:g} within each family of comparisons"
        )
    free_text = report.profile.get("output_type") == "free_text"
    if free_text or "abstention_accuracy" in report.metric_names():
        lines.append(f"- {ABSTENTION_NOTE}")
    if report.metric_descriptions:
        lines += [f"- `{k}`: {v}" for k, v in sorted(report.metric_descriptions.items())]
    if report.prices:
        lines.append(f"- prices: {report.prices.get('note', '')} (table in report.json)")
    cached = sum(lane.cached for lane in report.lanes)
    if cached:
        lines.append(f"- {cached} answers came from the output cache of an earlier run")
    return lines


def render_markdown(report: Report) -> str:
    """The whole report as Markdown.

    >>> from compoundai_evaluators import load_report
    >>> print(render_markdown(load_report("out/banking77"))[:40])  # doctest: +SKIP
    # compoundai report: banking77-intents
    """
    lines = [f"# compoundai report: {report.task}", ""]
    lines += [*_decision(report), ""]
    lines += [*_lanes(report), ""]
    lines += [*_verdict(report), ""]
    if section := _differences(report):
        lines += [*section, ""]
    lines += _notes(report)
    lines += [
        "",
        f"_Generated {report.created}; "
        + ", ".join(f"{k} {v}" for k, v in report.versions.items())
        + "._",
        "",
    ]
    return "\n".join(lines)
