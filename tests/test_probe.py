"""Probe mode: the cheap lanes measured on dev can overturn the rules, and say so."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.errors import UserInputError
from compoundai.probe import probe
from compoundai.profile import profile
from compoundai.router import Decision, RankedLane, Router
from compoundai.task import load_task
from compoundai.testing import FakeGenerator
from tests.conftest import BANKING, label_echo_generator


@pytest.fixture
def task():
    return load_task(BANKING)


def test_a_good_enough_cheap_lane_overturns_training(task, fake_ctx):
    fake_ctx.clients["generator"] = label_echo_generator(task.labels)
    rules = Router().decide(profile(task, fake_ctx))
    assert rules.top_lane == "finetune"
    stands = probe(task, rules, fake_ctx, cases=40, good_enough=1.01)
    assert stands.plan == rules.plan and not stands.probe["overturned"]
    assert "training may pay off" in stands.probe["note"]
    lanes = {p["lane"]: p for p in stands.probe["lanes"]}
    assert {"prompt/zero-shot", "prompt/5-shot", "rag/knn-vote", "rag/demos"} <= set(lanes)
    assert stands.probe["split"] == "dev" and stands.probe["cases"] == 40
    best_low = max(p["ci_low"] for p in lanes.values())

    overturned = probe(task, rules, fake_ctx, cases=40, good_enough=best_low)
    p = overturned.probe
    assert p["overturned"] and p["rule_plan"] == rules.plan and p["rule_top"] == "finetune"
    assert overturned.top_lane in ("prompt", "rag") and overturned.plan == overturned.top_lane
    assert overturned.reasons[0].signal == "probe.accuracy" and "without training" in p["note"]
    assert sorted(r.lane for r in overturned.ranked) == sorted(r.lane for r in rules.ranked)


def test_the_other_cheap_family_wins_only_when_clearly_better(task, fake_ctx):
    fake_ctx.clients["generator"] = FakeGenerator(default="not a label")
    prompt_first = Decision(
        plan="prompt",
        ranked=[RankedLane(lane=n, score=s) for n, s in [("prompt", 3), ("rag", 2)]],
        reasons=[],
    )
    d = probe(task, prompt_first, fake_ctx, cases=60)
    scores = {p["lane"]: p["value"] for p in d.probe["lanes"]}
    assert scores["rag/knn-vote"] > scores["prompt/zero-shot"] + 0.3
    assert d.probe["overturned"] and d.top_lane == "rag"
    assert d.probe["note"].startswith("overturned: rag/")


def test_probe_needs_a_dev_split(tmp_path, fake_ctx):
    (tmp_path / "train.jsonl").write_text(
        '{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n'
    )
    (tmp_path / "task.yaml").write_text(
        "name: t\ninstructions: Label it.\noutput: {type: labels, labels: [x, y]}\n"
        "examples: {input_field: text, output_field: label, train: train.jsonl,"
        " test: train.jsonl}\n"
    )
    task = load_task(tmp_path / "task.yaml")
    with pytest.raises(UserInputError, match="needs a dev split"):
        probe(task, Router().decide(profile(task, fake_ctx)), fake_ctx)


def test_decide_probe_json_records_the_bake_off(tmp_path, monkeypatch):
    import compoundai.probe as probe_module

    def fake_probe(task, decision, ctx, cases, good_enough):
        assert cases == 12 and good_enough == 0.5
        return decision.model_copy(update={"probe": {"overturned": False, "note": "n"}})

    monkeypatch.setattr(probe_module, "probe", fake_probe)
    out = CliRunner().invoke(
        cli, ["decide", str(BANKING), "--json", "--probe", "12", "--good-enough", "0.5"]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["probe"] == {"overturned": False, "note": "n"} and data["plan"]
    plain = json.loads(CliRunner().invoke(cli, ["decide", str(BANKING), "--json"]).output)
    assert "probe" not in plain and set(plain) == {"plan", "lane", "ranked", "reasons"}


def test_the_probe_judges_by_answer_quality_not_retrieval_or_validity():
    from compoundai.probe import probe_metric

    assert probe_metric(["json_valid", "schema_adherence", "slot_f1"]) == "schema_adherence"
    assert probe_metric(["recall_at_5", "mrr", "f1"]) == "f1"
    assert probe_metric(["accuracy", "macro_f1"]) == "accuracy"


def test_probe_size_must_be_positive():
    out = CliRunner().invoke(cli, ["decide", str(BANKING), "--probe", "0"])
    assert out.exit_code == 2 and "--probe" in out.output
