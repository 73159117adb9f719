"""Abstention: does the lane decline exactly the questions its context cannot answer?

Only for free-text tasks: `compare` asks for it there, or where rows carry an explicit marker
(`answerable: false` / `is_impossible: true`). A case is unanswerable when its row says so or
its reference holds no answer at all (None, an empty string, or a list of empty strings: SQuAD
v2's unanswerable questions). Emptiness is read from the raw reference, not after SQuAD's
normalisation, which would empty gold answers such as "A" or "The".

An answer abstains by the output contract's one rule (`compoundai.contract`): the lane flagged
it (`Answer.extra["abstained"]`), its output is empty, or its text is a refusal such as "I'm not
sure" or "the passages don't say". The score per case is 1 when the decision was right (abstain
on unanswerable, answer otherwise): always abstaining does not win. Where no case is
unanswerable the metric is undefined (NaN) and not reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compoundai_evaluators.metrics.base import MeanMetric, Row
from compoundai_evaluators.metrics.squad import scored_prediction


def _no_answer(reference: Any) -> bool:
    if reference is None:
        return True
    if isinstance(reference, str):
        return not reference.strip()
    if isinstance(reference, list | tuple):
        return all(_no_answer(r) for r in reference)
    return False


def marked_unanswerable(row: Row) -> bool | None:
    """The row's explicit marker: True (unanswerable), False (answerable) or None (no marker)."""
    if row.meta.get("answerable") is False or row.meta.get("is_impossible") is True:
        return True
    if row.meta.get("answerable") is True or row.meta.get("is_impossible") is False:
        return False
    return None


def is_unanswerable(row: Row) -> bool:
    """An explicit marker, else a reference with no answer in it.

    >>> is_unanswerable(Row("1", "q", [], "x")), is_unanswerable(Row("1", "q", ["A"], "x"))
    (True, False)
    """
    marked = marked_unanswerable(row)
    return marked if marked is not None else _no_answer(row.reference)


def abstained(row: Row) -> bool:
    """Whether the answer declines: flagged by the lane, empty, or a refusal.

    >>> abstained(Row("1", "q", "x", "I don't know.")), abstained(Row("1", "q", "x", "Paris"))
    (True, False)
    """
    return scored_prediction(row) == ""


@dataclass(frozen=True)
class AbstentionAccuracy:
    """Share of cases where the lane abstained if and only if the case is unanswerable.

    `explicit_only`: decide unanswerable cases from explicit row markers only (what `compare`
    uses for label and JSON tasks, where an empty reference is not a question without answer).

    >>> from compoundai_evaluators.metrics.base import value_of
    >>> rows = [Row("1", "q", "", ""), Row("2", "q", "Paris", "Paris"), Row("3", "q", "", "Rome")]
    >>> round(value_of(AbstentionAccuracy(), rows), 4)
    0.6667
    """

    name: str = "abstention_accuracy"
    description: str = "abstains exactly on the unanswerable cases"
    explicit_only: bool = False

    def _unanswerable(self, row: Row) -> bool:
        if self.explicit_only:
            return marked_unanswerable(row) is True
        return is_unanswerable(row)

    def case_scores(self, rows: Sequence[Row]) -> np.ndarray:
        if self.explicit_only and not any(marked_unanswerable(r) is not None for r in rows):
            return np.full(len(rows), np.nan)
        if not any(self._unanswerable(r) for r in rows):
            return np.full(len(rows), np.nan)
        inner = MeanMetric(
            self.name, self.description, lambda r: float(abstained(r) == self._unanswerable(r))
        )
        return inner.case_scores(rows)

    def stats(self, rows: Sequence[Row]) -> np.ndarray:
        scores = self.case_scores(rows)
        defined = ~np.isnan(scores)
        return np.stack([np.where(defined, scores, 0.0), defined.astype(float)], axis=-1)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return MeanMetric(self.name, self.description, lambda r: None).aggregate(totals)
