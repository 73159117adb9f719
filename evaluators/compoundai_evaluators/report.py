"""The report: `report.json` is the source of truth (pydantic); `report.md` is rendered from it.

Field names follow DESIGN.md "Machine-readable outputs" and may grow, never be renamed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricValue(Strict):
    value: float
    ci_low: float
    ci_high: float


class Latency(Strict):
    p50: float
    p95: float


class LaneResult(Strict):
    name: str
    family: str
    status: str = "ok"  # ok | not_built | failed
    message: str = ""
    n_cases: int = 0
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    latency_ms: Latency | None = None
    cost: dict[str, float] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)


class Report(Strict):
    task: str
    decision: dict[str, Any]
    profile: dict[str, Any] = Field(default_factory=dict)
    lanes: list[LaneResult]
    primary_metric: str
    winner: str | None
    router_correct: bool | None
    router_note: str = ""
    cases: dict[str, Any] = Field(default_factory=dict)
    created: str = ""
    versions: dict[str, str] = Field(default_factory=dict)


def _fmt(m: MetricValue) -> str:
    return f"{m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]"


def render_markdown(report: Report) -> str:
    """A readable summary: decision, one table of lanes, verdict."""
    lines = [f"# compoundai report: {report.task}", ""]
    d = report.decision
    lines += [f"**Router's plan:** `{d['plan']}`  ", ""]
    lines += ["| rank | lane | score |", "|---|---|---|"]
    lines += [f"| {i} | {r['lane']} | {r['score']} |" for i, r in enumerate(d["ranked"], 1)]
    lines += ["", "Reasons:", ""]
    lines += [
        f"- **{r['lane']}** ({r['signal']} = {r['value']}): {r['text']}" for r in d["reasons"]
    ]
    c = report.cases
    lines += [
        "",
        f"## Lanes on the same {c.get('n', '?')} held-out cases",
        "",
        f"Split `{c.get('split')}`, {c.get('sampling', '')}; "
        "95% paired-bootstrap intervals in brackets.",
        "",
    ]
    metric_names = sorted(
        {m for lane in report.lanes for m in lane.metrics},
        key=lambda m: (m != report.primary_metric, m),
    )
    head = ["lane", *metric_names, "latency p50 / p95 (ms)", "prompt tokens / case", "status"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lane in report.lanes:
        cells = [f"**{lane.name}**" if lane.name == report.winner else lane.name]
        cells += [_fmt(lane.metrics[m]) if m in lane.metrics else "-" for m in metric_names]
        lat = lane.latency_ms
        cells.append(f"{lat.p50:.0f} / {lat.p95:.0f}" if lat else "-")
        per_case = lane.cost.get("prompt_tokens", 0) / lane.n_cases if lane.n_cases else 0
        cells.append(f"{per_case:.0f}" if lane.n_cases else "-")
        cells.append(lane.status if lane.status == "ok" else f"{lane.status}: {lane.message}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Verdict", ""]
    if report.winner:
        lines.append(f"Winner on `{report.primary_metric}`: **{report.winner}**.")
    else:
        lines.append("No lane produced results.")
    verdict = {True: "matched", False: "did not match", None: "could not be checked"}
    lines.append(
        f"Router's prediction {verdict[report.router_correct]} the measured winner. "
        f"{report.router_note}"
    )
    lines += [
        "",
        f"_Generated {report.created}; "
        + ", ".join(f"{k} {v}" for k, v in report.versions.items())
        + "._",
        "",
    ]
    return "\n".join(lines)
