"""Every held-out case with each lane's answer and per-case score; two runs of a task compared.

report.json keeps aggregates; the per-case scores are computed here from predictions.jsonl
with the metric objects `compare` used (`compoundai_evaluators.metrics`). predictions.jsonl
does not keep an example's other fields (gold passage ids, `answerable` markers), so a metric
that reads them (recall@k, say) cannot be computed again from it. Every metric is therefore
checked before it is shown: its value over a lane's rows must equal the report's value for
that lane, and only the metrics that reproduce for every lane get a score column and drive
the flip filters. The page lists the others and why, instead of showing numbers that differ
from the report's.

The flip filters read as the report's flips do (`stats.flips`): lane A "better" on a case is
a higher per-case score, over the cases both lanes are scored on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from compoundai.errors import UserInputError
from compoundai.ui.runs import Prediction, RunEntry
from compoundai_evaluators.metrics import Metric, Row, abstained, resolve_metrics, value_of
from compoundai_evaluators.metrics.structured import parsed
from compoundai_evaluators.report import MetricValue, Report, find_difference

TOLERANCE = 1e-6
FILTERS = {
    "all": "every case",
    "a_better": "A right, B wrong (A scores higher)",
    "b_better": "B right, A wrong (B scores higher)",
    "flips": "A and B disagree",
    "abstained": "some lane abstained",
    "invalid": "some lane's output is invalid",
}


@dataclass
class LaneAnswer:
    lane: str
    output: Any
    text: str
    latency_ms: float
    extra: dict[str, Any]
    abstained: bool = False
    invalid: bool = False
    scores: dict[str, float] = field(default_factory=dict)  # NaN: the metric says nothing here


@dataclass
class Case:
    id: str
    input: str
    reference: Any
    answers: dict[str, LaneAnswer] = field(default_factory=dict)

    def score(self, lane: str, metric: str) -> float:
        answer = self.answers.get(lane)
        return answer.scores.get(metric, math.nan) if answer else math.nan


@dataclass
class CaseTable:
    lanes: list[str]
    cases: list[Case]
    metrics: list[str]  # the reproduced ones, the primary first
    not_reproduced: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def get(self, case_id: str) -> Case | None:
        return next((c for c in self.cases if c.id == case_id), None)


def _metric(name: str, report: Report) -> Metric | None:
    try:
        found = resolve_metrics([name], output_type=report.profile.get("output_type"))
    except UserInputError:
        return None  # e.g. schema_adherence: the schema is in the task file, not the report
    return found[0] if found else None


def _invalid(output: Any, output_type: str | None) -> bool:
    if output_type == "labels":
        return not isinstance(output, str) or not output
    if output_type == "json_schema":
        return not isinstance(parsed(output), dict)
    return False


def case_table(report: Report, predictions: Sequence[Prediction]) -> CaseTable:
    """The cases of a run, each lane's answer with its per-case scores (see the module doc).

    >>> rows, _ = read_predictions(run.path)                    # doctest: +SKIP
    >>> case_table(run.report, rows).metrics                    # doctest: +SKIP
    ['accuracy']
    """
    output_type = report.profile.get("output_type")
    lanes = [lane.name for lane in report.lanes if any(p.lane == lane.name for p in predictions)]
    lanes += sorted({p.lane for p in predictions} - set(lanes))
    cases: dict[str, Case] = {}
    rows: dict[str, list[tuple[Case, Row]]] = {lane: [] for lane in lanes}
    for p in predictions:
        case = cases.setdefault(p.id, Case(p.id, p.input, p.reference))
        row = Row(p.id, p.input, p.reference, p.output, p.text, {}, p.extra)
        free = output_type == "free_text"
        case.answers[p.lane] = LaneAnswer(
            p.lane,
            p.output,
            p.text,
            p.latency_ms,
            p.extra,
            abstained=abstained(row) if free else p.extra.get("abstained") is True,
            invalid=_invalid(p.output, output_type),
        )
        rows[p.lane].append((case, row))
    reproduced, missing = [], {}
    for name in report.metric_names():
        metric = _metric(name, report)
        if metric is None:
            missing[name] = "needs the task file (not kept in the report)"
            continue
        scored = {}
        for lane in report.lanes:
            if name not in lane.metrics or lane.name not in rows:
                continue
            lane_rows = [r for _, r in rows[lane.name]]
            value = value_of(metric, lane_rows)
            if not math.isclose(value, lane.metrics[name].value, abs_tol=TOLERANCE):
                reported = lane.metrics[name].value
                missing[name] = (
                    f"{lane.name}: {value:.4f} from predictions.jsonl, {reported:.4f} in the "
                    "report (the metric reads fields predictions.jsonl does not keep)"
                )
                break
            scored[lane.name] = metric.case_scores(lane_rows)
        else:
            if not scored:
                continue
            reproduced.append(name)
            for lane_name, scores in scored.items():
                for (case, _), score in zip(rows[lane_name], scores, strict=True):
                    case.answers[lane_name].scores[name] = float(score)
    return CaseTable(lanes, list(cases.values()), reproduced, missing)


def filter_cases(
    table: CaseTable, show: str, a: str | None, b: str | None, metric: str | None, query: str = ""
) -> list[Case]:
    """The cases the filter `show` (a key of FILTERS) keeps, then those matching `query`."""
    out = []
    needle = query.strip().lower()
    for case in table.cases:
        if needle and needle not in case.input.lower() and needle not in case.id.lower():
            continue
        if show in ("a_better", "b_better", "flips"):
            if not (a and b and metric):
                continue
            sa, sb = case.score(a, metric), case.score(b, metric)
            if math.isnan(sa) or math.isnan(sb):
                continue
            keep = {"a_better": sa > sb, "b_better": sb > sa, "flips": sa != sb}[show]
            if not keep:
                continue
        elif (show == "abstained" and not any(x.abstained for x in case.answers.values())) or (
            show == "invalid" and not any(x.invalid for x in case.answers.values())
        ):
            continue
        out.append(case)
    return out


def reported_flips(report: Report, a: str, b: str, metric: str) -> tuple[int, int] | None:
    """The report's own count of cases A beats B and the reverse, to check ours against."""
    d = find_difference(report.comparisons, a, b, metric)
    return (d.a_better, d.b_better) if d is not None else None


# -- two runs -----------------------------------------------------------------------------------


@dataclass
class LaneDelta:
    lane: str
    a: MetricValue | None
    b: MetricValue | None

    @property
    def delta(self) -> float | None:
        return self.b.value - self.a.value if self.a and self.b else None


@dataclass
class CaseChange:
    id: str
    input: str
    score_a: float
    score_b: float


@dataclass
class RunDiff:
    """Run B against run A: what changed, lane by lane, and which cases flipped."""

    metric: str
    lanes: list[LaneDelta]
    changes: list[str]
    flips: dict[str, list[CaseChange]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _said(value: Any) -> str:
    return "none" if value in (None, "") else str(value)


def diff_runs(
    a: RunEntry, b: RunEntry, cases_a: CaseTable | None, cases_b: CaseTable | None
) -> RunDiff:
    """Run B minus run A on the primary metric (A's), lane by lane, with the changed cases."""
    ra, rb = a.report, b.report
    assert ra is not None and rb is not None
    metric = ra.primary_metric
    names = [lane.name for lane in ra.lanes]
    names += [lane.name for lane in rb.lanes if lane.name not in names]
    by_a = {lane.name: lane for lane in ra.lanes}
    by_b = {lane.name: lane for lane in rb.lanes}
    lanes = [
        LaneDelta(
            n,
            by_a[n].metrics.get(metric) if n in by_a else None,
            by_b[n].metrics.get(metric) if n in by_b else None,
        )
        for n in names
    ]
    changes = []
    checks = [
        ("task", ra.task, rb.task),
        ("primary metric", ra.primary_metric, rb.primary_metric),
        ("winner", ra.winner, rb.winner),
        ("plan", ra.decision.get("plan"), rb.decision.get("plan")),
        ("decision outcome", a.outcome, b.outcome),
        ("cases", ra.cases.get("sampling"), rb.cases.get("sampling")),
    ]
    for what, va, vb in checks:
        if va != vb:
            changes.append(f"{what}: {_said(va)} → {_said(vb)}")
    for n in names:
        if n not in by_b:
            changes.append(f"lane {n} only in A")
        elif n not in by_a:
            changes.append(f"lane {n} only in B")
        elif by_a[n].generator != by_b[n].generator:
            changes.append(f"{n} generator: {by_a[n].generator} → {by_b[n].generator}")
    for key in sorted(set(ra.versions) | set(rb.versions)):
        if ra.versions.get(key) != rb.versions.get(key):
            changes.append(f"{key}: {_said(ra.versions.get(key))} → {_said(rb.versions.get(key))}")
    diff = RunDiff(metric, lanes, changes)
    if cases_a is None or cases_b is None:
        diff.notes.append("a run without predictions.jsonl: no case-by-case comparison")
        return diff
    if metric not in cases_a.metrics or metric not in cases_b.metrics:
        diff.notes.append(f"{metric} has no per-case score in both runs, so flips are not shown")
        return diff
    b_cases = {c.id: c for c in cases_b.cases}
    shared = [c for c in cases_a.cases if c.id in b_cases]
    if len(shared) < max(len(cases_a.cases), len(cases_b.cases)):
        diff.notes.append(
            f"{len(shared)} cases are in both runs ({len(cases_a.cases)} in A, "
            f"{len(cases_b.cases)} in B); flips are over the shared ones"
        )
    for lane in names:
        if lane not in cases_a.lanes or lane not in cases_b.lanes:
            continue
        changed = []
        for case in shared:
            sa, sb = case.score(lane, metric), b_cases[case.id].score(lane, metric)
            if not (math.isnan(sa) or math.isnan(sb)) and sa != sb:
                changed.append(CaseChange(case.id, case.input, sa, sb))
        diff.flips[lane] = changed
    return diff
