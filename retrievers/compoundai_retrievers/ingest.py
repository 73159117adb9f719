"""Idempotent ingestion: files → chunks → only the new chunks embedded → Chroma, in batches.

In the manner of LangChain's record manager, without its second database: ids are content
hashes (see `chunking.py`) and every record carries its `source`, so for each batch of files one
query tells what the index already holds for them. Then, per batch:

1. chunks whose id is already there are **unchanged**: not embedded, not written (if only their
   offsets moved, the metadata is updated in place);
2. the rest are embedded (identical texts once; a text already embedded anywhere in the index,
   or earlier in this run, reuses that vector) and upserted: **replaced** for a file whose
   indexed chunks were cut from another version of it (each record carries `source_version`,
   a digest of its file's text), **added** otherwise: a file new to the index, or the chunks
   a killed run did not write;
3. only then are the file's stale chunks deleted (**removed**).

Every lookup is paged (`ChromaIndex.iter_records`): one file of 33,841 chunks, or one
boilerplate paragraph repeated across a corpus, matches more records than SQLite's 32,766
variables allow in the one statement an unpaged Chroma `get` runs.

Writing before deleting is what makes a killed run safe: at any instant a file has its old
chunks, or old and new, or new; re-running the same command converges (upserts are keyed by
content, so nothing is ever duplicated) and deletes the leftovers. A file that cannot be read
(binary, not UTF-8, empty, too big) is reported and **keeps** whatever it had in the index.
Files that disappeared are removed on a sync (`cleanup="scoped"`: under the folders and files
given; `"full"`: everything not given in this run; `"none"`: keep).

    >>> report = ingest(["docs/"], ChromaIndex.open("out/index"))   # doctest: +SKIP
    >>> report.model_dump(include={"added", "unchanged"})            # doctest: +SKIP
    {'added': 1287, 'unchanged': 0}
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from compoundai.errors import Problem
from compoundai.provenance import json_digest
from compoundai_retrievers.chunking import Chunk, chunk_document, make_splitter, word_count
from compoundai_retrievers.index import ChromaIndex
from compoundai_retrievers.loaders import (
    LoaderConfig,
    SourceDocument,
    discover_all,
    load_file,
    source_path,
)

Cleanup = Literal["none", "scoped", "full"]
EMBED_SLICE = 1024  # chunks embedded and written per step inside a batch
VERSION_KEY = "source_version"  # metadata: digest of the file's text when the chunk was cut


class FileError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str | None
    line: int | None = None
    message: str


class IngestReport(BaseModel):
    """Counts of one ingestion run. Chunks, except `failed` (files that could not be read).

    `added`/`replaced`/`unchanged`/`removed` follow DESIGN.md's `index add` contract; the
    other fields are additions.
    """

    model_config = ConfigDict(extra="forbid")

    added: int = 0
    unchanged: int = 0
    replaced: int = 0
    removed: int = 0
    failed: int = 0
    embedded: int = 0  # vectors computed by the model (the rest were reused or skipped)
    files: int = 0
    chunks: int = 0  # records in the collection after the run
    seconds: float = 0.0
    errors: list[FileError] = Field(default_factory=list)
    # entries a folder walk did not take (hidden, unknown suffix, symlink loop, ...), and why
    skipped: list[FileError] = Field(default_factory=list)

    def contract(self) -> dict[str, int]:
        """The five fields `index add` prints as its last line."""
        return self.model_dump(include={"added", "unchanged", "replaced", "removed", "failed"})


def ingest(
    paths: Iterable[str | Path],
    index: ChromaIndex,
    *,
    loader: LoaderConfig | None = None,
    cleanup: Cleanup = "scoped",
    batch_size: int = 4096,
) -> IngestReport:
    """Bring the index in line with the files under `paths`; see the module docstring."""
    started = time.perf_counter()
    roots = [str(source_path(p)) for p in paths]
    found = discover_all(roots)
    files = found.files
    loader = loader or LoaderConfig()
    docs: list[SourceDocument] = []
    problems: list[Problem] = []
    failed: set[str] = set()
    for path in _bar(files, index, "reading", "file"):
        loaded = load_file(path, loader)
        docs += loaded.documents
        problems += loaded.problems
        if not loaded.documents:
            failed.add(loaded.source)
    report = ingest_documents(docs, index, batch_size=batch_size)
    report.failed, report.files = len(failed), len(files)
    report.errors = [FileError(file=p.file, line=p.line, message=p.message) for p in problems]
    report.skipped = [FileError(file=k.path, message=k.reason) for k in found.skipped]
    if cleanup != "none":
        seen = {str(f) for f in files}
        report.removed += remove_missing_sources(
            index, seen, roots if cleanup == "scoped" else None
        )
    report.chunks = index.count()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def ingest_documents(
    docs: Sequence[SourceDocument], index: ChromaIndex, *, batch_size: int = 4096
) -> IngestReport:
    """Sync these documents' sources (no cleanup of other sources). Also for LangChain docs.

    >>> doc = SourceDocument("notes", "Paris is in France.", "notes")
    >>> ingest_documents([doc], index).added                          # doctest: +SKIP
    1
    """
    started = time.perf_counter()
    embedder = index.embedder
    length = getattr(embedder, "token_length", word_count)
    splitter = make_splitter(index.chunking, length)
    by_source: dict[str, list[Chunk]] = {}
    repeats: dict[str, dict[tuple[str, str], int]] = {}
    parts: dict[str, list[Any]] = {}
    for doc in docs:
        parts.setdefault(doc.source, []).append([doc.text, doc.title, doc.metadata])
        by_source.setdefault(doc.source, []).extend(
            chunk_document(
                doc,
                index.chunking,
                length,
                splitter=splitter,
                repeats=repeats.setdefault(doc.source, {}),
            )
        )
    versions = {source: json_digest(rows)[:16] for source, rows in parts.items()}
    report = IngestReport(files=len(by_source))
    # Vectors of the texts this run meets more than once (boilerplate), kept across batches:
    # without them every slice that holds a footer looked it up in the index again, fetching
    # every record that shares it (~33,000 in the 100k-chunk benchmark), page by page.
    hashes = Counter(c.content_hash for chunks in by_source.values() for c in chunks)
    reuse = _Reuse({h for h, n in hashes.items() if n > 1})
    total = sum(len(c) for c in by_source.values())
    with _bar(None, index, "indexing", "chunk", total=total) as bar:
        group: list[str] = []
        size = 0
        for source, chunks in by_source.items():
            group.append(source)
            size += len(chunks)
            if size >= batch_size:
                _sync_group(index, {s: by_source[s] for s in group}, versions, report, bar, reuse)
                group, size = [], 0
        if group:
            _sync_group(index, {s: by_source[s] for s in group}, versions, report, bar, reuse)
    report.chunks = index.count()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _sync_group(
    index: ChromaIndex,
    by_source: dict[str, list[Chunk]],
    versions: dict[str, str],
    report: IngestReport,
    bar: Any,
    reuse: _Reuse,
) -> None:
    """Write what is new in these sources (longest texts first, in slices), then delete
    what is stale: see the module docstring for why in that order."""
    unchanged_before = report.unchanged
    existing = index.records_of(list(by_source))
    held_versions: dict[str, set[Any]] = {}
    for meta in existing.values():
        held_versions.setdefault(str(meta.get("source")), set()).add(meta.get(VERSION_KEY))
    to_write: list[Chunk] = []
    moved: list[Chunk] = []
    keep: set[str] = set()
    for source, chunks in by_source.items():
        # New chunks of a file whose indexed chunks came from another version of it are
        # `replaced`; those of a new file, or of this same version that a killed run left
        # half-written, are `added`.
        changed = bool(held_versions.get(source, set()) - {versions[source]})
        for chunk in chunks:
            keep.add(chunk.id)
            old = existing.get(chunk.id)
            if old is None:
                to_write.append(chunk)
                if changed:
                    report.replaced += 1
                else:
                    report.added += 1
            else:
                report.unchanged += 1
                if old != _metadata(chunk, versions):
                    moved.append(chunk)
    bar.update(report.unchanged - unchanged_before)
    # Sorted by length, so each embedding batch pads little; sliced, so the bar moves and a
    # killed run keeps what it embedded.
    to_write.sort(key=lambda c: len(c.text), reverse=True)
    for start in range(0, len(to_write), EMBED_SLICE):
        part = to_write[start : start + EMBED_SLICE]
        index.write(
            [c.id for c in part],
            _vectors_for(index, part, report, reuse),
            [c.text for c in part],
            [_metadata(c, versions) for c in part],
        )
        bar.update(len(part))
    if moved:
        index.update_metadata([c.id for c in moved], [_metadata(c, versions) for c in moved])
    stale = [rid for rid in existing if rid not in keep]
    if stale:
        index.delete(stale)
        report.removed += len(stale)


def _metadata(chunk: Chunk, versions: dict[str, str]) -> dict[str, Any]:
    """A chunk's record metadata, with the version (digest) of the file it was cut from."""
    return {**chunk.record_metadata(), VERSION_KEY: versions[chunk.source]}


class _Reuse:
    """The vectors of one run's repeated texts (`wanted`), once embedded or found."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.vectors: dict[str, np.ndarray] = {}

    def keep(self, vectors: dict[str, np.ndarray]) -> None:
        for h, v in vectors.items():
            if h in self.wanted:
                self.vectors.setdefault(h, v)


def _vectors_for(
    index: ChromaIndex, chunks: list[Chunk], report: IngestReport, reuse: _Reuse
) -> np.ndarray:
    """Embed each distinct text once; reuse vectors this run or the index already has for it."""
    by_hash: dict[str, str] = {c.content_hash: c.text for c in chunks}
    known = {h: reuse.vectors[h] for h in by_hash if h in reuse.vectors}
    hashes = [h for h in by_hash if h not in known]
    for start in range(0, len(hashes), 500):
        # paged: boilerplate repeated across a corpus matches thousands of records per hash
        where = {"content_hash": {"$in": hashes[start : start + 500]}}
        for _, row in index.iter_records(["metadatas", "embeddings"], where=where):
            known.setdefault(str(row["content_hash"]), np.asarray(row["embedding"], np.float32))
    missing = [h for h in hashes if h not in known]
    if missing:
        fresh = index.embedder.embed([by_hash[h] for h in missing])
        if fresh.shape != (len(missing), index.dim):
            raise ValueError(f"embedder returned {fresh.shape}, expected ({len(missing)}, dim)")
        known.update(zip(missing, fresh, strict=True))
        report.embedded += len(missing)
    reuse.keep(known)
    return np.stack([known[c.content_hash] for c in chunks]).astype(np.float32)


def remove_missing_sources(index: ChromaIndex, seen: set[str], roots: list[str] | None) -> int:
    """Delete records of sources not in `seen`: all of them, or those under `roots` only."""
    stale = []
    for rid, meta in index.iter_records(["metadatas"]):
        source = str(meta.get("source", ""))
        if source in seen:
            continue
        if roots is None or any(source == r or source.startswith(r + os.sep) for r in roots):
            stale.append(rid)
    index.delete(stale)
    return len(stale)


def _bar(items: Any, index: ChromaIndex, desc: str, unit: str, total: int | None = None) -> Any:
    from compoundai.progress import bar

    return bar(items, desc=desc, unit=unit, total=total, enabled=index.ctx.progress)
