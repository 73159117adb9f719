"""Retrieval quality for lanes that retrieve: recall@k and mean reciprocal rank.

A lane that retrieves puts the ranked ids it used into `Answer.extra["retrieved_ids"]`; a case
names its gold passages in one of `GOLD_KEYS` of its JSONL row (a list, or one id). A
retrieved chunk id counts for a gold document id when it is that id or a chunk of it
(`doc#3`, `doc::3`), since indexes split documents into chunks. A single `:` is not a chunk
separator: it is common inside ids (`doc:other-file` is another document, not a chunk of
`doc`). Cases without gold ids, and lanes that do not retrieve, get no score (NaN), so the
metric is reported only where it means something.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compoundai_evaluators.metrics.base import MeanMetric, Row

GOLD_KEYS = ("relevant_ids", "gold_ids", "context_ids", "doc_ids", "doc_id")
RETRIEVED_KEY = "retrieved_ids"


def _ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def gold_ids(row: Row) -> list[str]:
    """The case's gold passage ids, from the first of `GOLD_KEYS` its row has."""
    for key in GOLD_KEYS:
        if key in row.meta:
            return _ids(row.meta[key])
    return []


def is_match(retrieved: str, gold: str) -> bool:
    """Whether a retrieved id is the gold id or a chunk of it.

    >>> is_match("faq.md#2", "faq.md"), is_match("faq.md2", "faq.md"), is_match("d:e", "d")
    (True, False, False)
    """
    return retrieved == gold or any(retrieved.startswith(gold + sep) for sep in ("#", "::"))


def _ranked(row: Row) -> list[str] | None:
    if RETRIEVED_KEY not in row.extra:
        return None
    return _ids(row.extra[RETRIEVED_KEY])


@dataclass(frozen=True)
class _RecallAt:
    k: int

    def __call__(self, row: Row) -> float | None:
        gold, ranked = gold_ids(row), _ranked(row)
        if not gold or ranked is None:
            return None
        top = ranked[: self.k]
        return sum(any(is_match(r, g) for r in top) for g in gold) / len(gold)


def _reciprocal_rank(row: Row) -> float | None:
    gold, ranked = gold_ids(row), _ranked(row)
    if not gold or ranked is None:
        return None
    for rank, r in enumerate(ranked, start=1):
        if any(is_match(r, g) for g in gold):
            return 1.0 / rank
    return 0.0


def recall_at(k: int) -> MeanMetric:
    """Share of a case's gold passages found in the top `k` retrieved, averaged over cases.

    >>> from compoundai_evaluators.metrics.base import value_of
    >>> row = Row("1", "q", "a", "a", meta={"relevant_ids": ["d1", "d2"]},
    ...           extra={"retrieved_ids": ["d1#0", "d9", "d2"]})
    >>> value_of(recall_at(2), [row]), value_of(recall_at(3), [row])
    (0.5, 1.0)
    """
    return MeanMetric(f"recall_at_{k}", f"share of gold passages in the top {k}", _RecallAt(k))


MRR = MeanMetric("mrr", "mean reciprocal rank of the first gold passage", _reciprocal_rank)


def retrieves(rows: Sequence[Row]) -> bool:
    """Whether these answers carry retrieved ids at all."""
    return any(RETRIEVED_KEY in r.extra for r in rows)
