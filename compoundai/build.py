"""Build one compound system for a task and save it: what `compoundai build` runs.

The lane is the router's top lane unless one is named. A lane family stands for several
variants in a report (`prompt` is zero-shot and 5-shot, `rag` is kNN vote and demonstrations on
a label task); `build` makes one system, so a family name picks its preferred variant
(`preferred_variant`) and a variant name (`rag/demos`) picks that one.

    >>> task = "examples/banking77/task.yaml"
    >>> result = build_system(task, "out/sys", lane="rag")  # doctest: +SKIP
    >>> result.lane, result.path  # doctest: +SKIP
    ('rag/knn-vote', PosixPath('out/sys'))
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compoundai.context import RunContext
from compoundai.errors import LaneNotBuiltError, UserInputError
from compoundai.task import Task, load_task


@dataclass
class BuildResult:
    path: Path
    system: Any
    decision: Any
    lane: str
    routed: bool
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The `build --json` record."""
        return {
            "system_dir": str(self.path),
            "lane": self.lane,
            "family": self.system.lane,
            "routed": self.routed,
            "plan": self.decision.plan,
            "output": self.system.contract.type,
            "generator": getattr(self.system.generator, "name", ""),
            "adapter": bool(self.system.info.adapter),
            "build_seconds": round(self.seconds, 2),
        }


def preferred_variant(family: str, variants: list[Any], task: Task) -> Any:
    """The variant `build` makes for a family name.

    prompt: 5-shot when there are training examples (nearest examples as chat turns beat
    zero-shot on banking77), else zero-shot; finetune: SFT then DPO when the task has preference
    pairs; rag: the first variant, which is the kNN vote on a label task (0.92 on banking77
    against 0.855 for the same neighbours as demonstrations, with no generator call).
    """
    by_name = {v.name: v for v in variants}
    if family == "prompt":
        return by_name.get("prompt/5-shot" if task.split("train") else "prompt/zero-shot")
    if family == "finetune":
        return variants[-1]
    return variants[0]


def resolve_lane(name: str, task: Task) -> Any:
    """The lane object for a family (`rag`) or variant (`rag/demos`) name."""
    from compoundai.lanes import lanes_for

    family = name.split("/", 1)[0]
    variants = lanes_for([family], task)  # an unknown family is a user error here
    for v in variants:
        if v.name == name:
            return v
    if name == family:
        return preferred_variant(family, variants, task)
    raise UserInputError(
        f"no lane variant {name!r} for this task",
        hint=f"choose one of: {', '.join([family, *(v.name for v in variants)])}",
    )


def build_system(
    task: Task | str | Path,
    out_dir: str | Path,
    *,
    lane: str | None = None,
    ctx: RunContext | None = None,
    rules_only: bool = False,
    budget_minutes: float | None = None,
) -> BuildResult:
    """Decide (unless `lane` is given), build that lane, save the system to `out_dir`.

    Without `lane`, the decision is measured on dev like `compoundai decide` (or the rules'
    with `rules_only`), and a training lane is built in full with the settings it chose; with
    `lane`, the rules' decision is recorded beside the system, instantly.
    """
    from compoundai.run import decide, lanes_to_compare
    from compoundai.system_dir import save_system

    ctx = ctx or RunContext()
    if not isinstance(task, Task):
        task = load_task(task)
    measured = lane is None and not rules_only
    decision = decide(
        task, ctx, mode="measured" if measured else "rules", budget_minutes=budget_minutes
    )
    name = lane or decision.lane or decision.top_lane
    chosen = resolve_lane(name, task)
    if measured:  # the plan's lane with the settings the decision chose for it
        family = chosen.family
        planned = lanes_to_compare(task, decision, [family], "measured")
        chosen = next((c for c in planned if c.name == chosen.name), chosen)
    started = time.perf_counter()
    try:
        system = chosen.build(task, ctx)
    except LaneNotBuiltError as exc:
        how = "named" if lane else f"ranked first by the router (plan: {decision.plan})"
        others = [r.lane for r in decision.ranked if r.lane != chosen.family]
        raise LaneNotBuiltError(
            f"cannot build the {chosen.name} lane ({how}): {exc.problems[0].message}",
            hint=f"build another lane with --lane NAME, e.g. --lane {others[0]} "
            f"(ranked: {', '.join(r.lane for r in decision.ranked)})",
        ) from None
    seconds = time.perf_counter() - started
    system.info.build_seconds = round(seconds, 2)
    path = save_system(system, out_dir, task=task, decision=decision)
    return BuildResult(path, system, decision, chosen.name, lane is None, seconds)
