"""The systems that retrieve before they answer: one class per way of using the hits.

`RetrievingSystem` is what they share: an index (`RagStore`), `k` hits per input, retrieval
memoised per input (`prompts` and `batch` both need it, e.g. in `compare`), and the facts every
answer carries for the metrics (`retrieved_ids`, the retrieved texts as `contexts` for passages
or `neighbours` for examples, the best dense score). Each subclass says how it searches
(`search`), what prompt a model would see (`chat_for`) and how it answers (`respond`):

- `DemosSystem`: the k nearest training examples as chat turns, then the normal answer path
  (label likelihood, or generate and parse).
- `PassageSystem`: the top k passages (hybrid dense + BM25) numbered in the prompt, a brief
  answer citing them, and abstention: the model is told to answer `ABSTAIN_TEXT` when the
  passages do not hold the answer, and the system abstains unasked when even the best passage
  is far from the question (dense cosine below `min_score`). Abstention follows the output
  contract's one rule (`compoundai.contract`).
- the two non-LLM baselines, `KnnVoteSystem` and `BM25SentenceSystem`, in `baselines.py`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from compoundai.cache_lock import filling
from compoundai.context import RunContext
from compoundai.contract import ABSTAIN_TEXT, Answer, format_output
from compoundai.errors import UserInputError
from compoundai.generators.base import Chat
from compoundai.lanes.rag.prompts import (
    CONTEXT_RULES,
    context_prompt,
    hit_id,
    output_of,
    user_turn,
)
from compoundai.lanes.rag.store import RagStore
from compoundai.provenance import json_digest
from compoundai.system import CompoundSystem

if TYPE_CHECKING:
    from compoundai.system_dir import SystemFile

Retrieved = tuple[list[Any], float]  # the hits for one input, and the best dense score


class RetrievingSystem(CompoundSystem):
    """A `CompoundSystem` whose prompts (or answers) come from an index; see the module doc."""

    kind = "rag"
    mode: ClassVar[str] = ""  # the saved name of the variant: knn-vote, demos, context, bm25
    texts_key: ClassVar[str] = "neighbours"  # passages go in `contexts`: groundedness reads them

    def __init__(
        self,
        *args: Any,
        store: RagStore,
        k: int = 5,
        min_score: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.store = store
        self.k = k
        self.min_score = min_score
        # the dense search method is part of what decides the hits, so of the answers
        search = store.index.dense_method
        if self.info.fingerprint is None:
            self.info.fingerprint = f"rag-{self.mode}-{store.key}-k{k}-min{min_score}-{search}"
        self._hits: dict[str, Retrieved] = {}
        # What retrieving each cached input cost (ms), so an answer's latency includes its
        # retrieval even when `prompts` (e.g. for the answer cache's keys) retrieved it first.
        self._retrieval_ms: dict[str, float] = {}

    # what a variant says

    def search(self, inputs: list[str]) -> list[Retrieved]:
        """Hits for each input (the variant's own way of searching)."""
        return [
            (hits, max((h.score for h in hits), default=0.0)) for hits in self.neighbours(inputs)
        ]

    def chat_for(self, text: str, hits: Sequence[Any]) -> Chat:
        """The prompt for `text` given its hits (anything with `.text` and `.metadata`)."""
        raise NotImplementedError

    def respond(self, inputs: list[str], retrieved: list[Retrieved]) -> list[Answer]:
        raise NotImplementedError

    # what every variant does

    def retrieve(self, inputs: Sequence[str]) -> list[Retrieved]:
        """Hits for each input, with the best dense score (memoised per input)."""
        todo = list(dict.fromkeys(t for t in inputs if t not in self._hits))
        if todo:
            if len(self._hits) > 50_000:
                self._hits.clear()
                self._retrieval_ms.clear()
            started = time.perf_counter()
            self._hits.update(zip(todo, self.search(todo), strict=True))
            per_input = (time.perf_counter() - started) * 1000 / len(todo)
            self._retrieval_ms.update(dict.fromkeys(todo, per_input))
        return [self._hits[t] for t in inputs]

    def neighbours(
        self, inputs: list[str], exclude: Sequence[str | None] | None = None
    ) -> list[list[Any]]:
        """The k nearest distinct examples (an example split into chunks counts once).

        A few more than k are fetched and sorted by (score, id): equal scores then rank the
        same however the index was built, so a reloaded system votes as the original.
        `exclude` names, per input, an example id to leave out (a training example's own
        record, when the compound lane builds its training prompts).
        """
        out = []
        skip = list(exclude) if exclude is not None else [None] * len(inputs)
        for hits, own in zip(self.store.dense(inputs, 3 * self.k + 5), skip, strict=True):
            seen: dict[str, Any] = {}
            for h in sorted(hits, key=lambda h: (-h.score, hit_id(h))):
                example = str(h.metadata.get("example_id"))
                if example != own:
                    seen.setdefault(example, h)
            out.append(list(seen.values())[: self.k])
        return out

    def prompts(self, inputs: Sequence[str]) -> list[Chat]:
        retrieved = self.retrieve(inputs)
        return [
            self.chat_for(text, hits) for text, (hits, _) in zip(inputs, retrieved, strict=True)
        ]

    def batch(self, inputs: Sequence[str]) -> list[Answer]:
        retrieved = self.retrieve(inputs)
        answers = self.respond(list(inputs), retrieved)
        for text, answer, (hits, best) in zip(inputs, answers, retrieved, strict=True):
            answer.latency_ms += self._retrieval_ms.get(text, 0.0)
            answer.extra["retrieved_ids"] = [hit_id(h) for h in hits]
            answer.extra[self.texts_key] = [h.text for h in hits]
            answer.extra["retrieval_score"] = round(float(best), 4)
        return answers

    # keeping the knowledge fresh

    def update_documents(self, paths: Sequence[str | Path], loader: Any = None) -> Any:
        """Bring the index in line with the documents under `paths` now: a changed file's
        chunks are replaced, a new file's added, a removed file's (under `paths`) deleted; an
        unchanged one is not embedded again. What the system answers from is the index, so
        the next answer uses the new text with no retraining (the knowledge cutoff a model's
        weights have, and an index does not). Returns the retrievers' `IngestReport`.

        The answers memoised are dropped, and the answer-cache key (`info.fingerprint`) and the
        store's key become a digest of what the index now holds (its content-hash chunk ids),
        so the store's build marker no longer vouches for it and a later build of the old
        documents fills its index again instead of trusting this one. `loader` defaults to the
        task's document loader (its `document_fields`).
        """
        from compoundai_retrievers.ingest import ingest

        loader = loader if loader is not None else self.store.loader
        if self.store.holds != "documents":
            raise UserInputError(
                f"this {self.mode} system retrieves training examples, not documents",
                hint="update_documents is for systems built over a task's documents",
            )
        # under the folder's lock, as a build is: another process building or updating this
        # cached index waits, and then reads the marker this update leaves
        with filling(self.store.folder, "updating this index"):
            report = ingest(list(paths), self.store.index, loader=loader, cleanup="scoped")
            self._hits.clear()
            self._retrieval_ms.clear()
            # The key and the answer-cache fingerprint follow what the index holds now (its
            # content-hash chunk ids), whatever this call changed: two systems sharing an
            # index folder (rag and compound over the same documents) both see a change
            # either made.
            records = self.store.index.iter_records(include=())
            state = json_digest(sorted(rid for rid, _ in records))
            if self.store.key != f"updated-{state[:16]}":
                self.store.key = f"updated-{state[:16]}"
                self.store._mark()
                base = (self.info.fingerprint or "").split("~docs-", 1)[0]
                self.info.fingerprint = f"{base}~docs-{state[:16]}"
        return report

    # saving (the format is `compoundai.system_dir`'s)

    def save_parts(self, folder: Path) -> dict[str, Any]:
        files = self.store.export(folder / "index")
        return {
            "rag": {
                "mode": self.mode,
                "k": self.k,
                "min_score": self.min_score,
                "abstain_text": ABSTAIN_TEXT,
                "context_rules": CONTEXT_RULES if self.mode == "context" else None,
                "index": {**self.store.reference(), **files},
            }
        }

    @classmethod
    def restore(
        cls, kwargs: dict[str, Any], saved: SystemFile, folder: Path, ctx: RunContext
    ) -> CompoundSystem:
        rag = saved.rag
        assert rag is not None  # `load_system` picks a rag class only for a rag section
        store = RagStore.restore(rag.index, folder, ctx)
        kwargs.pop("shots", None)
        kwargs.pop("demos", None)
        return cls(**kwargs, store=store, k=rag.k, min_score=rag.min_score)


class DemosSystem(RetrievingSystem):
    """The k nearest training examples as chat turns, then the normal answer path."""

    mode = "demos"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shots = self.k

    def chat_for(self, text: str, hits: Sequence[Any]) -> Chat:
        chat: Chat = [{"role": "system", "content": self.system_message()}]
        for h in reversed(hits):  # most similar last, closest to the query
            chat.append(user_turn(h.text))
            chat.append({"role": "assistant", "content": format_output(output_of(h))})
        return [*chat, user_turn(text)]

    def respond(self, inputs: list[str], retrieved: list[Retrieved]) -> list[Answer]:
        return self.answer(self.prompts(inputs))


class PassageSystem(RetrievingSystem):
    """Numbered passages, a brief cited answer, abstention (see the module docstring)."""

    mode = "context"
    texts_key = "contexts"

    def search(self, inputs: list[str]) -> list[Retrieved]:
        fused, best = self.store.hybrid(inputs, self.k)
        return list(zip(fused, best, strict=True))

    def chat_for(self, text: str, hits: Sequence[Any]) -> Chat:
        system = f"{self.instructions}\n\n{CONTEXT_RULES}"
        return [{"role": "system", "content": system}, user_turn(context_prompt(text, hits))]

    def respond(self, inputs: list[str], retrieved: list[Retrieved]) -> list[Answer]:
        answers: list[Answer | None] = [None] * len(inputs)
        ask = []
        for i, (hits, best) in enumerate(retrieved):
            if not hits or (self.min_score is not None and best < self.min_score):
                reason = (
                    "nothing retrieved"
                    if not hits
                    else f"best passage cosine {best:.3f} < min_score {self.min_score}"
                )
                answers[i] = Answer(
                    ABSTAIN_TEXT, "", extra={"abstained": True, "abstain_reason": reason}
                )
            else:
                ask.append(i)
        if ask:
            # `answer` applies the contract's one abstention rule (`compoundai.contract`)
            generated = self.answer(self.prompts([inputs[i] for i in ask]))
            for i, g in zip(ask, generated, strict=True):
                hits = retrieved[i][0]
                cited = g.extra.pop("cited", [])
                g.extra["citations"] = [hit_id(hits[n - 1]) for n in cited if 0 < n <= len(hits)]
                if g.extra.get("abstained"):
                    g.extra["abstain_reason"] = "the model found no answer in the passages"
                answers[i] = g
        return [a for a in answers if a is not None]
