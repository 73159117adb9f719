"""The measured decision with fakes: every stage, the halving rule, the budget cut-off, the
no-dev-split path, and the reuse of a rung's adapter."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from compoundai.bakeoff import BakeOff, decision_data, first_share
from compoundai.cli import cli
from compoundai.context import RunContext
from compoundai.contract import BuildInfo, OutputContract, TrainingFacts
from compoundai.lanes import PromptLane, RagLane
from compoundai.lanes.prompt import contract_of
from compoundai.lanes.rungs import TrainingPlan
from compoundai.run import run_task
from compoundai.system import CompoundSystem
from compoundai.task import Task, load_task
from compoundai.testing import FakeGenerator, HashEmbedder
from tests.conftest import BANKING, label_echo_generator


def _unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


class ScriptedTrainer:
    """A training lane whose accuracy grows with its data: `base + gain * share`. On a JSON
    task a wrong answer is text that is not JSON; `latency_ms` is what each answer reports."""

    family = "finetune"

    def __init__(
        self,
        name: str,
        base: float,
        gain: float,
        seconds: float = 5.0,
        latency_ms: float | None = None,
    ) -> None:
        self.name, self.base, self.gain, self.seconds = name, base, gain, seconds
        self.latency_ms = latency_ms
        self.seen_rows: list[int] = []
        self.seen_ids: list[set[str]] = []

    def build(self, task: Task, ctx: RunContext) -> CompoundSystem:
        train = task.split("train")
        self.seen_rows.append(len(train))
        self.seen_ids.append({e.id for e in train})
        full = len(TRAIN_ROWS[task.name])
        accuracy = self.base + self.gain * len(train) / full
        truth = {e.input: e.output for split in task.examples.values() for e in split}
        labels = task.labels

        def answer(chat: list[dict[str, str]]) -> str:
            text = chat[-1]["content"]
            gold = truth[text]
            right = _unit(self.name + text) < accuracy
            if not labels:
                return json.dumps(gold) if right else "not json"
            return gold if right else labels[labels.index(gold) - 1]

        contract = (
            OutputContract("labels", list(labels))
            if labels
            else OutputContract("json_schema", json_schema=task.json_schema)
        )
        system = CompoundSystem(
            self.name,
            self.family,
            task.spec.instructions,
            contract,
            FakeGenerator(answer, name=f"fake-{self.name}", latency_ms=self.latency_ms),
            ctx=ctx,
            info=BuildInfo(training=TrainingFacts(train_seconds=self.seconds, tokens=1000)),
        )
        return system


TRAIN_ROWS: dict[str, list] = {}


def _fake_ctx(tmp_path: Path, task: Task) -> RunContext:
    ctx = RunContext(cache_dir=tmp_path / "cache", progress=False)
    ctx.clients["embedder"] = HashEmbedder()
    ctx.clients["generator"] = label_echo_generator(task.labels)
    TRAIN_ROWS[task.name] = task.split("train")
    return ctx


@pytest.fixture
def banking() -> Task:
    return load_task(BANKING)


def _cheap() -> list:
    return [PromptLane(0), PromptLane(5), RagLane("knn-vote"), RagLane("demos")]


def test_cheap_lanes_are_screened_on_a_small_sample_then_measured(banking, tmp_path):
    ctx = _fake_ctx(tmp_path, banking)
    decision = BakeOff(banking, ctx, lane_objects=_cheap(), budget_minutes=None).run()
    assert decision.mode == "measured" and decision.split == "dev"
    cheap = [e for e in decision.evidence if e.stage == "cheap" and e.value is not None]
    # the task caps p95 latency: 8 probe cases first, then the first sample, then all
    assert {e.cases for e in cheap} == {8, 24, 64}
    assert {e.lane for e in cheap if e.cases == 24} == {lane.name for lane in _cheap()}
    # the chosen lane was measured on the whole decision sample and is tied with the best
    assert decision.lane in {e.lane for e in cheap if e.cases == 64}
    best = max(p["value"] for p in decision.predictions.values())
    assert decision.predictions[decision.lane]["value"] >= best - 0.02
    assert decision.plan in {"prompt", "rag"} and decision.metric == "accuracy"
    assert decision.reasons[0].signal == "dev.accuracy"


def test_a_lane_clearly_behind_on_the_first_sample_stops_there(banking, tmp_path):
    ctx = _fake_ctx(tmp_path, banking)
    ctx.clients["generator"] = FakeGenerator(default="not a label")  # LLM lanes: always wrong
    decision = BakeOff(banking, ctx, lane_objects=_cheap(), budget_minutes=None).run()
    stopped = [e for e in decision.evidence if e.note.startswith("clearly behind")]
    assert {e.lane for e in stopped} >= {"prompt/zero-shot"}
    assert decision.lane == "rag/knn-vote"


def test_halving_gives_rungs_to_the_lane_that_can_reach_the_leader(banking, tmp_path):
    ctx = _fake_ctx(tmp_path, banking)
    good = ScriptedTrainer("finetune/sft", base=0.55, gain=0.45)
    poor = ScriptedTrainer("finetune/sft+dpo", base=0.0, gain=0.05)
    decision = BakeOff(
        banking, ctx, lane_objects=[*_cheap(), good, poor], budget_minutes=None, settings_grid=[{}]
    ).run()
    rungs = [e for e in decision.evidence if e.stage == "rung" and e.value is not None]
    good_shares = [e.data_share for e in rungs if e.lane.split("@")[0] == "finetune/sft"]
    assert good_shares == sorted(good_shares) and good_shares[-1] == 1.0 and len(good_shares) >= 3
    assert [e.data_share for e in rungs if e.lane.startswith("finetune/sft+dpo")] == [0.125]
    assert any("cannot reach the leader" in e.note for e in decision.evidence if "dpo" in e.lane)
    # it trained on growing shares of the data: 1/8, 1/4, 1/2, all
    assert good.seen_rows == sorted(good.seen_rows) and good.seen_rows[0] == 192
    assert decision.lane == "finetune/sft" and decision.plan == "sft"
    assert decision.training_plans["finetune/sft"]["share"] == 1.0


def test_the_budget_stops_training_lanes_and_the_cheap_lanes_decide(banking, tmp_path):
    ctx = _fake_ctx(tmp_path, banking)
    good = ScriptedTrainer("finetune/sft", base=0.55, gain=0.45)
    decision = BakeOff(
        banking, ctx, lane_objects=[*_cheap(), good], budget_minutes=0.01, settings_grid=[{}]
    ).run()
    assert any(e.note.startswith("budget") for e in decision.evidence if "finetune/sft" in e.lane)
    assert good.seen_rows == []  # not even the first rung was trained
    assert decision.lane != "finetune/sft"


def test_the_first_rung_tries_each_setting_and_keeps_the_better(banking, tmp_path):
    ctx = _fake_ctx(tmp_path, banking)
    good = ScriptedTrainer("finetune/sft", base=0.55, gain=0.45)
    grid = [{"learning_rate": 1e-3}, {"learning_rate": 2e-3, "tokens_per_batch": 1024}]
    decision = BakeOff(
        banking, ctx, lane_objects=[*_cheap(), good], budget_minutes=None, settings_grid=grid
    ).run()
    first = [e for e in decision.evidence if e.lane.startswith("finetune/sft@")][:2]
    assert [e.settings for e in first] == grid
    chosen = decision.training_plans["finetune/sft"]
    assert chosen["learning_rate"] in (1e-3, 2e-3)


def test_the_second_sft_lane_takes_the_settings_the_first_one_chose(banking, tmp_path):
    ctx = _fake_ctx(tmp_path, banking)
    sft = ScriptedTrainer("finetune/sft", base=0.3, gain=0.2)
    compound = ScriptedTrainer("compound", base=0.3, gain=0.2)
    compound.family = "compound"
    grid = [{"learning_rate": 1e-3}, {"learning_rate": 2e-3, "tokens_per_batch": 1024}]
    decision = BakeOff(
        banking,
        ctx,
        lane_objects=[*_cheap(), sft, compound],
        budget_minutes=None,
        settings_grid=grid,
    ).run()
    rungs = [e for e in decision.evidence if e.stage == "rung" and e.value is not None]
    first_sft = [e for e in rungs if e.lane.startswith("finetune/sft@")][:2]
    assert [e.settings for e in first_sft] == grid
    chosen = max(first_sft, key=lambda e: e.value).settings
    first_compound = [e for e in rungs if e.lane.startswith("compound@")][:1]
    assert [e.settings for e in first_compound] == [chosen]
    assert len([e for e in rungs if e.lane.startswith("compound@") and e.data_share == 0.125]) == 1
    assert any("as chosen on finetune/sft" in e.note for e in decision.evidence)
    # without sharing, each lane searches the grid itself
    alone = BakeOff(
        banking,
        _fake_ctx(tmp_path / "b", banking),
        lane_objects=[*_cheap(), sft, compound],
        budget_minutes=None,
        settings_grid=grid,
        share_settings=False,
    ).run()
    again = [e for e in alone.evidence if e.lane.startswith("compound@") and e.value is not None]
    assert [e.settings for e in again[:2]] == grid


def _without_dev(tmp_path: Path) -> Path:
    spec = yaml.safe_load(BANKING.read_text())
    data = BANKING.parent / "data"
    spec["output"]["labels"] = str(data / "labels.json")
    spec["examples"] = {
        "input_field": "text",
        "output_field": "label",
        "train": str(data / "train.jsonl"),
        "test": str(data / "test.jsonl"),
    }
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_without_a_dev_split_a_train_slice_is_held_out_and_not_trained_on(tmp_path):
    task = load_task(_without_dev(tmp_path))
    ctx = _fake_ctx(tmp_path, task)
    good = ScriptedTrainer("finetune/sft", base=0.55, gain=0.45)
    bake = BakeOff(task, ctx, lane_objects=[*_cheap(), good], budget_minutes=None)
    decision = bake.run()
    assert decision.split == "train slice"
    held_out = bake.data.exclude
    assert len(held_out) == 64 and all(not (held_out & seen) for seen in good.seen_ids)
    assert "held out" in next(e.note for e in decision.evidence if e.stage == "rules")


def test_decision_data_on_preference_pairs_uses_the_dev_pairs():
    task = load_task(BANKING.parent.parent / "hh_preferences" / "task.yaml")
    data = decision_data(task, 64, 24, "preference_accuracy")
    assert data.cases == [] and len(data.pairs) == 30 and data.source == "dev"


def test_documents_without_dev_or_train_are_decided_on_a_synthetic_dev_set(tmp_path, monkeypatch):
    """A free-text task with documents only: the decision measures on a held-out share of the
    QA pairs synthesised from them, marked synthetic, which the compound lane never trains on."""
    from compoundai.bakeoff import needs_for_measuring
    from compoundai.lanes.compound import synthesised_examples, synthetic_split
    from compoundai.lanes.rag.store import RagStore

    # one pair per town survives deduplication and one in 4 is held out by a hash of its id
    # (which holds the temp path): 40 towns leave none held out with probability 1e-5
    facts = {f"Town{i}": f"product{i}" for i in range(40)}
    (tmp_path / "docs.jsonl").write_text(
        "".join(
            json.dumps({"doc_id": t, "text": f"{t} is a town that makes {p}."}) + "\n"
            for t, p in facts.items()
        )
    )
    (tmp_path / "test.jsonl").write_text(json.dumps({"id": "q", "q": "Town0?", "a": "x"}) + "\n")
    spec = {
        "name": "towns",
        "instructions": "Answer briefly.",
        "documents": ["docs.jsonl"],
        "examples": {"input_field": "q", "output_field": "a", "test": "test.jsonl"},
        "models": {"embedder": "hash:64"},
    }
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(spec))

    def writer(chat):  # the synthesis prompt holds one chunk; a lane's prompt is answered
        town = next((t for t in facts if f"{t} is a town" in chat[-1]["content"]), None)
        if town is None or "Q:" not in chat[0]["content"] + chat[-1]["content"]:
            return "product1"
        return "\n".join(
            f"Q: What does {town} make{'?' * n}\nA: {facts[town]}" for n in range(1, 4)
        )

    monkeypatch.setattr(
        "compoundai.lanes.prompt.shared_generator", lambda t, c: FakeGenerator(writer)
    )
    task = load_task(tmp_path / "task.yaml")
    ctx = RunContext(cache_dir=tmp_path / "cache", progress=False)
    ctx.clients["embedder"] = HashEmbedder()
    assert needs_for_measuring(task) is None
    with pytest.raises(Exception, match="held-out cases"):
        decision_data(task, 64, 24, "f1")  # without a ctx nothing can be synthesised
    data = decision_data(task, 64, 24, "f1", ctx)
    assert data.source == "synthetic dev" and "SYNTHETIC" in data.note
    assert data.cases and all(e.meta["synthetic"] for e in data.cases)
    store = RagStore.for_documents(task, ctx, HashEmbedder())
    everything, _ = synthesised_examples(task, ctx, store)
    trained, held = synthetic_split(everything)
    assert {e.id for e in data.cases} <= {e.id for e in held}
    assert trained and not {e.id for e in trained} & {e.id for e in data.cases}
    ctx.clients["generator"] = FakeGenerator(writer)
    decision = BakeOff(task, ctx, lane_objects=[PromptLane(0)], budget_minutes=None).run()
    assert decision.mode == "measured" and decision.split == "synthetic dev"
    assert any("SYNTHETIC" in (e.note or "") for e in decision.evidence)
    # no train split: a compound rung's estimate is its share of compound.max_train_rows (400)
    # synthesised pairs at most, not the empty split's zero rows
    compound = SimpleNamespace(family="compound")  # what the estimate reads of a candidate
    bake = BakeOff(task, ctx, budget_minutes=None)
    assert bake._first_estimate(compound, 0, TrainingPlan(share=0.25))[1].startswith("100 rows")
    # finetune/qa+sft's text leaves the synthetic dev pairs out too
    from compoundai.lanes.finetune_data import synthesised_qa

    (tmp_path / "qa").mkdir()
    text = synthesised_qa(task, ctx, tmp_path / "qa").read_text()
    assert all(e.input not in text for e in data.cases)
    assert all(e.input in text for e in trained)

    # no pair passes the filters: no synthetic dev set, and the rules decide, saying why
    from compoundai.run import decide

    monkeypatch.setattr(
        "compoundai.lanes.prompt.shared_generator", lambda t, c: FakeGenerator(lambda c: "no")
    )
    fresh = RunContext(cache_dir=tmp_path / "cache2", progress=False)
    fresh.clients["embedder"] = HashEmbedder()
    fallback = decide(task, fresh)
    assert fallback.mode == "rules" and "no synthetic dev set" in fallback.evidence[0].note


def test_first_share_keeps_enough_rows():
    assert first_share(1540) == 0.125 and first_share(100) == 0.5 and first_share(30) == 1.0


def test_decide_cli_rules_only_is_instant(tmp_path):
    args = ["--cache-dir", str(tmp_path / "c"), "decide", str(BANKING), "--json", "--rules-only"]
    rules = CliRunner().invoke(cli, args)
    assert rules.exit_code == 0, rules.output
    data = json.loads(rules.output)
    assert data["mode"] == "rules" and data["evidence"] == []


def test_run_reuses_the_rung_adapter_and_builds_the_plan_in_full(tmp_path, tiny_model_dir):
    """A real (tiny) finetune lane: `run` finds the decision's rung adapter in the cache."""
    from tests.adapters.conftest import LABELS, make_task

    rows = [
        {"text": f"{t} {i}", "label": lb}
        for i in range(96)
        for t, lb in [
            ("my card has not arrived", "card_arrival"),
            ("what is the exchange rate", "exchange_rate"),
            ("how do I top up", "top_up"),
        ][i % 3 : i % 3 + 1]
    ]
    path = make_task(tmp_path, tiny_model_dir, rows)
    spec = yaml.safe_load(path.read_text())
    (tmp_path / "dev.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows[:30]), encoding="utf-8"
    )
    spec["examples"]["dev"] = "dev.jsonl"
    spec["models"]["embedder"] = "hash:64"
    spec["decide"] = {"cases": 24, "first_cases": 12, "budget_minutes": 30}
    path.write_text(yaml.safe_dump(spec))
    task = load_task(path)
    ctx = RunContext(cache_dir=tmp_path / "cache", progress=False)
    ctx.clients["embedder"] = HashEmbedder()
    ctx.clients["generator"] = label_echo_generator(LABELS)
    # the cheap lanes are perfect on this toy task, so training stops at the first rung
    report = run_task(task, tmp_path / "out", lanes=["rag", "finetune"], ctx=ctx)
    # the adapter folders (each has its lock file beside it: compoundai.cache_lock)
    adapters = sorted(p for p in (ctx.cache_dir / "adapters").iterdir() if p.is_dir())
    rung_lanes = [lane for lane in report.lanes if "@" in lane.name]
    assert rung_lanes and rung_lanes[0].status == "ok", [r.message for r in report.lanes]
    assert report.decision["mode"] == "measured" and report.decision["evidence"]
    # the rung lane compared on test is the adapter the decision trained: nothing new
    assert sorted((ctx.cache_dir / "adapters").iterdir()) == sorted(
        [*adapters, *(a.with_name(a.name + ".lock") for a in adapters)]
    )
    assert len(adapters) == len(
        [e for e in report.decision["evidence"] if e["stage"] == "rung" and e["value"] is not None]
    )
    assert report.decision_check is not None and report.decision_check.outcome in (
        "matched",
        "tied",
        "wrong",
    )


def test_a_training_lane_the_budget_never_reached_is_compared_on_the_first_rung(banking):
    """Out of budget is no reason to train in full after the decision: the run builds the lane
    on the first rung's share, with the task's settings, and names it so."""
    from compoundai.router import Decision
    from compoundai.run import lanes_to_compare

    decision = Decision(
        plan="rag", lane="rag/knn-vote", ranked=[], reasons=[], mode="measured", training_plans={}
    )
    lanes = lanes_to_compare(banking, decision, ["finetune", "rag"], "measured")
    by_name = {lane.name: lane for lane in lanes}
    assert "finetune/sft@12%" in by_name, sorted(by_name)
    sft = by_name["finetune/sft@12%"]
    assert sft.plan.share == first_share(len(banking.split("train")))
    full = lanes_to_compare(banking, decision, ["finetune"], "full")
    assert [lane.name for lane in full] == ["finetune/sft"]


def test_knowledge_that_changes_daily_never_chooses_a_lane_that_trains_it_in(banking, tmp_path):
    doc = tmp_path / "faq.md"
    doc.write_text("# Cards\n\nA new card arrives within five working days.\n")
    banking.documents = [doc]
    banking.spec.constraints.knowledge_freshness = "daily"
    ctx = _fake_ctx(tmp_path, banking)
    # continued pretraining measures best by far; the decision still may not pick it
    pretrain = ScriptedTrainer("finetune/pretrain+sft", base=0.9, gain=0.1)
    decision = BakeOff(
        banking, ctx, lane_objects=[*_cheap(), pretrain], budget_minutes=None, settings_grid=[{}]
    ).run()
    assert pretrain.seen_rows  # measured, so the report shows what freshness costs
    assert not decision.lane.startswith("finetune/pretrain")
    why = [e.note for e in decision.evidence if e.lane.startswith("finetune/pretrain+sft")]
    assert any("excluded" in n and "changes daily" in n for n in why), why


# -- the latency cap: lanes clearly over it stop early, and the minutes go to the others ------

SNIPS = BANKING.parent.parent / "snips_json" / "task.yaml"


def _snips_generator(task: Task, slow: Callable[[list], bool]) -> FakeGenerator:
    """A fake whose answers are the gold JSON and whose latency is 5 s where `slow(chat)`,
    0.3 s elsewhere (the task caps p95 at 2 s)."""
    truth = {e.input: e.output for split in task.examples.values() for e in split}
    return FakeGenerator(
        lambda chat: json.dumps(truth[chat[-1]["content"]]),
        latency_ms=lambda chat: 5000.0 if slow(chat) else 300.0,
    )


def _snips_ctx(tmp_path: Path, task: Task, slow: Callable[[list], bool]) -> RunContext:
    ctx = _fake_ctx(tmp_path, task)
    ctx.clients["generator"] = _snips_generator(task, slow)
    return ctx


def test_a_cheap_lane_clearly_over_the_latency_cap_stops_after_the_probe(tmp_path):
    task = load_task(SNIPS)
    assert task.spec.constraints.max_latency_ms == 2000
    ctx = _snips_ctx(tmp_path, task, slow=lambda chat: len(chat) > 2)  # prompts with demos
    lanes = [PromptLane(0), PromptLane(5), RagLane("demos")]
    decision = BakeOff(task, ctx, lane_objects=lanes, budget_minutes=None).run()
    measured = {}
    for e in decision.evidence:
        if e.value is not None:
            measured.setdefault(e.lane, []).append((e.cases, e.p95_ms))
    assert measured["prompt/zero-shot"] == [(8, 300.0), (24, 300.0), (64, 300.0)]
    assert measured["prompt/5-shot"] == [(8, 5000.0)]
    [(cases, p95)] = measured["rag/demos"]  # its latency adds the retrieval's
    assert cases == 8 and p95 >= 5000
    slow = [e for e in decision.evidence if e.note.startswith("too slow")]
    assert {e.lane for e in slow} == {"prompt/5-shot", "rag/demos"}
    assert "8 of 8 cases over the 2000 ms cap" in slow[0].note
    # the slow lanes answered the 8 probe cases and no more
    calls = ctx.clients["generator"].calls
    assert len([c for c in calls if len(c) > 2]) == 16
    assert decision.lane == "prompt/zero-shot"


def test_a_training_lane_over_the_cap_stops_after_one_setting_and_does_not_lead(tmp_path):
    task = load_task(SNIPS)
    ctx = _snips_ctx(tmp_path, task, slow=lambda chat: False)
    ctx.clients["generator"] = FakeGenerator(default="not json", latency_ms=300.0)
    compound = ScriptedTrainer("compound", base=0.95, gain=0.05, latency_ms=5000.0)
    compound.family = "compound"
    sft = ScriptedTrainer("finetune/sft", base=0.5, gain=0.4, latency_ms=300.0)
    grid = [{"learning_rate": 1e-3}, {"learning_rate": 2e-3, "tokens_per_batch": 1024}]
    decision = BakeOff(
        task,
        ctx,
        lane_objects=[PromptLane(0), compound, sft],
        budget_minutes=None,
        settings_grid=grid,
    ).run()
    assert len(compound.seen_rows) == 1  # one setting on the first rung, then stopped
    notes = [e.note for e in decision.evidence if e.lane.startswith("compound")]
    assert any(n.startswith("too slow: 64 of 64 cases") for n in notes), notes
    # the slow lane scored far higher, but it is not the leader finetune/sft must reach
    assert not any("cannot reach the leader" in n for e in decision.evidence for n in [e.note])
    sft_rungs = [e for e in decision.evidence if e.lane.startswith("finetune/sft@")]
    assert [e.settings for e in sft_rungs[:2]] == grid  # it searched the grid itself
    assert decision.training_plans["finetune/sft"]["share"] == 1.0
    assert decision.lane == "finetune/sft"
    assert any("p95 latency 5000 ms" in r.text for r in decision.reasons)


def test_when_no_lane_meets_the_cap_the_choice_says_so(tmp_path):
    task = load_task(SNIPS)
    ctx = _snips_ctx(tmp_path, task, slow=lambda chat: False)
    bake = BakeOff(task, ctx, lane_objects=[PromptLane(0)], budget_minutes=None)
    # 5 of the 64 cases slow, none of them in the first 24: the p95 is over the cap, but not
    # clearly enough to stop the lane early
    first = {e.input for e in bake.data.first}
    slow = {e.input for e in bake.data.cases if e.input not in first}
    slow = set(sorted(slow)[:5])
    ctx.clients["generator"] = _snips_generator(task, lambda chat: chat[-1]["content"] in slow)
    decision = bake.run()
    assert not any(e.note.startswith("too slow") for e in decision.evidence)
    assert decision.lane == "prompt/zero-shot"
    caveat = [r.text for r in decision.reasons if r.signal == "constraint"]
    assert any(t.startswith("no lane measured on the decision sample meets") for t in caveat)


def test_when_every_lane_is_too_slow_the_rules_decide_and_say_why(tmp_path):
    task = load_task(SNIPS)
    ctx = _snips_ctx(tmp_path, task, slow=lambda chat: True)
    decision = BakeOff(
        task, ctx, lane_objects=[PromptLane(0), PromptLane(5)], budget_minutes=None
    ).run()
    assert decision.mode == "rules"
    last = decision.evidence[-1].note
    assert last.startswith("the rules decide: no lane reached the whole decision sample")
    assert "prompt/5-shot (too slow: 8 of 8 cases" in last


@pytest.mark.parametrize("n", [1, 5, 8, 24, 64])
def test_a_lane_is_too_slow_when_more_than_half_its_cases_are_over_the_cap(n):
    import numpy as np

    from compoundai.bakeoff.parts import over_latency_cap

    for k in range(n + 1):
        latencies = [3000.0 + i for i in range(k)] + [10.0] * (n - k)
        stops = over_latency_cap(latencies, 2000) is not None
        assert stops == (2 * k > n), (n, k)
        if stops:  # then the p95 is over the cap too, whatever the other cases take
            assert np.percentile(latencies, 95) > 2000


def test_the_latency_probe_is_a_sample_of_the_first_sample(banking):
    data = decision_data(banking, 64, 24, "accuracy")
    assert len(data.probe) == 8 and {e.id for e in data.probe} <= {e.id for e in data.first}
    assert data.probe != data.first[:8]  # drawn across it, not its first rows in file order


def test_a_first_rung_is_reckoned_from_measured_tokens_and_throughput(tmp_path, monkeypatch):
    task = load_task(SNIPS)
    ctx = _snips_ctx(tmp_path, task, slow=lambda chat: False)
    compound = ScriptedTrainer("compound", base=0.5, gain=0.4, seconds=5.0)
    compound.family = "compound"
    sft = ScriptedTrainer("finetune/sft", base=0.5, gain=0.4, seconds=5.0)
    bake = BakeOff(
        task,
        ctx,
        lane_objects=[PromptLane(0), RagLane("demos"), compound, sft],
        budget_minutes=None,
        settings_grid=[{}],
    )
    bake._feasible()
    bake._cheap_stage()
    by_name = {c.name: c for c in bake.candidates}
    demos = by_name["rag/demos"].rungs[-1]
    assert demos.tokens_per_case > 100  # its prompt holds retrieved demonstrations
    plan = TrainingPlan(share=0.125)
    monkeypatch.setattr("compoundai.hardware.cpu_has_bf16", lambda: False)
    # before anything trained: compound's rows are rag/demos prompts less the output
    # contract (the fake counts words), at most 12.5% of compound.max_train_rows (400) of them,
    # at the fp32 guess
    contract = len(("\n\n" + contract_of(task).describe()).split())
    per_row = demos.tokens_per_case - contract
    assert contract > 10 and per_row > 40
    seconds, how = bake._first_estimate(by_name["compound"], 100, plan)
    assert f"50 rows x {per_row:.0f} tokens" in how and "a guess for fp32" in how
    epochs = task.spec.finetune.epochs
    train = 50 * per_row * epochs / 120  # rows x tokens x epochs / tokens per s
    assert seconds == pytest.approx(train + demos.per_case_ms / 1000 * 64)
    assert bake._first_estimate(by_name["compound"], 20, plan)[1].startswith("20 rows")
    seconds, how = bake._first_estimate(by_name["finetune/sft"], 100, plan)
    assert "x 80 tokens" in how
    # once a rung trained, its throughput replaces the guess (1000 tokens in 5 s)
    bake._first_rung(by_name["compound"])
    _, how = bake._first_estimate(by_name["finetune/sft"], 100, plan)
    assert "at 200 tokens/s (measured on the rungs trained so far)" in how


def test_a_first_rung_that_would_overrun_the_budget_is_not_started(tmp_path):
    task = load_task(SNIPS)
    ctx = _snips_ctx(tmp_path, task, slow=lambda chat: False)
    compound = ScriptedTrainer("compound", base=0.5, gain=0.4)
    compound.family = "compound"
    decision = BakeOff(
        task,
        ctx,
        lane_objects=[PromptLane(0), RagLane("demos"), compound],
        budget_minutes=0.5,  # 30 s: compound's rows at the guess take minutes
        settings_grid=[{}],
    ).run()
    assert compound.seen_rows == []
    [note] = [e.note for e in decision.evidence if e.lane == "compound"]
    assert note.startswith("budget: even the first rung") and "tokens/s" in note
