"""The main job: decide, build every requested lane, compare them on the same cases, report.

`run_task` is what `compoundai run` and `compoundai compare` call. It is wiring: the task file
is loaded and validated before anything is written (a bad task leaves no partial output), the
lanes are built by `build_lanes`, measured by `compoundai_evaluators.compare`, judged and put
together by `build_report`, and the report files are written together at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compoundai.context import RunContext
from compoundai.data import sample_cases
from compoundai.errors import UserInputError
from compoundai.lanes import build_lanes, lanes_for
from compoundai.profile import profile
from compoundai.router import LANES, Router
from compoundai.task import Task, load_task


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
        build_report,
        compare,
        load_prices,
        local_perplexity_hook,
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
    systems, failures = build_lanes(lane_objs, task, ctx)
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
        },
        max_forgetting=max_forgetting,
    )
    write_reports(report, out_dir, predictions)
    return report
