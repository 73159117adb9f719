"""Label metrics: accuracy and macro-F1 over the labels that occur in the references.

Macro-F1 is corpus-level (a label's F1 needs every case), so its statistics are one-hot true
positive / false positive / false negative counts per label; summed over any resample they
give that resample's macro-F1, with the labels absent from the resample left out, as the
plain definition would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compoundai_evaluators.metrics.base import MeanMetric, Row, rows_from, safe_ratio, value_of


def _equal(row: Row) -> float:
    return float(row.prediction == row.reference)


ACCURACY = MeanMetric("accuracy", "share of cases whose output equals the reference", _equal)


@dataclass(frozen=True)
class MacroF1:
    """Unweighted mean of per-label F1 over the labels present in the references."""

    name: str = "macro_f1"
    description: str = "mean per-label F1 over the labels in the references"

    def _labels(self, rows: Sequence[Row]) -> list[str]:
        return sorted({str(r.reference) for r in rows})

    def stats(self, rows: Sequence[Row]) -> np.ndarray:
        labels = self._labels(rows)
        where = {label: i for i, label in enumerate(labels)}
        out = np.zeros((len(rows), 3 * len(labels)))
        for n, r in enumerate(rows):
            ref, pred = str(r.reference), str(r.prediction)
            if pred == ref:
                out[n, 3 * where[ref]] = 1  # true positive
                continue
            out[n, 3 * where[ref] + 2] = 1  # false negative for the reference label
            if pred in where:
                out[n, 3 * where[pred] + 1] = 1  # false positive for the predicted label
        return out

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        t = totals.reshape(*totals.shape[:-1], -1, 3)
        tp, fp, fn = t[..., 0], t[..., 1], t[..., 2]
        present = (tp + fn) > 0
        f1 = np.where(tp > 0, safe_ratio(2 * tp, 2 * tp + fp + fn), 0.0)
        return safe_ratio(np.where(present, f1, 0.0).sum(-1), present.sum(-1))

    def case_scores(self, rows: Sequence[Row]) -> np.ndarray:
        return np.array([_equal(r) for r in rows])


MACRO_F1 = MacroF1()


def accuracy(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """Share of predictions equal to their reference.

    >>> accuracy(["a", "b", "c"], ["a", "b", "b"])
    0.6666666666666666
    """
    return value_of(ACCURACY, rows_from(predictions, references)) if references else 0.0


def macro_f1(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """Unweighted mean of per-label F1 over the labels that occur in the references.

    >>> round(macro_f1(["a", "a", "b"], ["a", "b", "b"]), 4)
    0.6667
    """
    return value_of(MACRO_F1, rows_from(predictions, references)) if references else 0.0
