"""Lanes: each builds a `CompoundSystem` for a task. One Protocol, one verb: `build`.

`lanes_for(["prompt", ...])` turns lane names from the CLI or the task file into lane objects.
A name may stand for several variants (`prompt` is zero-shot and few-shot) so that a report
compares them on the same cases. `build_lanes` builds them all, recording the ones that cannot
be built instead of stopping (DSPy's BetterTogether does the same): what `run`, `compare` and
the probe share.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from compoundai.context import RunContext
from compoundai.errors import (
    CompoundAIError,
    LaneNotApplicableError,
    LaneNotBuiltError,
    UserInputError,
)
from compoundai.lanes.compound import CompoundLane
from compoundai.lanes.finetune import FinetuneLane
from compoundai.lanes.prompt import PromptLane
from compoundai.lanes.rag import RagLane
from compoundai.lanes.stuffed import StuffedLane
from compoundai.router import LANES
from compoundai.system import CompoundSystem
from compoundai.task import Task


class Lane(Protocol):
    name: str
    family: str

    def build(self, task: Task, ctx: RunContext) -> CompoundSystem: ...


@dataclass(frozen=True)
class LaneFailure:
    """A lane that was asked for and not built: why, in one line."""

    name: str
    family: str
    status: str  # "not_applicable" (not for this task), "not_built" (not yet) or "failed"
    message: str


def lanes_for(names: list[str], task: Task | None = None) -> list[Lane]:
    """Lane objects for the given names, in order; unknown names are a user error.

    With the task given, `finetune` adds an SFT-then-DPO variant when it has preference pairs,
    and a pretrain-then-SFT variant (continued pretraining on the documents) when it has
    documents, with (free-text tasks) its QA-pairs twin `finetune/qa+sft`, and
    `finetune/sft+grpo` when `finetune.grpo.enabled`, `finetune/sft+rlhf` when
    `finetune.rlhf.enabled` and it has preference pairs, `finetune/distill` when
    `finetune.distill` names a teacher.
    """
    unknown = [n for n in names if n not in LANES]
    if unknown:
        raise UserInputError(
            f"unknown lane(s): {', '.join(unknown)}", hint=f"choose from: {', '.join(LANES)}"
        )
    lanes: list[Lane] = []
    for name in names:
        if name == "prompt":
            lanes += [PromptLane(shots=0), PromptLane(shots=5)]
            if task is not None and task.documents and task.spec.output.type == "free_text":
                lanes.append(StuffedLane())
        elif name == "finetune":
            lanes.append(FinetuneLane(("sft",)))
            if task is not None and task.preferences.get("train"):
                lanes.append(FinetuneLane(("sft", "dpo")))
            if task is not None and task.documents:
                lanes.append(FinetuneLane(("pretrain", "sft")))
                if task.spec.output.type == "free_text":
                    lanes.append(FinetuneLane(("qa", "sft")))
            if task is not None and task.spec.finetune.grpo.enabled:
                lanes.append(FinetuneLane(("sft", "grpo")))
            if (
                task is not None
                and task.spec.finetune.rlhf.enabled
                and task.preferences.get("train")
            ):
                lanes.append(FinetuneLane(("sft", "rlhf")))
            if task is not None and task.spec.finetune.distill.configured:
                lanes.append(FinetuneLane(("distill",)))
        elif name == "rag":
            lanes += RagLane.variants(task)
        else:  # compound
            lanes.append(CompoundLane())
    return lanes


def build_lanes(
    lanes: Sequence[Lane], task: Task, ctx: RunContext
) -> tuple[list[CompoundSystem], list[LaneFailure]]:
    """Build every lane; a lane that cannot be built is recorded, not fatal.

    Each system's `info.build_seconds` is its wall time here; the lanes that train take
    minutes, so each one is named as it starts (on stderr, with the progress bars).
    """
    systems, failures = [], []
    for lane in lanes:
        started = time.perf_counter()
        if ctx.progress:
            from tqdm.auto import tqdm

            tqdm.write(f"building {lane.name}", file=sys.stderr)
        try:
            system = lane.build(task, ctx)
        except CompoundAIError as exc:
            status = "failed"
            if isinstance(exc, LaneNotApplicableError):
                status = "not_applicable"
            elif isinstance(exc, LaneNotBuiltError):
                status = "not_built"
            failures.append(LaneFailure(lane.name, lane.family, status, str(exc).split("\n")[0]))
            continue
        system.info.build_seconds = round(time.perf_counter() - started, 2)
        systems.append(system)
    return systems, failures


__all__ = [
    "CompoundLane",
    "FinetuneLane",
    "Lane",
    "LaneFailure",
    "PromptLane",
    "RagLane",
    "StuffedLane",
    "build_lanes",
    "lanes_for",
]
