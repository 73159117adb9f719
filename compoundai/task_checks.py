"""Checks across a loaded task's data, run by `load_task` after every row is read.

Row-level problems (bad JSON, a missing field, an unknown label) are found while reading; these
need the whole task: a metric against the output type and the data it needs, ids across every
split, and held-out inputs that also sit in the training split. Apart from `task.py` so the
task file's model stays one piece to read.

    >>> task = load_task("examples/banking77/task.yaml")   # doctest: +SKIP
    >>> task.warnings                                      # doctest: +SKIP
    ['1 of 770 examples.test inputs also occur in examples.train (...)']
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from compoundai.config import line_of
from compoundai.data import duplicate_ids, leaked_cases
from compoundai.errors import Problem

if TYPE_CHECKING:
    from compoundai.task import Task

SPLITS = ("train", "dev", "test")
# Metrics that only mean something for some output types (the rest apply to every task).
METRIC_OUTPUTS = {
    "json_valid": ("json_schema",),
    "schema_adherence": ("json_schema",),
    "slot_f1": ("json_schema",),
    "macro_f1": ("labels",),
    "final_answer": ("free_text",),
}
log = logging.getLogger("compoundai.task")


def check_metrics(task: Task, node: Any = None) -> list[Problem]:
    """Each metric the task lists against its output type and data, before any work is done
    (a metric that cannot apply would otherwise be dropped, or refused after every lane is
    built)."""
    output = task.spec.output.type
    problems = []
    line = line_of(node, ("metrics",))
    for name in task.spec.metrics:
        allowed = METRIC_OUTPUTS.get(name)
        message = None
        if allowed and output not in allowed:
            message = (
                f"metric {name!r} needs output.type {' or '.join(allowed)}; "
                f"this task's output is {output}"
            )
        elif name == "preference_accuracy" and not task.preferences:
            message = "metric 'preference_accuracy' needs preference pairs"
        elif name == "groundedness" and not task.documents:
            message = "metric 'groundedness' needs documents to ground answers in"
        if message:
            problems.append(Problem(message, file=str(task.path), line=line, field="metrics"))
    return problems


def check_rows(task: Task, strict: bool = False) -> list[Problem]:
    """Duplicate ids (an error) and held-out inputs that also occur in train (a warning, an
    error with `strict`): a kNN vote scores 1.0 on such cases without learning anything."""
    examples = [e for split in SPLITS for e in task.examples.get(split, [])]
    pairs = [p for split in SPLITS for p in task.preferences.get(split, [])]
    problems = duplicate_ids(examples, "examples") + duplicate_ids(pairs, "preferences")
    train = task.examples.get("train", [])
    for split in ("dev", "test"):
        held_out = task.examples.get(split, [])
        leaked = leaked_cases(train, held_out)
        if not leaked:
            continue
        shown = ", ".join(e.source or e.id for e in leaked[:3])
        message = (
            f"{len(leaked)} of {len(held_out)} examples.{split} inputs also occur in "
            f"examples.train (identical text, e.g. {shown}): their scores are not held-out "
            "scores (rag/knn-vote looks them up); remove them from one of the splits"
        )
        if strict:
            problems.append(Problem(message, file=str(task.path), field=f"examples.{split}"))
        else:
            task.warnings.append(message)
            log.warning("warning: %s (--strict makes this an error)", message)
    return problems
