"""`RagStore`: the rag lane's Chroma index, built once per task's data and cached.

The index lives under `CACHE/rag/<task>-<what>-<hash>/`, the hash covering the data, the
embedder and the chunking, so a second build with the same data reopens it without reading or
embedding anything (ingestion is idempotent anyway, and a `build.json` marker says the last fill
finished). It holds either the labelled training examples (the input is the text, the output
sits in the metadata) or the task's documents. Searching, exporting and restoring are the
retrievers' (`compoundai_retrievers.search`, `ChromaIndex.export_records`); this module only
knows what a task's data becomes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compoundai.cache_lock import filling
from compoundai.context import RunContext
from compoundai.data import slug
from compoundai.errors import UserInputError
from compoundai.provenance import file_sha256, json_digest

if TYPE_CHECKING:
    from compoundai.task import Task

STORE_FILE = "build.json"


def embedder_key(embedder: Any) -> str:
    """What names an embedder in an index's key: its name, and for a model folder (a tuned
    embedder) the hash of its weights too, so tuning again into the same folder is a new index."""
    folder = Path(str(embedder.name))
    weights = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not weights:
        return str(embedder.name)
    return f"{embedder.name}@{json_digest([file_sha256(w) for w in weights])[:16]}"


class RagStore:
    """A built `ChromaIndex` and what it holds: `examples` (labelled) or `documents`."""

    def __init__(self, index: Any, *, key: str, holds: str, folder: Path, items: int) -> None:
        self.index = index
        self.key = key
        self.holds = holds
        self.folder = folder
        self.items = items
        self.loader: Any = None  # documents: the task's loader settings (`update_documents`)

    # building

    @classmethod
    def for_examples(cls, task: Task, ctx: RunContext, embedder: Any) -> RagStore:
        """One record per training example: its input as the text, its output in metadata."""
        from compoundai_retrievers.chunking import ChunkingConfig
        from compoundai_retrievers.loaders import SourceDocument

        train = task.split("train")
        # Examples are short; one chunk each where the embedder's window allows.
        chunking = ChunkingConfig(chunk_size=256, chunk_overlap=0)
        key = json_digest(
            ["examples", embedder_key(embedder), chunking.model_dump()]
            + [[e.id, e.input, e.output] for e in train]
        )[:16]
        docs = [
            SourceDocument(
                f"example:{e.id}",
                e.input,
                e.id,
                metadata={"example_id": e.id, "output_json": json.dumps(e.output)},
            )
            for e in train
        ]

        def fill(index: Any) -> None:
            from compoundai_retrievers.ingest import ingest_documents

            ingest_documents(docs, index)

        return cls._build(task, ctx, embedder, "examples", key, chunking, len(train), fill)

    @classmethod
    def for_documents(cls, task: Task, ctx: RunContext, embedder: Any) -> RagStore:
        """The task's documents, loaded, chunked and embedded by the retrievers' ingestion."""
        from compoundai.task_files import document_loader
        from compoundai_retrievers.chunking import ChunkingConfig

        chunking = ChunkingConfig()
        files = sorted(p.resolve() for p in task.documents)
        loader = document_loader(task)
        fields = [] if loader == type(loader)() else [loader.model_dump()]  # default: key as before
        key = json_digest(
            ["documents", embedder_key(embedder), chunking.model_dump(), *fields]
            + [[str(p), file_sha256(p)] for p in files]
        )[:16]

        def fill(index: Any) -> None:
            from compoundai_retrievers.ingest import ingest

            report = ingest(files, index, cleanup="full", loader=loader)
            if index.count() == 0:
                problems = "; ".join(f"{e.file}: {e.message}" for e in report.errors[:5])
                raise UserInputError(
                    f"the task's documents gave nothing to index ({problems or 'no text'})",
                    hint="point `documents:` at text, Markdown, HTML, JSONL or PDF files",
                )

        store = cls._build(task, ctx, embedder, "documents", key, chunking, len(files), fill)
        store.loader = loader
        return store

    @classmethod
    def _build(
        cls,
        task: Task,
        ctx: RunContext,
        embedder: Any,
        holds: str,
        key: str,
        chunking: Any,
        items: int,
        fill: Callable[[Any], None],
    ) -> RagStore:
        from compoundai_retrievers.index import ChromaIndex

        folder = ctx.cache_dir / "rag" / f"{slug(task.name)}-{holds}-{key}"
        with filling(folder, f"indexing the task's {holds}"):
            index = ChromaIndex.open(
                folder / "chroma", embedder=embedder, chunking=chunking, ctx=ctx
            )
            store = cls(index, key=key, holds=holds, folder=folder, items=items)
            if not store._complete():
                fill(index)
                store._mark()
        return store

    def _complete(self) -> bool:
        marker = self.folder / STORE_FILE
        if not marker.is_file():
            return False
        try:
            done = json.loads(marker.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return False
        return bool(done.get("key") == self.key and done.get("count") == self.index.count())

    def _mark(self) -> None:
        record = {
            "key": self.key,
            "holds": self.holds,
            "items": self.items,
            "count": self.index.count(),
        }
        (self.folder / STORE_FILE).write_text(json.dumps(record) + "\n", encoding="utf-8")

    # searching (the retrievers' functions, on this index)

    def dense(self, queries: Sequence[str], k: int) -> list[list[Any]]:
        from compoundai_retrievers.search import dense_search

        return dense_search(self.index, list(queries), k=k)

    def keyword(self, queries: Sequence[str], k: int) -> list[list[Any]]:
        from compoundai_retrievers.search import keyword_search

        return keyword_search(self.index, list(queries), k=k)

    def hybrid(self, queries: Sequence[str], k: int) -> tuple[list[list[Any]], list[float]]:
        """Fused dense + BM25 hits, and each query's best dense cosine."""
        from compoundai_retrievers.search import hybrid_search

        return hybrid_search(self.index, list(queries), k=k)

    # saving

    def reference(self) -> dict[str, Any]:
        return {
            "path": str(self.index.location),
            "collection": self.index.collection.name,
            "embedder": self.index.embedder_name,
            "dim": self.index.dim,
            "chunking": self.index.chunking.model_dump(),
            "key": self.key,
            "holds": self.holds,
            "items": self.items,
            "count": self.index.count(),
        }

    def export(self, folder: Path) -> dict[str, str]:
        """Every record and its vector, saved into `folder` (paths relative to its parent)."""
        files = self.index.export_records(folder)
        return {kind: f"{folder.name}/{name}" for kind, name in files.items()}

    @classmethod
    def restore(cls, ref: Any, system_dir: Path, ctx: RunContext) -> RagStore:
        """Reopen the referenced index if this cache holds it intact, else rebuild it there from
        the records saved with the system (no re-embedding). `ref` is the saved `IndexRef`."""
        from compoundai_retrievers.chunking import ChunkingConfig
        from compoundai_retrievers.embedders import make_embedder
        from compoundai_retrievers.index import ChromaIndex

        embedder = make_embedder(ref.embedder, ctx)
        chunking = ChunkingConfig(**ref.chunking)
        # `ref.path` comes from an untrusted system.json: it is never opened. Only its folder
        # name is used, if it is a plain one, and only inside this run's cache; otherwise the
        # index is rebuilt there from the records inside the system directory.
        name = Path(ref.path).parent.name
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*", name):
            name = f"system-{json_digest([ref.key, ref.path])[:16]}"
        folder = ctx.cache_dir / "rag" / name
        with filling(folder, "rebuilding the system's index"):
            if (folder / STORE_FILE).is_file():
                index = ChromaIndex.open(
                    folder / "chroma", embedder=embedder, ctx=ctx, create=False
                )
                store = cls(index, key=ref.key, holds=ref.holds, folder=folder, items=ref.items)
                if store._complete():
                    return store
            index = ChromaIndex.open(
                folder / "chroma", embedder=embedder, chunking=chunking, ctx=ctx
            )
            index.import_records(system_dir / ref.records, system_dir / ref.embeddings)
            store = cls(index, key=ref.key, holds=ref.holds, folder=folder, items=ref.items)
            store._mark()
        return store
