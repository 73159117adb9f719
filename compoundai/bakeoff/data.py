"""What a measured decision measures on: the dev split's cases or pairs, or a held-out slice
of train, and the metric it decides by. The test split is never read here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from compoundai.context import RunContext
from compoundai.data import Example, PreferencePair, sample_cases
from compoundai.errors import UserInputError
from compoundai.task import Task

LATENCY_PROBE = 8  # cases a cheap lane answers first when the task caps its p95 latency
# Metrics a lane can score well on while answering badly: never what a task is decided on.
NOT_QUALITY = {"json_valid", "mrr", "groundedness", "abstention_accuracy"}


def decision_metric(metrics: Sequence[str]) -> str:
    """The task's first answer-quality metric: what it is decided on.

    >>> decision_metric(["json_valid", "schema_adherence", "slot_f1"])
    'schema_adherence'
    """
    for name in metrics:
        if name not in NOT_QUALITY and not name.startswith("recall_at_"):
            return name
    return metrics[0]


@dataclass
class DecisionData:
    """The held-out units a decision measures on, and where they came from."""

    cases: list[Example]  # the decision sample (empty when the metric is on pairs)
    first: list[Example]  # its small first sample
    pairs: list[PreferencePair]
    source: str  # "dev", "train slice" or "synthetic dev"
    exclude: frozenset[str]  # training ids held out as that slice
    note: str
    probe: list[Example] = field(default_factory=list)  # of `first`: the latency probe


class NoSyntheticDev(UserInputError):
    """A task that could only be decided on a synthetic dev set, which could not be made: the
    run falls back to the rules' decision (and says why)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="add examples.dev to the task file")


def can_synthesise_dev(task: Task) -> bool:
    """A free-text task with documents can be decided on questions synthesised from them."""
    return task.spec.output.type == "free_text" and bool(task.documents)


def decision_data(
    task: Task, cases: int, first: int, metric: str, ctx: RunContext | None = None
) -> DecisionData:
    """The dev split's cases (and pairs), or, without a dev split, a held-out slice of train,
    or (a free-text task with documents and too few training examples, given `ctx`) a
    synthetic dev set: questions synthesised from the documents, never trained on."""
    spec = task.spec
    stratify = spec.output.type == "labels"
    seed = spec.evaluation.seed
    pairs = list(task.preferences.get("dev", []))
    exclude: frozenset[str] = frozenset()
    if metric == "preference_accuracy":
        source = "dev"
        if not pairs:
            train_pairs = task.preferences.get("train", [])
            if len(train_pairs) < 20:
                raise UserInputError(
                    "a measured decision on preference accuracy needs held-out pairs",
                    hint="add preferences.dev, or decide with --rules-only",
                )
            take = min(len(train_pairs) // 5, cases)
            pairs = train_pairs[-take:]
            source = "train slice"
            exclude = frozenset(p.id for p in pairs)
            note = (
                f"no preferences.dev split: {len(pairs)} training pairs were held out for the "
                "decision and left out of its training"
            )
            return DecisionData([], [], pairs, source, exclude, note)
        pairs = pairs[:cases]
        return DecisionData([], [], pairs, source, frozenset(), f"{len(pairs)} dev pairs")
    dev = task.split("dev")
    source = "dev"
    if not dev and len(task.split("train")) < 20 and ctx is not None and can_synthesise_dev(task):
        from compoundai.errors import RunTimeFailure
        from compoundai.lanes.compound import synthetic_dev

        try:
            dev = synthetic_dev(task, ctx)
        except RunTimeFailure as exc:  # no pair passed the synthesis filters
            raise NoSyntheticDev(f"no synthetic dev set: {exc}") from exc
        if not dev:
            raise NoSyntheticDev(
                "no synthetic dev set: no synthesised question fell in the held-out share"
            )
        source = "synthetic dev"
    if not dev:
        train = task.split("train")
        if len(train) < 20:
            raise UserInputError(
                "a measured decision needs held-out cases: the task has no dev split and too "
                "few training examples to hold some out",
                hint="add examples.dev to the task file, or decide with --rules-only",
            )
        dev = sample_cases(train, min(max(len(train) // 5, 1), cases), seed, stratify)
        exclude = frozenset(e.id for e in dev)
        source = "train slice"
    sample = sample_cases(dev, cases, seed, stratify)
    small = sample_cases(sample, min(first, len(sample)), seed, stratify)
    if source == "dev":
        note = f"{len(sample)} of {len(dev)} dev cases"
    elif source == "synthetic dev":
        note = (
            f"no dev split: {len(sample)} of {len(dev)} question/answer pairs synthesised from "
            "the documents (SYNTHETIC: held out of the training of every lane that trains on "
            "synthesised pairs, compound and finetune/qa+sft; the decision is only as good "
            "as the generator's questions)"
        )
    else:
        note = (
            f"no dev split: {len(dev)} training examples were held out as the decision's "
            f"cases ({len(sample)} measured) and left out of its training"
        )
    probe = sample_cases(small, min(LATENCY_PROBE, len(small)), seed, stratify)
    return DecisionData(sample, small, pairs, source, exclude, note, probe)


def needs_for_measuring(task: Task) -> str | None:
    """What a measured decision would need and the task lacks (None: it can measure)."""
    metric = decision_metric(list(task.metrics))
    if metric == "preference_accuracy":
        if task.preferences.get("dev") or len(task.preferences.get("train", [])) >= 20:
            return None
        return "held-out preference pairs (preferences.dev, or 20 training pairs to hold out)"
    if task.split("dev") or len(task.split("train")) >= 20 or can_synthesise_dev(task):
        return None
    return "held-out cases (examples.dev, or at least 20 training examples to hold some out)"
