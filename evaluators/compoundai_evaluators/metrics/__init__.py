"""Metrics: one small module per family, one Protocol (`Metric`, see `base`), one registry.

`resolve_metrics(names, json_schema=...)` turns the metric names of a task file into metric
objects; names that need the task (the schema) or a parameter (`recall_at_5`) are built here.
`DIAGNOSTICS` are metrics `compare` adds on its own and reports only where they are defined
(retrieval for lanes that retrieve, abstention where some case is unanswerable, groundedness
where answers carry passages). The plain functions (`accuracy(predictions, references)`)
stay for quick use and doctests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from compoundai.errors import UserInputError
from compoundai_evaluators.metrics.abstention import AbstentionAccuracy, abstained
from compoundai_evaluators.metrics.base import MeanMetric, Metric, Row, rows_from, value_of
from compoundai_evaluators.metrics.grounded import GROUNDEDNESS
from compoundai_evaluators.metrics.labels import (
    ACCURACY,
    MACRO_F1,
    MacroF1,
    accuracy,
    label_key,
    macro_f1,
)
from compoundai_evaluators.metrics.numeric import FINAL_ANSWER
from compoundai_evaluators.metrics.retrieval import MRR, recall_at
from compoundai_evaluators.metrics.squad import (
    EXACT_MATCH,
    TOKEN_F1,
    exact_match,
    normalize_answer,
    token_f1,
)
from compoundai_evaluators.metrics.structured import (
    JSON_VALID,
    SLOT_F1,
    SchemaAdherence,
    json_valid,
    slot_f1,
)

METRICS: dict[str, Metric] = {
    "accuracy": ACCURACY,
    "macro_f1": MACRO_F1,
    "exact_match": EXACT_MATCH,
    "f1": TOKEN_F1,
    "json_valid": JSON_VALID,
    "slot_f1": SLOT_F1,
    "mrr": MRR,
    "abstention_accuracy": AbstentionAccuracy(),
    "groundedness": GROUNDEDNESS,
    "final_answer": FINAL_ANSWER,
}
DIAGNOSTICS = ("recall_at_5", "mrr", "abstention_accuracy", "groundedness")
# Measured on something other than the held-out cases; `compare` handles them itself.
PROBES = ("preference_accuracy",)


def resolve_metrics(
    names: Sequence[str],
    json_schema: dict[str, Any] | None = None,
    *,
    labels: Sequence[str] = (),
    output_type: str | None = None,
) -> list[Metric]:
    """Metric objects for names; unknown names are a user error listing the known ones.

    `labels` (the task's label list) fixes macro-F1's label set; `output_type` other than
    `free_text` makes abstention read explicit row markers only (a label task's empty
    reference is not a question without an answer).

    >>> [m.name for m in resolve_metrics(["accuracy", "recall_at_10"])]
    ['accuracy', 'recall_at_10']
    """
    out: list[Metric] = []
    for name in names:
        if name == "macro_f1" and labels:
            out.append(MacroF1(tuple(labels)))
        elif name == "abstention_accuracy" and output_type not in (None, "free_text"):
            out.append(AbstentionAccuracy(explicit_only=True))
        elif name in METRICS:
            out.append(METRICS[name])
        elif match := re.fullmatch(r"recall_at_(\d+)", name):
            out.append(recall_at(int(match.group(1))))
        elif name == "schema_adherence":
            if json_schema is None:
                raise UserInputError(
                    "metric schema_adherence needs a JSON schema",
                    hint="set output.type: json_schema and output.schema in the task file",
                )
            out.append(SchemaAdherence(json_schema))
        elif name in PROBES:
            continue
        else:
            known = [*METRICS, "recall_at_K", "schema_adherence", *PROBES]
            raise UserInputError(f"unknown metric {name!r}; known: {', '.join(sorted(known))}")
    return out


__all__ = [
    "DIAGNOSTICS",
    "METRICS",
    "PROBES",
    "MeanMetric",
    "Metric",
    "Row",
    "abstained",
    "accuracy",
    "exact_match",
    "json_valid",
    "label_key",
    "macro_f1",
    "normalize_answer",
    "resolve_metrics",
    "rows_from",
    "slot_f1",
    "token_f1",
    "value_of",
]
