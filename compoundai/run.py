"""The main job: decide, build every requested lane, compare them on the same cases, report.

`run_task` is what `compoundai run` and `compoundai compare` call. The task file is loaded and
validated before anything is written, so a bad task leaves no partial output; the report files
are written together at the end. Measuring and judging live in `compoundai_evaluators`
(`compare`, `decide_verdict`, `write_reports`); this module only wires the task to them.
"""

from __future__ import annotations

import platform
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from compoundai.context import RunContext
from compoundai.errors import CompoundAIError, UserInputError
from compoundai.lanes import lanes_for
from compoundai.profile import profile
from compoundai.router import LANES, Router
from compoundai.task import Task, load_task


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("compoundai", "torch", "transformers", "sentence-transformers", "openai"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


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
) -> Any:
    """Decide, build and compare; write report.json, report.md, report.html, predictions.jsonl.

    Answers are cached under `OUT_DIR/cache/` (`cache=False` to regenerate everything);
    `prices` is a `PriceTable` or a path to one; `judge` an `LLMJudge`; `general_text` a text
    file for the general-text perplexity of local lanes (forgetting).

    >>> task = "examples/banking77/task.yaml"
    >>> report = run_task(task, "out", lanes=["prompt"], limit=20)  # doctest: +SKIP
    >>> report.winner  # doctest: +SKIP
    'prompt/5-shot'
    """
    from compoundai_evaluators import (
        OutputCache,
        PriceTable,
        Report,
        compare,
        decide_verdict,
        load_prices,
        local_perplexity_hook,
        sample_cases,
        write_reports,
    )
    from compoundai_evaluators.report import LaneResult

    ctx = ctx or RunContext()
    if not isinstance(task, Task):
        task = load_task(task)
    if prices is not None and not isinstance(prices, PriceTable):
        prices = load_prices(prices)
    prices = prices or PriceTable()
    spec = task.spec
    names = lanes or spec.evaluation.lanes or list(LANES)
    lane_objs = lanes_for(names, task)  # unknown lane names fail here, before any work
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
    pairs = task.preferences.get("test") or task.preferences.get("dev") or []

    task_profile = profile(task, ctx)
    decision = Router().decide(task_profile)

    systems, results_skipped = [], []
    for lane in lane_objs:
        started = time.perf_counter()
        if ctx.progress:  # the lanes that train take minutes: say which one is at work
            from tqdm.auto import tqdm

            tqdm.write(f"building {lane.name}", file=sys.stderr)
        try:
            system = lane.build(task, ctx)
        except CompoundAIError as exc:
            status = "not_built" if type(exc).__name__ == "LaneNotBuiltError" else "failed"
            results_skipped.append(
                LaneResult(
                    name=lane.name,
                    family=lane.family,
                    status=status,
                    message=str(exc).split("\n")[0],
                )
            )
            continue
        system.info["build_seconds"] = round(time.perf_counter() - started, 2)
        systems.append(system)

    comparison = compare(
        systems,
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
    all_results = comparison.lanes + results_skipped

    primary = task.metrics[0]
    constraints = spec.constraints.model_dump()
    verdict = decide_verdict(
        all_results,
        comparison.differences,
        primary,
        decision.top_lane,
        constraints,
        max_forgetting=max_forgetting,
        plan=decision.plan,
        plan_lane=decision.lane,
    )
    check = verdict.decision_check
    outcome = check.outcome if check is not None else None
    sampling = f"{len(cases)} of {len(held_out)} cases, seed {spec.evaluation.seed}" + (
        ", stratified by label" if stratify and limit else ""
    )
    predictions = {r.name: r.info.pop("predictions", []) for r in all_results}
    report = Report(
        task=spec.name,
        decision=decision.model_dump(),
        profile=task_profile.model_dump(),
        lanes=all_results,
        primary_metric=primary,
        winner=verdict.overall,
        # right when the plan's lane won or is tied with the winner within the margin
        router_correct=None if outcome is None else outcome != "wrong",
        router_note=check.note if check is not None else verdict.router.note,
        decision_check=check,
        comparisons=comparison.differences,
        verdict=verdict,
        metric_descriptions=comparison.descriptions,
        constraints=constraints,
        prices=prices.model_dump(),
        cases={
            "split": split,
            "n": len(cases),
            "available": len(held_out),
            "limit": limit,
            "seed": spec.evaluation.seed,
            "stratified": bool(stratify and limit),
            "sampling": sampling,
            "preference_pairs": len(pairs),
        },
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=versions(),
    )
    write_reports(report, out_dir, predictions)
    return report
