"""`compare(systems, cases, metrics)`: every lane on the same cases, scored the same way.

The cases come from `compoundai.data.sample_cases` (a fixed seed, stratified by label: test
files are often sorted by label, so the first N rows would cover only a few classes). Each lane
answers, in one `batch` call, the cases the output cache does not already hold for it; a lane
that fails is recorded, not fatal (DSPy's BetterTogether does the same).
Every metric is bootstrapped with one set of resample counts shared by all lanes (10,000
resamples by default), so each lane-vs-lane difference gets a paired interval, taken over the
cases both lanes are scored on (`n`, the `compared` field), and per-case scores give the flips.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from compoundai.data import Example, PreferencePair
from compoundai_evaluators.cache import OutputCache, fingerprint, prompt_keys
from compoundai_evaluators.cost import PriceTable, lane_cost, throughput, training_of
from compoundai_evaluators.evaluable import Evaluable
from compoundai_evaluators.metrics import DIAGNOSTICS, Metric, Row, resolve_metrics
from compoundai_evaluators.metrics.base import MeanMetric
from compoundai_evaluators.probes import PerplexityHook, forgetting_of, preference_accuracy
from compoundai_evaluators.report import Difference, Forgetting, LaneResult, Latency, MetricValue
from compoundai_evaluators.stats import (
    Estimate,
    bootstrap_counts,
    difference_interval,
    flips,
    metric_interval,
    percentile,
)


def _scored_elsewhere(row: Row) -> None:
    return None  # preference accuracy is measured on pairs by `probes`, not on cases


PREFERENCE = MeanMetric(
    "preference_accuracy", "chosen answer more likely than rejected", _scored_elsewhere
)
SHOWN_FLIPS = 10


@dataclass
class Scored:
    """One lane's per-case statistics by metric (what the bootstrap resamples), and its
    per-case scores (NaN where a metric says nothing about a case)."""

    stats: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Comparison:
    """What `compare` measured: one result per lane, every paired difference, and the
    per-case statistics behind them (`scored`, by lane name: what a decision extrapolates
    from)."""

    lanes: list[LaneResult]
    differences: list[Difference]
    descriptions: dict[str, str] = field(default_factory=dict)
    scored: dict[str, Scored] = field(default_factory=dict)


def _estimate(e: Estimate, n: int) -> MetricValue:
    low = e.ci_low if np.isfinite(e.ci_low) else e.value
    high = e.ci_high if np.isfinite(e.ci_high) else e.value
    return MetricValue(value=e.value, ci_low=low, ci_high=high, n=n)


CACHE_CHUNK = 32  # answers generated and stored together


def _answer(
    system: Evaluable, cases: Sequence[Example], cache: OutputCache | None
) -> tuple[list, int]:
    """The system's answers to every case, from the cache where possible; `(answers, cached)`."""
    if cache is None:
        return list(system.batch([c.input for c in cases])), 0
    keys, fp = prompt_keys(system, cases), fingerprint(system)
    found = cache.get(fp, keys)
    missing = [i for i, k in enumerate(keys) if k not in found]
    # In chunks, each stored as soon as it is answered: a run that dies halfway (a server
    # that goes away, a kill) keeps what it finished, and the re-run asks only for the rest.
    for start in range(0, len(missing), CACHE_CHUNK):
        chunk = missing[start : start + CACHE_CHUNK]
        fresh = system.batch([cases[i].input for i in chunk])
        new = {keys[i]: a for i, a in zip(chunk, fresh, strict=True)}
        cache.put(fp, new)
        found.update(new)
    return [found[k] for k in keys], len(cases) - len(missing)


def compare(
    systems: Iterable[Evaluable],
    cases: Sequence[Example],
    metrics: Sequence[str | Metric],
    seed: int = 0,
    resamples: int = 10_000,
    *,
    level: float = 0.95,
    json_schema: dict[str, Any] | None = None,
    labels: Sequence[str] = (),
    output_type: str | None = None,
    volume: int = 100_000,
    diagnostics: bool = True,
    cache: OutputCache | None = None,
    preferences: Sequence[PreferencePair] = (),
    judge: Metric | None = None,
    prices: PriceTable | None = None,
    perplexity: PerplexityHook | None = None,
    progress: bool = False,
) -> Comparison:
    """Run each system on every case, score it, and compare every pair of lanes.

    `systems` may be any iterable, e.g. a generator that builds each lane as it is needed:
    nothing here keeps a system after scoring it, so its model can be freed before the next
    one loads. When every metric is measured on preference pairs (`preference_accuracy`
    alone, without diagnostics), the cases are not answered at all.

    >>> comparison = compare([zero_shot, five_shot], cases, ["accuracy"])  # doctest: +SKIP
    >>> [(d.a, d.b, round(d.value, 3)) for d in comparison.differences]    # doctest: +SKIP
    [('prompt/zero-shot', 'prompt/5-shot', -0.31)]
    """

    def resolve(names: Sequence[str]) -> list[Metric]:
        return resolve_metrics(names, json_schema, labels=labels, output_type=output_type)

    requested = [m for m in metrics if not isinstance(m, str)]
    requested += resolve([m for m in metrics if isinstance(m, str)])
    extra = resolve([d for d in DIAGNOSTICS if diagnostics])
    extra = [m for m in extra if m.name not in {r.name for r in requested}]
    if judge is not None:
        requested.append(judge)
    all_metrics = requested + extra
    counts = bootstrap_counts(len(cases), resamples, seed)
    pair_counts = bootstrap_counts(len(preferences), resamples, seed + 1)

    results: list[LaneResult] = []
    scored: dict[str, Scored] = {}
    answer_cases = bool(all_metrics)
    for system in _progress(systems, progress):
        started = time.perf_counter()
        try:
            answers, n_cached = _answer(system, cases, cache) if answer_cases else ([], 0)
        except Exception as exc:  # recorded in the report, as DSPy's BetterTogether does
            results.append(
                LaneResult(
                    name=system.name,
                    family=system.lane,
                    status="failed",
                    message=f"{type(exc).__name__}: {exc}",
                )
            )
            del system  # free this lane's model before the next one is built
            continue
        wall = time.perf_counter() - started
        rows = [
            Row(c.id, c.input, c.output, a.output, a.text, c.meta, a.extra)
            for c, a in zip(cases, answers, strict=answer_cases)
        ]
        lane = Scored()
        values: dict[str, MetricValue] = {}
        for metric in all_metrics:
            stats, scores = metric.stats(rows), metric.case_scores(rows)
            defined = int((~np.isnan(scores)).sum())
            if defined == 0:
                continue  # e.g. retrieval metrics for a lane that does not retrieve
            lane.stats[metric.name], lane.scores[metric.name] = stats, scores
            values[metric.name] = _estimate(metric_interval(metric, stats, counts, level), defined)
        if preferences and (pref := preference_accuracy(system, preferences)) is not None:
            stats = np.stack([pref, np.ones_like(pref)], axis=-1)
            lane.stats[PREFERENCE.name], lane.scores[PREFERENCE.name] = stats, pref
            estimate = metric_interval(PREFERENCE, stats, pair_counts, level)
            values[PREFERENCE.name] = _estimate(estimate, len(pref))
        scored[system.name] = lane
        results.append(
            _lane_result(system, cases, answers, rows, values, n_cached, wall, prices, volume)
        )
        result = results[-1]
        if (record := forgetting_of(system)) is not None:
            result.forgetting = Forgetting(**record)
        if perplexity is not None:
            result.general_perplexity = perplexity(system)
        del system  # free this lane's model before the next one is built

    metric_by_name = {m.name: m for m in [*all_metrics, PREFERENCE]}
    differences = []
    ids = [c.id for c in cases]
    # Later lanes (more elaborate, costlier) first: "finetune - prompt" reads as what it adds.
    for b, a in combinations([r.name for r in results if r.status == "ok"], 2):
        for name in metric_by_name:
            if name not in scored[a].stats or name not in scored[b].stats:
                continue
            metric = metric_by_name[name]
            shared = pair_counts if name == PREFERENCE.name else counts
            score_a, score_b = scored[a].scores[name], scored[b].scores[name]
            # only the cases both lanes are scored on (groundedness skips abstentions)
            both = ~np.isnan(score_a) & ~np.isnan(score_b)
            if not both.any():
                continue
            diff = difference_interval(
                metric, scored[a].stats[name], scored[b].stats[name], shared, level, both
            )
            f = flips(score_a, score_b)
            named = ids if name != PREFERENCE.name else [pair.id for pair in preferences]

            def finite(p: float, fallback: float = 1.0) -> float:
                return p if np.isfinite(p) else fallback

            differences.append(
                Difference(
                    a=a,
                    b=b,
                    metric=name,
                    value=diff.value if np.isfinite(diff.value) else 0.0,
                    ci_low=diff.ci_low if np.isfinite(diff.ci_low) else diff.value,
                    ci_high=diff.ci_high if np.isfinite(diff.ci_high) else diff.value,
                    p_a_not_better=finite(diff.p_a_not_better),
                    p_b_not_better=finite(diff.p_b_not_better),
                    p_value=finite(diff.p_value),
                    a_better=len(f.a_better),
                    b_better=len(f.b_better),
                    compared=f.compared,
                    a_better_ids=[named[i] for i in f.a_better[:SHOWN_FLIPS]],
                    b_better_ids=[named[i] for i in f.b_better[:SHOWN_FLIPS]],
                )
            )
    reported = {name for r in results for name in r.metrics}
    descriptions = {m.name: m.description for m in metric_by_name.values() if m.name in reported}
    return Comparison(results, differences, descriptions, scored)


def _lane_result(
    system: Evaluable,
    cases: Sequence[Example],
    answers: Sequence[Any],
    rows: Sequence[Row],
    values: dict[str, MetricValue],
    n_cached: int,
    wall: float,
    prices: PriceTable | None,
    volume: int = 100_000,
) -> LaneResult:
    latencies = [float(a.latency_ms) for a in answers]
    # Inference time is the sum of per-case latencies, so cached answers keep their cost.
    inference_s = sum(latencies) / 1000
    prompt_tokens = sum(int(a.prompt_tokens) for a in answers)
    completion_tokens = sum(int(a.completion_tokens) for a in answers)
    generator = system.generator
    gen_name = str(getattr(generator, "name", ""))
    remote = getattr(generator, "base_url", None) is not None
    train_s, train_tokens = training_of(system.info)
    cost = lane_cost(
        generator=gen_name,
        remote=remote,
        n_cases=len(cases),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        inference_seconds=inference_s,
        build_seconds=float(system.info.build_seconds),
        train_seconds=train_s,
        train_tokens=train_tokens,
        prices=prices,
        volume=volume,
    )
    cost["eval_seconds"] = round(wall, 2)
    predictions = [
        {
            "id": r.id,
            "input": r.input,
            "reference": r.reference,
            "output": r.prediction,
            "text": r.text,
            "latency_ms": round(a.latency_ms, 2),
            **({"extra": a.extra} if a.extra else {}),
        }
        for r, a in zip(rows, answers, strict=True)
    ]
    return LaneResult(
        name=system.name,
        family=system.lane,
        n_cases=len(cases),
        metrics=values,
        latency_ms=Latency(p50=percentile(latencies, 50), p95=percentile(latencies, 95)),
        cost=cost,
        throughput=throughput(len(cases), completion_tokens, inference_s),
        generator=gen_name,
        remote=remote,
        cached=n_cached,
        data_share=system.info.data_share,
        info={
            "predictions": predictions,
            **({"synth": system.info.synth} if system.info.synth else {}),
            **({"teacher": system.info.teacher} if system.info.teacher else {}),
        },
    )


def _progress(systems: Iterable[Any], show: bool) -> Any:
    if not show or (isinstance(systems, Sequence) and len(systems) < 2):
        return systems
    from tqdm.auto import tqdm

    total = len(systems) if isinstance(systems, Sequence) else None
    return tqdm(systems, desc="compare lanes", unit="lane", total=total)
