"""Embedders behind one Protocol: `embed(texts) -> (n, dim)` float32, L2-normalised rows.

Normalised rows make the dot product the cosine similarity, which is what the nearest-neighbour
demonstrations and (later) the Chroma index use. `name` identifies the model so an index can
refuse queries embedded by a different model than the one that built it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from compoundai.context import RunContext
from compoundai.errors import RunTimeFailure
from compoundai.models import ModelStore


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model (default: all-MiniLM-L6-v2 from the model store).

    >>> emb = SentenceTransformerEmbedder()                  # doctest: +SKIP
    >>> emb.embed(["hello", "world"]).shape                  # doctest: +SKIP
    (2, 384)
    """

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        *,
        ctx: RunContext | None = None,
        batch_size: int = 64,
    ) -> None:
        self.ctx = ctx or RunContext()
        self.name = model
        self.batch_size = batch_size
        path = ModelStore(self.ctx).resolve(model)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise RunTimeFailure(
                f"embeddings need the local extra ({exc}); pip install 'compoundai[local]'"
            ) from None
        self.model: Any = SentenceTransformer(path, device=self.ctx.resolve_device())
        st_model: Any = self.model
        getter = getattr(st_model, "get_embedding_dimension", None)
        self.dim = int(getter() if getter else st_model.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=self.ctx.progress and len(texts) > 256,
        )
        return np.asarray(vectors, dtype=np.float32)


def make_embedder(name: str, ctx: RunContext) -> Embedder:
    """The embedder for a task: an injected one from `ctx.clients["embedder"]`, else a model."""
    injected = ctx.clients.get("embedder")
    if injected is not None:
        return injected
    return SentenceTransformerEmbedder(name, ctx=ctx)
