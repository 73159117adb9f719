"""Embedder domain tuning: dev retrieval measured before and after, the rag lane keeping the
base model unless the tuned one measured better; the real MiniLM tuning in the slow one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.embedder_tuning import MANIFEST, effective_embedder, retrieval_quality
from compoundai.errors import UserInputError
from compoundai.task import load_task
from compoundai.testing import FakeGenerator

TOPICS = {
    "normans": "The Normans gave their name to Normandy. Their leader Rollo swore fealty.",
    "tea": "Green tea leaves are steamed or pan fired soon after picking.",
    "rome": "The Colosseum in Rome was finished in 80 AD under the emperor Titus.",
    "bees": "Honey bees dance to tell the hive where the flowers are.",
}
DEV = [
    ("Who led the Normans?", "normans"),
    ("How is green tea processed?", "tea"),
    ("When was the Colosseum finished?", "rome"),
    ("How do bees share where flowers are?", "bees"),
]


def write_task(folder: Path, embedder: str = "all-minilm-l6-v2") -> Path:
    docs = folder / "docs.jsonl"
    docs.write_text("".join(json.dumps({"doc_id": k, "text": v}) + "\n" for k, v in TOPICS.items()))
    dev = [
        {"id": f"d{i}", "question": q, "answer": "x", "doc_id": d} for i, (q, d) in enumerate(DEV)
    ]
    (folder / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    (folder / "task.yaml").write_text(
        "name: topics\ninstructions: Answer.\ndocuments: [docs.jsonl]\n"
        "examples: {input_field: question, output_field: answer, id_field: id, dev: dev.jsonl}\n"
        f"models: {{embedder: '{embedder}'}}\n"
    )
    return folder / "task.yaml"


def test_dev_retrieval_is_measured_from_the_gold_doc_ids(tmp_path, fake_ctx):
    task = load_task(write_task(tmp_path, "hash:64"))
    quality = retrieval_quality(task, fake_ctx, fake_ctx.clients["embedder"])
    assert quality.questions == 4 and 0 < quality.recall_at_5 <= 1 and 0 < quality.mrr <= 1
    # with four documents every gold one is in the top 5
    assert quality.recall_at_5 == 1.0


def test_only_a_tuned_embedder_that_measured_better_is_used(tmp_path):
    assert effective_embedder("all-minilm-l6-v2") == ("all-minilm-l6-v2", None)
    folder = tmp_path / "model"
    folder.mkdir()
    record = {"base": "all-minilm-l6-v2", "better": False,
              "before": {"recall_at_5": 0.9}, "after": {"recall_at_5": 0.8}}  # fmt: skip
    (folder / MANIFEST).write_text(json.dumps(record))
    name, why = effective_embedder(str(folder))
    assert name == "all-minilm-l6-v2" and "did not retrieve better" in why
    (folder / MANIFEST).write_text(json.dumps({**record, "better": True}))
    assert effective_embedder(str(folder)) == (str(folder), None)


def test_a_pairs_file_from_another_checkout_is_matched_by_doc_and_answer(tmp_path, fake_ctx):
    """Chunk ids include the documents' absolute path, so pairs synthesised in another
    checkout name ids this index does not have: the pair's doc_id and answer find the chunk;
    a pair matching nothing is a file:line error."""
    from compoundai.embedder_tuning import _pairs

    task = load_task(write_task(tmp_path, "hash:64"))
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"question": "Who swore fealty?", "answer": "Rollo", "chunk_id": "0" * 32,
         "doc_id": "normans"},
        {"question": "What do bees do?", "answer": "dance", "chunk_id": "1" * 32,
         "doc_id": "bees"},
    ]  # fmt: skip
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = fake_ctx.clients["embedder"]
    questions, chunks, _ = _pairs(task, fake_ctx, base, pairs, None)
    assert questions == ["Who swore fealty?", "What do bees do?"]
    assert chunks == [TOPICS["normans"], TOPICS["bees"]]
    rows[1]["doc_id"] = "no-such-doc"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserInputError, match=r"pairs.jsonl:2"):
        _pairs(task, fake_ctx, base, pairs, None)


def test_a_moved_pair_finds_its_own_chunk_among_overlapping_ones():
    """Two overlapping chunks both hold the answer: the id derived again from the pair's
    source picks the one the pair was written from."""
    from compoundai.embedder_tuning import _pair_chunk
    from compoundai_retrievers.chunking import chunk_id, content_hash

    texts = ["Rollo led the Normans. He swore", "He swore fealty; Rollo was their leader."]
    records = {
        f"new{i}": {"doc_id": "d", "content_hash": content_hash(t), "document": t}
        for i, t in enumerate(texts)
    }
    by_doc = {"d": ["new0", "new1"]}
    moved = chunk_id("/elsewhere/docs.jsonl", "d", content_hash(texts[1]), 0)
    row = {"chunk_id": moved, "doc_id": "d", "source": "/elsewhere/docs.jsonl", "answer": "Rollo"}
    assert _pair_chunk(row, records, by_doc) == "new1"
    # without its source the answer is in both chunks: ambiguous, so no match
    assert _pair_chunk({**row, "source": ""}, records, by_doc) is None
    assert _pair_chunk({**row, "chunk_id": "new0"}, records, by_doc) == "new0"


def test_a_non_sentence_transformers_embedder_is_refused(tmp_path, fake_ctx):
    from compoundai.embedder_tuning import tune_embedder

    task = load_task(write_task(tmp_path, "hash:64"))
    with pytest.raises(UserInputError, match="not a sentence-transformers model"):
        tune_embedder(task, fake_ctx, tmp_path / "out")


@pytest.mark.slow
def test_train_embedder_tunes_minilm_and_records_dev_retrieval(tmp_path, monkeypatch):
    """The real MiniLM, tuned by sentence-transformers' trainer on synthesised pairs (a fake
    writes the questions, so the test does not wait on SmolLM2)."""

    def writer(chat):
        text = chat[-1]["content"]
        topic = next(k for k, v in TOPICS.items() if v[:20] in text)
        first = TOPICS[topic].split()[1]
        return f"Q: What does the passage say about {first}?\nA: {first}"

    monkeypatch.setattr(
        "compoundai.lanes.prompt.shared_generator", lambda t, c: FakeGenerator(writer)
    )
    task_file = write_task(tmp_path)
    out = tmp_path / "tuned"
    result = CliRunner().invoke(
        cli, ["--no-progress", "train", "embedder", str(task_file), "-o", str(out),
              "--epochs", "1", "--batch-size", "4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout.strip().splitlines()[-1])
    assert manifest["pairs"] == 4 and manifest["before"]["questions"] == 4
    assert (out / "model" / MANIFEST).is_file()
    assert "dev retrieval over 4 questions" in result.stderr
    # the tuned folder is a sentence-transformers model the rag lane can load
    from compoundai_retrievers.embedders import SentenceTransformerEmbedder

    assert SentenceTransformerEmbedder(str(out / "model")).embed(["hello"]).shape == (1, 384)
    name, _ = effective_embedder(str(out / "model"))
    assert name == (str(out / "model") if manifest["better"] else "all-minilm-l6-v2")
