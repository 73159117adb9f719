"""Scripted lanes for the evaluator tests: five systems that differ in known ways.

Each `ScriptedSystem` answers a case correctly when a hash of the case id falls under its
accuracy, so lanes disagree on known cases and the paired statistics have something to find.
The rag lane carries retrieved ids and passages; the fine-tuned lanes carry training time and
(for one) a forgetting record, so the verdict and the release gate have real inputs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from compoundai.contract import Answer, BuildInfo, ForgettingFacts, TrainingFacts
from compoundai.data import Example
from compoundai.testing import FakeGenerator
from compoundai_evaluators import Report, compare
from compoundai_evaluators.cost import PriceTable

LABELS = ["card_arrival", "exchange_rate", "top_up", "lost_card", "refund", "pin_blocked"]


def _unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


class ScriptedSystem:
    """A lane stand-in: right on a share `accuracy` of cases (chosen by hash), else wrong."""

    def __init__(
        self,
        name: str,
        lane: str,
        accuracy: float,
        latency_ms: float,
        *,
        retrieves: bool = False,
        info: BuildInfo | None = None,
    ) -> None:
        self.name, self.lane, self.accuracy = name, lane, accuracy
        self.latency_ms, self.retrieves = latency_ms, retrieves
        self.generator = FakeGenerator(name=f"fake-{lane}")
        self.info = info or BuildInfo()
        self.calls = 0
        self.truth: dict[str, str] = {}

    def batch(self, inputs: list[str]) -> list[Answer]:
        self.calls += len(inputs)
        out = []
        for text in inputs:
            gold = self.truth[text]
            right = _unit(text) < self.accuracy
            label = gold if right else LABELS[(LABELS.index(gold) + 1) % len(LABELS)]
            extra: dict[str, Any] = {}
            if self.retrieves:
                extra = {
                    "retrieved_ids": [f"{gold}.md#0" if right else "other.md#1", "faq.md#2"],
                    "contexts": [f"Customers asking about {gold.replace('_', ' ')} get help."],
                }
            out.append(Answer(label, label, 40, 2, self.latency_ms * (0.8 + _unit(label)), extra))
        return out


def make_cases(n: int = 120) -> list[Example]:
    return [
        Example(
            f"case-{i}",
            f"message {i} about {LABELS[i % 6]}",
            LABELS[i % 6],
            {"doc_id": LABELS[i % 6] + ".md"},
        )
        for i in range(n)
    ]


def make_systems(cases: list[Example]) -> list[ScriptedSystem]:
    systems = [
        ScriptedSystem("prompt/zero-shot", "prompt", 0.45, 40),
        ScriptedSystem("prompt/5-shot", "prompt", 0.62, 90),
        ScriptedSystem("rag", "rag", 0.66, 140, retrieves=True, info=BuildInfo(build_seconds=20)),
        ScriptedSystem(
            "finetune",
            "finetune",
            0.93,
            45,
            info=BuildInfo(
                training=TrainingFacts(train_seconds=900, tokens=250_000),
                forgetting=ForgettingFacts(perplexity_before=20.0, perplexity_after=20.8),
            ),
        ),
        ScriptedSystem(
            "compound",
            "compound",
            0.94,
            160,
            retrieves=True,
            info=BuildInfo(training=TrainingFacts(train_seconds=1200)),
        ),
    ]
    for s in systems:
        s.truth = {c.input: str(c.output) for c in cases}
    return systems


def build_report(out_cache: Path | None = None, n: int = 120) -> Report:
    """A full report from scripted lanes, assembled as `run_task` does (`build_report`)."""
    from compoundai_evaluators import build_report as assemble
    from compoundai_evaluators.cache import OutputCache

    cases = make_cases(n)
    comparison = compare(
        make_systems(cases),
        cases,
        ["accuracy", "macro_f1"],
        cache=OutputCache(out_cache) if out_cache else None,
        prices=PriceTable(),
    )
    report, _ = assemble(
        "scripted-intents",
        comparison,
        primary_metric="accuracy",
        decision={
            "plan": "sft",
            "lane": "finetune",
            "ranked": [{"lane": "finetune", "score": 3.0}, {"lane": "prompt", "score": 1.5}],
            "reasons": [
                {"lane": "finetune", "signal": "n_labels", "value": 6, "text": "a fixed label set"}
            ],
        },
        constraints={"max_latency_ms": 190.0, "local_only": True},
        prices=PriceTable(),
        cases={"split": "test", "n": n, "sampling": f"all {n} cases"},
    )
    report.versions = {"python": "3"}
    return report


@pytest.fixture(scope="session")
def scripted_report() -> Report:
    return build_report()
