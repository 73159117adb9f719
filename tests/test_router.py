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


# (profile, expected plan, expected top lane, a signal the top lane's reasons must cite)
TABLE = [
    # labels with enough examples per label -> fine-tune (banking77: 77 labels, 1,540 rows)
    (p(output_type="labels", n_labels=77, n_train=1540), "sft", "finetune", "n_labels"),
    (p(output_type="labels", n_labels=77, n_train=1540), "sft", "finetune", "n_train"),
    # too few examples to learn a label set from -> prompt
    (p(output_type="labels", n_labels=3, n_train=6), "prompt", "prompt", "baseline"),
    # documents larger than the window -> retrieve
    (p(n_documents=400, corpus_tokens=90_000, context_window=8192), "rag", "rag", "corpus_tokens"),
    # ... and the dev answers are in them (squad_docs_qa measures 1.0)
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
        "rag",
        "rag",
        "answer_overlap",
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
    # answers not in the documents: domain background -> continued pretraining then SFT
    (
        p(
            n_documents=20,
            corpus_tokens=200_000,
            n_train=500,
            answer_overlap=0.1,
            answer_verbatim=0.0,
            answers_measured=50,
        ),
        "pretrain -> sft",
        "finetune",
        "answer_overlap",
    ),
    # preference pairs alone -> DPO
    (p(n_preference_pairs=1800), "dpo", "finetune", "n_preference_pairs"),
    # preference pairs plus labels -> SFT then DPO
    (
        p(output_type="labels", n_labels=5, n_train=500, n_preference_pairs=300),
        "sft -> dpo",
        "finetune",
        "n_preference_pairs",
    ),
    # preference pairs plus free-text examples (hh_preferences) -> SFT then DPO
    (p(n_train=200, n_preference_pairs=200), "sft -> dpo", "finetune", "n_preference_pairs"),
    (p(n_train=200, n_preference_pairs=200), "sft -> dpo", "finetune", "n_train"),
    # many free-text examples, no documents: behaviour -> SFT
    (p(n_train=500, examples_tokens=60_000), "sft", "finetune", "n_train"),
    # a few free-text examples that fit the window -> prompt
    (p(n_train=20, examples_tokens=1_000), "prompt", "prompt", "examples_tokens"),
    # strict schema with many examples -> fine-tune (snips_json: 700 rows)
    (p(output_type="json_schema", has_schema=True, n_train=2000), "sft", "finetune", "has_schema"),
    (
        p(output_type="json_schema", has_schema=True, n_schema_fields=41, n_train=700),
        "sft",
        "finetune",
        "n_train",
    ),
]


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


def test_labelled_examples_make_retrieval_the_competitor():
    for prof in (
        p(output_type="labels", n_labels=77, n_train=1540),
        p(output_type="json_schema", has_schema=True, n_train=700),
    ):
        decision = Router().decide(prof)
        assert decision.ranked[0].lane == "finetune"
        assert any(r.lane == "rag" and r.signal == "n_train" for r in decision.reasons)
        assert {r.lane: r.score for r in decision.ranked}["rag"] > 0


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


def test_answer_overlap_measures_words_in_one_passage():
    passages = split_passages(["Rollo founded Normandy in 911.\n\nThe Huguenots fled France."])
    assert passages == ["Rollo founded Normandy in 911.", "The Huguenots fled France."]
    # all words of the first answer in one passage; 'Rollo France' is split over two
    assert answer_overlap(["Rollo", "911", "Rollo France"], passages) == (0.833, 0.667, 3)
    assert answer_overlap(["", "the"], passages) == (None, None, 0)  # nothing to measure


@pytest.mark.parametrize("module", ["compoundai.profile", "compoundai.router"])
def test_doctests(module):
    # `compoundai.profile` the attribute is the function; the module is imported by name
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_banking_example_decision_cites_measured_signals(fake_ctx):
    prof = profile(load_task(BANKING), fake_ctx)
    assert prof.n_labels == 77 and prof.n_train == 1540
    decision = Router().decide(prof)
    assert decision.plan == "sft"
    cited = {r.signal: r.value for r in decision.reasons if r.lane == "finetune"}
    assert cited == {"n_labels": 77, "n_train": 1540}


def test_decide_json_follows_design():
    result = CliRunner().invoke(cli, ["decide", str(BANKING), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"plan", "ranked", "reasons"} <= set(data) <= {"plan", "lane", "ranked", "reasons"}
    assert set(data["ranked"][0]) == {"lane", "score"}
    # DESIGN.md's fields, plus the weight each reason added (fields may be added)
    assert {"lane", "signal", "value", "text"} <= set(data["reasons"][0])
    assert set(data["reasons"][0]) <= {"lane", "signal", "value", "text", "weight"}
