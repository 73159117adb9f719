"""The compound lane: the rag lane's retrieval, served by an adapter trained on its prompts.

RAFT (Zhang et al. 2024) in the shape of this task:

- **Documents (free text)**: each training question is put to the index like a real query; its
  prompt holds the top-k retrieved passages as distractors, and in `compound.gold_share` of the
  prompts the question's gold passage (the `context` field of the training row) replaces one of
  them at a random position. The answer is the gold answer citing that passage, `answer [n]`,
  or, where the gold passage was left out, the abstention reply: the model learns to answer
  briefly from the passages and to refuse when they do not hold the answer. Training rows
  without a gold passage keep their retrieved passages and their own answer.
- **Labels and JSON**: each training example's k nearest *other* training examples become its
  demonstrations as chat turns (the rag/demos prompt), and its own output is the answer. As in
  the finetune lane the contract is learnt from the answers, so the prompt does not list the
  labels or the schema.

A free-text task with documents but no training examples trains on question/answer pairs
synthesised from its documents instead (`compoundai.synth`, with the `finetune.qa` settings;
the pairs are cached and their filter counts reported as the lane's `synth`): each pair's chunk
is its gold passage, so the RAFT prompts above need nothing the task lacks (issue 21's "QA
pairs for the compound lane").

At inference the system is the rag system (same index, same prompt template, same abstention
and citations) with the adapter on the generator. Training uses the task's `finetune` settings
and `compound.max_train_rows` prompts (label-stratified); the adapter is cached and resumable
like the finetune lane's.
"""

from __future__ import annotations

import random
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from compoundai.context import RunContext
from compoundai.contract import ABSTAIN_TEXT, BuildInfo, format_output
from compoundai.data import Example, sample_cases, slug
from compoundai.errors import UserInputError
from compoundai.generators.base import Chat
from compoundai.lanes.finetune import (
    adapter_generator,
    require_local_generator,
    train_sft_adapter,
)
from compoundai.lanes.prompt import contract_of
from compoundai.lanes.rag.lane import SYSTEMS, RagLane
from compoundai.lanes.rag.prompts import PASSAGE_CHARS
from compoundai.lanes.rag.systems import RetrievingSystem
from compoundai.provenance import file_sha256
from compoundai.synth import synthetic_split
from compoundai.system import NoGenerator
from compoundai.task import Task


class CompoundLane:
    """Retrieval + a LoRA adapter trained on retrieval prompts (RAFT-style)."""

    family = "compound"
    name = "compound"

    def build(self, task: Task, ctx: RunContext) -> RetrievingSystem:
        require_local_generator(task, self.family)
        mode = "context" if task.spec.output.type == "free_text" else "demos"
        if not task.split("train") and not (mode == "context" and task.documents):
            raise UserInputError(
                "the compound lane needs training examples to train its adapter on",
                hint="add examples.train (a JSONL of inputs and outputs) to the task file; a "
                "free-text task with documents trains on QA pairs synthesised from them",
            )
        # the index (cached) and the checks on inputs, without loading the base generator
        rag = RagLane(mode).build(task, ctx, generator=NoGenerator())
        system = SYSTEMS[mode](
            self.name,
            self.family,
            task.spec.instructions,
            contract_of(task),
            NoGenerator(),
            ctx=ctx,
            info=BuildInfo(k=rag.k, index=str(rag.store.folder), holds=rag.store.holds),
            generation=rag.generation,
            store=rag.store,
            k=rag.k,
            min_score=rag.min_score,
            contract_in_prompt=False,
        )
        synth = None
        if not task.split("train"):
            examples, synth = synthesised_examples(task, ctx, rag.store)
            if not task.split("dev"):  # a share is the measured decision's synthetic dev set
                examples, held_out = synthetic_split(examples)
                synth = {**synth, "held_out_as_dev": len(held_out)}
                if not examples:
                    raise UserInputError(
                        f"all {len(held_out)} synthesised question/answer pairs are held out as "
                        "the synthetic dev set: nothing is left to train the compound adapter on",
                        hint="add examples.train or examples.dev, or more documents",
                    )
            rows = self.training_rows(task, system, examples)
        else:
            rows = self.training_rows(task, system)
        adapter = train_sft_adapter(task, ctx, rows, system=None, tag="compound")
        generator, info = adapter_generator(task, ctx, adapter)
        if synth is not None and info.training is not None:  # writing the pairs is training
            spent = float(synth.get("seconds", 0.0))
            info.training.train_seconds = (info.training.train_seconds or 0.0) + spent
        system.generator = generator
        search = rag.store.index.dense_method
        fingerprint = f"compound-{mode}-{rag.store.key}-k{rag.k}-{search}-{info.fingerprint}"
        system.info = info.model_copy(
            update={
                "k": rag.k,
                "index": str(rag.store.folder),
                "holds": rag.store.holds,
                "fingerprint": fingerprint,
                "train_rows": len(rows),
                **({"synth": synth} if synth is not None else {}),
            }
        )
        return system

    def training_rows(
        self, task: Task, system: RetrievingSystem, examples: list[Example] | None = None
    ) -> list[dict[str, Any]]:
        """One chat per sampled training example (the task's, or `examples`), ending in the
        answer to learn."""
        settings = task.spec.compound
        examples = sample_cases(
            task.split("train") if examples is None else examples,
            settings.max_train_rows,
            settings.seed,
            task.spec.output.type == "labels",
        )
        inputs = [e.input for e in examples]
        chats: list[Chat] = []
        if system.mode == "demos":
            neighbours = system.neighbours(inputs, exclude=[e.id for e in examples])
            for ex, hits in zip(examples, neighbours, strict=True):
                chats.append(_answered(system.chat_for(ex.input, hits), format_output(ex.output)))
            return [{"messages": chat} for chat in chats]
        rng = random.Random(settings.seed)
        retrieved, _ = system.store.hybrid(inputs, system.k)
        for ex, hits in zip(examples, retrieved, strict=True):
            answer = _first_answer(ex.output)
            gold = ex.meta.get("context")
            if not isinstance(gold, str) or not gold.strip():
                chats.append(_answered(system.chat_for(ex.input, hits), answer or ABSTAIN_TEXT))
                continue
            gold_flat = " ".join(gold.split())
            passages = [h for h in hits if " ".join(h.text.split()) not in gold_flat]
            passages = passages[: system.k]
            # the prompt cuts each passage: a gold passage whose answer is cut off is no gold
            seen = answer and answer in gold_flat[:PASSAGE_CHARS]
            if seen and rng.random() < settings.gold_share:
                passages = passages[: system.k - 1]
                at = rng.randrange(len(passages) + 1)
                title = ex.meta.get("title")
                passages.insert(at, SimpleNamespace(text=gold, metadata={"title": title}))
                target = f"{answer} [{at + 1}]"
            else:
                target = ABSTAIN_TEXT
            chats.append(_answered(system.chat_for(ex.input, passages), target))
        return [{"messages": chat} for chat in chats]


def synthesised_examples(
    task: Task, ctx: RunContext, store: Any
) -> tuple[list[Example], dict[str, Any]]:
    """Training examples from QA pairs synthesised from the task's documents (cached with the
    qa+sft lane's key parts), each with its chunk as the gold passage; and the filter counts."""
    import json

    from compoundai.lanes.finetune_data import _key, synthesised_qa

    docs = sorted(str(p) for p in task.documents)
    key = _key(
        [file_sha256(p) for p in docs],
        task.spec.models.generator,
        task.spec.models.embedder,
        task.spec.document_fields.model_dump(),
        task.spec.finetune.qa.model_dump(),
        task.spec.finetune.seed,
    )
    run_dir = ctx.cache_dir / "synth" / f"{slug(task.name)}-compound-{key}"
    run_dir.mkdir(parents=True, exist_ok=True)
    synthesised_qa(task, ctx, run_dir)
    chunks = dict(store.index.iter_records(include=("documents", "metadatas")))
    examples = []
    for n, line in enumerate((run_dir / "pairs.jsonl").read_text("utf-8").splitlines(), 1):
        pair = json.loads(line)
        chunk = chunks.get(pair["chunk_id"])
        if chunk is None:  # the index changed since the pairs were written: no gold passage
            continue
        meta = {
            "context": chunk.get("document", ""),
            "title": pair.get("title", ""),
            "doc_id": pair.get("doc_id", ""),
        }
        examples.append(
            Example(
                pair["id"], pair["question"], pair["answer"], meta, f"{run_dir}/pairs.jsonl:{n}"
            )
        )
    record = json.loads((run_dir / "synth.json").read_text(encoding="utf-8"))
    return examples, record


def synthetic_dev(task: Task, ctx: RunContext) -> list[Example]:
    """The synthetic dev set of a free-text task with documents and no dev split: the held-out
    share of the QA pairs synthesised from its documents (see `synthetic_split`)."""
    from compoundai.lanes.rag.store import RagStore
    from compoundai_retrievers.embedders import make_embedder

    store = RagStore.for_documents(task, ctx, make_embedder(task.spec.models.embedder, ctx))
    examples, _ = synthesised_examples(task, ctx, store)
    return [replace(e, meta={**e.meta, "synthetic": True}) for e in synthetic_split(examples)[1]]


def _answered(chat: Chat, answer: str) -> Chat:
    return [*chat, {"role": "assistant", "content": answer}]


def _first_answer(output: Any) -> str:
    """A training row's answer: the string, or the first of a list of gold answers."""
    if isinstance(output, list):
        return str(output[0]).strip() if output else ""
    return format_output(output).strip() if output is not None else ""
