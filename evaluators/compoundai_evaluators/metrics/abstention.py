"""Abstention: does the lane decline exactly the questions its context cannot answer?

A case is unanswerable when its reference is empty (SQuAD v2 style: no gold answer) or its row
says `answerable: false` / `is_impossible: true`. An answer abstains when the lane says so
(`Answer.extra["abstained"]`), when its output is empty, or when its text is a refusal such as
"I don't know" or "not in the context". The score per case is 1 when the decision was right
(abstain on unanswerable, answer otherwise): always abstaining does not win. On tasks with no
unanswerable case the metric is undefined (NaN) and not reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from compoundai_evaluators.metrics.base import MeanMetric, Row, as_text
from compoundai_evaluators.metrics.squad import gold_answers, normalize_answer

REFUSAL = re.compile(
    r"\b(i (do not|don't|cannot|can't) (know|answer|find|say)|no answer|unanswerable|"
    r"not (mentioned|stated|in the (context|passages?|documents?))|cannot be answered|"
    r"(context|passages?|documents?) (does|do) not (say|mention|contain))\b",
    re.IGNORECASE,
)


def is_unanswerable(row: Row) -> bool:
    if row.meta.get("answerable") is False or row.meta.get("is_impossible") is True:
        return True
    return gold_answers(row.reference) == [""]


def abstained(row: Row) -> bool:
    """Whether the answer declines: flagged by the lane, empty, or a refusal.

    >>> abstained(Row("1", "q", "x", "I don't know.")), abstained(Row("1", "q", "x", "Paris"))
    (True, False)
    """
    if row.extra.get("abstained") is True:
        return True
    text = as_text(row.prediction)
    return not normalize_answer(text) or bool(REFUSAL.search(text))


@dataclass(frozen=True)
class AbstentionAccuracy:
    """Share of cases where the lane abstained if and only if the case is unanswerable.

    >>> from compoundai_evaluators.metrics.base import value_of
    >>> rows = [Row("1", "q", "", ""), Row("2", "q", "Paris", "Paris"), Row("3", "q", "", "Rome")]
    >>> round(value_of(AbstentionAccuracy(), rows), 4)
    0.6667
    """

    name: str = "abstention_accuracy"
    description: str = "abstains exactly on the unanswerable cases"

    def _inner(self) -> MeanMetric:
        return MeanMetric(
            self.name, self.description, lambda r: float(abstained(r) == is_unanswerable(r))
        )

    def case_scores(self, rows: Sequence[Row]) -> np.ndarray:
        if not any(is_unanswerable(r) for r in rows):
            return np.full(len(rows), np.nan)
        return self._inner().case_scores(rows)

    def stats(self, rows: Sequence[Row]) -> np.ndarray:
        scores = self.case_scores(rows)
        defined = ~np.isnan(scores)
        return np.stack([np.where(defined, scores, 0.0), defined.astype(float)], axis=-1)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return self._inner().aggregate(totals)
