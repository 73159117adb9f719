"""Retrieval over a `ChromaIndex`: dense, BM25, and reciprocal-rank fusion of the two.

- **dense**: the query embedded by the index's own embedder; the score is the cosine
  similarity. Collections of up to `EXACT_LIMIT` chunks are searched exactly (every vector,
  in float64, scores rounded to 6 places, ties broken by id), so two processes asking the same
  question of the same persisted index get the same hits in the same order; Chroma's HNSW graph
  is approximate and was seen to rank near-ties differently after a reopen. Larger collections
  use Chroma's HNSW (`ChromaIndex.dense_method` says which, and the rag lane puts it in its
  fingerprint).
- **bm25**: `bm25s` over the chunk texts (English stop words, Snowball stemming when PyStemmer
  is installed). Chroma has no keyword index of its own here, so it is built in memory on the
  first keyword query from the collection's documents (about a second per 20k chunks) and kept
  until the next write; that also makes it work the same against a Chroma server.
- **hybrid**: reciprocal-rank fusion (score = Σ 1/(60 + rank)) of the dense and BM25 rankings,
  each cut at `max(4k, 50)`; it needs no score calibration between the two.

Metadata filters use Chroma's `where` syntax in every mode: dense passes it to Chroma, BM25
asks Chroma which ids match and masks the rest. Each hit cites its source and offsets.

    >>> hits = search(index, ["Who ruled Normandy?"], k=3, mode="hybrid")[0]   # doctest: +SKIP
    >>> hits[0].citation                                                        # doctest: +SKIP
    'corpus.jsonl#Normans::001 [0:512]'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from compoundai.errors import UserInputError
from compoundai_retrievers.embedders import embed_queries
from compoundai_retrievers.index import EXACT_LIMIT, ChromaIndex

Mode = Literal["dense", "bm25", "hybrid"]
Where = dict[str, Any]
RRF_K = 60


class Hit(BaseModel):
    """One retrieved chunk: the `index query --json` record."""

    model_config = ConfigDict(extra="forbid")

    id: str
    score: float
    text: str
    source: str
    metadata: dict[str, Any]

    @property
    def citation(self) -> str:
        """`source[#doc_id] [start:end]`, what an answer cites."""
        meta = self.metadata
        doc = f"#{meta['doc_id']}" if meta.get("doc_id") else ""
        page = f" p.{meta['page']}" if meta.get("page") else ""
        return f"{self.source}{doc}{page} [{meta.get('start', 0)}:{meta.get('end', 0)}]"


def search(
    index: ChromaIndex,
    queries: Sequence[str],
    *,
    k: int = 5,
    mode: Mode = "hybrid",
    where: Where | None = None,
) -> list[list[Hit]]:
    """The top `k` hits for each query.

    >>> search(index, ["capital of France"], k=1, mode="bm25")[0][0].text  # doctest: +SKIP
    'Paris is the capital of France.'
    """
    if k < 1:
        raise UserInputError(f"k must be at least 1, got {k}")
    if mode == "dense":
        return dense_search(index, queries, k=k, where=where)
    if mode == "bm25":
        return keyword_search(index, queries, k=k, where=where)
    if mode == "hybrid":
        return hybrid_search(index, queries, k=k, where=where)[0]
    raise UserInputError(f"unknown search mode {mode!r}: use dense, bm25 or hybrid")


def hybrid_search(
    index: ChromaIndex, queries: Sequence[str], *, k: int = 5, where: Where | None = None
) -> tuple[list[list[Hit]], list[float]]:
    """Reciprocal-rank fusion of dense and BM25, and each query's best dense cosine (which the
    fused scores, being ranks, cannot tell: the rag lane abstains when it is low)."""
    depth = max(4 * k, 50)
    dense = dense_search(index, queries, k=depth, where=where)
    keyword = keyword_search(index, queries, k=depth, where=where)
    fused = [fuse([d, b], k) for d, b in zip(dense, keyword, strict=True)]
    best = [max((h.score for h in d), default=0.0) for d in dense]
    return fused, best


def dense_search(
    index: ChromaIndex, queries: Sequence[str], *, k: int = 5, where: Where | None = None
) -> list[list[Hit]]:
    """Nearest chunks by cosine similarity, one Chroma query for all the queries."""
    count = index.count()
    if not queries:
        return []
    if count == 0:
        return [[] for _ in queries]
    vectors = embed_queries(index.embedder, list(queries))  # batch-invariant
    if count <= EXACT_LIMIT:
        return _exact_search(index, vectors, k, where)
    got = _chroma_call(
        index.collection.query,
        query_embeddings=vectors,
        n_results=min(k, count),
        where=where or None,
        include=["documents", "metadatas", "distances"],
    )
    out = []
    for ids, docs, metas, dists in zip(
        got["ids"], got["documents"], got["metadatas"], got["distances"], strict=True
    ):
        out.append(
            [
                _hit(rid, 1.0 - float(dist), doc, meta)
                for rid, doc, meta, dist in zip(ids, docs, metas, dists, strict=True)
            ]
        )
    return out


def _exact_search(
    index: ChromaIndex, queries: np.ndarray, k: int, where: Where | None
) -> list[list[Hit]]:
    """Brute-force cosine over every stored vector; deterministic order (see the module doc)."""
    exact = getattr(index, "_exact", None)
    if exact is None:
        exact = ExactIndex.build(index)
        index._exact = exact
    return exact.search(queries, k, _where_mask(index, exact.ids, where))


class ExactIndex:
    """Every vector of a collection in memory, rows sorted by id, unit-normalised, float64."""

    def __init__(
        self, ids: list[str], vectors: np.ndarray, texts: list[str], metas: list[dict[str, Any]]
    ) -> None:
        order = sorted(range(len(ids)), key=ids.__getitem__)
        self.ids = [ids[i] for i in order]
        self.texts = [texts[i] for i in order]
        self.metas = [metas[i] for i in order]
        matrix = np.asarray(vectors, dtype=np.float64).reshape(len(ids), -1)[order]
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.matrix = matrix / np.where(norms == 0, 1.0, norms)

    @classmethod
    def build(cls, index: ChromaIndex) -> ExactIndex:
        ids, vectors, texts, metas = [], [], [], []
        for rid, row in index.iter_records(["documents", "metadatas", "embeddings"]):
            ids.append(rid)
            vectors.append(np.asarray(row.pop("embedding"), dtype=np.float64))
            texts.append(str(row.pop("document", "")))
            metas.append(row)
        dim = index.dim
        matrix = np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float64)
        return cls(ids, matrix, texts, metas)

    def search(
        self, queries: np.ndarray, k: int, mask: np.ndarray | None = None
    ) -> list[list[Hit]]:
        q = np.asarray(queries, dtype=np.float64)
        q = q / np.where((n := np.linalg.norm(q, axis=1, keepdims=True)) == 0, 1.0, n)
        out: list[list[Hit]] = []
        for start in range(0, len(q), 256):
            scores = np.round(q[start : start + 256] @ self.matrix.T, 6)
            if mask is not None:
                scores = np.where(mask[None, :], scores, -np.inf)
            # stable sort over rows already in id order: equal scores rank by id
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            for row, picks in zip(scores, order, strict=True):
                out.append(
                    [
                        _hit(self.ids[i], float(row[i]), self.texts[i], self.metas[i])
                        for i in picks
                        if np.isfinite(row[i])
                    ]
                )
        return out


def keyword_search(
    index: ChromaIndex, queries: Sequence[str], *, k: int = 5, where: Where | None = None
) -> list[list[Hit]]:
    """BM25 over the chunk texts; chunks sharing no query term are left out."""
    bm25 = getattr(index, "_bm25", None)
    if bm25 is None:
        bm25 = KeywordIndex.build(index)
        index._bm25 = bm25
    mask = _where_mask(index, bm25.ids, where)
    return bm25.search(queries, k, None if mask is None else mask.astype(np.float32))


def _where_mask(index: ChromaIndex, ids: Sequence[str], where: Where | None) -> np.ndarray | None:
    """Which of `ids` pass a Chroma `where` filter (None: no filter)."""
    if not where:
        return None
    allowed = set(_chroma_call(index.collection.get, where=where, include=[])["ids"])
    return np.array([rid in allowed for rid in ids], dtype=bool)


def fuse(rankings: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
    """Reciprocal-rank fusion: each list adds 1/(60 + rank) to a chunk's score.

    >>> a = Hit(id="a", score=0.9, text="", source="s", metadata={})
    >>> b = Hit(id="b", score=0.5, text="", source="s", metadata={})
    >>> [h.id for h in fuse([[a, b], [b]], k=2)]
    ['b', 'a']
    """
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(hit.id, hit)
    best = sorted(scores, key=lambda rid: -scores[rid])[:k]
    return [first[rid].model_copy(update={"score": round(scores[rid], 6)}) for rid in best]


class KeywordIndex:
    """An in-memory `bm25s` index over every chunk of a collection."""

    def __init__(self, ids: list[str], texts: list[str], metas: list[dict[str, Any]]) -> None:
        import bm25s

        self.ids, self.texts, self.metas = ids, texts, metas
        self.stemmer = _stemmer()
        self.retriever = bm25s.BM25()
        if texts:
            tokens = bm25s.tokenize(
                texts, stopwords="en", stemmer=self.stemmer, show_progress=False
            )
            self.retriever.index(tokens, show_progress=False)

    @classmethod
    def build(cls, index: ChromaIndex) -> KeywordIndex:
        ids, texts, metas = [], [], []
        for rid, row in index.iter_records(["documents", "metadatas"]):
            ids.append(rid)
            texts.append(str(row.pop("document", "")))
            metas.append(row)
        return cls(ids, texts, metas)

    def search(
        self, queries: Sequence[str], k: int, mask: np.ndarray | None = None
    ) -> list[list[Hit]]:
        import bm25s

        if not self.ids:
            return [[] for _ in queries]
        tokens = bm25s.tokenize(
            list(queries),
            stopwords="en",
            stemmer=self.stemmer,
            return_ids=False,
            show_progress=False,
        )
        out: list[list[Hit]] = []
        for query_tokens in tokens:
            known = [t for t in query_tokens if t in self.retriever.vocab_dict]
            if not known:
                out.append([])
                continue
            scores = self.retriever.get_scores(known)
            if mask is not None:
                scores = scores * mask
            top = np.argsort(-scores, kind="stable")[:k]
            out.append(
                [
                    _hit(self.ids[i], float(scores[i]), self.texts[i], self.metas[i])
                    for i in top
                    if scores[i] > 0
                ]
            )
        return out


def _stemmer() -> Any:
    try:
        import Stemmer
    except ImportError:  # optional: BM25 works without stemming, a little less well
        return None
    return Stemmer.Stemmer("english")


def _hit(rid: str, score: float, text: str | None, meta: dict[str, Any] | None) -> Hit:
    meta = dict(meta or {})
    return Hit(
        id=rid,
        score=round(score, 6),
        text=text or "",
        source=str(meta.get("source", "")),
        metadata=meta,
    )


def _chroma_call(fn: Any, **kwargs: Any) -> Any:
    """Run a Chroma read; a bad `where` filter is the user's mistake (exit 2), not a crash."""
    try:
        return fn(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UserInputError(f"Chroma refused the query: {exc}") from None
    except Exception as exc:
        if type(exc).__name__ in {"InvalidArgumentError", "InvalidWhereError"}:
            raise UserInputError(f"bad metadata filter: {exc}") from None
        raise
