"""Rebuild an embedded index's vector segment when Chroma cannot read it any more.

Why this exists: a `kill -9` that lands while embedded Chroma persists its HNSW graph leaves a
truncated file in the segment folder (`index_metadata.pickle`, seen 2026-12-02), and from then
on every read of the collection fails with "Error creating hnsw segment reader". The records
themselves (ids, texts, metadata) are safe in `chroma.sqlite3`, but Chroma purges the vectors
from its write-ahead log once it has persisted them, so they exist only in the damaged graph.

The repair, for a `PersistentClient` index only (a server owns its own files):
1. the damaged segment folder is moved aside; Chroma then opens the collection again, with the
   metadata segment intact and the vector segment rebuilt from what is left of its log;
2. every record is read back and its text embedded again with the index's recorded embedder
   (one embedding per distinct text), then upserted under the same id and metadata;
3. the moved-aside folder is deleted.

A marker file (`compoundai-repair-<collection>.json`) is written before step 1 and removed
after step 3, so a repair that is itself killed resumes on the next open instead of leaving an
index that opens but silently lacks vectors. Nothing else is removed: the records never leave
`chroma.sqlite3`.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compoundai.errors import RunTimeFailure

if TYPE_CHECKING:
    from compoundai_retrievers.index import ChromaIndex

log = logging.getLogger("compoundai.index")

REPAIR_SLICE = 1024  # records embedded and upserted per step


def unreadable_segment(exc: BaseException) -> bool:
    """Whether a Chroma error says the vector (HNSW) segment cannot be loaded from disk."""
    text = str(exc).lower()
    return "hnsw segment reader" in text or "error loading hnsw index" in text


def marker_path(folder: Path, collection: str) -> Path:
    return folder / f"compoundai-repair-{collection}.json"


def ensure_readable(index: ChromaIndex, folder: Path) -> None:
    """Check that the collection reads; if its vector segment is damaged (or an earlier repair
    was interrupted), rebuild it. A damage this cannot repair is a clear `RunTimeFailure`."""
    marker = marker_path(folder, index.collection.name)
    if not marker.exists():
        try:
            index.collection.get(limit=1, include=[])
            return
        except Exception as exc:
            if not unreadable_segment(exc):
                raise RunTimeFailure(
                    f"cannot read index {folder} [{index.collection.name}]: {exc}"
                ) from exc
            segment = vector_segment(folder, str(index.collection.id))
            marker.write_text(
                json.dumps({"segment": segment, "error": str(exc)[:500], "at": time.time()})
            )
            log.warning(
                "warning: index %s [%s]: its vector segment cannot be read (%s); rebuilding "
                "it from the records in chroma.sqlite3",
                folder,
                index.collection.name,
                _short(exc),
            )
    state = json.loads(marker.read_text())
    segment = str(state["segment"])
    damaged = folder / segment
    aside = folder / f"damaged-{segment}"
    if damaged.exists() and not aside.exists():
        damaged.rename(aside)
    rebuilt = rebuild_vectors(index)
    shutil.rmtree(aside, ignore_errors=True)
    marker.unlink()
    log.warning(
        "warning: index %s [%s]: vector segment rebuilt (%d records embedded again with %s)",
        folder,
        index.collection.name,
        rebuilt,
        index.embedder_name,
    )


def vector_segment(folder: Path, collection_id: str) -> str:
    """The id (= folder name) of the collection's vector segment, read from chroma.sqlite3."""
    db = folder / "chroma.sqlite3"
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT id FROM segments WHERE collection = ? AND scope = 'VECTOR'",
                (collection_id,),
            ).fetchall()
    except sqlite3.Error as exc:
        rows, why = [], str(exc)
    else:
        why = f"{len(rows)} vector segments recorded"
    if len(rows) != 1:
        raise RunTimeFailure(
            f"index {folder}: the vector segment cannot be read and cannot be located to "
            f"rebuild it ({why})\nhint: delete {folder} and run `compoundai index add` again; "
            "the source files are unchanged"
        )
    return str(rows[0][0])


def rebuild_vectors(index: ChromaIndex) -> int:
    """Embed every record's text again and upsert it under its id and metadata; how many."""
    from compoundai.progress import bar as progress_bar

    records = list(index.iter_records(["documents", "metadatas"]))
    with progress_bar(
        desc="rebuilding vectors", unit="chunk", total=len(records), enabled=index.ctx.progress
    ) as bar:
        for start in range(0, len(records), REPAIR_SLICE):
            part = records[start : start + REPAIR_SLICE]
            texts = [str(row.get("document") or "") for _, row in part]
            unique = list(dict.fromkeys(texts))
            vectors = index.embedder.embed(unique)
            if vectors.shape != (len(unique), index.dim):
                raise RunTimeFailure(
                    f"embedder {index.embedder_name} returned {vectors.shape}, "
                    f"expected ({len(unique)}, {index.dim})"
                )
            by_text = dict(zip(unique, np.asarray(vectors, np.float32), strict=True))
            metas: list[dict[str, Any]] = [
                {k: v for k, v in row.items() if k != "document"} for _, row in part
            ]
            index.write(
                [rid for rid, _ in part], np.stack([by_text[t] for t in texts]), texts, metas
            )
            bar.update(len(part))
    return len(records)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 160 else text[:157] + "..."
