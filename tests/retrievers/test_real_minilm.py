"""The index with the real MiniLM embedder (slow): retrieval works, chunks fit, CLI defaults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.context import RunContext
from compoundai_retrievers.embedders import SentenceTransformerEmbedder
from compoundai_retrievers.index import ChromaIndex
from compoundai_retrievers.ingest import ingest, ingest_documents
from compoundai_retrievers.loaders import SourceDocument
from compoundai_retrievers.search import search
from tests.conftest import ROOT
from tests.retrievers.conftest import write_corpus

pytestmark = pytest.mark.slow
SQUAD = ROOT.parent / "shared" / "data" / "squad_v2_rag"


@pytest.fixture(scope="module")
def minilm(real_ctx: RunContext) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(ctx=real_ctx)


def test_minilm_finds_gold_paragraphs_and_reingests_nothing(
    minilm: SentenceTransformerEmbedder, tmp_path: Path, chroma_server: str
) -> None:
    if not SQUAD.is_dir():
        pytest.skip(f"no data at {SQUAD}")
    rows = [json.loads(line) for line in (SQUAD / "corpus.jsonl").open()][:60]
    docs = [
        SourceDocument("squad", r["text"], r["title"], metadata={"doc_id": r["doc_id"]})
        for r in rows
    ]
    wanted = {r["doc_id"] for r in rows}
    questions = [
        q
        for q in map(json.loads, (SQUAD / "questions.jsonl").open())
        if q["doc_id"] in wanted and q["split"] == "dev"
    ]
    assert len(questions) >= 15
    ctx = RunContext(progress=False)
    # The same embedder on embedded Chroma and on a server: same hits.
    local = ChromaIndex.open(tmp_path / "index", embedder=minilm, ctx=ctx)
    remote = ChromaIndex.open(server=chroma_server, collection="minilm", embedder=minilm, ctx=ctx)
    for index in (local, remote):
        report = ingest_documents(docs, index)
        assert report.added == index.count() >= 60
        assert ingest_documents(docs, index).embedded == 0
    texts = [q["question"] for q in questions]
    for mode in ("dense", "bm25", "hybrid"):
        hits = search(local, texts, k=5, mode=mode)  # type: ignore[arg-type]
        found = [
            q["doc_id"] in {h.metadata["doc_id"] for h in row}
            for q, row in zip(questions, hits, strict=True)
        ]
        assert sum(found) / len(found) >= 0.8, mode
    remote_hits = search(remote, texts[:5], k=3, mode="dense")
    local_hits = search(local, texts[:5], k=3, mode="dense")
    assert [[h.id for h in r] for r in remote_hits] == [[h.id for h in r] for r in local_hits]


def test_chunks_fit_the_window_and_bf16_matches_fp32(
    minilm: SentenceTransformerEmbedder, real_ctx: RunContext
) -> None:
    from compoundai_retrievers.chunking import ChunkingConfig, chunk_document

    text = "\n\n".join(
        f"Section {i}. " + "The committee reviewed the quarterly figures in detail. " * 9
        for i in range(12)
    )
    chunks = chunk_document(
        SourceDocument("long.md", text, "Long"), ChunkingConfig(), minilm.token_length
    )
    assert len(chunks) > 3
    assert max(minilm.token_length(c.text) for c in chunks) <= 200 < minilm.max_tokens
    fp32 = SentenceTransformerEmbedder(ctx=real_ctx, dtype="float32")
    sample = [c.text for c in chunks[:4]] + ["Who reviewed the figures?"]
    cosines = np.sum(minilm.embed(sample) * fp32.embed(sample), axis=1)
    assert cosines.min() > 0.99


def test_cli_builds_with_the_default_embedder(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    index = str(tmp_path / "index")
    runner = CliRunner()
    added = runner.invoke(cli, ["--no-progress", "index", "add", str(docs), "--index", index])
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout.splitlines()[-1])["added"] == 5
    query = ["index", "query", "Which river flows through Rome?", "--index", index, "--json"]
    hits = json.loads(runner.invoke(cli, query).stdout)
    assert hits[0]["metadata"]["title"] == "Rome"
    stats = json.loads(runner.invoke(cli, ["index", "stats", "--index", index, "--json"]).stdout)
    assert (stats["embedder"], stats["dim"]) == ("all-minilm-l6-v2", 384)
    again = ingest([docs], ChromaIndex.open(index, ctx=RunContext(progress=False)))
    assert again.added == 0 and again.embedded == 0
