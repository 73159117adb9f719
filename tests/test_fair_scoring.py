"""Fair scoring: the same behaviour scores the same through every lane's answer path.

The behaviour: abstain on every unanswerable question ("I don't know."), answer the rest right.
Before the one abstention rule (`compoundai.contract`), the rag path scored it F1 1.000 and the
prompt path 0.510 on the squad test sample.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compoundai.contract import ABSTAIN_TEXT, OutputContract, free_text_output, is_refusal
from compoundai.lanes.prompt import PromptLane
from compoundai.lanes.rag import PassageSystem, RagLane, RetrievingSystem
from compoundai.system import CompoundSystem
from compoundai.task import load_task
from compoundai.testing import FakeGenerator
from compoundai_evaluators import compare
from compoundai_evaluators.metrics import Row, value_of
from compoundai_evaluators.metrics.squad import TOKEN_F1

DOCS = [
    {"doc_id": "paris", "title": "Paris", "text": "Paris is the capital of France."},
    {"doc_id": "rome", "title": "Rome", "text": "The Colosseum in Rome was finished in 80 AD."},
    {"doc_id": "normans", "title": "Normans", "text": "Rollo led the Normans into Normandy."},
]
QUESTIONS = [
    {"id": "q1", "question": "What is the capital of France?", "answers": ["Paris"]},
    {"id": "q2", "question": "When was the Colosseum finished?", "answers": ["80 AD"]},
    {"id": "q3", "question": "Who led the Normans?", "answers": ["Rollo"]},
    {"id": "q4", "question": "Who painted the Colosseum?", "answers": []},
    {"id": "q5", "question": "What is the capital of Normandy's moon?", "answers": []},
    {"id": "q6", "question": "How tall was Rollo?", "answers": []},
]
RIGHT = {"q1": "Paris", "q2": "80 AD", "q3": "Rollo"}


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def qa_task(tmp_path: Path):
    _jsonl(tmp_path / "corpus.jsonl", DOCS)
    _jsonl(tmp_path / "test.jsonl", QUESTIONS)
    _jsonl(
        tmp_path / "train.jsonl",
        [{"id": "t1", "question": "Who ruled?", "answers": "Rollo"}],
    )
    (tmp_path / "task.yaml").write_text(
        "name: fair-qa\ninstructions: Answer with a short phrase.\n"
        "documents: [corpus.jsonl]\n"
        "examples: {input_field: question, output_field: answers, id_field: id, "
        "train: train.jsonl, test: test.jsonl}\n"
        "metrics: [f1, exact_match, abstention_accuracy]\n"
        "models: {embedder: 'hash:64'}\n",
        encoding="utf-8",
    )
    return load_task(tmp_path / "task.yaml")


def same_behaviour(refusal: str) -> FakeGenerator:
    """Right on the answerable questions, `refusal` on the others, whatever the prompt."""
    by_question = {q["question"]: RIGHT.get(q["id"], refusal) for q in QUESTIONS}

    def answer(chat: list[dict[str, str]]) -> str:
        text = chat[-1]["content"].rsplit("Question: ", 1)[-1]
        return by_question[text]

    return FakeGenerator(answer)


@pytest.mark.parametrize("refusal", [ABSTAIN_TEXT, "I'm not sure.", "The passages don't say."])
def test_identical_behaviour_scores_identically_through_every_answer_path(
    qa_task, fake_ctx, refusal
):
    fake_ctx.clients["generator"] = same_behaviour(refusal)
    prompt = PromptLane(shots=0).build(qa_task, fake_ctx)
    rag = RagLane("context", min_score=None).build(qa_task, fake_ctx)
    contract = OutputContract("free_text")
    # the finetune and compound lanes' answer paths: a plain system with the adapter's prompt
    # (instructions alone), and a rag system on the same index (what `compound` builds)
    finetune = CompoundSystem(
        "finetune/sft",
        "finetune",
        qa_task.spec.instructions,
        contract,
        same_behaviour(refusal),
        contract_in_prompt=True,
        ctx=fake_ctx,
    )
    assert isinstance(rag, RetrievingSystem)
    compound = PassageSystem(
        "compound",
        "compound",
        qa_task.spec.instructions,
        contract,
        same_behaviour(refusal),
        ctx=fake_ctx,
        store=rag.store,
        k=rag.k,
        contract_in_prompt=False,
    )
    cases = qa_task.split("test")
    comparison = compare(
        [prompt, rag, finetune, compound],
        cases,
        ["f1", "exact_match", "abstention_accuracy"],
        output_type="free_text",
        resamples=200,
    )
    scores = {
        lane.name: {m: round(v.value, 6) for m, v in lane.metrics.items() if m != "groundedness"}
        for lane in comparison.lanes
    }
    assert len(scores) == 4 and all(lane.status == "ok" for lane in comparison.lanes)
    first = scores["prompt/zero-shot"]
    assert first == {"f1": 1.0, "exact_match": 1.0, "abstention_accuracy": 1.0}
    assert all(s == first for s in scores.values()), scores


def test_metrics_apply_the_rule_to_answers_no_lane_normalised():
    """A system that kept the refusal text (an old cache, a custom system) scores the same."""
    unanswerable = Row("1", "q", [], "I'm not sure.")
    flagged = Row("1", "q", [], "", extra={"abstained": True})
    assert value_of(TOKEN_F1, [unanswerable]) == value_of(TOKEN_F1, [flagged]) == 1.0
    answered = Row("2", "q", ["Rollo"], "I'm not sure.")
    assert value_of(TOKEN_F1, [answered]) == 0.0


REFUSALS = [
    "I don't know.",
    "I do not know",
    "I'm not sure.",
    "I am not sure what the answer is.",
    "Unknown.",
    "unknown",
    "The passages don't say.",
    "The passages do not mention it.",
    "The context does not contain the answer.",
    "Cannot determine.",
    "It cannot be determined from the passages.",
    "No information.",
    "There is no information about that in the passages.",
    "It is not mentioned in the passages.",
    "Not in the context.",
    "I cannot answer that.",
    "Unanswerable",
    "N/A",
    "The text does not specify.",
    "Sorry, I don't know.",
    "The answer is not in the passages.",
    "I don't know. [2]",
    "",
]
ANSWERS = [
    "The Normans were not mentioned by Bede.",
    "Paris",
    "not Paris",
    "1066",
    "They did not know the king.",
    "None of the above were kings",
    "Unknown Pleasures",
    "It is not known whether he was born in 1066 or 1067",
    "I'm not sure, but it might be 1066.",
    "No, the Normans came later.",
    "A",
    "The",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_common_refusals_are_abstentions(text):
    assert is_refusal(text)
    assert free_text_output(text).output == ""


@pytest.mark.parametrize("text", ANSWERS)
def test_answers_containing_not_are_answers(text):
    assert not is_refusal(text)
    assert free_text_output(text).output == text


def test_free_text_output_strips_citations():
    said = free_text_output("Rollo [2], then [1,3].")
    assert said.output == "Rollo, then." and said.cited == [1, 2, 3] and not said.abstained


def test_the_prompt_lane_abstains_like_the_rag_lane(fake_ctx):
    system = CompoundSystem(
        "p", "prompt", "Answer.", OutputContract("free_text"), FakeGenerator(["Unknown."])
    )
    answer = system.invoke("Who painted the Colosseum?")
    assert answer.output == "" and answer.extra["abstained"] is True
    assert answer.text == "Unknown."  # what a reader sees stays the model's words
