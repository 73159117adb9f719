"""The report: `report.json` is the source of truth (pydantic); Markdown and HTML render from it.

Field names follow DESIGN.md "Machine-readable outputs" and may grow, never be renamed:
`task`, `decision`, `lanes[].name`, `lanes[].metrics[<metric>].{value,ci_low,ci_high}`,
`lanes[].latency_ms.{p50,p95}`, `lanes[].cost`, `winner`, `router_correct`, `decision_check`.
Everything else (pairwise differences, flips, the verdict, the price table) was added around
them.

The models only: assembling a report from a comparison and writing its files is
`compoundai_evaluators.publish`'s (`build_report`, `write_reports`, `load_report`), which the
renderers (`markdown`, `html`) do not depend on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from compoundai.config import Strict


class MetricValue(Strict):
    value: float
    ci_low: float
    ci_high: float
    n: int | None = None  # cases (or pairs) the metric was defined on


class Latency(Strict):
    p50: float
    p95: float


class Forgetting(Strict):
    perplexity_before: float
    perplexity_after: float
    ratio: float
    source: str = "training manifest"


class LaneResult(Strict):
    name: str
    family: str
    status: str = "ok"  # ok | not_applicable | not_built | failed
    message: str = ""
    n_cases: int = 0
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    latency_ms: Latency | None = None
    cost: dict[str, float] = Field(default_factory=dict)
    throughput: dict[str, float] = Field(default_factory=dict)
    generator: str = ""
    remote: bool = False
    cached: int = 0  # answers taken from the cache instead of generated
    forgetting: Forgetting | None = None
    general_perplexity: float | None = None
    data_share: float = 1.0  # a training lane measured at a rung: the share of its data
    info: dict[str, Any] = Field(default_factory=dict)


class Difference(Strict):
    """Lane `a` minus lane `b` on one metric, paired over the same cases, with flips."""

    a: str
    b: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    p_a_not_better: float  # share of resamples where a <= b
    a_better: int  # cases where a scored higher than b (a right, b wrong for 0/1 metrics)
    b_better: int
    compared: int  # n: the cases defined for both lanes, over which the difference is taken
    # share of resamples where b <= a (exact zeros count in both, so flipping swaps the two)
    p_b_not_better: float | None = None
    p_value: float | None = None  # two-sided bootstrap p-value, unadjusted
    a_better_ids: list[str] = Field(default_factory=list)  # the first few, for reading
    b_better_ids: list[str] = Field(default_factory=list)

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0

    def signed(self) -> str:
        """`value [low, high]` to three decimals with signs; what rounds to zero is `+0.000`
        (not `-0.000`, which a float difference of two equal scores can print).

        >>> Difference(a="x", b="y", metric="m", value=-1e-17, ci_low=-0.0125, ci_high=0.0,
        ...            p_a_not_better=1.0, a_better=0, b_better=0, compared=4).signed()
        '+0.000 [-0.013, +0.000]'
        """
        return signed_interval(self.value, self.ci_low, self.ci_high)


def signed(x: float) -> str:
    """A signed number to three decimals, every difference and interval end in the reports
    (what rounds to zero is `+0.000`).

    >>> signed(-1e-17), signed(0.0125), signed(-0.2)
    ('+0.000', '+0.013', '-0.200')
    """
    return f"{round(x, 3) + 0.0:+.3f}"


def signed_interval(value: float, low: float, high: float) -> str:
    """`value [low, high]`, each `signed`.

    >>> signed_interval(0.25, -0.0001, 0.5)
    '+0.250 [+0.000, +0.500]'
    """
    return f"{signed(value)} [{signed(low)}, {signed(high)}]"


def find_difference(
    differences: Sequence[Difference], a: str, b: str, metric: str
) -> Difference | None:
    """`a - b` on `metric`, flipping a stored `b - a` if that is what was computed.

    >>> d = Difference(a="x", b="y", metric="m", value=0.2, ci_low=0.1, ci_high=0.3,
    ...                p_a_not_better=0.0, a_better=3, b_better=1, compared=10)
    >>> find_difference([d], "y", "x", "m").ci_low
    -0.3
    """
    for d in differences:
        if d.metric != metric:
            continue
        if (d.a, d.b) == (a, b):
            return d
        if (d.a, d.b) == (b, a):
            swapped = d.p_b_not_better if d.p_b_not_better is not None else 1 - d.p_a_not_better
            return Difference(
                a=a,
                b=b,
                metric=metric,
                value=-d.value,
                ci_low=-d.ci_high,
                ci_high=-d.ci_low,
                p_a_not_better=swapped,
                p_b_not_better=d.p_a_not_better,
                p_value=d.p_value,
                a_better=d.b_better,
                b_better=d.a_better,
                compared=d.compared,
                a_better_ids=d.b_better_ids,
                b_better_ids=d.a_better_ids,
            )
    return None


def p_value(d: Difference) -> float:
    """The two-sided p-value of a difference (older reports: from the one-sided share)."""
    if d.p_value is not None:
        return d.p_value
    return min(1.0, 2 * min(d.p_a_not_better, 1 - d.p_a_not_better))


class MetricWinner(Strict):
    metric: str
    lane: str
    value: float
    runner_up: str | None = None
    clear: bool = False  # the paired interval against the runner-up excludes zero
    note: str = ""


class RouterCheck(Strict):
    predicted: str
    measured: str | None
    correct: bool | None
    note: str


class Interval(Strict):
    value: float
    ci_low: float
    ci_high: float


class DecisionCheck(Strict):
    """The router's plan against the measured winner, with ties inside the margin.

    `outcome`: `matched` (the plan's lane is the winner), `tied` (the regret, winner minus
    plan on the primary metric, is at most `margin` and its paired interval either reaches 0
    or lies within the margin), `wrong` otherwise; None when the plan's lane was not scored.
    """

    plan: str
    chosen_lane: str | None
    winner: str | None
    outcome: Literal["matched", "tied", "wrong"] | None
    margin: float
    regret: Interval | None = None
    metric: str = ""
    n: int | None = None
    note: str = ""


class VersusWinner(Strict):
    """The winner minus one other lane on the primary metric, Holm-adjusted within the family
    of the winner's comparisons."""

    lane: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    p_value: float
    p_holm: float
    clearly_worse: bool  # p_holm < alpha and the winner is ahead
    tied: bool  # within the equivalence margin (see DecisionCheck)


class GateResult(Strict):
    lane: str
    ships: bool
    reasons: list[str]


class Verdict(Strict):
    primary_metric: str
    overall: str | None
    overall_note: str
    eligible: list[str]
    constraints_met: bool = True  # False: no lane met them and `overall` ignores them
    excluded: dict[str, str] = Field(default_factory=dict)  # lane -> constraint it breaks
    tied_with_winner: list[str] = Field(default_factory=list)
    cheapest_equivalent: str | None = None
    per_metric: list[MetricWinner] = Field(default_factory=list)
    router: RouterCheck
    release: list[GateResult] = Field(default_factory=list)
    max_forgetting: float = 0.10
    # Lanes that answer without a language model (kNN vote, BM25 passage), and for each
    # LLM lane clearly below one of them on the primary metric, what it loses by.
    baselines: list[str] = Field(default_factory=list)
    below_baseline: dict[str, str] = Field(default_factory=dict)
    margin: float = 0.02  # equivalence margin on the primary metric for "tied"
    volume: int = 100_000  # cases the training cost is spread over for "cheapest"
    alpha: float = 0.05
    versus_winner: list[VersusWinner] = Field(default_factory=list)
    decision_check: DecisionCheck | None = None


class Report(Strict):
    task: str
    decision: dict[str, Any]
    profile: dict[str, Any] = Field(default_factory=dict)
    lanes: list[LaneResult]
    primary_metric: str
    winner: str | None
    router_correct: bool | None
    router_note: str = ""
    decision_check: DecisionCheck | None = None
    comparisons: list[Difference] = Field(default_factory=list)
    verdict: Verdict | None = None
    metric_descriptions: dict[str, str] = Field(default_factory=dict)
    constraints: dict[str, Any] = Field(default_factory=dict)
    prices: dict[str, Any] = Field(default_factory=dict)
    cases: dict[str, Any] = Field(default_factory=dict)
    created: str = ""
    versions: dict[str, str] = Field(default_factory=dict)

    def lane(self, name: str) -> LaneResult:
        return next(r for r in self.lanes if r.name == name)

    def metric_names(self) -> list[str]:
        """Every metric some lane has, the primary one first."""
        names = {m for lane in self.lanes for m in lane.metrics}
        return sorted(names, key=lambda m: (m != self.primary_metric, m))
