"""Lanes: each builds a `CompoundSystem` for a task. One Protocol, one verb: `build`.

`lanes_for(["prompt", ...])` turns lane names from the CLI or the task file into lane objects.
A name may stand for several variants (`prompt` is zero-shot and few-shot) so that a report
compares them on the same cases.
"""

from __future__ import annotations

from typing import Protocol

from compoundai.context import RunContext
from compoundai.errors import UserInputError
from compoundai.lanes.compound import CompoundLane
from compoundai.lanes.finetune import FinetuneLane
from compoundai.lanes.prompt import PromptLane
from compoundai.lanes.rag import RagLane
from compoundai.router import LANES
from compoundai.system import CompoundSystem
from compoundai.task import Task


class Lane(Protocol):
    name: str
    family: str

    def build(self, task: Task, ctx: RunContext) -> CompoundSystem: ...


def lanes_for(names: list[str], task: Task | None = None) -> list[Lane]:
    """Lane objects for the given names, in order; unknown names are a user error.

    With the task given, `finetune` adds an SFT-then-DPO variant when it has preference pairs,
    and a pretrain-then-SFT variant (continued pretraining on the documents) when it has
    documents.
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
        elif name == "finetune":
            lanes.append(FinetuneLane(("sft",)))
            if task is not None and task.preferences.get("train"):
                lanes.append(FinetuneLane(("sft", "dpo")))
            if task is not None and task.documents:
                lanes.append(FinetuneLane(("pretrain", "sft")))
        elif name == "rag":
            lanes += RagLane.variants(task)
        else:  # compound
            lanes.append(CompoundLane())
    return lanes


__all__ = ["CompoundLane", "FinetuneLane", "Lane", "PromptLane", "RagLane", "lanes_for"]
