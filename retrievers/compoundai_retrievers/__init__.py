"""compoundai_retrievers: loading, chunking, embedders, the Chroma index, ingestion, search.

The RAG lane's engine. Importing this package stays light: chromadb, bm25s, LangChain and the
model libraries load inside the functions that use them.

    >>> from compoundai_retrievers import ChromaIndex, ingest, search    # doctest: +SKIP
    >>> index = ChromaIndex.open("out/index")                          # doctest: +SKIP
    >>> ingest(["docs/"], index).contract()                            # doctest: +SKIP
    {'added': 1287, 'unchanged': 0, 'replaced': 0, 'removed': 0, 'failed': 0}
    >>> search(index, ["Who ruled Normandy?"], k=3)[0][0].citation     # doctest: +SKIP
"""

from compoundai_retrievers.chunking import Chunk, ChunkingConfig, chunk_document
from compoundai_retrievers.embedders import (
    Embedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    make_embedder,
)
from compoundai_retrievers.index import ChromaIndex, IndexInfo, connect
from compoundai_retrievers.ingest import IngestReport, ingest, ingest_documents
from compoundai_retrievers.loaders import LoaderConfig, SourceDocument, load_paths
from compoundai_retrievers.search import Hit, search

__all__ = [
    "ChromaIndex",
    "Chunk",
    "ChunkingConfig",
    "Embedder",
    "Hit",
    "IndexInfo",
    "IngestReport",
    "LoaderConfig",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "SourceDocument",
    "chunk_document",
    "connect",
    "ingest",
    "ingest_documents",
    "load_paths",
    "make_embedder",
    "search",
]
