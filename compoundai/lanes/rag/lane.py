"""`RagLane`: which retrieving system a task gets, built on the task's cached index.

Variants, chosen by the task's output contract:
- **rag/knn-vote** (labels): the majority label of the k nearest training examples, no
  generator call (`baselines.KnnVoteSystem`).
- **rag/demos** (labels, JSON schema): the same neighbours as chat turns (`DemosSystem`).
  Measured on banking77 with SmolLM2: 0.855 exact; on SNIPS 0.97 valid JSON against 0.02
  zero-shot.
- **rag** (free text with `documents`): numbered passages, cited answers, abstention
  (`PassageSystem`).
- **rag/bm25** (free text with `documents`): the non-LLM docs-QA baseline
  (`baselines.BM25SentenceSystem`).
"""

from __future__ import annotations

from typing import ClassVar

from compoundai.context import RunContext
from compoundai.contract import BuildInfo
from compoundai.errors import LaneNotApplicableError, UserInputError
from compoundai.generators.base import GenerationConfig, Generator
from compoundai.lanes.prompt import (
    answer_generation,
    answer_tokens,
    contract_of,
    shared_generator,
)
from compoundai.lanes.rag.baselines import BM25SentenceSystem, KnnVoteSystem
from compoundai.lanes.rag.store import RagStore
from compoundai.lanes.rag.systems import DemosSystem, PassageSystem, RetrievingSystem
from compoundai.system import NoGenerator
from compoundai.task import Task

# The dense cosine under which the passages variant abstains without asking the model, per
# embedder. Measured with MiniLM on the SQuAD v2 corpus here (533 chunks): the best passage of
# 300 answerable dev questions scored 0.249 at the least (1% quantile 0.339), of 100 unanswerable
# ones 0.234 (they are written about the same paragraphs: only the model can refuse those),
# while 154 questions about something else (banking77 messages, trivia) scored a median of
# 0.211 and 95% of them under 0.3. Other embedders have other scales: no threshold unless the
# lane is given one.
MIN_SCORES = {"all-minilm-l6-v2": 0.25}
SYSTEMS: dict[str, type[RetrievingSystem]] = {
    "knn-vote": KnnVoteSystem,
    "demos": DemosSystem,
    "context": PassageSystem,
    "bm25": BM25SentenceSystem,
}
PASSAGE_MODES = ("context", "bm25")  # search the task's documents; answers cite passages
NO_MODEL_MODES = ("knn-vote", "bm25")  # answer from the hits alone: the non-LLM baselines


def _generation(task: Task, mode: str) -> GenerationConfig | None:
    """Passages: a brief answer and its citations (at most 64 tokens); demonstrations: the
    task's answer length; the non-LLM baselines generate nothing."""
    if mode == "context":
        return GenerationConfig(max_new_tokens=min(64, answer_tokens(task) + 8))
    if mode == "demos":
        return answer_generation(task)
    return None


class RagLane:
    """One rag variant: `knn-vote`, `demos`, `context`, `bm25`, or `auto` (chosen from the
    task)."""

    family = "rag"
    NAMES: ClassVar[dict[str, str]] = {
        "knn-vote": "rag/knn-vote",
        "demos": "rag/demos",
        "context": "rag",
        "bm25": "rag/bm25",
        "auto": "rag",
    }

    def __init__(self, mode: str = "auto", *, k: int = 5, min_score: float | None = None) -> None:
        if mode not in self.NAMES:
            raise UserInputError(
                f"unknown rag variant {mode!r}; choose from {', '.join(self.NAMES)}"
            )
        self.mode = mode
        self.k = k
        self.min_score = min_score
        self.name = self.NAMES[mode]

    @classmethod
    def variants(cls, task: Task | None) -> list[RagLane]:
        """The variants a report compares for this task: with labels the kNN vote (the
        non-LLM baseline) and demos; with documents the passages and the BM25 sentence (the
        non-LLM baseline)."""
        if task is None:
            return [cls("auto")]
        kind = task.spec.output.type
        if kind == "labels":
            return [cls("knn-vote"), cls("demos")]
        if kind == "json_schema":
            return [cls("demos")]
        if task.documents:
            return [cls("context"), cls("bm25")]
        return [cls("context")]

    def _mode_for(self, task: Task) -> str:
        kind = task.spec.output.type
        if self.mode == "auto":
            return {"labels": "knn-vote", "json_schema": "demos"}.get(kind, "context")
        if self.mode == "knn-vote" and kind != "labels":
            raise UserInputError(
                f"rag/knn-vote votes among labels, but this task's output is {kind}",
                hint="use rag/demos for a JSON schema, or rag for free text",
            )
        if self.mode in PASSAGE_MODES and kind != "free_text":
            raise UserInputError(
                f"the rag {self.mode} variant answers free text, but this task's output is {kind}",
                hint="use rag/demos (or rag/knn-vote for labels)",
            )
        if self.mode == "demos" and kind == "free_text":
            raise UserInputError(
                "rag/demos retrieves labelled examples for label and JSON tasks; this task is "
                "free text",
                hint="use rag (documents with citations) for free text",
            )
        return self.mode

    def build(
        self, task: Task, ctx: RunContext, *, generator: Generator | None = None
    ) -> RetrievingSystem:
        """The rag system; `generator` replaces the task's (the compound lane passes a
        placeholder, since it brings its own adapter, so the base model is not loaded)."""
        from compoundai_retrievers.embedders import make_embedder

        mode = self._mode_for(task)
        name = self.NAMES[mode]
        if mode in PASSAGE_MODES:
            if not task.documents:
                raise LaneNotApplicableError(
                    f"{name} needs documents to retrieve from, and the task has none",
                    hint="add `documents:` (files, folders or globs of the corpus) to the "
                    "task file, or compare other lanes (--lanes prompt,finetune)",
                )
        elif not task.split("train"):
            raise LaneNotApplicableError(
                f"{name} retrieves labelled training examples, and the task has none",
                hint="add examples.train (a JSONL of inputs and outputs) to the task file",
            )
        from compoundai.embedder_tuning import effective_embedder

        embedder = make_embedder(effective_embedder(task.spec.models.embedder)[0], ctx)
        if mode in PASSAGE_MODES:
            store = RagStore.for_documents(task, ctx, embedder)
        else:
            store = RagStore.for_examples(task, ctx, embedder)
        # kNN vote and the BM25 sentence never call the generator: do not load one for them.
        if generator is None:
            no_model = mode in NO_MODEL_MODES
            generator = NoGenerator() if no_model else shared_generator(task, ctx)
        min_score = self.min_score if self.min_score is not None else MIN_SCORES.get(embedder.name)
        return SYSTEMS[mode](
            name,
            self.family,
            task.spec.instructions,
            contract_of(task),
            generator,
            ctx=ctx,
            info=BuildInfo(k=self.k, index=str(store.folder), holds=store.holds),
            generation=_generation(task, mode),
            store=store,
            k=self.k,
            min_score=min_score if mode == "context" else None,
        )
