"""The verdict: who won, whether it is a real win, whether the router was right, what ships.

Rules, in the order a reader would check them:
- **per metric**: the lane with the best value; the win is *clear* only when the paired
  difference against the runner-up is significant after Holm's correction over the winner's
  comparisons on that metric (`alpha`, 5%).
- **overall**: the best lane on the primary metric among those that meet the task's
  constraints (p95 latency within `max_latency_ms`, total cost within `budget_usd`, no remote
  generator when `local_only`); when none does, the best lane regardless, with
  `constraints_met: false` and every breach listed. Ties on the value go to the cheaper,
  then the faster lane.
- **tied with the winner** means *within the equivalence margin* (`margin`, 0.02 of the primary
  metric by default), not merely "the interval contains 0": the regret (winner minus lane) is
  at most the margin, and its paired interval either reaches 0 or lies within the margin
  (`is_tied`). A lane 0.10 behind with an interval of [-0.001, +0.21] is not tied.
- **cheapest** counts amortised cost: per-case inference plus the one-off training and build
  cost spread over `volume` cases (100,000 by default; `usd_per_1k_amortised`).
- **versus the winner**: the winner minus every other lane on the primary metric, each with its
  Holm-adjusted p-value (the family: the winner's comparisons), and whether it is tied.
- **decision check**: the router's plan (the lane it would build) against the winner:
  `matched`, `tied` (as above) or `wrong`, with the regret and its interval.
- **router** (family level, kept for older readers): the router's top family against the
  winner's family.
- **baselines**: lanes with no generator (`generator == "none"`: the kNN vote, the BM25
  passage) are the cheap non-LLM baselines; an LLM lane is listed as losing to one when its
  paired interval lies wholly below zero and the difference is significant after Holm's
  correction over every (LLM lane, baseline) pair.
- **release gate** (fine-tuned lanes, `finetune` and `compound`): ships only if it beats
  every cheaper lane family measured (prompt < rag < finetune < compound) with the paired
  interval clear of zero (unadjusted: every comparison must pass anyway), and its general-text
  perplexity rose by at most `max_forgetting` (10% by default). Forgetting that was not
  measured fails the gate: unknown is not safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compoundai_evaluators.equivalence import (
    ALPHA,
    MARGIN,
    VOLUME,
    amortised_usd,
    plan_check,
    versus,
)
from compoundai_evaluators.report import (
    Difference,
    GateResult,
    LaneResult,
    MetricWinner,
    RouterCheck,
    Verdict,
    VersusWinner,
    find_difference,
    p_value,
    signed,
)
from compoundai_evaluators.stats import holm

FAMILY_COST_RANK = {"prompt": 0, "rag": 1, "finetune": 2, "compound": 3}
GATED_FAMILIES = ("finetune", "compound")


def _volume(lanes: Sequence[LaneResult]) -> int:
    """The volume the lanes' amortised costs were computed for (the default if unrecorded)."""
    return next((int(r.cost["volume"]) for r in lanes if r.cost.get("volume")), VOLUME)


def _cost_key(lane: LaneResult) -> tuple[float, float]:
    return amortised_usd(lane), lane.latency_ms.p50 if lane.latency_ms else 0


def _ranked(lanes: Sequence[LaneResult], metric: str) -> list[LaneResult]:
    """Best first: by value, then cheaper, then faster."""
    have = [r for r in lanes if r.status == "ok" and metric in r.metrics]
    return sorted(have, key=lambda r: (-r.metrics[metric].value, *_cost_key(r)))


def _breaks(lane: LaneResult, constraints: dict[str, Any]) -> str | None:
    limit = constraints.get("max_latency_ms")
    if limit and lane.latency_ms and lane.latency_ms.p95 > limit:
        return f"p95 latency {lane.latency_ms.p95:.0f} ms exceeds the {limit:g} ms budget"
    budget = constraints.get("budget_usd")
    if budget is not None and lane.cost.get("usd_total", 0.0) > budget:
        return f"estimated cost ${lane.cost['usd_total']:.4f} exceeds the ${budget:g} budget"
    if constraints.get("local_only") and lane.remote:
        return "uses a remote generator, but the task requires local-only"
    return None


def _per_metric(
    lanes: Sequence[LaneResult], differences: Sequence[Difference], metric: str, alpha: float
) -> MetricWinner | None:
    ranked = _ranked(lanes, metric)
    if not ranked:
        return None
    best = ranked[0]
    winner = MetricWinner(metric=metric, lane=best.name, value=best.metrics[metric].value)
    if len(ranked) == 1:
        winner.note = "the only lane measured"
        return winner
    runner = ranked[1]
    family = versus(best.name, [r.name for r in ranked[1:]], differences, metric, alpha=alpha)
    against = next((v for v in family if v.lane == runner.name), None)
    winner.runner_up = runner.name
    winner.clear = bool(against and against.clearly_worse and against.ci_low > 0)
    if against:
        winner.note = (
            f"{signed(against.value)} over {runner.name} [{signed(against.ci_low)}, "
            f"{signed(against.ci_high)}], Holm p {against.p_holm:.3g}"
            + ("" if winner.clear else ", inside the noise")
        )
    return winner


def _router(
    top: str, winner: str | None, lanes: Sequence[LaneResult], diffs: Sequence[Difference], m: str
) -> RouterCheck:
    families = {r.name: r.family for r in lanes}
    evaluated = {r.family for r in lanes if r.status == "ok" and m in r.metrics}
    if winner is None:
        return RouterCheck(predicted=top, measured=None, correct=None, note="No lane was scored.")
    measured = families[winner]
    if top not in evaluated:
        return RouterCheck(
            predicted=top,
            measured=measured,
            correct=None,
            note=f"The router ranked `{top}` first, but that lane was not evaluated in this "
            "run, so its prediction cannot be checked yet.",
        )
    correct = measured == top
    note = f"The router ranked `{top}` first; the measured winner is `{winner}`."
    if not correct:
        best_of_top = _ranked([r for r in lanes if r.family == top], m)[0]
        d = find_difference(diffs, winner, best_of_top.name, m)
        if d and d.ci_low <= 0:
            note += f" `{best_of_top.name}` trails by {d.value:.3f}, inside the noise."
    return RouterCheck(predicted=top, measured=measured, correct=correct, note=note)


def _gate(
    lane: LaneResult,
    lanes: Sequence[LaneResult],
    diffs: Sequence[Difference],
    metric: str,
    max_forgetting: float,
) -> GateResult:
    reasons, ships = [], True
    rank = FAMILY_COST_RANK.get(lane.family, 99)
    cheaper = [
        r
        for r in lanes
        if r.status == "ok" and metric in r.metrics and FAMILY_COST_RANK.get(r.family, 99) < rank
    ]
    if not cheaper:
        ships = False
        reasons.append("no cheaper lane was measured, so there is nothing it was shown to beat")
    for other in cheaper:
        d = find_difference(diffs, lane.name, other.name, metric)
        if d is None or d.ci_low <= 0:
            ships = False
            shown = d.signed() if d else "n/a"
            reasons.append(f"does not clearly beat {other.name} on {metric}: {shown}")
        else:
            reasons.append(f"beats {other.name}: {d.signed()}")
    if lane.forgetting is None:
        ships = False
        reasons.append("forgetting (general-text perplexity) was not measured")
    elif lane.forgetting.ratio > 1 + max_forgetting:
        ships = False
        reasons.append(
            f"general-text perplexity rose {lane.forgetting.ratio - 1:+.1%}, over the "
            f"{max_forgetting:.0%} bound"
        )
    else:
        reasons.append(f"forgetting within bound: perplexity {lane.forgetting.ratio - 1:+.1%}")
    return GateResult(lane=lane.name, ships=ships, reasons=reasons)


def _below_baselines(
    lanes: Sequence[LaneResult], diffs: Sequence[Difference], metric: str, alpha: float
) -> tuple[list[str], dict[str, str]]:
    scored = [r for r in lanes if r.status == "ok" and metric in r.metrics]
    baselines = [r.name for r in scored if r.generator == "none"]
    pairs = [
        (lane.name, base, d)
        for lane in scored
        if lane.name not in baselines
        for base in baselines
        if (d := find_difference(diffs, lane.name, base, metric)) is not None
    ]
    adjusted = holm([p_value(d) for _, _, d in pairs])  # one family: every (LLM lane, baseline)
    below: dict[str, str] = {}
    for (lane, base, d), p_adj in zip(pairs, adjusted, strict=True):
        if d.ci_high < 0 and p_adj < alpha:
            shown = f"{d.signed()} vs {base}"
            below[lane] = "; ".join(
                [*filter(None, [below.get(lane)]), f"{shown}, Holm p {p_adj:.3g}"]
            )
    return baselines, below


def decide_verdict(
    lanes: Sequence[LaneResult],
    differences: Sequence[Difference],
    primary_metric: str,
    router_top: str,
    constraints: dict[str, Any] | None = None,
    max_forgetting: float = 0.10,
    *,
    plan: str | None = None,
    plan_lane: str | None = None,
    margin: float = MARGIN,
    alpha: float = ALPHA,
) -> Verdict:
    """Winners per metric and overall, the decision check and the release gate.

    `plan` and `plan_lane` are the router's plan and the lane it builds (`Decision.plan`,
    `Decision.lane`); `router_top` its top lane family.

    >>> v = decide_verdict(report.lanes, report.comparisons, "accuracy", "finetune",
    ...                    plan="sft", plan_lane="finetune/sft")           # doctest: +SKIP
    >>> v.overall, v.decision_check.outcome                               # doctest: +SKIP
    ('prompt/5-shot', 'wrong')
    """
    constraints = constraints or {}
    scored = _ranked(lanes, primary_metric)
    excluded = {r.name: why for r in scored if (why := _breaks(r, constraints))}
    eligible = [r for r in scored if r.name not in excluded]
    overall = eligible[0].name if eligible else None
    if overall:
        note = f"best {primary_metric} among the lanes that meet the task's constraints"
    elif scored:
        # Still name the best lane, but say loudly that it breaks the constraints.
        eligible, overall = scored, scored[0].name
        note = (
            f"no lane meets the task's constraints (see `excluded`); best {primary_metric} "
            "regardless of them"
        )
    else:
        note = "no lane was scored"
    tied: list[str] = []
    cheapest = overall
    against: list[VersusWinner] = []
    if overall:
        others = [r.name for r in scored if r.name != overall]
        against = versus(overall, others, differences, primary_metric, margin, alpha)
        tied_names = {v.lane for v in against if v.tied}
        tied = [r.name for r in eligible[1:] if r.name in tied_names]
        pool = [r for r in eligible if r.name in {overall, *tied}]
        cheapest = min(pool, key=_cost_key).name
    metric_names = sorted(
        {m for r in lanes for m in r.metrics}, key=lambda m: (m != primary_metric, m)
    )
    per_metric = [w for m in metric_names if (w := _per_metric(lanes, differences, m, alpha))]
    baselines, below = _below_baselines(lanes, differences, primary_metric, alpha)
    check = plan_check(
        plan or router_top,
        plan_lane,
        overall,
        lanes,
        differences,
        primary_metric,
        margin,
        excluded=excluded if overall not in excluded else {},
    )
    return Verdict(
        primary_metric=primary_metric,
        overall=overall,
        overall_note=note,
        eligible=[r.name for r in eligible if r.name not in excluded],
        constraints_met=not scored or any(r.name not in excluded for r in scored),
        excluded=excluded,
        tied_with_winner=tied,
        cheapest_equivalent=cheapest,
        per_metric=per_metric,
        router=_router(router_top, overall, lanes, differences, primary_metric),
        release=[
            _gate(r, lanes, differences, primary_metric, max_forgetting)
            for r in scored
            if r.family in GATED_FAMILIES
        ],
        max_forgetting=max_forgetting,
        baselines=baselines,
        below_baseline=below,
        margin=margin,
        volume=_volume(scored),
        alpha=alpha,
        versus_winner=against,
        decision_check=check,
    )
