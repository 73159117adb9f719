"""Question/answer synthesis from documents: parsing, each filter and its count, the CLI.
Fakes (scripted generator, hash embedder) on a real Chroma index; the real model in the slow one.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.errors import UserInputError
from compoundai.synth import parse_pairs, synthesize_qa
from compoundai.testing import FakeGenerator

DOCS = {
    "normans.md": "# Normans\n\nThe Normans gave their name to Normandy, a region in France. "
    "Their leader Rollo swore fealty to King Charles III of West Francia.\n",
    "tea.md": "# Tea\n\nGreen tea is made from leaves that are steamed or pan fired soon "
    "after picking, which stops them from oxidising.\n",
    "rome.md": "# Rome\n\nThe Colosseum in Rome was finished in 80 AD under the emperor Titus.\n",
}
# per chunk: one good pair, one whose answer is not in the chunk, one too vague to retrieve
SCRIPT = {
    "Normans": "Q: Who was the leader of the Normans?\nA: Rollo\n"
    "Q: Where did the Normans come from?\nA: Denmark\n",
    "Tea": "1. Q: How is green tea made from leaves?\nA: steamed or pan fired\n"
    "2. Q: What is it?\nA: tea\n",
    "Rome": "I cannot write questions about this.",
}


def scripted() -> FakeGenerator:
    def answer(chat):
        text = chat[-1]["content"]
        return next((out for key, out in SCRIPT.items() if f"# {key}" in text), "")

    return FakeGenerator(answer)


@pytest.fixture
def docs_index(tmp_path, fake_ctx):
    from compoundai_retrievers.index import ChromaIndex
    from compoundai_retrievers.ingest import ingest

    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    index = ChromaIndex.open(tmp_path / "index", ctx=fake_ctx)
    ingest([folder], index)
    return index


def test_parse_pairs_reads_the_common_layouts():
    text = 'Q: Who led them?\nA: Rollo.\n\nQuestion 2: When?\nAnswer 2: "911"\nQ: dangling'
    assert parse_pairs(text) == [("Who led them?", "Rollo"), ("When?", "911")]
    assert parse_pairs("no pairs here") == []


def test_every_filter_rejects_what_it_should_and_counts_it(docs_index):
    pairs, report = synthesize_qa(docs_index, scripted(), per_chunk=3, k=1)
    assert report.chunks == 3 and report.generated == 4 and report.unparsable == 1
    assert report.unsupported == 1  # "Denmark" is not in the Normans chunk
    kept = {(p.question, p.answer) for p in pairs}
    assert ("Who was the leader of the Normans?", "Rollo") in kept
    assert all(p.chunk_id and p.source.endswith(".md") for p in pairs)
    # "What is it?" does not find the tea chunk first with k=1 (or it is kept): counted either way
    assert report.kept + report.not_retrieved + report.duplicates == 3
    assert report.kept == len(pairs) and 0 < report.acceptance_rate <= 0.75
    row = pairs[0].row()
    assert row["synthetic"] is True and set(row) >= {"id", "question", "answer", "chunk_id"}


def test_the_same_question_twice_is_kept_once(docs_index):
    twice = FakeGenerator(
        lambda chat: (
            "Q: Who was the leader of the Normans?\nA: Rollo\n" * 2
            if "# Normans" in chat[-1]["content"]
            else ""
        )
    )
    pairs, report = synthesize_qa(docs_index, twice, per_chunk=2, k=3)
    assert len(pairs) == 1 and report.duplicates == 1


def test_max_chunks_samples_reproducibly(docs_index):
    a, ra = synthesize_qa(docs_index, scripted(), max_chunks=2, seed=1, k=3)
    b, _ = synthesize_qa(docs_index, scripted(), max_chunks=2, seed=1, k=3)
    assert ra.chunks == 2 and [p.id for p in a] == [p.id for p in b]


def test_an_empty_index_is_a_clear_error(tmp_path, fake_ctx):
    from compoundai_retrievers.index import ChromaIndex

    index = ChromaIndex.open(tmp_path / "empty", ctx=fake_ctx)
    with pytest.raises(UserInputError, match="no text to write questions about"):
        synthesize_qa(index, scripted())


def test_synth_qa_cli_writes_the_pairs_and_ends_with_the_counts(tmp_path, monkeypatch):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    out = tmp_path / "qa.jsonl"
    monkeypatch.setattr("compoundai.cli_synth.make_generator", lambda *a, **k: scripted())
    result = CliRunner().invoke(
        cli,
        [
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-progress",
            "synth",
            "qa",
            str(folder),
            "-o",
            str(out),
            "--embedder",
            "hash:64",
            "--k",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert counts["kept"] == len(rows) >= 1 and counts["unsupported"] == 1
    assert "rejected" in result.stderr
    # bad input: a missing folder is exit 2 and writes nothing
    never = tmp_path / "never.jsonl"
    missing = CliRunner().invoke(cli, ["synth", "qa", str(tmp_path / "nope"), "-o", str(never)])
    assert missing.exit_code == 2 and "nope" in missing.output and not never.exists()


@pytest.mark.slow
def test_synth_qa_with_the_real_small_models(tmp_path):
    """SmolLM2-135M writes the pairs and MiniLM does the round trip: whatever it keeps passes
    the filters (a weak writer keeps few; the counts say how few)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    out = tmp_path / "qa.jsonl"
    result = CliRunner().invoke(
        cli, ["--no-progress", "synth", "qa", str(folder), "-o", str(out), "--k", "2"]
    )
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["chunks"] == 3
    rejected = counts["unsupported"] + counts["not_retrieved"] + counts["duplicates"]
    assert counts["generated"] == counts["kept"] + rejected
    texts = {name.split(".")[0]: text for name, text in DOCS.items()}
    from compoundai.synth import normalize

    for line in out.read_text().splitlines():
        row = json.loads(line)
        chunk = next(t for n, t in texts.items() if n in row["source"])
        assert normalize(row["answer"]) in normalize(chunk)
