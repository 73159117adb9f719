"""The metric Protocol: additive per-case statistics, then one aggregate.

Every metric turns the cases a lane answered into a matrix of per-case statistics that add up
(`stats`: shape `(n_cases, k)`) and a function from their column sums to the value
(`aggregate`). Accuracy keeps `(correct, counted)`; macro-F1 keeps per-label true/false
positives and false negatives; slot micro-F1 keeps its three counts. That one shape buys three
things at once:
- the bootstrap is a matrix product: resampled case counts `(B, n)` times `stats` `(n, k)`
  give every resample's totals, so 1,000 resamples of 770 cases cost milliseconds;
- paired lane-vs-lane differences use the same resample counts for both lanes;
- corpus-level metrics (macro-F1) need no special case.

`case_scores` is the per-case score used to find flips (cases one lane gets right and the
other wrong); NaN where the metric says nothing about a case (recall@k for a case with no gold
passage, abstention accuracy on a label task).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Row:
    """One held-out case as one lane answered it.

    `meta` holds the example's other fields (gold passage ids, `answerable`); `extra` holds
    what the answer carried besides its output (retrieved ids and passages, log-probs).
    """

    id: str
    input: str
    reference: Any
    prediction: Any
    text: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


def rows_from(predictions: Sequence[Any], references: Sequence[Any]) -> list[Row]:
    """Rows from bare predictions and references (for the plain-function metric API).

    >>> rows_from(["a"], ["b"])[0].prediction
    'a'
    """
    return [
        Row(str(i), "", r, p, p if isinstance(p, str) else "")
        for i, (p, r) in enumerate(zip(predictions, references, strict=True))
    ]


@runtime_checkable
class Metric(Protocol):
    """What `compare` needs from a metric; see the module docstring."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    def stats(self, rows: Sequence[Row]) -> np.ndarray:
        """`(n_cases, k)` statistics whose column sums determine the value."""
        ...

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        """`(..., k)` summed statistics to `(...)` values; NaN where undefined."""
        ...

    def case_scores(self, rows: Sequence[Row]) -> np.ndarray:
        """`(n_cases,)` per-case scores for flips; NaN where the metric says nothing."""
        ...


def value_of(metric: Metric, rows: Sequence[Row]) -> float:
    """The metric's value on all rows (NaN when it applies to none).

    >>> value_of(MeanMetric("m", "", lambda r: float(r.prediction == r.reference)),
    ...          rows_from(["a", "b"], ["a", "a"]))
    0.5
    """
    stats = metric.stats(rows)
    if len(stats) == 0:
        return float("nan")
    return float(metric.aggregate(stats.sum(axis=0)))


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """`num / den`, NaN where `den == 0`, without warnings."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


@dataclass(frozen=True)
class MeanMetric:
    """The mean of a per-case score over the cases where it is defined (`score` -> None: skip).

    >>> exact = MeanMetric("exact", "exact equality", lambda r: float(r.prediction == r.reference))
    >>> value_of(exact, rows_from(["a", "b", "c"], ["a", "b", "b"]))
    0.6666666666666666
    """

    name: str
    description: str
    score: Callable[[Row], float | None]

    def case_scores(self, rows: Sequence[Row]) -> np.ndarray:
        scores = [self.score(r) for r in rows]
        return np.array([np.nan if s is None else float(s) for s in scores], dtype=float)

    def stats(self, rows: Sequence[Row]) -> np.ndarray:
        scores = self.case_scores(rows)
        defined = ~np.isnan(scores)
        return np.stack([np.where(defined, scores, 0.0), defined.astype(float)], axis=-1)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return safe_ratio(totals[..., 0], totals[..., 1])


def as_text(value: Any) -> str:
    """A prediction or reference as text (None becomes the empty string)."""
    return "" if value is None else value if isinstance(value, str) else str(value)
