"""`ChromaIndex`: one Chroma collection, embedded on disk or on a Chroma server, that remembers
which embedder built it.

Why it is shaped this way:
- **Either client, same code.** `PersistentClient(path)` by default; `HttpClient` when given a
  server URL. Everything below talks to a `Collection`, so ingestion, sync and search run
  unchanged on both.
- **The collection records its embedder** (name and dimension, in the collection metadata).
  Opening an index without an embedder rebuilds the recorded one (`index query` needs no
  model flag); opening it with a different one is refused with a clear error, because vectors
  from two models in one space give silently wrong neighbours.
- **No record-manager table beside Chroma.** Ids are content hashes and every record carries
  its `source`, so Chroma itself answers "what does this file have in the index now?"; there is
  no second store that could disagree with it after a crash. Ingestion lives in `ingest.py`.
- **A damaged vector segment is rebuilt on open** (`repair.py`): a kill during Chroma's HNSW
  persist leaves a graph it cannot read, while the records survive in `chroma.sqlite3`.

    >>> index = ChromaIndex.open("out/index")                # doctest: +SKIP
    >>> index.count(), index.info().embedder                 # doctest: +SKIP
    (1287, 'all-minilm-l6-v2')
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from pydantic import BaseModel, ConfigDict

from compoundai.context import RunContext
from compoundai.errors import RunTimeFailure, UserInputError
from compoundai_retrievers.chunking import ChunkingConfig
from compoundai_retrievers.embedders import Embedder, make_embedder
from compoundai_retrievers.repair import ensure_readable

DEFAULT_COLLECTION = "compoundai"
EXACT_LIMIT = 50_000  # chunks up to which dense search is exact (about 77 MB of vectors)
DEFAULT_EMBEDDER = "all-minilm-l6-v2"
_META_PREFIX = "compoundai_"
_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")


class IndexInfo(BaseModel):
    """What an index says about itself (`index stats`)."""

    model_config = ConfigDict(extra="forbid")

    location: str
    collection: str
    embedder: str
    dim: int
    chunking: ChunkingConfig
    chunks: int
    sources: int | None = None


def connect(path: str | Path | None = None, server: str | None = None, create: bool = True) -> Any:
    """A Chroma client: `HttpClient` for a server URL, else `PersistentClient` at `path`.

    >>> client = connect("out/index")                        # doctest: +SKIP
    >>> client = connect(server="http://127.0.0.1:8000")     # doctest: +SKIP
    """
    import chromadb

    if server:
        url = urlparse(server if "://" in server else f"http://{server}")
        if not url.hostname:
            raise UserInputError(f"cannot read a host from the server URL {server!r}")
        port = url.port or (443 if url.scheme == "https" else 8000)
        try:
            client = chromadb.HttpClient(host=url.hostname, port=port, ssl=url.scheme == "https")
            client.heartbeat()
        except Exception as exc:
            raise RunTimeFailure(
                f"no Chroma server answers at {server}: {exc}\n"
                "hint: start one with `chroma run --path DIR --port PORT`"
            ) from None
        return client
    if path is None:
        raise UserInputError("give an index folder (--index DIR) or a server (--server URL)")
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserInputError(f"{folder} is a file; --index wants a folder")
    if not folder.exists() and not create:
        raise UserInputError(
            f"no index at {folder}",
            hint="build it first with `compoundai index add PATH... --index DIR`",
        )
    folder.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(folder))


class ChromaIndex:
    """A Chroma collection of chunks, with the embedder that built it.

    >>> index = ChromaIndex.open("out/index", embedder=HashEmbedder())  # doctest: +SKIP
    >>> search(index, ["when were the Normans in Normandy?"], k=3)    # doctest: +SKIP
    """

    def __init__(
        self,
        collection: Any,
        *,
        location: str,
        embedder_name: str,
        dim: int,
        chunking: ChunkingConfig,
        embedder: Embedder | None = None,
        ctx: RunContext | None = None,
        max_batch_size: int = 5000,
    ) -> None:
        self.collection = collection
        self.location = location
        self.embedder_name = embedder_name
        self.dim = dim
        self.chunking = chunking
        self.ctx = ctx or RunContext()
        self.max_batch_size = max_batch_size
        self._embedder = embedder
        # built on first use, dropped on every write: the BM25 index and the exact dense one
        self._bm25: Any = None
        self._exact: Any = None

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        server: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        embedder: Embedder | None = None,
        chunking: ChunkingConfig | None = None,
        ctx: RunContext | None = None,
        create: bool = True,
    ) -> ChromaIndex:
        """Open (or create) the collection; check or record its embedder and chunking.

        A new index takes `embedder` (default MiniLM) and `chunking` (default
        `ChunkingConfig()`); an existing one keeps what it recorded unless `chunking` is given.
        """
        from chromadb.errors import NotFoundError

        ctx = ctx or RunContext()
        if not _NAME_RE.fullmatch(collection):
            raise UserInputError(
                f"bad collection name {collection!r}: use 3-512 letters, digits, '.', '_' or "
                "'-', starting and ending with a letter or digit"
            )
        client = connect(path, server, create=create)
        location = server or str(Path(path or ".").expanduser())
        try:
            col = client.get_collection(collection, embedding_function=None)
        except NotFoundError:
            col = None
        except Exception as exc:  # a server-side error other than "missing"
            raise RunTimeFailure(f"cannot open collection {collection!r}: {exc}") from exc
        if col is None:
            if not create:
                raise UserInputError(
                    f"no collection {collection!r} in {location}",
                    hint="build it first with `compoundai index add PATH... --index DIR`",
                )
            embedder = embedder or make_embedder(DEFAULT_EMBEDDER, ctx)
            chunking = chunking or ChunkingConfig()
            meta = _record(embedder.name, embedder.dim, chunking)
            col = client.get_or_create_collection(
                collection,
                configuration={"hnsw": {"space": "cosine"}},
                metadata=meta,
                embedding_function=None,
            )
        recorded = col.metadata or {}
        name = recorded.get(f"{_META_PREFIX}embedder")
        dim = recorded.get(f"{_META_PREFIX}dim")
        if name is None or dim is None:
            raise UserInputError(
                f"collection {collection!r} in {location} was not built by compoundai "
                "(no embedder recorded); index into a new collection with --collection NAME"
            )
        if embedder is not None and (embedder.name != name or embedder.dim != dim):
            raise UserInputError(
                f"index {location} [{collection}] was built with embedder {name!r} "
                f"(dim {dim}); refusing {embedder.name!r} (dim {embedder.dim}): the vectors "
                "would not be comparable",
                hint="leave the embedder out to use the recorded one, or use a new collection",
            )
        stored_chunking = ChunkingConfig(
            chunk_size=int(recorded.get(f"{_META_PREFIX}chunk_size", 200)),
            chunk_overlap=int(recorded.get(f"{_META_PREFIX}chunk_overlap", 32)),
        )
        if chunking is not None and chunking != stored_chunking:
            col.modify(metadata=_record(str(name), int(dim), chunking))
        index = cls(
            col,
            location=location,
            embedder_name=str(name),
            dim=int(dim),
            chunking=chunking or stored_chunking,
            embedder=embedder,
            ctx=ctx,
            max_batch_size=min(5000, int(client.get_max_batch_size())),
        )
        if server is None:  # our own files: a segment a killed write damaged is rebuilt here
            ensure_readable(index, Path(location))
        return index

    @property
    def embedder(self) -> Embedder:
        """The embedder that built this index (rebuilt from its recorded name if needed)."""
        if self._embedder is None:
            self._embedder = make_embedder(self.embedder_name, self.ctx)
            if self._embedder.name != self.embedder_name:
                raise UserInputError(
                    f"the injected embedder {self._embedder.name!r} does not match the "
                    f"index's {self.embedder_name!r}"
                )
        return self._embedder

    def count(self) -> int:
        return int(self.collection.count())

    @property
    def dense_method(self) -> str:
        """`exact` (brute force, deterministic) or `hnsw` (Chroma's approximate graph)."""
        return "exact" if self.count() <= EXACT_LIMIT else "hnsw"

    def info(self, *, with_sources: bool = True) -> IndexInfo:
        """Counts and settings; `with_sources` reads every record's source (one pass)."""
        sources = None
        if with_sources:
            sources = len({m.get("source") for _, m in self.iter_records(["metadatas"])})
        return IndexInfo(
            location=self.location,
            collection=self.collection.name,
            embedder=self.embedder_name,
            dim=self.dim,
            chunking=self.chunking,
            chunks=self.count(),
            sources=sources,
        )

    # -- records ---------------------------------------------------------------------------

    def records_of(self, sources: Sequence[str]) -> dict[str, dict[str, Any]]:
        """id -> metadata of every record whose source is one of `sources` (paged)."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(sources), 500):
            where = {"source": {"$in": list(sources[start : start + 500])}}
            out.update(self.iter_records(["metadatas"], where=where))
        return out

    def iter_records(
        self,
        include: Sequence[str] = ("metadatas",),
        page: int = 5000,
        *,
        where: dict[str, Any] | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every record (matching `where`) as (id, {metadata..., "document": text, "embedding":
        vector, if asked}), `page` records per request.

        Every lookup pages: Chroma fetches a query's matches with one SQL statement, and more
        than SQLite's 32,766 variables (one file of 33,841 chunks) fails with "too many SQL
        variables".
        """
        offset = 0
        while True:
            got = self.collection.get(
                where=where or None, limit=page, offset=offset, include=list(include)
            )
            ids = got["ids"]
            if not ids:
                return
            metas = got.get("metadatas") or [{}] * len(ids)
            docs = got.get("documents") or [None] * len(ids)
            vectors = got.get("embeddings")
            if vectors is None:
                vectors = [None] * len(ids)
            for rid, meta, doc, vec in zip(ids, metas, docs, vectors, strict=True):
                row = dict(meta or {})
                if doc is not None:
                    row["document"] = doc
                if vec is not None:
                    row["embedding"] = vec
                yield rid, row
            offset += len(ids)
            if len(ids) < page:
                return

    def export_records(self, folder: Path) -> dict[str, str]:
        """Write every record (`records.jsonl`: id, text, metadata) and its vector
        (`embeddings.safetensors`) into `folder`, so the index can be rebuilt without Chroma's
        own files (which include a pickle) and without embedding anything again."""
        import json

        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        rows, vectors = [], []
        for rid, row in self.iter_records(["documents", "metadatas", "embeddings"], page=2000):
            vectors.append(np.asarray(row.pop("embedding"), dtype=np.float32))
            rows.append({"id": rid, "text": row.pop("document", None), "metadata": row})
        with open(folder / "records.jsonl", "w", encoding="utf-8") as fh:
            for out in rows:
                fh.write(json.dumps(out, ensure_ascii=False) + "\n")
        matrix = np.stack(vectors) if vectors else np.zeros((0, self.dim), np.float32)
        save_file(
            {"embeddings": np.ascontiguousarray(matrix)}, str(folder / "embeddings.safetensors")
        )
        return {"records": "records.jsonl", "embeddings": "embeddings.safetensors"}

    def import_records(self, records: Path, embeddings: Path) -> int:
        """Write the records `export_records` saved back into this collection; how many."""
        from safetensors.numpy import load_file

        from compoundai.data import read_jsonl

        rows = read_jsonl(records)
        vectors = load_file(str(embeddings))["embeddings"]
        if len(rows) != len(vectors):
            raise UserInputError(
                f"{records.parent}: {len(rows)} records but {len(vectors)} vectors",
                hint="the saved index is damaged; build it again",
            )
        if rows:
            self.write(
                [r["id"] for r in rows],
                vectors,
                [r["text"] for r in rows],
                [r["metadata"] for r in rows],
            )
        return len(rows)

    def write(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        """Upsert records in batches the client accepts (ids are content hashes: no dupes)."""
        self._bm25 = self._exact = None
        step = self.max_batch_size
        for start in range(0, len(ids), step):
            end = start + step
            self.collection.upsert(
                ids=list(ids[start:end]),
                embeddings=vectors[start:end],
                documents=list(texts[start:end]),
                metadatas=list(metadatas[start:end]),
            )

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        """Move offsets of chunks whose text did not change, without re-embedding them."""
        self._bm25 = self._exact = None
        for start in range(0, len(ids), self.max_batch_size):
            end = start + self.max_batch_size
            self.collection.update(ids=list(ids[start:end]), metadatas=list(metadatas[start:end]))

    def delete(self, ids: Sequence[str]) -> None:
        self._bm25 = self._exact = None
        for start in range(0, len(ids), self.max_batch_size):
            self.collection.delete(ids=list(ids[start : start + self.max_batch_size]))


def _record(embedder: str, dim: int, chunking: ChunkingConfig) -> dict[str, Any]:
    return {
        f"{_META_PREFIX}embedder": embedder,
        f"{_META_PREFIX}dim": dim,
        f"{_META_PREFIX}chunk_size": chunking.chunk_size,
        f"{_META_PREFIX}chunk_overlap": chunking.chunk_overlap,
    }
