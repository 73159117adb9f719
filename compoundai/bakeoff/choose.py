"""Stage 4 of a bake-off: the cheapest lane tied with the best, within the constraints, and
the `Decision` that says why, led by the measurements."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from compoundai.bakeoff.parts import Candidate
from compoundai.router import FRESH, LANES, Decision, RankedLane, Reason, knowledge_in_weights

if TYPE_CHECKING:
    from compoundai.bakeoff.search import BakeOff


def cost(bake: BakeOff, c: Candidate) -> tuple[float, float, float]:
    """`(usd per 1k cases amortised, usd per 1k inference, usd training full)`."""
    from compoundai_evaluators.cost import PriceTable

    prices = bake.prices or PriceTable()
    hourly = prices.compute_usd_per_hour / 3600
    last = c.rungs[-1]
    per_case = last.per_case_ms / 1000 * hourly
    training = 0.0
    if c.trains:
        full = last.train_seconds / max(last.share, 1e-9)
        training = full * hourly
    return per_case * 1000 + training * 1000 / bake.volume, per_case * 1000, training


def choose(bake: BakeOff) -> Decision:
    """Stage 4: the cheapest lane tied with the best, within the constraints."""
    from compoundai_evaluators.equivalence import is_tied

    constraints = bake.task.spec.constraints
    scored = [c for c in bake.candidates if c.rungs and _on_sample(bake, c)]
    excluded: dict[str, str] = {}
    fresh = bool(bake.task.documents) and constraints.knowledge_freshness in FRESH
    for c in scored:
        last = c.rungs[-1]
        if fresh and knowledge_in_weights(c.name):
            excluded[c.name] = (
                f"trains the documents' facts into the weights, but the knowledge changes "
                f"{constraints.knowledge_freshness}: they would go stale until retrained"
            )
        elif constraints.max_latency_ms and last.p95_ms > constraints.max_latency_ms:
            excluded[c.name] = (
                f"p95 latency {last.p95_ms:.0f} ms on dev exceeds the "
                f"{constraints.max_latency_ms:g} ms budget"
            )
        elif constraints.local_only and c.remote:
            excluded[c.name] = "uses a remote generator, but the task requires local-only"
        elif constraints.budget_usd is not None and cost(bake, c)[2] > constraints.budget_usd:
            excluded[c.name] = (
                f"estimated training cost ${cost(bake, c)[2]:.4f} exceeds the "
                f"${constraints.budget_usd:g} budget"
            )
    for name, why in excluded.items():
        bake._note(name, "choose", f"excluded: {why}")
    eligible = [c for c in scored if c.name not in excluded]
    caveat = ""
    if scored and not eligible:
        eligible = scored
        caveat = "no lane measured on the decision sample meets every constraint: the choice is "
        caveat += "made among them as if they did (the cheapest tied with the best)"
        caveat += _unmeasured(bake)
        bake._note("all", "choose", caveat)
    if not eligible:
        why = "no lane reached the whole decision sample"
        return _fallback(bake, why + _unmeasured(bake))
    samples = {c.name: bake.curves.samples(c) for c in eligible}
    best = max(eligible, key=lambda c: samples[c.name][0])
    best_value, best_draws = samples[best.name]
    tied: list[Candidate] = []
    gaps: dict[str, tuple[float, float, float]] = {}
    for c in eligible:
        value, draws = samples[c.name]
        diff = best_draws - draws
        finite = diff[np.isfinite(diff)]
        low, high = np.quantile(finite, [0.025, 0.975]) if finite.size else (0.0, 0.0)
        gaps[c.name] = (best_value - value, float(low), float(high))
        if c is best or is_tied(best_value - value, float(low), float(high), bake.margin):
            tied.append(c)
    chosen = min(tied, key=lambda c: (cost(bake, c)[0], c.rungs[-1].per_case_ms))
    return _decision(bake, chosen, best, tied, gaps, samples, excluded, caveat)


def _on_sample(bake: BakeOff, c: Candidate) -> bool:
    n = len(bake.data.cases) or len(bake.data.pairs)
    return any(r.units == n for r in c.rungs)


def _unmeasured(bake: BakeOff) -> str:
    """The lanes never measured on the whole decision sample, and why they stopped."""
    left = [c for c in bake.candidates if not _on_sample(bake, c)]
    if not left:
        return ""
    said = "; ".join(f"{c.name} ({c.stopped or 'not reached'})" for c in left)
    hint = ""
    if any((c.stopped or "").startswith("budget") for c in left):
        hint = " (a larger --budget-minutes measures the ones the budget stopped)"
    return f". Not measured on it: {said}{hint}"


def _decision(
    bake: BakeOff,
    chosen: Candidate,
    best: Candidate,
    tied: list[Candidate],
    gaps: dict[str, tuple[float, float, float]],
    samples: dict[str, tuple[float, np.ndarray]],
    excluded: dict[str, str],
    caveat: str = "",
) -> Decision:
    from compoundai.router import plan_of
    from compoundai_evaluators.report import signed_interval

    families: dict[str, float] = {}
    for name, (value, _) in samples.items():
        family = next(c.family for c in bake.candidates if c.name == name)
        families[family] = max(families.get(family, float("-inf")), value)
    ranked = sorted(families, key=lambda f: -families[f])
    ranked += [f for f in LANES if f not in ranked]
    value = samples[chosen.name][0]
    amortised = cost(bake, chosen)[0]
    last = chosen.rungs[-1]
    how = "predicted at full data" if chosen.trains and last.share < 1 else "measured"
    text = (
        f"{chosen.name} scores {value:.3f} {bake.metric} ({how}) on {bake.data.note}"
        + ("; it is the best" if chosen is best else f"; tied with the best, {best.name}")
        + f" within {bake.margin:g}, and the cheapest of the {len(tied)} tied "
        f"(${amortised:.4f} per 1k cases with training spread over {bake.volume:,})"
    )
    reasons = [
        Reason(
            lane=chosen.family,
            signal=f"dev.{bake.metric}",
            value=round(value, 4),
            text=text,
            weight=1.0,
        )
    ]
    for c in tied:
        if c is chosen:
            continue
        gap = gaps[c.name]
        reasons.append(
            Reason(
                lane=c.family,
                signal=f"dev.{bake.metric}",
                value=round(samples[c.name][0], 4),
                text=f"{c.name} is tied too (behind the best by {signed_interval(*gap)}) "
                f"but costs ${cost(bake, c)[0]:.4f} per 1k cases",
            )
        )
    for name, why in excluded.items():
        reasons.append(Reason(lane=name, signal="constraint", value=None, text=why))
    if caveat:
        reasons.insert(1, Reason(lane=chosen.family, signal="constraint", value=None, text=caveat))
    reasons += [r.model_copy(update={"weight": 0.0}) for r in bake.rules.reasons]
    predictions = {
        c.name: dict(zip(("value", "ci_low", "ci_high"), bake.curves.predict(c), strict=True))
        for c in bake.candidates
        if c.rungs and _on_sample(bake, c)
    }
    plan = plan_of(chosen.name)
    lane_plans = {
        c.name: {**(c.plan.settings() if c.plan else {}), "share": c.rungs[-1].share}
        for c in bake.candidates
        if c.trains and c.rungs
    }
    return Decision(
        plan=plan,
        lane=chosen.name,
        mode="measured",
        ranked=[RankedLane(lane=f, score=round(families.get(f, 0.0), 4)) for f in ranked],
        reasons=reasons,
        stages=[s.strip() for s in plan.split("->")],
        evidence=bake.evidence,
        predictions={k: {m: round(v, 4) for m, v in p.items()} for k, p in predictions.items()},
        training_plans=lane_plans,
        metric=bake.metric,
        split=bake.data.source,
        seconds=round(bake.budget.elapsed, 1),
        rule_plan=bake.rules.plan,
    )


def _fallback(bake: BakeOff, why: str) -> Decision:
    bake._note("all", "choose", f"the rules decide: {why}")
    return bake.rules.model_copy(
        update={"mode": "rules", "evidence": bake.evidence, "seconds": bake.budget.elapsed}
    )
