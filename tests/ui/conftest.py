"""Runs on disk for the UI tests, made by `run_task` with the fakes (seconds, no model).

Under `runs/`: two runs of banking77 (the second with a generator that errs more, so there are
cases that flip between them), one of squad_docs_qa (passages, citations, abstentions), a run
whose report.json is broken, and one without predictions.jsonl; under `systems/`: the squad
rag system, built and saved, for the playground. The UI is also given a folder that does not
exist.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from compoundai.context import RunContext
from compoundai.testing import HashEmbedder
from tests.conftest import BANKING, ROOT
from tests.ui import fakes

SQUAD = ROOT / "examples" / "squad_docs_qa" / "task.yaml"


@dataclass
class UIRuns:
    base: Path
    runs: Path
    systems: Path
    missing: Path
    cache: Path

    @property
    def dirs(self) -> list[Path]:
        return [self.runs, self.systems, self.missing]


def fake_run_context(cache: Path, *, worse: bool = False) -> RunContext:
    ctx = RunContext(cache_dir=cache, progress=False)
    ctx.clients["generator"] = fakes.generator(worse=worse)
    ctx.clients["embedder"] = HashEmbedder()
    return ctx


@pytest.fixture(scope="session")
def ui_runs(tmp_path_factory) -> UIRuns:
    from compoundai.build import build_system
    from compoundai.run import run_task

    base = tmp_path_factory.mktemp("ui")
    made = UIRuns(base, base / "runs", base / "systems", base / "not-there", base / "cache")
    runs = made.runs
    run_task(BANKING, runs / "banking-a", lanes=["prompt", "rag"], limit=20,
             ctx=fake_run_context(made.cache))  # fmt: skip
    run_task(BANKING, runs / "banking-b", lanes=["prompt", "rag"], limit=20,
             ctx=fake_run_context(made.cache, worse=True))  # fmt: skip
    run_task(SQUAD, runs / "squad", lanes=["prompt", "rag"], limit=20,
             ctx=fake_run_context(made.cache))  # fmt: skip
    (runs / "broken").mkdir()
    (runs / "broken" / "report.json").write_text('{"task": "half a report", "lanes": [')
    (runs / "no-predictions").mkdir()
    shutil.copy(runs / "banking-a" / "report.json", runs / "no-predictions" / "report.json")
    build_system(SQUAD, made.systems / "squad-rag", lane="rag", ctx=fake_run_context(made.cache))
    return made
