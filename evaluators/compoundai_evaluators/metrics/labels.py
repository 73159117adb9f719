"""Label metrics: accuracy and macro-F1, both comparing labels by one key (`label_key`).

One key for both: a prediction `1` and a reference `"1"` are the same label to both metrics or
to neither (before, accuracy compared raw values and macro-F1 their `str()`). Strings are their
own key; anything else (a number, a JSON object) its canonical JSON.

Macro-F1 averages per-label F1 over a fixed label set: the task's label list when the metric is
built with it (`MacroF1(labels=...)`, what `resolve_metrics` does for a label task), else the
labels of the references. Fixed means the same for every lane and every bootstrap resample: a
label a lane predicts but no reference has is a false positive of that label and counts with
F1 0, however the resample fell. A label with nothing to score in a resample (no reference, no
prediction: 2tp + fp + fn = 0) is left out of that resample's average, which is scikit-learn's
`f1_score(labels=L, average="macro", zero_division=np.nan)`. Predictions outside the label set
count only as misses of their reference label.

Its statistics are one-hot true positive / false positive / false negative counts per label;
summed over any resample they give that resample's macro-F1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compoundai_evaluators.metrics.base import MeanMetric, Row, rows_from, safe_ratio, value_of


def label_key(value: Any) -> str | None:
    """The key a label is compared by: the string itself, else its canonical JSON.

    >>> label_key("card_arrival"), label_key(1), label_key(1.0), label_key(None)
    ('card_arrival', '1', '1', None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _equal(row: Row) -> float:
    pred = label_key(row.prediction)
    return float(pred is not None and pred == label_key(row.reference))


ACCURACY = MeanMetric("accuracy", "share of cases whose output equals the reference", _equal)


@dataclass(frozen=True)
class MacroF1:
    """Unweighted mean of per-label F1 over a fixed label set (see the module docstring)."""

    labels: tuple[str, ...] = ()
    name: str = "macro_f1"
    description: str = "mean per-label F1 over the task's labels"

    def _labels(self, rows: Sequence[Row]) -> list[str]:
        if self.labels:
            return [k for k in dict.fromkeys(label_key(lb) for lb in self.labels) if k is not None]
        return sorted({k for r in rows if (k := label_key(r.reference)) is not None})

    def stats(self, rows: Sequence[Row]) -> np.ndarray:
        labels = self._labels(rows)
        where = {label: i for i, label in enumerate(labels)}
        out = np.zeros((len(rows), 3 * len(labels)))
        for n, r in enumerate(rows):
            ref, pred = label_key(r.reference), label_key(r.prediction)
            if ref is not None and ref == pred and ref in where:
                out[n, 3 * where[ref]] = 1  # true positive
                continue
            if ref in where:
                out[n, 3 * where[ref] + 2] = 1  # false negative for the reference label
            if pred in where:
                out[n, 3 * where[pred] + 1] = 1  # false positive for the predicted label
        return out

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        t = totals.reshape(*totals.shape[:-1], -1, 3)
        tp, fp, fn = t[..., 0], t[..., 1], t[..., 2]
        scored = (2 * tp + fp + fn) > 0
        f1 = safe_ratio(2 * tp, 2 * tp + fp + fn)
        return safe_ratio(np.where(scored, f1, 0.0).sum(-1), scored.sum(-1))

    def case_scores(self, rows: Sequence[Row]) -> np.ndarray:
        return np.array([_equal(r) for r in rows])


MACRO_F1 = MacroF1()


def accuracy(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """Share of predictions equal to their reference.

    >>> accuracy(["a", "b", "c"], ["a", "b", "b"])
    0.6666666666666666
    """
    return value_of(ACCURACY, rows_from(predictions, references)) if references else 0.0


def macro_f1(
    predictions: Sequence[Any], references: Sequence[Any], labels: Sequence[str] = ()
) -> float:
    """Unweighted mean of per-label F1 over `labels` (default: the references' labels).

    >>> round(macro_f1(["a", "a", "b"], ["a", "b", "b"]), 4)
    0.6667
    """
    metric = MacroF1(tuple(labels))
    return value_of(metric, rows_from(predictions, references)) if references else 0.0
