"""The index inside LangChain: a `BaseRetriever`, and LangChain `Document`s as input.

A user with a LangChain chain swaps their retriever for `IndexRetriever(index=...)` and keeps
the rest; a user with LangChain loaders hands their `Document`s to `add_langchain_documents`
and gets the same idempotent ingestion as files get (the source is `metadata["source"]`, else
the document's id, so re-adding the same documents writes nothing).

    >>> retriever = IndexRetriever(index=ChromaIndex.open("out/index"), k=4)   # doctest: +SKIP
    >>> retriever.invoke("Who ruled Normandy?")[0].metadata["citation"]        # doctest: +SKIP
    'corpus.jsonl#Normans::001 [0:512]'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from compoundai_retrievers.index import ChromaIndex
from compoundai_retrievers.ingest import IngestReport, ingest_documents
from compoundai_retrievers.loaders import MetadataValue, SourceDocument
from compoundai_retrievers.search import Mode, search


class IndexRetriever(BaseRetriever):
    """A LangChain retriever over a `ChromaIndex` (dense, BM25 or hybrid, with a filter).

    Each `Document` carries the hit's id, score, source and `citation` in its metadata.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any  # a ChromaIndex; Any keeps pydantic from validating its internals
    k: int = 5
    mode: Mode = "hybrid"
    where: dict[str, Any] | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = search(self.index, [query], k=self.k, mode=self.mode, where=self.where)[0]
        return [
            Document(
                id=hit.id,
                page_content=hit.text,
                metadata={**hit.metadata, "score": hit.score, "citation": hit.citation},
            )
            for hit in hits
        ]


def from_langchain(docs: Sequence[Document]) -> list[SourceDocument]:
    """LangChain documents as `SourceDocument`s (scalar metadata kept, the rest dropped).

    >>> d = Document(page_content="Paris is in France.", metadata={"source": "geo.txt"})
    >>> from_langchain([d])[0].source
    'geo.txt'
    """
    out = []
    for n, doc in enumerate(docs):
        meta: dict[str, MetadataValue] = {
            key: value
            for key, value in doc.metadata.items()
            if isinstance(value, str | int | float | bool) and key not in {"source", "title"}
        }
        source = str(doc.metadata.get("source") or doc.id or f"langchain-{n}")
        title = str(doc.metadata.get("title") or source)
        out.append(SourceDocument(source, doc.page_content, title, metadata=meta))
    return out


def add_langchain_documents(
    index: ChromaIndex, docs: Sequence[Document], *, batch_size: int = 4096
) -> IngestReport:
    """Ingest LangChain `Document`s into the index, idempotently (grouped by their source)."""
    return ingest_documents(from_langchain(docs), index, batch_size=batch_size)
