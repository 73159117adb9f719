"""The compound lane on the tiny random Llama and the hash embedder: real index, real training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compoundai.errors import UserInputError
from compoundai.lanes import CompoundLane, lanes_for
from compoundai.lanes.rag import ABSTAIN_TEXT, CONTEXT_RULES
from compoundai.system import CompoundSystem
from compoundai.system_dir import load_system, save_system
from compoundai.task import load_task
from tests.adapters.conftest import LABELS, make_task, task_without_training_rows, write_jsonl

TRAINING = {"epochs": 1, "tokens_per_batch": 512, "learning_rate": 5e-3, "max_seq_len": 1024}


def label_task(tmp_path: Path, model: Path, rows: list[dict], **extra) -> Path:
    """The finetune tests' label task, with the hash embedder and quicker training."""
    models = {"generator": str(model), "embedder": "hash:64"}
    return make_task(tmp_path, model, rows, models=models, finetune=TRAINING, **extra)


def training_chats(system: CompoundSystem) -> list[list[dict[str, str]]]:
    rows = (Path(system.info.adapter).parent / "train.jsonl").read_text().splitlines()
    return [json.loads(r)["messages"] for r in rows]


def test_labels_train_on_retrieved_demos_without_the_example_itself(
    tmp_path, tiny_model_dir, sft_rows, ctx
):
    path = label_task(tmp_path, tiny_model_dir, sft_rows, compound={"max_train_rows": 12})
    task = load_task(path)
    system = CompoundLane().build(task, ctx)
    assert system.name == "compound" and system.lane == "compound"
    assert "generator" not in ctx.clients  # the base generator was never loaded for it
    manifest = json.loads((Path(system.info.adapter) / "manifest.json").read_text())
    assert manifest["stage"] == "sft" and manifest["examples"] == 12
    chats = training_chats(system)
    assert len(chats) == 12
    # stratified: every label is trained on
    assert {chat[-1]["content"] for chat in chats} == set(LABELS)
    for chat in chats:
        # the instructions alone (no label list), k demos as turns, the query, its label
        assert chat[0] == {"role": "system", "content": "Name the intent."}
        demos = [m["content"] for m in chat[1:-2:2]]
        assert len(demos) == 5 and chat[-2]["content"] not in demos
    # at inference: the same prompt shape, with this query's neighbours
    query = "my card has not arrived 3"
    prompt = system.prompts([query])[0]
    assert prompt[0] == chats[0][0] and len(prompt) == 12
    answer = system.invoke(query)
    assert answer.output in LABELS and len(answer.extra["retrieved_ids"]) == 5

    again = load_system(save_system(system, tmp_path / "saved"), ctx=ctx)
    assert again.name == "compound" and again.invoke(query).output == answer.output


def test_documents_train_raft_prompts_with_gold_and_distractors(tmp_path, tiny_model_dir, ctx):
    corpus = [
        {"doc_id": f"city::{i}", "title": city, "text": f"{city} is a city known for {thing}."}
        for i, (city, thing) in enumerate(
            [("Paris", "towers"), ("Rome", "ruins"), ("Oslo", "fjords"), ("Lima", "ceviche")]
        )
    ]
    train = [
        {
            "id": f"t{i}",
            "question": f"What river flows through town number {i}?",
            "answer": f"River {i}",
            "title": f"Town {i}",
            "context": f"Town number {i} lies on the banks of River {i}, a slow river.",
        }
        for i in range(10)
    ]
    test = [{"id": "q1", "question": "What is Paris known for?", "answer": ["towers"]}]
    write_jsonl(tmp_path / "corpus.jsonl", corpus)
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "test.jsonl", test)
    spec = {
        "name": "towns",
        "instructions": "Answer briefly.",
        "documents": ["corpus.jsonl"],
        "examples": {
            "input_field": "question",
            "output_field": "answer",
            "id_field": "id",
            "train": "train.jsonl",
            "test": "test.jsonl",
        },
        "models": {"generator": str(tiny_model_dir), "embedder": "hash:64"},
        "finetune": TRAINING,
        "compound": {"gold_share": 0.5},
    }
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(spec))
    system = CompoundLane().build(load_task(tmp_path / "task.yaml"), ctx)
    chats = training_chats(system)
    assert len(chats) == 10
    with_gold = 0
    for chat, row in zip(chats, train, strict=True):
        assert chat[0]["content"] == f"Answer briefly.\n\n{CONTEXT_RULES}"
        prompt, target = chat[1]["content"], chat[-1]["content"]
        passages = [line for line in prompt.splitlines() if line.startswith("[")]
        assert prompt.endswith(f"Question: {row['question']}")
        if target == ABSTAIN_TEXT:
            assert row["context"] not in prompt and len(passages) == 4  # all distractors
        else:
            with_gold += 1
            assert target.startswith(row["answer"] + " [")
            n = int(target.rsplit("[", 1)[1].rstrip("]"))
            assert row["context"] in passages[n - 1] and len(passages) == 5
    assert 0 < with_gold < 10  # gold_share 0.5: both kinds of prompt
    answer = system.invoke("What is Paris known for?")
    assert "retrieved_ids" in answer.extra


def test_documents_without_training_rows_train_on_synthesised_pairs(
    tmp_path, tiny_model_dir, ctx, monkeypatch
):
    """A free-text task with documents and no train split: the adapter trains on QA pairs
    synthesised from the documents, each with its chunk as the gold passage; the filter
    counts are the lane's `synth`, and the bake-off's rules call the lane feasible."""
    from compoundai.bakeoff import infeasible
    from compoundai.testing import FakeGenerator

    facts = {"Paris": "towers", "Rome": "ruins", "Oslo": "fjords", "Lima": "ceviche",
             "Kyiv": "domes", "Bern": "bears", "Doha": "pearls", "Riga": "spires"}  # fmt: skip
    corpus = [
        {"doc_id": f"city::{i}", "title": city, "text": f"{city} is a city known for {thing}."}
        for i, (city, thing) in enumerate(facts.items())
    ]
    write_jsonl(tmp_path / "corpus.jsonl", corpus)
    write_jsonl(tmp_path / "test.jsonl", [{"id": "q1", "question": "Paris?", "answer": ["towers"]}])

    def writer(chat):  # one question a chunk, answered from it (the synthesis filters keep it)
        city = next(c for c in facts if f"{c} is a city" in chat[-1]["content"])
        return f"Q: What is {city} known for?\nA: {facts[city]}"

    monkeypatch.setattr(
        "compoundai.lanes.prompt.shared_generator", lambda t, c: FakeGenerator(writer)
    )
    spec = {
        "name": "cities",
        "instructions": "Answer briefly.",
        "documents": ["corpus.jsonl"],
        "examples": {"input_field": "question", "output_field": "answer", "test": "test.jsonl"},
        "models": {"generator": str(tiny_model_dir), "embedder": "hash:64"},
        "finetune": {**TRAINING, "qa": {"per_chunk": 1}},
        "compound": {"gold_share": 1.0},
    }
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(spec))
    task = load_task(tmp_path / "task.yaml")
    assert infeasible(CompoundLane(), task) is None
    system = CompoundLane().build(task, ctx)
    chats = training_chats(system)
    synth = system.info.synth
    # no dev split: the synthetic dev pairs are held out of training
    assert synth and synth["kept"] == len(chats) + synth["held_out_as_dev"] and chats
    for chat in chats:
        question = chat[1]["content"].rsplit("Question: ", 1)[1]
        city = question.split()[2]
        # the pair's own chunk is the gold passage, cited in the answer
        assert f"{city} is a city known for" in chat[1]["content"]
        assert chat[-1]["content"].startswith(facts[city] + " [")
    # a label task without training rows still cannot train one
    (tmp_path / "l").mkdir()
    assert infeasible(
        CompoundLane(), load_task(task_without_training_rows(tmp_path / "l", tiny_model_dir))
    )


def test_compound_is_one_of_the_lanes_and_needs_training_rows(tmp_path, tiny_model_dir, ctx):
    assert [lane.name for lane in lanes_for(["compound"])] == ["compound"]
    task = load_task(task_without_training_rows(tmp_path, tiny_model_dir))
    with pytest.raises(UserInputError, match="needs training examples"):
        CompoundLane().build(task, ctx)
