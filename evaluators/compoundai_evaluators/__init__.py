"""compoundai_evaluators: metrics, the lane-comparison runner, statistics and reports."""

from compoundai_evaluators.compare import compare, sample_cases
from compoundai_evaluators.metrics import METRICS
from compoundai_evaluators.report import LaneResult, Report, render_markdown

__all__ = ["METRICS", "LaneResult", "Report", "compare", "render_markdown", "sample_cases"]
