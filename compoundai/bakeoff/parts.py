"""The pieces of a bake-off: measurements (`Rung`), lanes being measured (`Candidate`), the
budget clock, the first rung's share and settings, feasibility, the latency screen, and the
learning-curve fit."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compoundai.lanes import Lane
from compoundai.lanes.rungs import TrainingPlan
from compoundai.task import Task

FIRST_SHARE = 0.125  # the first rung's share of a training lane's data
MIN_RUNG_ROWS = 48  # ... but never fewer rows than this


@dataclass
class Rung:
    """One measurement of one lane: on `units` dev cases (or pairs), at a data share."""

    lane: str  # the name of what was measured (a rung lane: `finetune/sft@12%`)
    stage: str  # cheap | rung
    share: float
    units: int
    value: float
    ci_low: float
    ci_high: float
    seconds: float  # build + evaluation wall time
    per_case_ms: float
    p95_ms: float
    train_seconds: float = 0.0
    train_tokens: int = 0
    steps: int | None = None
    plan: TrainingPlan | None = None
    stats: np.ndarray | None = field(default=None, repr=False)  # per-unit metric statistics
    latencies: tuple[float, ...] = field(default=(), repr=False)  # per case, ms
    tokens_per_case: float = 0.0  # prompt and answer tokens a case read and wrote


@dataclass
class Candidate:
    """A lane being measured: its rungs so far, and why it stopped, if it did."""

    lane: Lane
    trains: bool
    rungs: list[Rung] = field(default_factory=list)
    stopped: str | None = None
    plan: TrainingPlan | None = None  # training lanes: the settings chosen on the first rung
    remote: bool = False
    too_slow: bool = False  # stopped because its p95 latency is over the task's cap

    @property
    def name(self) -> str:
        return self.lane.name

    @property
    def family(self) -> str:
        return self.lane.family


class Budget:
    """Wall-clock budget of a decision; `fits(seconds)` says whether more work fits in it."""

    def __init__(self, minutes: float | None) -> None:
        self.seconds = None if minutes is None else minutes * 60
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def fits(self, estimate: float) -> bool:
        return self.seconds is None or self.elapsed + estimate <= self.seconds


def first_share(rows: int) -> float:
    """The first rung's share: `FIRST_SHARE`, but at least `MIN_RUNG_ROWS` rows.

    >>> first_share(1540), first_share(200), first_share(40)
    (0.125, 0.25, 1.0)
    """
    share = FIRST_SHARE
    while share < 1 and share * rows < MIN_RUNG_ROWS:
        share *= 2
    return min(share, 1.0)


def over_latency_cap(latencies: Sequence[float], cap: float) -> str | None:
    """Why a lane's p95 latency is over `cap`, from a few cases (None: not shown): more than
    half of them took longer. On any sample the p95 is at least the median, so a lane whose
    median case is over the cap is over it at p95 too; a lane near the cap, or slow on a few
    cases, is left to the whole sample and the choice. It is a rule on the sample, not a test:
    cases a local model answers in one batch share the batch's time per case, so they are not
    independent draws, and no p-value is claimed.

    >>> over_latency_cap([2500, 3100, 2600, 2900, 2050, 700, 950, 990], 2000)
    '5 of 8 cases over the 2000 ms cap (median 2275 ms)'
    >>> over_latency_cap([2500, 3100, 2600, 2900, 800, 700, 950, 990], 2000) is None
    True
    """
    n = len(latencies)
    k = sum(1 for ms in latencies if ms > cap)
    if n == 0 or 2 * k <= n:
        return None
    return f"{k} of {n} cases over the {cap:g} ms cap (median {float(np.median(latencies)):.0f} ms)"


def default_grid(task: Task) -> list[dict[str, Any]]:
    """The settings tried on a training lane's first rung: the task's learning rate with the
    task's batch, and twice the learning rate with a quarter of the batch (four times the
    optimizer steps per epoch)."""
    finetune = task.spec.finetune
    return [
        {},
        {
            "learning_rate": finetune.learning_rate * 2,
            "tokens_per_batch": max(256, finetune.tokens_per_batch // 4),
        },
    ]


def infeasible(lane: Lane, task: Task) -> str | None:
    """Why a lane cannot be built for this task, said before any work (None: it can)."""
    spec = task.spec
    train = task.split("train")
    family = lane.family
    if family in ("finetune", "compound") and spec.models.openai_base_url:
        return "it trains a local model and the task's generator is a server"
    # (a free-text task with documents trains compound on QA pairs synthesised from them)
    if (
        family == "compound"
        and not train
        and (spec.output.type != "free_text" or not task.documents)
    ):
        return "no training examples"
    if family == "finetune" and not train and not task.preferences.get("train"):
        return "no training examples or preference pairs"
    if getattr(lane, "name", "") == "prompt/stuffed" and not task.documents:
        return "no documents to put in the prompt"
    if getattr(lane, "name", "") == "prompt/5-shot" and not train:
        return "no training examples to draw demonstrations from"
    if family == "rag":
        mode = getattr(lane, "mode", "")
        if mode in ("context", "bm25") and not task.documents:
            return "no documents to retrieve from"
        if mode in ("knn-vote", "demos") and not train:
            return "no training examples to retrieve"
    if family == "compound" and spec.output.type == "free_text" and not task.documents:
        return "no documents for the retrieval-augmented adapter"
    if "dpo" in getattr(lane, "stages", ()) and not task.preferences.get("train"):
        return "no preference pairs for DPO"
    return None


def _fit_at_full(x: np.ndarray, y: np.ndarray) -> float:
    """The least-squares line of `y` against `x` (log2 share), read at x = 0 (share 1)."""
    if not np.all(np.isfinite(y)):
        return float("nan")
    if np.ptp(x) == 0:
        return float(y[-1])
    _, intercept = np.polyfit(x, y, 1)
    return float(min(max(intercept, min(0.0, y.min())), max(1.0, y.max())))
