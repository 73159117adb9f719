"""Groundedness: how much of an answer is supported by the passages the lane retrieved.

A lexical measure, on purpose: the share of the answer's content words (SQuAD-normalised,
common function words dropped) that occur in the retrieved passages. It catches answers made
up from nothing and costs nothing; it does not catch a passage quoted out of context. For a
semantic judgement turn on the LLM judge. Lanes put the passages they used into
`Answer.extra["contexts"]` (a list of strings); answers without passages, and abstentions,
get no score.
"""

from __future__ import annotations

from compoundai_evaluators.metrics.abstention import abstained
from compoundai_evaluators.metrics.base import MeanMetric, Row, as_text
from compoundai_evaluators.metrics.squad import normalize_answer

_WORDS = """is are was were be been of in on at to for from by with and or but it its this that
these those as i you he she we they their his her our your not no yes do does did"""
FUNCTION_WORDS = frozenset(_WORDS.split())


def content_words(text: str) -> list[str]:
    """Normalised words that carry content.

    >>> content_words("The card was sent on Monday.")
    ['card', 'sent', 'monday']
    """
    return [w for w in normalize_answer(text).split() if w not in FUNCTION_WORDS]


def _supported_share(row: Row) -> float | None:
    contexts = row.extra.get("contexts")
    if isinstance(contexts, str):
        contexts = [contexts]
    if not contexts or abstained(row):
        return None
    words = content_words(as_text(row.prediction))
    if not words:
        return None
    context = set(content_words(" ".join(str(c) for c in contexts)))
    return sum(w in context for w in words) / len(words)


GROUNDEDNESS = MeanMetric(
    "groundedness", "share of the answer's content words found in its passages", _supported_share
)
