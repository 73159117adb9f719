"""A report assembled from what `compare` measured, written as files, and read back.

`build_report` is the one place a `Report` is put together (the main job, `compare`, and the
tests' scripted reports all call it): the verdict, the decision check, the sampling note, the
versions. `write_reports` writes report.json, report.md and report.html together (temporary
files, then renames) and `load_report` reads a saved report back, so the Markdown and HTML can
be rendered again without running anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compoundai.provenance import now, versions
from compoundai_evaluators.compare import Comparison
from compoundai_evaluators.cost import PriceTable
from compoundai_evaluators.html import render_html
from compoundai_evaluators.markdown import render_markdown
from compoundai_evaluators.report import LaneResult, Report
from compoundai_evaluators.verdict import decide_verdict


def build_report(
    task: str,
    comparison: Comparison,
    *,
    primary_metric: str,
    decision: dict[str, Any],
    profile: dict[str, Any] | None = None,
    failures: Sequence[LaneResult] = (),
    constraints: dict[str, Any] | None = None,
    prices: PriceTable | None = None,
    cases: dict[str, Any] | None = None,
    max_forgetting: float = 0.10,
) -> tuple[Report, dict[str, list[Any]]]:
    """The report of one comparison, and every lane's answers (for predictions.jsonl).

    `decision` is the router's (`Decision.model_dump()`): its `plan`, `lane` and top-ranked
    family are what the decision check compares with the winner. `failures` are the lanes
    that could not be built, listed with their reason.

    >>> report, predictions = build_report("banking77", comparison, primary_metric="accuracy",
    ...                                    decision=decision.model_dump())  # doctest: +SKIP
    """
    lanes = [*comparison.lanes, *failures]
    constraints = constraints or {}
    judged = _judge(lanes, comparison.differences, primary_metric, decision, constraints,
                    max_forgetting)  # fmt: skip
    predictions = {r.name: r.info.pop("predictions", []) for r in lanes}
    report = Report(
        task=task,
        decision=decision,
        profile=profile or {},
        lanes=lanes,
        primary_metric=primary_metric,
        **judged,
        comparisons=comparison.differences,
        metric_descriptions=comparison.descriptions,
        constraints=constraints,
        prices=(prices or PriceTable()).model_dump(),
        cases=cases or {},
        created=now(),
        versions=versions(),
    )
    return report, predictions


def _judge(
    lanes: Sequence[LaneResult],
    differences: Sequence[Any],
    primary_metric: str,
    decision: dict[str, Any],
    constraints: dict[str, Any],
    max_forgetting: float,
) -> dict[str, Any]:
    """The verdict and the fields of a `Report` that follow from it."""
    ranked = decision.get("ranked") or [{"lane": decision.get("plan", "")}]
    verdict = decide_verdict(
        lanes,
        differences,
        primary_metric,
        ranked[0]["lane"],
        constraints,
        max_forgetting=max_forgetting,
        plan=decision.get("plan"),
        plan_lane=decision.get("lane"),
    )
    check = verdict.decision_check
    outcome = check.outcome if check is not None else None
    return {
        "winner": verdict.overall,
        # right when the plan's lane won or is tied with the winner within the margin
        "router_correct": None if outcome is None else outcome != "wrong",
        "router_note": check.note if check is not None else verdict.router.note,
        "decision_check": check,
        "verdict": verdict,
    }


def rejudge_report(report: Report) -> Report:
    """The report with its verdict and decision check computed again from its own saved
    measurements (lanes, paired differences, constraints, decision) by this version's rules:
    what `compoundai report --rejudge` does after a fix to the rules of judgement."""
    gate = report.verdict.max_forgetting if report.verdict is not None else 0.10
    judged = _judge(report.lanes, report.comparisons, report.primary_metric, report.decision,
                    report.constraints, gate)  # fmt: skip
    return report.model_copy(update=judged)


def load_report(path: str | Path) -> Report:
    """Read `report.json` (a file or the directory holding it).

    >>> report = load_report("out/banking77")  # doctest: +SKIP
    >>> report.winner                          # doctest: +SKIP
    'prompt/5-shot'
    """
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    return Report.model_validate_json(path.read_text(encoding="utf-8"))


def write_reports(
    report: Report, out_dir: str | Path, predictions: dict[str, list[Any]] | None = None
) -> dict[str, Path]:
    """Write report.json, report.md, report.html (and predictions.jsonl when given).

    >>> write_reports(report, "out/banking77")["html"]  # doctest: +SKIP
    PosixPath('out/banking77/report.html')
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "json": ("report.json", report.model_dump_json(indent=2) + "\n"),
        "md": ("report.md", render_markdown(report)),
        "html": ("report.html", render_html(report)),
    }
    if predictions is not None:
        lines = [
            json.dumps({"lane": lane, **row}, ensure_ascii=False, default=str)
            for lane, rows in predictions.items()
            for row in rows
        ]
        files["predictions"] = ("predictions.jsonl", "".join(line + "\n" for line in lines))
    written = {}
    for kind, (name, text) in files.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
        written[kind] = out / name
    return written
