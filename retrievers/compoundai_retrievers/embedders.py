"""Embedders behind one Protocol: `embed(texts) -> (n, dim)` float32, L2-normalised rows.

Normalised rows make the dot product the cosine similarity, which is what the nearest-neighbour
demonstrations and the Chroma index use. `name` identifies the model so an index can refuse
queries embedded by a different model than the one that built it; `make_embedder(name)` builds
the embedder back from that name, which is how `index query` finds the right one by itself.

Three kinds: sentence-transformers (the default, MiniLM from the model store, run in bf16 where
the CPU has AMX / AVX-512 bf16: measured ~2x the fp32 throughput here with cosine > 0.99 to the
fp32 vectors), the OpenAI embeddings API through the `openai` client, and the hash fake.

Batch invariance: a query's vector must not depend on what else is embedded with it, or a
served answer depends on the batch its request landed in (nearest demonstrations swap on
near-ties). A padded batch changes the arithmetic (measured here: up to 2e-3 in bf16, 1e-7 in
fp32, between a text alone and in a batch), and even unpadded batches of one length differ in
fp32 with the batch size (the GEMM kernels block by the row count). So queries go through
`embed_queries`, which runs every distinct text in a forward pass of its own: the same input,
the same shapes, the same vector, bit for bit. A corpus (an index, a bank of demonstrations) is
embedded once, by `embed`, in length-sorted batches: 9x the texts per second for short texts
(measured on banking77's messages: 169 against 19 a second), and its vectors are stored, so no
answer depends on how they were batched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from compoundai.context import RunContext
from compoundai.errors import RunTimeFailure
from compoundai.models import ModelStore


@runtime_checkable
class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

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
        dtype: str = "auto",
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
        from compoundai.hardware import loading_bars, pick_dtype

        device = self.ctx.resolve_device()
        # safetensors only: never a pickled pytorch_model.bin
        with loading_bars(self.ctx.progress):
            self.model: Any = SentenceTransformer(
                path, device=device, model_kwargs={"use_safetensors": True}
            )
        self.torch_dtype = pick_dtype(device, dtype)
        self.model.to(self.torch_dtype)
        st_model: Any = self.model
        getter = getattr(st_model, "get_embedding_dimension", None)
        self.dim = int(getter() if getter else st_model.get_sentence_embedding_dimension())
        self.max_tokens = int(st_model.max_seq_length or 512)
        self._tokenizer = st_model.tokenizer

    def token_length(self, text: str) -> int:
        """How many of this model's tokens `text` is (no special tokens): the chunk ruler."""
        return len(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text, in length-sorted batches: for a corpus."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_tensor=True,
            show_progress_bar=False,
        )
        # numpy has no bf16: widen on the torch side first.
        return np.asarray(vectors.float().cpu().numpy(), dtype=np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, each computed alone (batch-invariant, see the module docstring);
        a text given twice is embedded once."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors: dict[str, np.ndarray] = {}
        device = self.model.device
        with torch.inference_mode():
            for text in dict.fromkeys(texts):
                features = self.model.preprocess([text])
                features = {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}
                out = self.model.forward(features)["sentence_embedding"]
                # numpy has no bf16: widen on the torch side, then normalise in fp32
                row = torch.nn.functional.normalize(out.float(), dim=-1)[0]
                vectors[text] = row.cpu().numpy()
        return np.stack([vectors[t] for t in texts]).astype(np.float32, copy=False)


class OpenAIEmbedder:
    """Embeddings from any OpenAI-compatible `/embeddings` endpoint, through the `openai` client.

    The client reads `OPENAI_API_KEY` / `OPENAI_BASE_URL` from the environment unless one is
    passed in. Rows are re-normalised, since not every compatible server normalises.

    >>> emb = OpenAIEmbedder("text-embedding-3-small")       # doctest: +SKIP
    >>> emb.embed(["hello"]).shape                           # doctest: +SKIP
    (1, 1536)
    """

    KNOWN_DIMS: ClassVar[dict[str, int]] = {
        "text-embedding-3-small": 1536,
        "text-embedding-3-large": 3072,
        "text-embedding-ada-002": 1536,
    }

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        client: Any = None,
        base_url: str | None = None,
        batch_size: int = 256,
    ) -> None:
        if client is None:
            import openai

            client = openai.OpenAI(base_url=base_url) if base_url else openai.OpenAI()
        self.client = client
        self.model = model
        self.name = f"openai:{model}"
        self.batch_size = batch_size
        self._dim = self.KNOWN_DIMS.get(model)

    @property
    def dim(self) -> int:
        if self._dim is None:  # an unknown model: ask it once
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            try:
                response = self.client.embeddings.create(model=self.model, input=batch)
            except Exception as exc:
                raise RunTimeFailure(f"embeddings request to {self.name} failed: {exc}") from exc
            rows += [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
        if not rows:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        out = np.asarray(rows, dtype=np.float32)
        self._dim = out.shape[1]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def embed_queries(embedder: Any, texts: Sequence[str]) -> np.ndarray:
    """Queries through the embedder's batch-invariant path when it has one (`embed_queries`),
    else `embed` (the hash fake is invariant; a remote API is what it is)."""
    path = getattr(embedder, "embed_queries", None)
    return path(list(texts)) if callable(path) else embedder.embed(list(texts))


def make_embedder(name: str, ctx: RunContext) -> Embedder:
    """The embedder for a task: an injected one from `ctx.clients["embedder"]` (tests and
    applications replace every embedder that way), else the model `name`, loaded once per run
    (`ctx.shared`) and shared by every lane that asks for it.

    Names: `hash:DIM` (the fake, also written `hash-embedder-DIM`), `openai:MODEL`, anything
    else a sentence-transformers model (bundled name, local path or hub id).

    >>> make_embedder("hash:32", RunContext()).name
    'hash-embedder-32'
    """
    injected = ctx.clients.get("embedder")
    if injected is not None:
        return injected
    return ctx.shared(("embedder", name), lambda: _load_embedder(name, ctx))


def _load_embedder(name: str, ctx: RunContext) -> Embedder:
    if match := re.fullmatch(r"hash(?:-embedder)?[:-](\d+)|hash", name):
        from compoundai.testing import HashEmbedder

        return HashEmbedder(dim=int(match.group(1) or 64))
    if name.startswith("openai:"):
        return OpenAIEmbedder(name.split(":", 1)[1], client=ctx.clients.get("openai"))
    return SentenceTransformerEmbedder(name, ctx=ctx)
