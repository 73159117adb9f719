"""Every example under examples/: it loads, the router picks the plan the background article
would, citing measured signals, and it runs end to end at a small size on the fakes.

The data files are small slices of ../shared/data written by scripts/make_*_example.py; each
example keeps its train, dev and test splits apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.generators.base import Chat
from compoundai.profile import profile
from compoundai.router import Router
from compoundai.run import run_task
from compoundai.task import Task, load_task
from compoundai.testing import FakeGenerator
from tests.conftest import ROOT, label_echo_generator

EXAMPLES = ROOT / "examples"

# example -> (plan, top lane, signals the top lane's reasons must cite)
# the rules' plan for each example (the record of measured winners: tests/test_rules_record.py)
EXPECTED = {
    "squad_docs_qa": ("rag -> sft", "compound", {"n_train"}),
    "banking77": ("rag", "rag", {"n_train"}),
    "snips_json": ("rag -> sft", "compound", {"has_schema"}),
    "hh_preferences": ("prompt", "prompt", {"n_preference_pairs", "examples_tokens"}),
}


def task_file(name: str) -> Path:
    return EXAMPLES / name / "task.yaml"


# experiment -> the example whose data it reuses (scripts/reproduce.sh runs it by name)
EXPERIMENTS = {"snips_json_grpo": "snips_json"}


def test_every_example_is_listed():
    found = {p.parent.name for p in EXAMPLES.glob("*/task.yaml")}
    assert found == set(EXPECTED) | set(EXPERIMENTS)


def test_the_grpo_experiment_is_snips_with_grpo_after_sft():
    from compoundai.lanes import lanes_for

    task = load_task(task_file("snips_json_grpo"))
    base = load_task(task_file("snips_json"))
    for split in ("train", "dev", "test"):
        assert [e.id for e in task.split(split)] == [e.id for e in base.split(split)]
    assert task.metrics == base.metrics and task.spec.instructions == base.spec.instructions
    assert task.spec.finetune.grpo.enabled and not base.spec.finetune.grpo.enabled
    names = [lane.name for lane in lanes_for(["finetune"], task)]
    assert names == ["finetune/sft", "finetune/sft+grpo"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_data_is_small_split_and_credited(name):
    folder = EXAMPLES / name
    assert (folder / "README.md").is_file()
    sources = (folder / "data" / "SOURCES.md").read_text()
    assert "CC" in sources or "MIT" in sources  # the dataset's licence is credited
    task = load_task(task_file(name))
    assert task.split("train") and task.split("test")
    ids = {s: {e.id for e in task.split(s)} for s in ("train", "dev", "test")}
    assert not ids["train"] & ids["test"] and not ids["dev"] & ids["test"]
    assert not ids["train"] & ids["dev"]
    files = [*task.documents, *(Path(e.source.rsplit(":", 1)[0]) for e in task.split("test"))]
    for path in {*files, *(folder / "data").glob("*.jsonl")}:
        if path.name != "train_full.jsonl":  # banking77's full set, for sft.yaml only
            assert path.stat().st_size < 400_000, f"{path} is too big for an example"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_decision(name, fake_ctx):
    plan, top, signals = EXPECTED[name]
    prof = profile(load_task(task_file(name)), fake_ctx)
    decision = Router().decide(prof)
    assert decision.plan == plan
    assert decision.top_lane == top
    cited = {r.signal for r in decision.reasons if r.lane == top}
    assert signals <= cited
    assert decision.reasons[0].lane == top
    for reason in decision.reasons:
        if reason.signal != "baseline":
            assert getattr(prof, reason.signal) == reason.value  # the number is the profile's


def test_squad_profile_measures_the_answers_in_the_corpus(fake_ctx):
    prof = profile(load_task(task_file("squad_docs_qa")), fake_ctx)
    assert prof.n_passages == 217
    assert prof.corpus_tokens > prof.context_window
    # SQuAD answers are spans of their paragraph: every dev answer is found verbatim
    assert prof.answer_overlap == 1.0 and prof.answer_verbatim == 1.0
    assert prof.answers_measured == 73
    assert prof.unanswerable_share == 0.5


def test_preference_and_schema_signals(fake_ctx):
    hh = profile(load_task(task_file("hh_preferences")), fake_ctx)
    assert hh.n_preference_pairs == 200 and hh.n_preference_heldout == 90
    assert hh.answer_overlap is None  # no documents to look answers up in
    snips = profile(load_task(task_file("snips_json")), fake_ctx)
    assert snips.has_schema and snips.n_schema_fields == 41 and snips.n_train == 700


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_decide_json(name):
    result = CliRunner().invoke(cli, ["decide", str(task_file(name)), "--json", "--rules-only"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["plan"] == EXPECTED[name][0]
    assert {"lane", "signal", "value", "text"} <= set(data["reasons"][0])


def _fake_for(task: Task) -> FakeGenerator:
    """A fake generator that answers in the task's output format."""
    if task.spec.output.type == "labels":
        return label_echo_generator(task.labels)
    if task.spec.output.type == "json_schema":
        first = task.split("train")[0].output
        return FakeGenerator(lambda chat: json.dumps(first))
    echo: Callable[[Chat], str] = lambda chat: chat[-1]["content"].split()[-1]  # noqa: E731
    return FakeGenerator(echo)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_small_on_fakes(name, fake_ctx, tmp_path):
    task = load_task(task_file(name))
    fake_ctx.clients["generator"] = _fake_for(task)
    out = tmp_path / "out"
    report = run_task(task, out, lanes=["prompt"], limit=4, ctx=fake_ctx, mode="rules")
    data = json.loads((out / "report.json").read_text())
    assert data["decision"]["plan"] == EXPECTED[name][0]
    lanes = {lane["name"]: lane for lane in data["lanes"]}
    if task.documents:  # the documents go into the prompt only when they fit
        stuffed = lanes.pop("prompt/stuffed")
        assert stuffed["status"] == "not_built" and "do not fit" in stuffed["message"]
    assert set(lanes) == {"prompt/zero-shot", "prompt/5-shot"}
    for lane in lanes.values():
        assert lane["status"] == "ok", lane
        assert lane["n_cases"] == 4
        primary = lane["metrics"][task.metrics[0]]
        assert primary["ci_low"] <= primary["value"] <= primary["ci_high"]
    assert report.winner in lanes
