"""The main job: decide by measuring on dev, build the plan in full, compare on test, report.

`run_task` is what `compoundai run` and `compoundai compare` call. It is wiring: the task file
is loaded and validated before anything is written (a bad task leaves no partial output), the
decision is measured on dev (`compoundai.bakeoff`) or taken from the rules, the lanes are built
by `build_lanes` one at a time as the comparison needs them, measured by
`compoundai_evaluators.compare` on the test split, judged and put together by `build_report`,
and the report files are written together at the end.

What a run compares (`mode`):
- `measured` (`compoundai run`): the plan's lane built in full, every cheap lane, and every
  other training lane at the rung the decision stopped it at (named `finetune/sft@25%`, its
  data share in the report), so the report still compares all three families without training
  them all in full; the rung adapters come from the decision's cache.
- `full` (`run --full`, and `compare`): every requested lane trained in full, with the
  settings the decision chose on dev.
- `rules` (`--rules-only`): the rules decide instantly and every lane is built with the task's
  own settings (what `run` did before decisions were measured).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from compoundai.context import RunContext
from compoundai.data import sample_cases, sample_items
from compoundai.errors import UserInputError
from compoundai.lanes import Lane, LaneFailure, build_lanes, lanes_for
from compoundai.lanes.rungs import PlannedLane, TrainingPlan, is_training
from compoundai.profile import profile
from compoundai.router import LANES, Decision, Evidence, Router
from compoundai.system import CompoundSystem
from compoundai.task import Task, load_task

MODES = ("measured", "full", "rules")


def run_task(
    task: Task | str | Path,
    out_dir: str | Path,
    *,
    lanes: list[str] | None = None,
    limit: int | None = None,
    ctx: RunContext | None = None,
    cache: bool = True,
    prices: Any = None,
    judge: Any = None,
    general_text: str | Path | None = None,
    max_forgetting: float = 0.10,
    mode: str = "measured",
    budget_minutes: float | None = None,
    decision: Decision | None = None,
    strict: bool = False,
) -> Any:
    """Decide, build and compare; write report.json, report.md, report.html, predictions.jsonl.

    Answers are cached under `OUT_DIR/cache/` (`cache=False` to regenerate everything);
    `prices` is a `PriceTable` or a path to one; `judge` an `LLMJudge`; `general_text` a text
    file for the general-text perplexity of local lanes (forgetting); `mode` one of `MODES`
    (see the module docstring); `decision` a decision already made (skips deciding).

    >>> task = "examples/banking77/task.yaml"
    >>> report = run_task(task, "out", lanes=["prompt"], limit=20)  # doctest: +SKIP
    >>> report.winner  # doctest: +SKIP
    'prompt/5-shot'
    """
    from compoundai_evaluators import (
        OutputCache,
        PriceTable,
        build_report,
        compare,
        load_prices,
        local_perplexity_hook,
        write_reports,
    )
    from compoundai_evaluators.report import LaneResult

    if mode not in MODES:
        raise UserInputError(f"unknown run mode {mode!r}; choose from {', '.join(MODES)}")
    ctx = ctx or RunContext()
    if not isinstance(task, Task):
        task = load_task(task, strict=strict)
    if prices is not None and not isinstance(prices, PriceTable):
        prices = load_prices(prices)
    prices = prices or PriceTable()
    spec = task.spec
    names = lanes or spec.evaluation.lanes or list(LANES)
    lanes_for(names, task)  # unknown lane names fail here, before any work
    split = "test" if task.split("test") else "dev"
    held_out = task.split(split)
    if not held_out:
        raise UserInputError(
            "the task has no held-out examples to compare lanes on",
            hint="add examples.test (or examples.dev) to the task file",
        )
    limit = limit or spec.evaluation.limit
    stratify = spec.output.type == "labels"
    cases = sample_cases(held_out, limit, spec.evaluation.seed, stratify)
    # `--limit` bounds every per-item measurement of a lane: preference pairs are cut the same
    # way (hh_preferences' pairs are its test rows, so the same seed picks the same rows)
    pairs = sample_items(
        task.preferences.get("test") or task.preferences.get("dev") or [],
        limit,
        spec.evaluation.seed,
    )

    task_profile = profile(task, ctx)
    if decision is None:
        decision = decide(task, ctx, mode=mode, lanes=names, budget_minutes=budget_minutes)
    to_build = lanes_to_compare(task, decision, names, mode)
    failures: list[LaneFailure] = []
    comparison = compare(
        _built(to_build, task, ctx, failures),
        cases,
        task.metrics,
        seed=spec.evaluation.seed,
        json_schema=task.json_schema,
        labels=task.labels,
        output_type=spec.output.type,
        cache=OutputCache(Path(out_dir) / "cache") if cache else None,
        preferences=pairs,
        judge=judge,
        prices=prices,
        perplexity=local_perplexity_hook(general_text) if general_text else None,
        progress=ctx.progress,
    )
    sampling = f"{len(cases)} of {len(held_out)} cases, seed {spec.evaluation.seed}" + (
        ", stratified by label" if stratify and limit else ""
    )
    report, predictions = build_report(
        spec.name,
        comparison,
        primary_metric=task.metrics[0],
        decision=decision.model_dump(),
        profile=task_profile.model_dump(),
        failures=[
            LaneResult(name=f.name, family=f.family, status=f.status, message=f.message)
            for f in failures
        ],
        constraints=spec.constraints.model_dump(),
        prices=prices,
        cases={
            "split": split,
            "n": len(cases),
            "available": len(held_out),
            "limit": limit,
            "seed": spec.evaluation.seed,
            "stratified": bool(stratify and limit),
            "sampling": sampling,
            "preference_pairs": len(pairs),
            "mode": mode,
        },
        max_forgetting=max_forgetting,
    )
    write_reports(report, out_dir, predictions)
    return report


def decide(
    task: Task,
    ctx: RunContext,
    *,
    mode: str = "measured",
    lanes: Sequence[str] | None = None,
    budget_minutes: float | None = None,
) -> Decision:
    """The decision a run starts from: measured on dev, or the rules' (`mode="rules"`)."""
    rules = Router().decide(profile(task, ctx))
    if mode == "rules":
        return rules
    from compoundai.bakeoff import decide_measured, needs_for_measuring

    def by_the_rules(note: str) -> Decision:
        return rules.model_copy(
            update={"evidence": [Evidence(lane="all", stage="rules", note=note)]}
        )

    missing = needs_for_measuring(task)
    if missing:  # nothing to measure on: the rules decide, and say what measuring would need
        return by_the_rules(f"not measured: {missing}; the rules decide")
    options: dict[str, Any] = {"lanes": lanes}
    if budget_minutes is not None:
        options["budget_minutes"] = budget_minutes
    from compoundai.bakeoff.data import NoSyntheticDev

    try:
        return decide_measured(task, ctx, **options)
    except NoSyntheticDev as exc:  # the only held-out cases would have been synthesised
        return by_the_rules(
            f"not measured: {exc.args[0]}; the rules decide (add examples.dev to measure)"
        )


def lanes_to_compare(task: Task, decision: Decision, names: Sequence[str], mode: str) -> list[Lane]:
    """The lanes a run builds for its comparison (see the module docstring)."""
    lanes = lanes_for(list(names), task)
    if mode == "rules":
        return lanes
    plans = decision.training_plans
    out: list[Lane] = []
    for lane in lanes:
        if not is_training(lane):
            out.append(lane)
            continue
        chosen = plans.get(lane.name, {})
        settings = {k: v for k, v in chosen.items() if k != "share"}
        share = float(chosen.get("share", 1.0))
        if mode == "full" or lane.name == decision.lane:
            share = 1.0
        elif lane.name not in plans:
            # never measured (out of budget, or it failed): on the first rung's share with the
            # task's settings, so the report still shows the family without a full training
            from compoundai.bakeoff.parts import first_share

            share = first_share(len(task.split("train")))
        plan = TrainingPlan(
            share=share,
            learning_rate=settings.get("learning_rate"),
            tokens_per_batch=_int(settings.get("tokens_per_batch")),
            epochs=settings.get("epochs"),
        )
        out.append(PlannedLane(lane, plan))
    return out


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _built(
    lanes: Sequence[Lane], task: Task, ctx: RunContext, failures: list[LaneFailure]
) -> Iterator[CompoundSystem]:
    """Build each lane just before it is compared, so its model is freed after its turn."""
    from compoundai.hardware import release_memory

    for lane in lanes:
        release_memory()  # the previous lane's model is gone: give its pages back first
        systems, failed = build_lanes([lane], task, ctx)
        failures += failed
        while systems:  # hand each over without keeping a reference here
            yield systems.pop(0)
