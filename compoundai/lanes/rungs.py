"""A training lane on a share of its data, with chosen settings: one rung of the bake-off.

Why a wrapper and not a lane option: a rung is the same lane asked a smaller question (the
same stages, prompts and cache; fewer rows, perhaps another learning rate or batch size), so
`PlannedLane` builds the lane on a task whose training data and `finetune` settings are cut to
the plan (`apply_plan`) and names the system after the share (`finetune/sft@25%`). The adapter
cache keys cover the rows and the settings, so a rung trained during `decide` is found again,
not trained again, when `run` builds the same lane at the same share and settings; a plan at
full share with the settings of the last rung is that rung's adapter.

    >>> TrainingPlan(share=0.25, learning_rate=2e-3).label
    '@25% lr 0.002'
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from compoundai.context import RunContext
from compoundai.data import sample_cases

if TYPE_CHECKING:
    from compoundai.lanes import Lane
    from compoundai.system import CompoundSystem
    from compoundai.task import Task

TRAINING_FAMILIES = ("finetune", "compound")


@dataclass(frozen=True)
class TrainingPlan:
    """What to train a lane on: a share of its rows, and settings that replace the task's.

    `exclude` holds example ids kept out of training (the decision's held-out dev slice, for
    a task without a dev split).
    """

    share: float = 1.0
    learning_rate: float | None = None
    tokens_per_batch: int | None = None
    epochs: float | None = None
    exclude: frozenset[str] = field(default_factory=frozenset)

    @property
    def suffix(self) -> str:
        """What a lane's name gets for this plan: `@25%` below full share, else nothing."""
        return "" if self.share >= 1 else f"@{self.share:.0%}"

    @property
    def label(self) -> str:
        parts = [self.suffix or "full"]
        if self.learning_rate is not None:
            parts.append(f"lr {self.learning_rate:g}")
        if self.tokens_per_batch is not None:
            parts.append(f"{self.tokens_per_batch} tokens/step")
        if self.epochs is not None:
            parts.append(f"{self.epochs:g} epochs")
        return " ".join(parts)

    def settings(self) -> dict[str, Any]:
        """The `finetune` settings this plan overrides (only those it sets)."""
        chosen = {
            "learning_rate": self.learning_rate,
            "tokens_per_batch": self.tokens_per_batch,
            "epochs": self.epochs,
        }
        return {k: v for k, v in chosen.items() if v is not None}


def apply_plan(task: Task, plan: TrainingPlan) -> Task:
    """The task as a lane trained under `plan` sees it: a share of the training rows (label-
    stratified), of the compound lane's prompts and of the preference pairs, without the
    excluded ids, and with the plan's settings.

    >>> from compoundai.task import load_task
    >>> task = load_task("examples/banking77/task.yaml")                  # doctest: +SKIP
    >>> len(apply_plan(task, TrainingPlan(share=0.5)).split("train"))     # doctest: +SKIP
    770
    """
    spec = task.spec
    stratify = spec.output.type == "labels"
    examples = dict(task.examples)
    train = [e for e in task.split("train") if e.id not in plan.exclude]
    if plan.share < 1 and train:
        train = sample_cases(
            train, max(1, round(plan.share * len(train))), spec.finetune.seed, stratify
        )
    if "train" in examples or train:
        examples["train"] = train
    preferences = dict(task.preferences)
    pairs = [p for p in task.preferences.get("train", []) if p.id not in plan.exclude]
    if plan.share < 1 and pairs:
        rng = random.Random(f"{spec.finetune.seed}:pairs")
        keep = sorted(rng.sample(range(len(pairs)), max(1, round(plan.share * len(pairs)))))
        pairs = [pairs[i] for i in keep]
    if "train" in preferences:
        preferences["train"] = pairs
    finetune = spec.finetune.model_copy(update=plan.settings())
    compound = spec.compound
    if plan.share < 1:
        rows = max(1, math.ceil(plan.share * compound.max_train_rows))
        compound = compound.model_copy(update={"max_train_rows": rows})
    new_spec = spec.model_copy(update={"finetune": finetune, "compound": compound})
    return replace(task, spec=new_spec, examples=examples, preferences=preferences)


class PlannedLane:
    """`lane` built under a `TrainingPlan`; the system is named and marked with its share."""

    def __init__(self, lane: Lane, plan: TrainingPlan) -> None:
        self.lane = lane
        self.plan = plan
        self.family = lane.family
        self.base_name = lane.name
        self.name = lane.name + plan.suffix

    def build(self, task: Task, ctx: RunContext) -> CompoundSystem:
        system = self.lane.build(apply_plan(task, self.plan), ctx)
        system.name = self.name
        system.info.data_share = self.plan.share
        system.info.settings = {**self.plan.settings(), "share": self.plan.share}
        return system


def is_training(lane: Any) -> bool:
    """Whether a lane trains an adapter (the rungs are for these)."""
    return getattr(lane, "family", "") in TRAINING_FAMILIES
