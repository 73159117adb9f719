"""Learning curves: a lane's predicted full-data score, with paired bootstrap intervals.

Every lane is scored on the same decision units (dev cases or pairs), so the statistics of
every rung share one set of resample counts: a prediction and the gap between two lanes are
both paired. A training lane's prediction is the least-squares line of its rungs' scores
against log2(data share), read at share 1, refitted on every resample; with one rung it is that
rung's score, no extrapolation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compoundai.bakeoff.parts import Candidate, Rung, _fit_at_full

RESAMPLES = 4000


class Curves:
    """Predictions for the lanes of one decision (its metric and its number of units)."""

    def __init__(self, metric: Any, units: int, seed: int) -> None:
        from compoundai_evaluators.stats import bootstrap_counts

        self.metric = metric
        self.units = units
        self.seed = seed
        self.counts = bootstrap_counts(units, RESAMPLES, seed)

    def samples(self, c: Candidate) -> tuple[float, np.ndarray]:
        """A lane's predicted full-data score and its per-resample values (paired draws)."""
        metric, counts = self.metric, self.counts
        on_sample = [r for r in c.rungs if r.units == self.units]
        if not on_sample:
            return float("nan"), np.full(counts.shape[0], np.nan)
        if not c.trains or len(on_sample) == 1:
            r = on_sample[-1]
            assert r.stats is not None
            return r.value, np.asarray(metric.aggregate(counts @ r.stats), dtype=float)
        x = np.log2([r.share for r in on_sample])
        point = np.array([r.value for r in on_sample])
        draws = np.stack(
            [np.asarray(metric.aggregate(counts @ r.stats), dtype=float) for r in on_sample]
        )  # (rungs, resamples)
        value = _fit_at_full(x, point)
        samples = np.array([_fit_at_full(x, draws[:, b]) for b in range(draws.shape[1])])
        return value, samples

    def predict(self, c: Candidate) -> tuple[float, float, float]:
        """`(value, ci_low, ci_high)` of a lane's full-data score on the decision sample."""
        value, samples = self.samples(c)
        finite = samples[np.isfinite(samples)]
        if finite.size == 0:
            return value, value, value
        low, high = np.quantile(finite, [0.025, 0.975])
        return float(value), float(low), float(high)

    def gap(self, a: Rung, b: Rung) -> tuple[float, float, float]:
        """`(ci_low, value, ci_high)` of a - b, paired over the units both were scored on."""
        from compoundai_evaluators.stats import bootstrap_counts, difference_interval

        assert a.stats is not None and b.stats is not None
        counts = (
            self.counts
            if a.units == self.units
            else bootstrap_counts(a.units, RESAMPLES, self.seed)
        )
        d = difference_interval(self.metric, a.stats, b.stats, counts)
        return d.ci_low, d.value, d.ci_high
