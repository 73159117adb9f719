"""compoundai_retrievers: embedders (and, as the RAG lane grows, chunking and the Chroma index)."""

from compoundai_retrievers.embedders import Embedder, SentenceTransformerEmbedder, make_embedder

__all__ = ["Embedder", "SentenceTransformerEmbedder", "make_embedder"]
