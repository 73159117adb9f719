"""How a reward model is judged on held-out pairs, and what its manifest records about it.

Three questions, each answered with the evaluators' paired bootstrap (the same resampled pairs
for the reward model and its baselines, so their difference has an honest interval):
- **pairwise accuracy**: the share of held-out pairs where the chosen answer gets the higher
  reward (ties count half);
- **calibration**: accuracy by reward-margin bucket (quantiles of |r_chosen - r_rejected|),
  beside what the Bradley-Terry model the loss fits claims for that margin (the mean of
  sigmoid(|margin|)); a calibrated model is right more often where its margin is larger;
- **against the trivial baselines the data invites**: "the longer answer wins" (characters of
  the answer) and the base model's log-likelihood preference (summed answer log-probability,
  chosen vs rejected, as the `preference_accuracy` probe scores a system). A reward model that
  does not beat both learned nothing the data did not hand it for free.

Pure numpy here (the scores come from `reward.py`), so it is tested without a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from compoundai.config import Strict
from compoundai_evaluators.metrics.base import MeanMetric, rows_from
from compoundai_evaluators.stats import bootstrap_counts, difference_interval, metric_interval

PAIRWISE = MeanMetric(
    "pairwise_accuracy",
    "share of pairs where the chosen answer scores higher (ties count half)",
    lambda row: float(row.prediction),
)


class Interval(Strict):
    value: float
    ci_low: float
    ci_high: float


class MarginBucket(Strict):
    """Held-out pairs whose |reward margin| falls in [low, high]."""

    low: float
    high: float
    pairs: int
    accuracy: float
    expected: float  # mean sigmoid(|margin|): the accuracy the fitted model claims here


class Baseline(Strict):
    name: str
    description: str
    accuracy: Interval
    reward_model_minus_baseline: Interval  # paired difference, same resamples


class RewardEvaluation(Strict):
    """The held-out figures of a reward model (`manifest.reward`)."""

    source: str  # where the held-out pairs came from
    pairs: int
    resamples: int
    accuracy: Interval
    calibration: list[MarginBucket] = Field(default_factory=list)
    baselines: list[Baseline] = Field(default_factory=list)
    seconds: dict[str, float] = Field(default_factory=dict)  # scoring time, model and baseline
    curve_steps: list[int] = Field(default_factory=list)  # held-out accuracy during training
    curve_accuracy: list[float] = Field(default_factory=list)


def pairwise_scores(
    chosen: Sequence[float] | np.ndarray, rejected: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Per pair: 1 when chosen scores higher, 0.5 on a tie, 0 when lower.

    >>> pairwise_scores([2.0, 1.0, 0.0], [1.0, 1.0, 3.0]).tolist()
    [1.0, 0.5, 0.0]
    """
    c, r = np.asarray(chosen, dtype=float), np.asarray(rejected, dtype=float)
    return np.where(c > r, 1.0, np.where(c == r, 0.5, 0.0))


def longer_answer_scores(chosen: Sequence[str], rejected: Sequence[str]) -> np.ndarray:
    """The baseline "the longer answer wins", in characters."""
    return pairwise_scores([len(a) for a in chosen], [len(a) for a in rejected])


def _interval(scores: np.ndarray, counts: np.ndarray) -> Interval:
    e = metric_interval(PAIRWISE, PAIRWISE.stats(rows_from(list(scores), list(scores))), counts)
    return Interval(value=e.value, ci_low=e.ci_low, ci_high=e.ci_high)


def calibration(margins: Sequence[float], buckets: int) -> list[MarginBucket]:
    """Accuracy by |margin| quantile bucket (margin = r_chosen - r_rejected).

    >>> [b.accuracy for b in calibration([-0.1, 0.2, 3.0, 4.0], 2)]
    [0.5, 1.0]
    """
    m = np.asarray(margins, dtype=float)
    if m.size == 0:
        return []
    size = np.abs(m)
    edges = np.quantile(size, np.linspace(0, 1, buckets + 1))
    which = np.clip(np.searchsorted(edges, size, side="right") - 1, 0, buckets - 1)
    out = []
    for b in range(buckets):
        inside = which == b
        if not inside.any():
            continue
        correct = pairwise_scores(m[inside], np.zeros(int(inside.sum())))
        out.append(
            MarginBucket(
                low=round(float(size[inside].min()), 4),
                high=round(float(size[inside].max()), 4),
                pairs=int(inside.sum()),
                accuracy=round(float(correct.mean()), 4),
                expected=round(float((1 / (1 + np.exp(-size[inside]))).mean()), 4),
            )
        )
    return out


def evaluate_rewards(
    chosen_rewards: Sequence[float],
    rejected_rewards: Sequence[float],
    baselines: dict[str, tuple[str, np.ndarray]],
    *,
    source: str,
    resamples: int = 2000,
    seed: int = 0,
    buckets: int = 4,
) -> RewardEvaluation:
    """Accuracy, calibration and baselines (name -> (description, per-pair scores)).

    >>> ev = evaluate_rewards([1, 2, 3, 4], [0, 0, 5, 0], {}, source="t", resamples=200)
    >>> ev.accuracy.value, ev.pairs
    (0.75, 4)
    """
    scores = pairwise_scores(chosen_rewards, rejected_rewards)
    n = int(scores.size)
    counts = bootstrap_counts(n, resamples, seed)
    own = PAIRWISE.stats(rows_from(list(scores), list(scores)))
    rows = []
    for name, (description, base_scores) in baselines.items():
        base = PAIRWISE.stats(rows_from(list(base_scores), list(base_scores)))
        d = difference_interval(PAIRWISE, own, base, counts)
        rows.append(
            Baseline(
                name=name,
                description=description,
                accuracy=_interval(base_scores, counts),
                reward_model_minus_baseline=Interval(
                    value=d.value, ci_low=d.ci_low, ci_high=d.ci_high
                ),
            )
        )
    margins = np.asarray(chosen_rewards, dtype=float) - np.asarray(rejected_rewards, dtype=float)
    return RewardEvaluation(
        source=source,
        pairs=n,
        resamples=resamples,
        accuracy=_interval(scores, counts),
        calibration=calibration(margins.tolist(), buckets),
        baselines=rows,
    )
