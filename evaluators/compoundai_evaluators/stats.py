"""Paired bootstrap: resample cases (the same draws for every lane) and recompute metrics.

Pairing matters: lanes run on the same cases, so the difference between two lanes varies far
less across resamples than either lane alone, and its interval is the honest one to gate on.

Draws are kept as counts, `(resamples, n_cases)`: how often each case is in each resample.
With a metric's additive statistics (see `metrics.base`), `counts @ stats` is every
resample's totals at once, which makes 10,000 resamples (the default) cheap. Percentile
intervals; NaN resamples (a metric undefined on a resample) are ignored. `holm` adjusts the
p-values of a family of comparisons for their number (the verdict and the results page use it
where they draw conclusions from several comparisons at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compoundai_evaluators.metrics.base import Metric


def bootstrap_indices(n: int, resamples: int = 10_000, seed: int = 0) -> np.ndarray:
    """`(resamples, n)` case indices drawn with replacement; share them across lanes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))


def bootstrap_counts(n: int, resamples: int = 10_000, seed: int = 0) -> np.ndarray:
    """`(resamples, n)`: how often each case is drawn in each resample.

    >>> c = bootstrap_counts(5, resamples=3)
    >>> c.shape, c.sum(axis=1).tolist()
    ((3, 5), [5.0, 5.0, 5.0])
    """
    idx = bootstrap_indices(n, resamples, seed)
    counts = np.zeros((resamples, n), dtype=np.float64)
    if n:
        np.add.at(counts, (np.arange(resamples)[:, None], idx), 1.0)
    return counts


def _quantiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)


@dataclass(frozen=True)
class Estimate:
    """A value with its percentile bootstrap interval."""

    value: float
    ci_low: float
    ci_high: float


def metric_interval(
    metric: Metric, stats: np.ndarray, counts: np.ndarray, level: float = 0.95
) -> Estimate:
    """The metric on all cases and its bootstrap interval, from precomputed statistics.

    >>> from compoundai_evaluators.metrics import ACCURACY, rows_from
    >>> s = ACCURACY.stats(rows_from(["a"] * 8 + ["b"] * 2, ["a"] * 10))
    >>> e = metric_interval(ACCURACY, s, bootstrap_counts(10))
    >>> e.value, e.ci_low <= 0.8 <= e.ci_high
    (0.8, True)
    """
    value = float(metric.aggregate(stats.sum(axis=0)))
    low, high = _quantiles(np.asarray(metric.aggregate(counts @ stats)), level)
    return Estimate(value, low, high)


@dataclass(frozen=True)
class PairedDifference:
    """`a - b` over the cases defined for both lanes, with its paired bootstrap interval.

    `p_a_not_better` is the share of resamples where a <= b (a one-sided bootstrap p-value for
    "a is better"), `p_b_not_better` the share where b <= a; exact zero differences count in
    both, so flipping a difference swaps the two instead of taking `1 - p`. `p_value` is the
    two-sided one, `min(1, 2 * min(...))`; `n` the cases both lanes were scored on.
    """

    value: float
    ci_low: float
    ci_high: float
    p_a_not_better: float
    p_b_not_better: float
    p_value: float
    n: int


def difference_interval(
    metric: Metric,
    stats_a: np.ndarray,
    stats_b: np.ndarray,
    counts: np.ndarray,
    level: float = 0.95,
    both: np.ndarray | None = None,
) -> PairedDifference:
    """`a - b` with its paired interval and bootstrap p-values (see `PairedDifference`).

    `both` masks the cases defined for both lanes (a metric such as groundedness is undefined
    on abstentions, so two lanes' own means cover different cases): the difference is taken
    over those alone, never between means of different cases.

    >>> from compoundai_evaluators.metrics import ACCURACY, rows_from
    >>> ref = ["a"] * 40
    >>> a = ACCURACY.stats(rows_from(["a"] * 36 + ["b"] * 4, ref))
    >>> b = ACCURACY.stats(rows_from(["a"] * 20 + ["b"] * 20, ref))
    >>> d = difference_interval(ACCURACY, a, b, bootstrap_counts(40))
    >>> round(d.value, 2), d.ci_low > 0, d.p_a_not_better < 0.05, d.n
    (0.4, True, True, 40)
    """
    if both is not None:
        keep = both.astype(float)[:, None]
        stats_a, stats_b = stats_a * keep, stats_b * keep
        n = int(both.sum())
    else:
        n = int(stats_a.shape[0])
    value = float(metric.aggregate(stats_a.sum(axis=0)) - metric.aggregate(stats_b.sum(axis=0)))
    samples = np.asarray(metric.aggregate(counts @ stats_a) - metric.aggregate(counts @ stats_b))
    low, high = _quantiles(samples, level)
    finite = samples[~np.isnan(samples)]
    if finite.size:
        p_le, p_ge = float((finite <= 0).mean()), float((finite >= 0).mean())
    else:
        p_le = p_ge = float("nan")
    two_sided = min(1.0, 2 * min(p_le, p_ge)) if finite.size else float("nan")
    return PairedDifference(value, low, high, p_le, p_ge, two_sided, n)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    Sort ascending; the i-th smallest (0-based) is multiplied by `m - i`, made monotone, and
    capped at 1. A NaN stays NaN and does not count in `m`.

    >>> holm([0.01, 0.04, 0.03, 0.005])
    [0.03, 0.06, 0.06, 0.02]
    """
    finite = [(p, i) for i, p in enumerate(p_values) if np.isfinite(p)]
    m = len(finite)
    out = [float("nan")] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = round(running, 12)
    return out


@dataclass(frozen=True)
class Flips:
    """Cases where one lane scored higher than the other (right vs wrong, for 0/1 metrics)."""

    a_better: list[int]
    b_better: list[int]
    compared: int


def flips(scores_a: np.ndarray, scores_b: np.ndarray) -> Flips:
    """Indices of cases where `a` beats `b` and the reverse; NaN cases are skipped.

    >>> f = flips(np.array([1.0, 0.0, 1.0, np.nan]), np.array([0.0, 0.0, 0.0, 1.0]))
    >>> f.a_better, f.b_better, f.compared
    ([0, 2], [], 3)
    """
    both = ~np.isnan(scores_a) & ~np.isnan(scores_b)
    return Flips(
        a_better=[int(i) for i in np.flatnonzero(both & (scores_a > scores_b))],
        b_better=[int(i) for i in np.flatnonzero(both & (scores_b > scores_a))],
        compared=int(both.sum()),
    )


def interval(
    metric: Any,
    predictions: Sequence[Any],
    references: Sequence[Any],
    indices: np.ndarray,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """`(value, low, high)` for a plain `(predictions, references) -> float` callable.

    The slow general path (one metric call per resample), for metrics that are not `Metric`
    objects.

    >>> from compoundai_evaluators.metrics import accuracy
    >>> v, lo, hi = interval(accuracy, ["a"] * 8 + ["b"] * 2, ["a"] * 10, bootstrap_indices(10))
    >>> v, lo <= v <= hi
    (0.8, True)
    """
    value = metric(predictions, references)
    if len(references) == 0:
        return value, value, value
    samples = np.array(
        [metric([predictions[i] for i in idx], [references[i] for i in idx]) for idx in indices]
    )
    low, high = _quantiles(samples, level)
    return value, low, high


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (linear interpolation); 0 for no values.

    >>> percentile([10.0, 20.0, 30.0, 40.0], 50)
    25.0
    """
    return float(np.percentile(values, q)) if len(values) else 0.0
