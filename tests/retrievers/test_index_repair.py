"""A vector segment damaged by a kill during Chroma's HNSW persist is rebuilt when the index
opens (`compoundai_retrievers.repair`), and a repair that is itself interrupted resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from compoundai.context import RunContext
from compoundai.testing import HashEmbedder
from compoundai_retrievers import repair
from compoundai_retrievers.index import ChromaIndex

N = 1500  # past Chroma's sync threshold (1000 adds), so an HNSW segment folder is persisted


def _forget_clients() -> None:
    """Drop Chroma's in-process client cache, as a new process would start without it."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()


def _open(folder: Path) -> ChromaIndex:
    _forget_clients()
    return ChromaIndex.open(folder, embedder=HashEmbedder(), ctx=RunContext(progress=False))


def _build(folder: Path) -> tuple[list[str], dict]:
    index = _open(folder)
    texts = [f"chunk {i} about topic {i % 37} and {i % 11}" for i in range(N)]
    ids = [f"c{i:05d}" for i in range(N)]
    metas = [{"source": f"f{i % 5}.txt", "content_hash": f"h{i}"} for i in range(N)]
    for start in range(0, N, 500):  # several writes, as ingestion makes them
        end = start + 500
        vectors = index.embedder.embed(texts[start:end])
        index.write(ids[start:end], vectors, texts[start:end], metas[start:end])
    return sorted(ids), _neighbours(index)


def _neighbours(index: ChromaIndex) -> dict[str, tuple[list[float], str, dict]]:
    """Every record: its vector (rounded), text and metadata."""
    out = {}
    for rid, row in index.iter_records(["documents", "metadatas", "embeddings"]):
        vector = [round(float(x), 5) for x in row.pop("embedding")]
        out[rid] = (vector, row.pop("document"), row)
    return out


def _damage(folder: Path) -> Path:
    [segment] = [p for p in folder.iterdir() if (p / "index_metadata.pickle").exists()]
    pickle = segment / "index_metadata.pickle"
    with open(pickle, "r+b") as fh:  # what a kill mid-write leaves: the file cut short
        fh.truncate(pickle.stat().st_size // 3)
    return segment


def _unreadable(folder: Path) -> None:
    import chromadb

    _forget_clients()
    col = chromadb.PersistentClient(path=str(folder)).get_collection("compoundai")
    with pytest.raises(Exception, match="hnsw segment reader"):
        col.get(limit=1, include=[])


def test_damaged_segment_is_rebuilt_on_open_with_every_record_and_vector(tmp_path, caplog):
    folder = tmp_path / "index"
    ids, before = _build(folder)
    segment = _damage(folder)
    _unreadable(folder)  # the bug as Chroma shows it, before the repair

    index = _open(folder)
    assert sorted(rid for rid, _ in index.iter_records([])) == ids
    assert _neighbours(index) == before  # same vector, text and metadata for every id
    assert before["c00042"][2] == {"source": "f2.txt", "content_hash": "h42"}
    hits = index.collection.query(query_embeddings=[before["c00042"][0]], n_results=1)
    assert hits["ids"] == [["c00042"]]  # and the rebuilt graph finds them
    assert "vector segment rebuilt (1500 records" in caplog.text
    assert not repair.marker_path(folder, "compoundai").exists()
    assert not (folder / f"damaged-{segment.name}").exists()
    # and the repaired index opens again as a healthy one, with nothing to rebuild
    caplog.clear()
    assert _open(folder).count() == N and "rebuilt" not in caplog.text


def test_a_repair_killed_midway_resumes_on_the_next_open(tmp_path, monkeypatch):
    folder = tmp_path / "index"
    ids, before = _build(folder)
    _damage(folder)
    calls = {"n": 0}
    real_write = ChromaIndex.write

    def dies_on_second_slice(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # stands in for the kill: nothing after this line runs
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(repair, "REPAIR_SLICE", 600)
    monkeypatch.setattr(ChromaIndex, "write", dies_on_second_slice)
    with pytest.raises(KeyboardInterrupt):
        _open(folder)
    assert repair.marker_path(folder, "compoundai").exists()
    monkeypatch.setattr(ChromaIndex, "write", real_write)
    # the half-repaired index would open and read; the marker makes the next open finish it
    index = _open(folder)
    assert not repair.marker_path(folder, "compoundai").exists()
    assert sorted(rid for rid, _ in index.iter_records([])) == ids
    assert _neighbours(index) == before


def test_only_a_segment_load_error_is_repaired_and_an_unlocatable_segment_says_what_to_do(
    tmp_path,
):
    from compoundai.errors import RunTimeFailure

    assert repair.unreadable_segment(RuntimeError("Error creating hnsw segment reader: EOF"))
    assert not repair.unreadable_segment(RuntimeError("database is locked"))
    folder = tmp_path / "index"
    _build(folder)
    with pytest.raises(RunTimeFailure, match="cannot be located") as info:
        repair.vector_segment(folder, "no-such-collection")
    assert "compoundai index add" in str(info.value)
