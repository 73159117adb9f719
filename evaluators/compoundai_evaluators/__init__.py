"""compoundai_evaluators: metrics, the lane-comparison runner, statistics, verdict and reports.

compare(systems, cases, metrics) -> Comparison     every lane on the same cases
decide_verdict(lanes, differences, ...) -> Verdict  winners, router check, release gate
build_report(task, comparison, ...) -> Report       the verdict and the decision check
write_reports(report, out_dir)                      report.json, report.md, report.html
"""

from compoundai_evaluators.cache import OutputCache, fingerprint
from compoundai_evaluators.compare import Comparison, compare
from compoundai_evaluators.cost import PriceTable, TokenPrice, load_prices
from compoundai_evaluators.evaluable import Evaluable
from compoundai_evaluators.html import render_html
from compoundai_evaluators.judge import LLMJudge
from compoundai_evaluators.markdown import render_markdown
from compoundai_evaluators.metrics import METRICS, Metric, Row, resolve_metrics
from compoundai_evaluators.probes import local_perplexity_hook
from compoundai_evaluators.publish import build_report, load_report, write_reports
from compoundai_evaluators.report import LaneResult, Report
from compoundai_evaluators.verdict import decide_verdict

__all__ = [
    "METRICS",
    "Comparison",
    "Evaluable",
    "LLMJudge",
    "LaneResult",
    "Metric",
    "OutputCache",
    "PriceTable",
    "Report",
    "Row",
    "TokenPrice",
    "build_report",
    "compare",
    "decide_verdict",
    "fingerprint",
    "load_prices",
    "load_report",
    "local_perplexity_hook",
    "render_html",
    "render_markdown",
    "resolve_metrics",
    "write_reports",
]
