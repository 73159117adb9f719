"""Idempotent ingestion and search, on embedded Chroma and on a Chroma server (see conftest)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from compoundai.context import RunContext
from compoundai.errors import UserInputError
from compoundai.testing import HashEmbedder
from compoundai_retrievers.chunking import ChunkingConfig, content_hash
from compoundai_retrievers.embedders import OpenAIEmbedder, make_embedder
from compoundai_retrievers.index import ChromaIndex
from compoundai_retrievers.ingest import ingest
from compoundai_retrievers.loaders import LoaderConfig
from compoundai_retrievers.search import search
from tests.retrievers.conftest import index_snapshot, many_files, write_corpus

Opener = Callable[..., ChromaIndex]


class CountingEmbedder(HashEmbedder):
    """The hash fake, counting texts embedded; optionally failing on the n-th call."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        super().__init__()
        self.texts = 0
        self.calls = 0
        self.fail_on_call = fail_on_call

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("injected failure between batches")
        self.texts += len(texts)
        return super().embed(texts)


def test_readding_unchanged_corpus_writes_nothing(open_index: Opener, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    emb = CountingEmbedder()
    index = open_index(emb)
    first = ingest([docs], index)
    assert first.added == 5 and first.failed == 0 and index.count() == 5
    before = index_snapshot(index)
    again = ingest([docs], open_index(emb))
    assert again.contract() == {
        "added": 0,
        "unchanged": 5,
        "replaced": 0,
        "removed": 0,
        "failed": 0,
    }
    assert emb.texts == 5  # nothing embedded the second time
    assert index_snapshot(index) == before


def test_changed_file_replaces_its_chunks(open_index: Opener, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    index = open_index()
    ingest([docs], index)
    (docs / "berlin.txt").write_text("Berlin is the capital of Germany. It has many museums.")
    report = ingest([docs], index)
    assert (report.added, report.replaced, report.removed, report.unchanged) == (0, 1, 1, 4)
    assert index.count() == 5
    texts = [text for _, text in index_snapshot(index).values()]
    assert any("museums" in t for t in texts) and not any("Spree" in t for t in texts)


def test_offsets_move_without_reembedding(open_index: Opener, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs", {"a.md": "First fact here.\n\nSecond fact here."})
    emb = CountingEmbedder()
    index = open_index(emb, chunking=ChunkingConfig(chunk_size=4, chunk_overlap=0))
    ingest([docs], index)
    (docs / "a.md").write_text("New opening line.\n\nFirst fact here.\n\nSecond fact here.")
    report = ingest([docs], index)
    assert (report.replaced, report.unchanged, report.removed) == (1, 2, 0)
    assert emb.texts == 3
    starts = {h.text: h.metadata["start"] for h in search(index, ["fact"], k=5, mode="bm25")[0]}
    assert starts == {"First fact here.": 19, "Second fact here.": 37}


def test_boilerplate_is_embedded_once_and_not_looked_up_per_batch(
    open_index: Opener, tmp_path: Path
) -> None:
    footer = "Terms and conditions apply to every order."
    files = {f"n{i}.md": f"Note {i} says value {i}.\n\n{footer}" for i in range(4)}
    docs = write_corpus(tmp_path / "docs", files)
    emb = CountingEmbedder()
    index = open_index(emb, chunking=ChunkingConfig(chunk_size=12, chunk_overlap=0))
    lookups: list[list[str]] = []
    iter_records = index.iter_records

    def spy(include=("metadatas",), page=5000, *, where=None):
        if where and "content_hash" in where:
            lookups.append(list(where["content_hash"]["$in"]))
        return iter_records(include, page, where=where)

    index.iter_records = spy  # type: ignore[method-assign]
    report = ingest([docs], index, batch_size=1)  # one file per batch
    assert report.added == 8 and emb.texts == 5  # four notes, the footer once
    # the footer's vector came from this run after the first batch, not from the index
    assert sum(content_hash(footer) in hashes for hashes in lookups) == 1


def test_sync_removes_gone_files_only_in_scope(open_index: Opener, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    other = write_corpus(tmp_path / "other", {"oslo.md": "Oslo is the capital of Norway."})
    index = open_index()
    ingest([docs], index)
    ingest([other], index)
    assert index.count() == 6
    (docs / "paris.md").unlink()
    assert ingest([docs], index, cleanup="none").removed == 0
    assert index.count() == 6
    scoped = ingest([docs], index)  # default: scoped to the paths given
    assert scoped.removed == 1 and index.count() == 5
    assert "/other/oslo.md" in str(index_snapshot(index).values())
    full = ingest([docs], index, cleanup="full")
    assert full.removed == 1 and index.count() == 4


def test_bad_files_are_reported_while_the_rest_ingests(open_index: Opener, tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    (docs / "blob.txt").write_bytes(b"\x00\x01\x02binary\x00")
    (docs / "latin1.md").write_bytes("na\u00efve".encode("latin-1"))
    (docs / "empty.md").write_text("")
    (docs / "huge.txt").write_text("word " * 250_000)
    index = open_index()
    loader = LoaderConfig(max_file_mb=1)
    report = ingest([docs], index, loader=loader)
    assert report.failed == 4 and report.added == 5 and index.count() == 5
    messages = {Path(e.file or "").name: e.message for e in report.errors}
    assert set(messages) == {"blob.txt", "latin1.md", "empty.md", "huge.txt"}
    assert "binary" in messages["blob.txt"] and "UTF-8" in messages["latin1.md"]
    assert "over the 1 MB limit" in messages["huge.txt"]
    # A file that turns bad keeps what it had, instead of being wiped.
    (docs / "berlin.txt").write_bytes(b"\xff\xfe broken now")
    again = ingest([docs], index, loader=loader)
    assert again.failed == 5 and again.removed == 0
    assert any("Spree" in text for _, text in index_snapshot(index).values())


def test_interrupted_ingestion_converges(open_index: Opener, tmp_path: Path) -> None:
    many_files(tmp_path / "docs", 40, "v1")
    index = open_index()
    ingest([tmp_path / "docs"], index, batch_size=8)
    many_files(tmp_path / "docs", 40, "v2")  # every file changed
    for extra in range(40, 48):
        (tmp_path / "docs" / f"note_{extra:03d}.md").write_text(f"Brand new note {extra}.")
    crashing = CountingEmbedder(fail_on_call=3)
    with pytest.raises(RuntimeError, match="injected"):
        ingest([tmp_path / "docs"], open_index(crashing), batch_size=8)
    mid = index_snapshot(index)
    assert any("v1" in t for _, t in mid.values()) and any("v2" in t for _, t in mid.values())
    report = ingest([tmp_path / "docs"], open_index(), batch_size=8)
    assert report.unchanged == 16  # the two batches written before the crash
    clean = ChromaIndex.open(tmp_path / "clean", embedder=HashEmbedder(), ctx=index.ctx)
    ingest([tmp_path / "docs"], clean, batch_size=8)
    assert index_snapshot(index) == index_snapshot(clean)


KILLER = """
import os, signal, sys
from compoundai.context import RunContext
from compoundai.testing import HashEmbedder
from compoundai_retrievers.index import ChromaIndex
from compoundai_retrievers.ingest import ingest
from compoundai_retrievers.loaders import LoaderConfig

class Killer(HashEmbedder):
    calls = 0
    def embed(self, texts):
        Killer.calls += 1
        if Killer.calls == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().embed(texts)

folder, server, collection, docs = sys.argv[1:5]
index = ChromaIndex.open(folder or None, server=server or None, collection=collection,
                         embedder=Killer(), ctx=RunContext(progress=False))
ingest([docs], index, batch_size=8)
"""


def test_ingestion_killed_with_sigkill_then_rerun(open_index: Opener, tmp_path: Path) -> None:
    docs = many_files(tmp_path / "docs", 60, "v1")
    loc = open_index.location  # type: ignore[attr-defined]
    args = [str(loc["folder"] or ""), loc["server"] or "", loc["collection"], str(docs)]
    # Embedded Chroma is one process's folder: this process opens it only after the child died,
    # as a user re-running the command would.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLER), *args], env=env, capture_output=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    survivor = open_index()
    assert 0 < survivor.count() < 60
    report = ingest([docs], survivor, batch_size=8)
    assert report.unchanged == 24 and report.added == 36
    assert survivor.count() == 60
    assert sorted(src for src, _ in index_snapshot(survivor).values()) == sorted(
        str(p.resolve()) for p in docs.iterdir()
    )


def test_embedder_is_recorded_and_a_mismatch_refused(open_index: Opener, tmp_path: Path) -> None:
    index = open_index(HashEmbedder(dim=32))
    ingest([write_corpus(tmp_path / "docs")], index)
    assert open_index(HashEmbedder(dim=32)).info().embedder == "hash-embedder-32"
    with pytest.raises(UserInputError, match="refusing 'hash-embedder-64'"):
        open_index(HashEmbedder(dim=64))
    loc = open_index.location  # type: ignore[attr-defined]
    reopened = ChromaIndex.open(
        loc["folder"], server=loc["server"], collection=loc["collection"], ctx=index.ctx
    )
    assert reopened.embedder.dim == 32  # rebuilt from the recorded name
    assert reopened.info().sources == 4


def test_search_modes_filters_and_citations(open_index: Opener, tmp_path: Path) -> None:
    index = open_index()
    ingest([write_corpus(tmp_path / "docs")], index, loader=LoaderConfig(metadata_fields=["lang"]))
    for mode in ("dense", "bm25", "hybrid"):
        top = search(index, ["capital of Portugal"], k=3, mode=mode)[0][0]  # type: ignore[arg-type]
        assert top.metadata["doc_id"] == "lisbon", mode
        assert top.citation.endswith("cities.jsonl#lisbon [0:34]")
    only = search(index, ["capital"], k=5, mode="hybrid", where={"title": "Madrid"})[0]
    assert [h.metadata["doc_id"] for h in only] == ["madrid"]
    dense_only = search(index, ["capital"], k=5, mode="dense", where={"lang": "en"})[0]
    assert [h.metadata["doc_id"] for h in dense_only] == ["lisbon"]
    many = search(index, ["Seine", "Tiber", "zzzz"], k=2, mode="bm25")
    assert [h[0].metadata["title"] for h in many[:2]] == ["Paris", "Rome"] and many[2] == []
    with pytest.raises(UserInputError):
        search(index, ["capital"], k=2, mode="dense", where={"title": {"$bogus": 1}})


def test_langchain_retriever_and_documents(open_index: Opener) -> None:
    from langchain_core.documents import Document

    from compoundai_retrievers.langchain_adapter import IndexRetriever, add_langchain_documents

    index = open_index()
    docs = [
        Document(
            page_content="Quito is the capital of Ecuador.", metadata={"source": "sa", "n": 1}
        ),
        Document(page_content="Lima is the capital of Peru.", metadata={"source": "sa", "n": 2}),
        Document(page_content="Quito is the capital of Ecuador.", metadata={"source": "sa"}),
    ]
    assert add_langchain_documents(index, docs).added == 3
    assert add_langchain_documents(index, docs).unchanged == 3
    retriever = IndexRetriever(index=index, k=2, mode="bm25")
    found = retriever.invoke("capital of Peru")
    assert found[0].page_content.startswith("Lima") and "citation" in found[0].metadata


def test_openai_embedder_through_a_fake_client() -> None:
    class FakeEmbeddings:
        def create(self, model: str, input: list[str]) -> SimpleNamespace:
            rows = [
                SimpleNamespace(index=i, embedding=[float(len(t)), 1.0])
                for i, t in enumerate(input)
            ]
            return SimpleNamespace(data=list(reversed(rows)))

    ctx = RunContext(progress=False)
    ctx.clients["openai"] = SimpleNamespace(embeddings=FakeEmbeddings())
    emb = make_embedder("openai:tiny-model", ctx)
    assert isinstance(emb, OpenAIEmbedder) and emb.name == "openai:tiny-model"
    vectors = emb.embed(["a", "abc"])
    assert emb.dim == 2 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[1, 0] > vectors[0, 0]
