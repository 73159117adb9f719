"""Ingestion at its edges: big files and repeated text, symlinks, skipped entries, control bytes,
and what a re-run after a killed run counts. (`benchmarks/bench_ingest_scale.py` and the slow
test in `test_ingest_scale.py` do the same at 100k and 40k chunks with `kill -9`.)"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai_retrievers.chunking import ChunkingConfig
from compoundai_retrievers.ingest import ingest
from compoundai_retrievers.loaders import load_file
from tests.retrievers.conftest import index_snapshot, write_corpus
from tests.retrievers.test_index import CountingEmbedder, Opener

ROWS = 5000  # the page size of every lookup
ingest_module = importlib.import_module("compoundai_retrievers.ingest")


class SQLiteLimit:
    """A collection that fails like SQLite's variable limit, at `ROWS` rows instead of 32,766:
    a `get` that would fetch more records than that in one statement raises."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        got = self._collection.get(*args, **kwargs)
        if len(got["ids"]) > ROWS:
            raise RuntimeError("too many SQL variables (simulated)")
        return got


def test_every_lookup_pages_big_files_and_repeated_text(open_index: Opener, tmp_path: Path):
    """One file of more chunks than a statement can fetch, all of the same boilerplate; then a
    second file with that boilerplate, whose vectors are reused from the first."""
    boilerplate = "\n\n".join(["Terms and conditions apply."] * (ROWS + 500))
    docs = write_corpus(tmp_path / "docs", {"a.md": boilerplate})
    chunking = ChunkingConfig(chunk_size=5, chunk_overlap=0)
    first = ingest([docs], open_index(chunking=chunking))
    assert first.added == ROWS + 500
    (docs / "b.md").write_text(boilerplate)
    emb = CountingEmbedder()
    index = open_index(emb)
    index.collection = SQLiteLimit(index.collection)
    again = ingest([docs], index)
    assert (again.unchanged, again.added, again.failed) == (ROWS + 500, ROWS + 500, 0)
    assert emb.texts == 0  # the boilerplate's vector came from the index
    assert ingest([docs], index).contract()["unchanged"] == 2 * (ROWS + 500)


def test_a_symlinked_file_is_indexed_under_the_link_and_cleaned_up(
    open_index: Opener, tmp_path: Path
):
    docs = write_corpus(tmp_path / "docs", {"a.md": "Alpha is first."})
    target = write_corpus(tmp_path / "elsewhere", {"t.md": "Tango lives elsewhere."}) / "t.md"
    (docs / "link.md").symlink_to(target)
    index = open_index()
    ingest([docs], index)
    sources = {src for src, _ in index_snapshot(index).values()}
    assert sources == {str(docs.resolve() / "a.md"), str(docs.resolve() / "link.md")}
    (docs / "link.md").unlink()
    report = ingest([docs], index)  # scoped cleanup: the link was under docs/
    assert report.removed == 1
    assert not any("Tango" in text for _, text in index_snapshot(index).values())


def test_the_walk_says_what_it_skipped(open_index: Opener, tmp_path: Path):
    docs = write_corpus(
        tmp_path / "docs", {"a.md": "Alpha.", "b.png": "x", ".env": "SECRET=1", ".git/c.md": "c"}
    )
    (docs / "loop1.md").symlink_to(docs / "loop2.md")
    (docs / "loop2.md").symlink_to(docs / "loop1.md")
    (docs / "gone.md").symlink_to(tmp_path / "missing.md")
    (tmp_path / "other").mkdir()
    (docs / "folder-link").symlink_to(tmp_path / "other")
    report = ingest([docs], open_index())
    assert report.files == 1 and report.added == 1
    reasons = {Path(s.file).name: s.message for s in report.skipped}
    assert reasons == {
        ".env": "hidden",
        ".git": "hidden",
        "b.png": "unknown suffix '.png'",
        "loop1.md": "symlink loop",
        "loop2.md": "symlink loop",
        "gone.md": "broken symlink (its target does not exist)",
        "folder-link": "symlinked folder, not followed",
    }


def test_index_add_prints_the_skipped_entries(tmp_path: Path):
    docs = write_corpus(tmp_path / "docs", {"a.md": "Alpha.", "b.png": "x", ".hidden.md": "h"})
    (docs / "loop.md").symlink_to(docs / "loop.md")
    result = CliRunner().invoke(
        cli,
        [
            *("--cache-dir", str(tmp_path / "c"), "--no-progress", "index", "add", str(docs)),
            *("--index", str(tmp_path / "idx"), "--embedder", "hash:16"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"skipped {docs / 'loop.md'}: symlink loop" in result.output
    assert "skipped 1 hidden, 1 symlink loop, 1 unknown suffix" in result.output
    assert json.loads(result.output.strip().splitlines()[-1])["added"] == 1


def test_a_file_of_control_bytes_is_binary(tmp_path: Path):
    path = tmp_path / "weird.txt"
    path.write_bytes(bytes(range(1, 9)) * 500 + b"\x7f\x1b" * 100)
    loaded = load_file(path)
    assert not loaded.documents
    assert "binary file (mostly control bytes)" in loaded.problems[0].message
    # a text with a few escapes and form feeds is still text
    (tmp_path / "log.txt").write_bytes(b"\x1b[1mbold\x1b[0m line\n\x0cpage two\n" * 50)
    assert load_file(tmp_path / "log.txt").documents


def test_chunks_a_killed_run_left_out_are_added_not_replaced(
    open_index: Opener, tmp_path: Path, monkeypatch
):
    text = "\n\n".join(f"Paragraph {i} says something new." for i in range(12))
    docs = write_corpus(tmp_path / "docs", {"new.md": text})
    monkeypatch.setattr(ingest_module, "EMBED_SLICE", 4)
    chunking = ChunkingConfig(chunk_size=6, chunk_overlap=0)
    with pytest.raises(RuntimeError, match="injected"):
        ingest([docs], open_index(CountingEmbedder(fail_on_call=2), chunking=chunking))
    index = open_index()
    assert index.count() == 4  # the first slice of the new file, then the crash
    report = ingest([docs], index)
    assert (report.added, report.replaced, report.unchanged, report.removed) == (8, 0, 4, 0)
    # an edited file still counts its new chunks as replaced
    (docs / "new.md").write_text(text + "\n\nParagraph 12 was appended later.")
    edited = ingest([docs], index)
    assert (edited.added, edited.replaced, edited.unchanged) == (0, 1, 12)
