"""`compare(systems, cases, metrics)`: every lane on the same cases, scored the same way.

`sample_cases` draws `--limit N` cases with a fixed seed, stratified by label when the task
has labels (test files are often sorted by label, so the first N rows would cover only a few
classes). Each lane answers all cases in one `batch` call; metrics get paired bootstrap
intervals from indices shared across lanes.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from compoundai.data import Example
from compoundai_evaluators.metrics import METRICS
from compoundai_evaluators.report import LaneResult, Latency, MetricValue
from compoundai_evaluators.stats import bootstrap_indices, interval, percentile


def sample_cases(
    cases: Sequence[Example], limit: int | None, seed: int = 0, stratify: bool = True
) -> list[Example]:
    """`limit` cases drawn with `seed`; proportional per label when `stratify`.

    >>> from compoundai.data import Example
    >>> rows = [Example(str(i), f"t{i}", "ab"[i >= 50]) for i in range(100)]
    >>> sorted({e.output for e in sample_cases(rows, 10)})
    ['a', 'b']
    """
    cases = list(cases)
    if limit is None or limit >= len(cases):
        return cases
    rng = random.Random(seed)
    if not stratify:
        return sorted(rng.sample(cases, limit), key=cases.index)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, case in enumerate(cases):
        groups[str(case.output)].append(i)
    for members in groups.values():
        rng.shuffle(members)
    # Largest-remainder allocation: every label gets its share, rounding fairly.
    quotas = {k: limit * len(v) / len(cases) for k, v in groups.items()}
    take = {k: int(q) for k, q in quotas.items()}
    spare = limit - sum(take.values())
    for k in sorted(quotas, key=lambda k: (take[k] - quotas[k], rng.random()))[:spare]:
        take[k] += 1
    chosen = sorted(i for k, members in groups.items() for i in members[: take[k]])
    return [cases[i] for i in chosen]


def compare(
    systems: Sequence[Any],
    cases: Sequence[Example],
    metrics: Sequence[str],
    seed: int = 0,
    resamples: int = 1000,
) -> list[LaneResult]:
    """Run each system on every case and score it; a failing system is recorded, not fatal."""
    references = [c.output for c in cases]
    indices = bootstrap_indices(len(cases), resamples, seed)
    results = []
    for system in systems:
        started = time.perf_counter()
        try:
            answers = system.batch([c.input for c in cases])
        except Exception as exc:  # recorded in the report, as DSPy's BetterTogether does
            results.append(
                LaneResult(
                    name=system.name,
                    family=system.lane,
                    status="failed",
                    message=f"{type(exc).__name__}: {exc}",
                )
            )
            continue
        elapsed = time.perf_counter() - started
        outputs = [a.output for a in answers]
        scored = {}
        for name in metrics:
            value, low, high = interval(METRICS[name], outputs, references, indices)
            scored[name] = MetricValue(value=value, ci_low=low, ci_high=high)
        latencies = [a.latency_ms for a in answers]
        results.append(
            LaneResult(
                name=system.name,
                family=system.lane,
                n_cases=len(cases),
                metrics=scored,
                latency_ms=Latency(p50=percentile(latencies, 50), p95=percentile(latencies, 95)),
                cost={
                    "prompt_tokens": float(sum(a.prompt_tokens for a in answers)),
                    "completion_tokens": float(sum(a.completion_tokens for a in answers)),
                    "eval_seconds": round(elapsed, 2),
                },
                info={
                    "predictions": [
                        {
                            "id": c.id,
                            "input": c.input,
                            "reference": c.output,
                            "output": a.output,
                            "text": a.text,
                        }
                        for c, a in zip(cases, answers, strict=True)
                    ]
                },
            )
        )
    return results
