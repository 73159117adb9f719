"""The non-LLM baselines of the rag lane: answers from the hits alone, no generator call.

- `KnnVoteSystem` (labels): the majority label of the k nearest training examples (ties: the
  larger summed similarity, then the nearer example). The cheapest lane, and a strong one
  (MiniLM 5-NN measured 0.92 accuracy on the whole banking77 test set).
- `BM25SentenceSystem` (free text with documents): the same index searched by BM25 alone, and
  the answer is the sentence of the top passage sharing the most words with the question: what
  a search box would show. It abstains only when BM25 finds nothing.

They are their own classes so that nothing else has to ask "does this system call a model?":
their generator slot is a `NoGenerator`, which the reports read as "non-LLM baseline".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from compoundai.contract import ABSTAIN_TEXT, Answer
from compoundai.generators.base import Chat
from compoundai.lanes.rag.prompts import hit_id, output_of, user_turn
from compoundai.lanes.rag.systems import Retrieved, RetrievingSystem

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_STOP = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by did do does for from had has have how in is it its of on or "
        "that the their this to was were what when where which who whom whose why with",
    )
)


class _NoModel(RetrievingSystem):
    def chat_for(self, text: str, hits: Sequence[Any]) -> Chat:
        # no model call: the "prompt" names the hits, so the answer cache keys on them
        ids = ", ".join(hit_id(h) for h in hits)
        return [{"role": "system", "content": f"{self.mode} over {ids}"}, user_turn(text)]


class KnnVoteSystem(_NoModel):
    """The majority label of the k nearest training examples."""

    mode = "knn-vote"

    def respond(self, inputs: list[str], retrieved: list[Retrieved]) -> list[Answer]:
        return [self._vote(hits) for hits, _ in retrieved]

    def _vote(self, hits: list[Any]) -> Answer:
        votes: dict[str, list[float]] = {}
        for rank, h in enumerate(hits):
            label = str(output_of(h))
            votes.setdefault(label, []).append(h.score - rank * 1e-9)
        if not votes:
            return Answer("", None, extra={"votes": {}})
        label = max(votes, key=lambda lb: (len(votes[lb]), sum(votes[lb]), max(votes[lb])))
        output = label if label in self.contract.labels else None
        counts = {lb: len(v) for lb, v in votes.items()}
        return Answer(label, output, extra={"votes": counts})


class BM25SentenceSystem(_NoModel):
    """The best-matching sentence of the top BM25 passage."""

    mode = "bm25"
    texts_key = "contexts"

    def search(self, inputs: list[str]) -> list[Retrieved]:
        return [
            (hits, max((h.score for h in hits), default=0.0))
            for hits in self.store.keyword(inputs, self.k)
        ]

    def respond(self, inputs: list[str], retrieved: list[Retrieved]) -> list[Answer]:
        return [
            best_sentence(text, hits) for text, (hits, _) in zip(inputs, retrieved, strict=True)
        ]


def best_sentence(question: str, hits: Sequence[Any]) -> Answer:
    """The sentence of the top hit sharing the most content words with the question (the
    earlier one on a tie); an abstention when there is no hit.

    >>> from types import SimpleNamespace as H
    >>> hit = H(id="c1", text="Paris is in France. The Seine flows through Paris.", metadata={})
    >>> best_sentence("Which river flows through Paris?", [hit]).output
    'The Seine flows through Paris.'
    """
    if not hits:
        return Answer(ABSTAIN_TEXT, "", extra={"abstained": True, "abstain_reason": "no hit"})
    asked = {w for w in _WORD.findall(question.lower()) if w not in _STOP}
    sentences = [s.strip() for s in _SENTENCE_END.split(" ".join(hits[0].text.split()))]
    sentences = [s for s in sentences if s] or [hits[0].text.strip()]
    best = max(
        enumerate(sentences),
        key=lambda p: (len(asked & set(_WORD.findall(p[1].lower()))), -p[0]),
    )[1]
    return Answer(best, best, extra={"citations": [hit_id(hits[0])]})
