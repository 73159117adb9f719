"""The main job: decide, build every requested lane, compare them on the same cases, report.

`run_task` is what `compoundai run` and `compoundai compare` call. The task file is loaded and
validated before anything is written, so a bad task leaves no partial output; the report files
are written together at the end.
"""

from __future__ import annotations

import json
import platform
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
) -> Any:
    """Decide, build and compare; write `report.json`, `report.md`, `predictions.jsonl`.

    >>> task = "examples/banking77/task.yaml"
    >>> report = run_task(task, "out", lanes=["prompt"], limit=20)  # doctest: +SKIP
    >>> report.winner  # doctest: +SKIP
    'prompt/5-shot'
    """
    from compoundai_evaluators import Report, compare, render_markdown, sample_cases

    ctx = ctx or RunContext()
    if not isinstance(task, Task):
        task = load_task(task)
    spec = task.spec
    names = lanes or spec.evaluation.lanes or list(LANES)
    lane_objs = lanes_for(names)  # unknown lane names fail here, before any work
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

    task_profile = profile(task, ctx)
    decision = Router().decide(task_profile)

    systems, results_skipped = [], []
    from compoundai_evaluators.report import LaneResult

    for lane in lane_objs:
        started = time.perf_counter()
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

    results = compare(systems, cases, task.metrics, seed=spec.evaluation.seed)
    for system, result in zip(systems, results, strict=True):
        result.cost["build_seconds"] = system.info.get("build_seconds", 0.0)
    all_results = results + results_skipped

    primary = task.metrics[0]
    scored = [r for r in all_results if r.status == "ok"]
    winner = None
    if scored:
        best = max(
            scored,
            key=lambda r: (r.metrics[primary].value, -(r.latency_ms.p50 if r.latency_ms else 0)),
        )
        winner = best.name
    router_correct, note = _judge_router(decision.top_lane, winner, all_results)

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
        winner=winner,
        router_correct=router_correct,
        router_note=note,
        cases={
            "split": split,
            "n": len(cases),
            "available": len(held_out),
            "limit": limit,
            "seed": spec.evaluation.seed,
            "stratified": bool(stratify and limit),
            "sampling": sampling,
        },
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=versions(),
    )
    _write(Path(out_dir), report, render_markdown(report), predictions)
    return report


def _judge_router(top: str, winner: str | None, results: list[Any]) -> tuple[bool | None, str]:
    families = {r.name: r.family for r in results}
    evaluated = {r.family for r in results if r.status == "ok"}
    if winner is None:
        return None, "No lane was evaluated."
    if top not in evaluated:
        return None, (
            f"The router ranked `{top}` first, but that lane was not evaluated in "
            "this run, so its prediction cannot be checked yet."
        )
    ok = families[winner] == top
    return ok, f"The router ranked `{top}` first; the measured winner is `{winner}`."


def _write(out: Path, report: Any, markdown: str, predictions: dict[str, list[Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = {name: out / f".{name}.tmp" for name in ("report.json", "report.md", "predictions.jsonl")}
    tmp["report.json"].write_text(report.model_dump_json(indent=2) + "\n")
    tmp["report.md"].write_text(markdown)
    with tmp["predictions.jsonl"].open("w") as fh:
        for lane, rows in predictions.items():
            for row in rows:
                fh.write(json.dumps({"lane": lane, **row}, ensure_ascii=False, default=str) + "\n")
    for name, path in tmp.items():
        path.replace(out / name)
