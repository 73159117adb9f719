import doctest
import importlib
import json

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.profile import TaskProfile, answer_overlap, profile, split_passages
from compoundai.router import Router
from compoundai.task import load_task
from tests.conftest import BANKING


def p(**kw):
    return TaskProfile(task="t", output_type=kw.pop("output_type", "free_text"), **kw)


# (profile, expected plan, expected top lane, a signal the top lane's reasons must cite).
# The rules follow the record of measured outcomes (tests/test_rules_record.py).
TABLE = [
    # labels with examples -> their nearest neighbours (banking77: the 5-NN vote won)
    (p(output_type="labels", n_labels=77, n_train=1540), "rag", "rag", "n_train"),
    # too few examples for anything but the prompt
    (p(output_type="labels", n_labels=3, n_train=0), "prompt", "prompt", "baseline"),
    # documents larger than the window -> retrieve
    (p(n_documents=400, corpus_tokens=90_000, context_window=8192), "rag", "rag", "corpus_tokens"),
    # documents and question/answer examples -> the compound lane (squad_docs_qa: RAFT won)
    (
        p(
            n_documents=1,
            corpus_tokens=35_000,
            context_window=8192,
            n_train=100,
            answer_overlap=1.0,
            answer_verbatim=1.0,
            answers_measured=73,
        ),
        "rag -> sft",
        "compound",
        "n_train",
    ),
    # documents that fit the window -> put them in the prompt
    (
        p(n_documents=3, corpus_tokens=1_000, context_window=8192),
        "prompt",
        "prompt",
        "corpus_tokens",
    ),
    # facts that change -> an index, even when small
    (
        p(n_documents=3, corpus_tokens=1_000, knowledge_freshness="weekly"),
        "rag",
        "rag",
        "knowledge_freshness",
    ),
    # preference pairs: training on them did not beat prompting (hh_preferences)
    (p(n_preference_pairs=1800), "prompt", "prompt", "n_preference_pairs"),
    (p(n_train=200, n_preference_pairs=200), "prompt", "prompt", "n_preference_pairs"),
    # a strict schema with examples -> the compound lane (snips_json: compound won)
    (
        p(output_type="json_schema", has_schema=True, n_schema_fields=41, n_train=700),
        "rag -> sft",
        "compound",
        "has_schema",
    ),
]


def test_verifiable_answers_are_noticed_as_a_reason_for_rl():
    """gsm8k's answers end in a checkable number: the rules say so (and name GRPO), without
    claiming a measured win for training they have no record of."""
    decision = Router().decide(p(n_train=7000, examples_tokens=900_000, numeric_answer_share=1.0))
    reason = next(r for r in decision.reasons if r.signal == "numeric_answer_share")
    assert reason.lane == "finetune" and reason.weight > 0 and "GRPO" in reason.text


@pytest.mark.parametrize(("prof", "plan", "top", "signal"), TABLE)
def test_router_table(prof, plan, top, signal):
    decision = Router().decide(prof)
    assert decision.plan == plan
    assert decision.top_lane == top
    assert any(r.lane == top and r.signal == signal for r in decision.reasons)
    scores = [r.score for r in decision.ranked]
    assert scores == sorted(scores, reverse=True)
    # reasons lead with the chosen lane's, so a reader sees why first
    assert decision.reasons[0].lane == top


def test_off_topic_answers_do_not_vote_for_retrieval():
    """Middling overlap (answers from other articles measured 0.39 on the SQuAD slice) is no
    evidence either way: no answer_overlap vote."""
    prof = p(n_documents=1, corpus_tokens=35_000, answer_overlap=0.39, answers_measured=100)
    decision = Router().decide(prof)
    assert not any(r.signal == "answer_overlap" for r in decision.reasons)
    assert decision.plan == "rag"  # the corpus still exceeds the window


def test_every_reason_carries_its_weight():
    decision = Router().decide(p(output_type="labels", n_labels=77, n_train=1540))
    by_lane: dict[str, float] = {}
    for r in decision.reasons:
        by_lane[r.lane] = by_lane.get(r.lane, 0.0) + r.weight
    assert by_lane == {r.lane: r.score for r in decision.ranked if r.lane in by_lane}


# -- every constraint is read (issue: task files a new user can write) -------------------------


def _score(decision, lane):
    return {r.lane: r.score for r in decision.ranked}[lane]


def test_a_gpu_makes_training_cheaper():
    base = p(output_type="labels", n_labels=7, n_train=13000)
    with_gpu = Router().decide(base.model_copy(update={"gpu_available": True}))
    assert _score(with_gpu, "finetune") > _score(Router().decide(base), "finetune")
    assert any(r.signal == "gpu_available" for r in with_gpu.reasons)


def test_a_budget_under_the_training_cost_rules_training_out():
    prof = p(
        output_type="json_schema",
        has_schema=True,
        n_train=700,
        training_usd_estimate=0.02,
        budget_usd=0.001,
    )
    decision = Router().decide(prof)
    assert decision.top_lane not in ("finetune", "compound")
    assert any(r.signal == "budget_usd" and r.weight < 0 for r in decision.reasons)


def test_local_only_with_a_remote_generator_is_said():
    decision = Router().decide(p(n_train=10, local_only=True, remote_generator=True))
    assert any(r.signal == "local_only" for r in decision.reasons)
    assert any(r.signal == "remote_generator" and r.lane == "compound" for r in decision.reasons)


def test_a_tight_latency_budget_penalises_model_calls_not_retrieval():
    """The kNN vote answers in 3 ms, model calls take hundreds: a 50 ms budget counts against
    the lanes that call the model and for the vote (it used to penalise retrieval)."""
    prof = p(output_type="labels", n_labels=77, n_train=1540, max_latency_ms=50)
    decision = Router().decide(prof)
    assert decision.plan == "rag"
    latency = {r.lane: r.weight for r in decision.reasons if r.signal == "max_latency_ms"}
    assert latency["prompt"] < 0 and latency["finetune"] < 0 and latency["rag"] > 0


def test_the_window_reason_says_what_is_true():
    decision = Router().decide(p(n_train=300, examples_tokens=6278, context_window=8192))
    text = next(r.text for r in decision.reasons if r.signal == "examples_tokens")
    assert "exceed half the 8192-token window (4096 tokens)" in text


def test_the_examples_per_label_reason_cites_the_measurement():
    decision = Router().decide(p(output_type="labels", n_labels=10, n_train=50))
    text = next(r.text for r in decision.reasons if r.lane == "finetune")
    assert "5 examples a label is few" in text and "0.448" in text


def test_schema_fields_count_all_of_branches_once():
    from compoundai.profile import schema_fields

    schema = {
        "allOf": [
            {"properties": {"intent": {}, "slots": {"properties": {"city": {}}}}},
            {"properties": {"intent": {}, "slots": {"properties": {"city": {}, "date": {}}}}},
        ]
    }
    assert schema_fields(schema) == 4  # intent, slots, slots.city, slots.date


def test_answer_overlap_measures_words_in_one_passage():
    passages = split_passages(["Rollo founded Normandy in 911.\n\nThe Huguenots fled France."])
    assert passages == ["Rollo founded Normandy in 911.", "The Huguenots fled France."]
    # all words of the first answer in one passage; 'Rollo France' is split over two
    assert answer_overlap(["Rollo", "911", "Rollo France"], passages) == (0.833, 0.667, 3)
    assert answer_overlap(["", "the"], passages) == (None, None, 0)  # nothing to measure


@pytest.mark.parametrize(
    "module",
    [
        "compoundai.profile",
        "compoundai.router",
        "compoundai.data",
        "compoundai_evaluators.equivalence",
        "compoundai_evaluators.report",
    ],
)
def test_doctests(module):
    # `compoundai.profile` the attribute is the function; the module is imported by name
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_banking_example_decision_cites_measured_signals(fake_ctx):
    prof = profile(load_task(BANKING), fake_ctx)
    assert prof.n_labels == 77 and prof.n_train == 1540
    decision = Router().decide(prof)
    assert decision.plan == "rag" and decision.lane == "rag/knn-vote"
    cited = {r.signal: r.value for r in decision.reasons if r.lane == "rag"}
    assert cited["n_train"] == 1540


def test_decide_json_follows_design():
    result = CliRunner().invoke(cli, ["decide", str(BANKING), "--json", "--rules-only"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"plan", "mode", "ranked", "reasons", "evidence"} <= set(data)
    assert data["mode"] == "rules"
    assert set(data["ranked"][0]) == {"lane", "score"}
    # DESIGN.md's fields, plus the weight each reason added (fields may be added)
    assert {"lane", "signal", "value", "text"} <= set(data["reasons"][0])
    assert set(data["reasons"][0]) <= {"lane", "signal", "value", "text", "weight"}
