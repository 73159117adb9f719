"""Probe mode: a quick bake-off of the cheap lanes on a dev sample that can overturn the rules.

The rules decide from signals; the probe measures. It builds the lanes that need no training
(prompt zero/few-shot and the rag variants), scores them on a stratified sample of the dev
split (never the test split: that is for reports) with the task's first answer-quality metric
(see below), and overturns the rules in two cases, each recorded in `Decision.probe` and as
a reason:

- the rules chose a cheap lane (prompt or rag), and the other cheap family beat it on the
  sample with its paired 95% interval clear of zero: the measured family goes first;
- the rules chose a lane that trains (finetune, compound), and a cheap lane already reaches
  `good_enough` on the sample with the lower end of its 95% interval: training is not worth
  its cost, the cheap lane goes first.

The probe judges by the task's first answer-quality metric: retrieval metrics (recall@k, MRR),
bare JSON validity and the diagnostics are not what a task is decided on.

Otherwise the rules stand, and the probe's figures are kept next to them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from compoundai.context import RunContext
from compoundai.data import sample_cases
from compoundai.errors import UserInputError
from compoundai.router import Decision, RankedLane, Reason
from compoundai.task import Task

CHEAP = ("prompt", "rag")
# Metrics a lane can score well on while answering badly: never the probe's judge.
NOT_QUALITY = {"json_valid", "mrr", "groundedness", "abstention_accuracy"}


def probe_metric(metrics: list[str]) -> str:
    """The first answer-quality metric of the task's list."""
    for name in metrics:
        if name not in NOT_QUALITY and not name.startswith("recall_at_"):
            return name
    return metrics[0]


class ProbeLane(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lane: str
    family: str
    status: str = "ok"
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    message: str = ""


class Probe(BaseModel):
    """What the probe measured and whether it overturned the rules."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    split: str
    cases: int
    seed: int
    good_enough: float
    lanes: list[ProbeLane]
    rule_plan: str
    rule_top: str
    overturned: bool
    note: str


def probe(
    task: Task,
    decision: Decision,
    ctx: RunContext | None = None,
    *,
    cases: int = 60,
    good_enough: float = 0.9,
) -> Decision:
    """`decision`, re-ranked if the cheap lanes' measured scores overturn it, with `probe` set.

    >>> decision = probe(task, Router().decide(profile(task)), cases=60)    # doctest: +SKIP
    >>> decision.probe["overturned"], decision.probe["note"]                # doctest: +SKIP
    """
    from compoundai.lanes import build_lanes, lanes_for
    from compoundai_evaluators import compare
    from compoundai_evaluators.report import find_difference

    ctx = ctx or RunContext()
    dev = task.split("dev")
    if not dev:
        raise UserInputError(
            "probe mode needs a dev split to measure on (the test split is for reports)",
            hint="add examples.dev to the task file, or decide without --probe",
        )
    spec = task.spec
    sample = sample_cases(dev, cases, spec.evaluation.seed, spec.output.type == "labels")
    metric = probe_metric(list(task.metrics))
    systems, failures = build_lanes(lanes_for(list(CHEAP), task), task, ctx)
    lanes = [
        ProbeLane(lane=f.name, family=f.family, status="not_built", message=f.message)
        for f in failures
    ]
    comparison = compare(
        systems,
        sample,
        [metric],
        seed=spec.evaluation.seed,
        json_schema=task.json_schema,
        labels=task.labels,
        output_type=spec.output.type,
        diagnostics=False,
        progress=ctx.progress,
    )
    scored: dict[str, tuple[str, float, float]] = {}  # lane -> (family, value, ci_low)
    for result in comparison.lanes:
        m = result.metrics.get(metric)
        if result.status != "ok" or m is None:
            lanes.append(
                ProbeLane(
                    lane=result.name,
                    family=result.family,
                    status=result.status if result.status != "ok" else "no_metric",
                    message=result.message,
                )
            )
            continue
        scored[result.name] = (result.family, m.value, m.ci_low)
        lanes.append(
            ProbeLane(
                lane=result.name,
                family=result.family,
                value=round(m.value, 4),
                ci_low=round(m.ci_low, 4),
                ci_high=round(m.ci_high, 4),
            )
        )

    top = decision.top_lane
    new_top, note = top, f"the rules stand: no cheap lane measured on {len(sample)} dev cases"
    best: dict[str, tuple[str, float]] = {}  # family -> (lane, value)
    for name, (family, value, _) in scored.items():
        if family not in best or value > best[family][1]:
            best[family] = (name, value)
    if best:
        best_lane, best_value = max(best.values(), key=lambda x: x[1])
        best_family, _, best_low = scored[best_lane]
        note = (
            f"the rules stand: best cheap lane {best_lane} {metric} {best_value:.3f} "
            f"on {len(sample)} dev cases"
        )
        if top in CHEAP and best_family != top and top in best:
            rival, mine = best[best_family][0], best[top][0]
            diff = find_difference(comparison.differences, rival, mine, metric)
            if diff is not None and diff.ci_low > 0:
                new_top = best_family
                note = (
                    f"overturned: {rival} beat {mine} by {diff.value:+.3f} "
                    f"[{diff.ci_low:+.3f}, {diff.ci_high:+.3f}] {metric} on {len(sample)} dev cases"
                )
            elif diff is not None:
                note += f"; its lead over {mine} is not clear of zero ({diff.value:+.3f})"
        elif top not in CHEAP and best_low >= good_enough:
            new_top = best_family
            note = (
                f"overturned: {best_lane} already scores {best_value:.3f} {metric} "
                f"(95% interval from {best_low:.3f} >= {good_enough}) on "
                f"{len(sample)} dev cases without training"
            )
        elif top not in CHEAP:
            note += f" (interval from {best_low:.3f}, under {good_enough}): training may pay off"

    overturned = new_top != top
    measured = Probe(
        metric=metric,
        split="dev",
        cases=len(sample),
        seed=spec.evaluation.seed,
        good_enough=good_enough,
        lanes=lanes,
        rule_plan=decision.plan,
        rule_top=top,
        overturned=overturned,
        note=note,
    )
    update: dict[str, Any] = {"probe": measured.model_dump()}
    if overturned:
        scores = {r.lane: r.score for r in decision.ranked}
        ranked = [new_top] + [r.lane for r in decision.ranked if r.lane != new_top]
        update["ranked"] = [RankedLane(lane=lane, score=scores[lane]) for lane in ranked]
        update["plan"] = new_top
        update["lane"] = best[new_top][0]  # the lane the probe measured best in that family
        update["stages"] = []
        value = best[new_top][1]
        update["reasons"] = [
            Reason(lane=new_top, signal=f"probe.{metric}", value=round(value, 4), text=note),
            *decision.reasons,
        ]
    return decision.model_copy(update=update)
