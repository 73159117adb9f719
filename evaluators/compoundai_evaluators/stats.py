"""Paired bootstrap: resample cases (the same indices for every lane) and recompute metrics.

Pairing matters: lanes run on the same cases, so the difference between two lanes varies far
less across resamples than either lane alone, and its interval is the honest one to gate on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from compoundai_evaluators.metrics import Metric


def bootstrap_indices(n: int, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """`(resamples, n)` case indices drawn with replacement; share them across lanes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))


def interval(
    metric: Metric,
    predictions: Sequence[Any],
    references: Sequence[Any],
    indices: np.ndarray,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """`(value, low, high)`: the metric and its percentile bootstrap interval.

    >>> from compoundai_evaluators.metrics import accuracy
    >>> v, lo, hi = interval(accuracy, ["a"] * 8 + ["b"] * 2, ["a"] * 10, bootstrap_indices(10))
    >>> v, lo <= v <= hi
    (0.8, True)
    """
    value = metric(predictions, references)
    if len(references) == 0:
        return value, value, value
    samples = [
        metric([predictions[i] for i in idx], [references[i] for i in idx]) for idx in indices
    ]
    alpha = (1 - level) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return value, float(low), float(high)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else 0.0
