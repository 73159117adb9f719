"""Adapting the embedder to a task's documents: contrastive tuning on (question, chunk) pairs.

Why this exists: retrieval is only as good as the encoder behind it, and a general-purpose
MiniLM has never seen a team's vocabulary. LlamaIndex reports 5-10% retrieval gains from
fine-tuning the embedding model on synthetic questions about the corpus. Here the pairs are
`compoundai.synth`'s (or a JSONL of them a user brings), the training is sentence-transformers'
own `SentenceTransformerTrainer` with `MultipleNegativesRankingLoss` (each question's chunk is
its positive, the batch's other chunks its negatives), and the result is judged the only way
that counts: recall@5 and MRR on the task's **dev** questions (their gold `doc_id`s), before and
after, each over an index embedded with that model.

The tuned model is a plain sentence-transformers folder with a `compoundai-embedder.json`
manifest beside it (base model, pairs, seconds, dev retrieval before and after, `better`). Point
`models.embedder` at the folder and the rag lane uses it; when the manifest says it did not
measure better, the lane uses the base model instead and says so (`effective_embedder`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from compoundai.context import RunContext
from compoundai.errors import UserInputError
from compoundai.task import Task

MANIFEST = "compoundai-embedder.json"
log = logging.getLogger("compoundai.embedder")


class RetrievalQuality(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recall_at_5: float
    mrr: float
    questions: int


class EmbedderManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = "compoundai-embedder/1"
    base: str
    pairs: int
    epochs: float
    seconds: float
    before: RetrievalQuality
    after: RetrievalQuality
    better: bool
    split: str = "dev"
    synth: dict[str, float] = Field(default_factory=dict)


def retrieval_quality(task: Task, ctx: RunContext, embedder: Any, split: str = "dev") -> Any:
    """Recall@5 and MRR@10 of dense search over the task's documents, embedded with
    `embedder`, for the `split` questions that name gold documents (`doc_id` and the like)."""
    from compoundai.lanes.rag.prompts import hit_id
    from compoundai.lanes.rag.store import RagStore
    from compoundai_evaluators.metrics import MRR, Row, recall_at, value_of
    from compoundai_evaluators.metrics.retrieval import gold_ids

    golds = [(e, [g for g in gold_ids(Row(e.id, e.input, None, None, meta=e.meta)) if g])
             for e in task.split(split)]  # fmt: skip
    cases = [(e, gold) for e, gold in golds if gold]
    if not cases:
        raise UserInputError(
            f"no {split} questions name their gold documents, so retrieval cannot be measured",
            hint=f"give the {split} rows a doc_id (or relevant_ids) field",
        )
    store = RagStore.for_documents(task, ctx, embedder)
    hits = store.dense([e.input for e, _ in cases], 10)
    rows = [
        Row(e.id, e.input, None, None, meta={"relevant_ids": gold},
            extra={"retrieved_ids": [hit_id(h) for h in found]})
        for (e, gold), found in zip(cases, hits, strict=True)
    ]  # fmt: skip
    return RetrievalQuality(
        recall_at_5=round(value_of(recall_at(5), rows), 4),
        mrr=round(value_of(MRR, rows), 4),
        questions=len(rows),
    )


def tune_embedder(
    task: Task,
    ctx: RunContext,
    out: Path,
    *,
    pairs_file: Path | None = None,
    epochs: float = 1.0,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    max_chunks: int | None = None,
) -> EmbedderManifest:
    """Tune the task's embedder on (question, chunk) pairs and measure it on dev; see above."""
    from compoundai_retrievers.embedders import SentenceTransformerEmbedder, make_embedder

    if not task.documents:
        raise UserInputError(
            "tuning the embedder needs the task's documents", hint="add `documents:`"
        )
    base_name = task.spec.models.embedder
    base = make_embedder(base_name, ctx)
    if not isinstance(base, SentenceTransformerEmbedder):
        raise UserInputError(
            f"the embedder {base_name!r} is not a sentence-transformers model, so it cannot be "
            "tuned here",
            hint="set models.embedder to a sentence-transformers model (the default MiniLM)",
        )
    before = retrieval_quality(task, ctx, base)
    started = time.perf_counter()
    questions, chunks, synth = _pairs(task, ctx, base, pairs_file, max_chunks)
    model = _train(base, questions, chunks, out, epochs, batch_size, learning_rate, ctx)
    seconds = round(time.perf_counter() - started, 2)
    tuned = SentenceTransformerEmbedder(str(model), ctx=ctx)
    after = retrieval_quality(task, ctx, tuned)
    better = (after.recall_at_5, after.mrr) > (before.recall_at_5, before.mrr)
    manifest = EmbedderManifest(
        base=base_name,
        pairs=len(questions),
        epochs=epochs,
        seconds=seconds,
        before=before,
        after=after,
        better=better,
        synth=synth,
    )
    (model / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return manifest


def _pairs(
    task: Task, ctx: RunContext, base: Any, pairs_file: Path | None, max_chunks: int | None
) -> tuple[list[str], list[str], dict[str, float]]:
    """(questions, their chunks' texts, the synthesis counts) from a file or synthesised."""
    from compoundai.data import iter_jsonl
    from compoundai.errors import Problem
    from compoundai.lanes.prompt import shared_generator
    from compoundai.lanes.rag.store import RagStore
    from compoundai.synth import synthesize_qa

    store = RagStore.for_documents(task, ctx, base)
    records = dict(store.index.iter_records(include=("documents", "metadatas")))
    texts = {rid: str(row.get("document") or "") for rid, row in records.items()}
    by_doc: dict[str, list[str]] = {}
    for rid, row in records.items():
        by_doc.setdefault(str(row.get("doc_id") or ""), []).append(rid)
    synth: dict[str, float] = {}
    if pairs_file is not None:
        problems: list[Problem] = []
        pairs = []
        for n, r in iter_jsonl(pairs_file, problems):
            chunk = _pair_chunk(r, records, by_doc)
            if chunk is None or not r.get("question"):
                problems.append(
                    Problem(
                        "needs a question and a chunk_id of this task's index (or a doc_id and "
                        "an answer found in exactly one of that document's chunks)",
                        file=str(pairs_file),
                        line=n,
                    )
                )
                continue
            pairs.append((str(r["question"]), texts[chunk]))
        if problems:
            raise UserInputError(problems, hint="write the file with `compoundai synth qa`")
    else:
        kept, report = synthesize_qa(
            store.index, shared_generator(task, ctx), max_chunks=max_chunks, progress=ctx.progress
        )
        synth = report.contract()
        pairs = [(p.question, texts[p.chunk_id]) for p in kept]
    dev = {e.input.strip().lower() for e in task.split("dev")} | {
        e.input.strip().lower() for e in task.split("test")
    }
    pairs = [(q, c) for q, c in pairs if q.strip().lower() not in dev]  # never train on held-out
    if len(pairs) < 2:
        raise UserInputError(
            f"{len(pairs)} training pairs: contrastive tuning needs at least 2",
            hint="synthesise more (--max-chunks) or bring a larger --pairs file",
        )
    return [q for q, _ in pairs], [c for _, c in pairs], synth


def _pair_chunk(
    row: dict[str, Any], records: dict[str, dict[str, Any]], by_doc: dict[str, list[str]]
) -> str | None:
    """The index chunk a pair's question is about: its `chunk_id`. Chunk ids include the
    documents' absolute paths, so a pairs file written in another checkout names other ids:
    then the chunk of its `doc_id` whose id, derived again with the pair's `source`, is the
    pair's, else the one chunk of that document that holds the answer."""
    from compoundai_retrievers.chunking import chunk_id

    chunk = str(row.get("chunk_id") or "")
    if chunk in records:
        return chunk
    doc_id = str(row.get("doc_id") or "")
    candidates = by_doc.get(doc_id, []) if doc_id else []
    source = str(row.get("source") or "")
    for rid in candidates:
        digest = str(records[rid].get("content_hash") or "")
        if any(chunk_id(source, doc_id, digest, n) == chunk for n in range(4)):
            return rid
    answer = str(row.get("answer") or "").strip().lower()
    if len(candidates) > 1 and answer:
        candidates = [c for c in candidates if answer in str(records[c]["document"]).lower()]
    return candidates[0] if len(candidates) == 1 else None


def _train(
    base: Any,
    questions: list[str],
    chunks: list[str],
    out: Path,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    ctx: RunContext,
) -> Path:
    """sentence-transformers' trainer with the in-batch-negatives loss; the model folder."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    from compoundai.models import ModelStore

    path = ModelStore(ctx).resolve(base.name)
    model = SentenceTransformer(path, device="cpu", model_kwargs={"use_safetensors": True})
    data = Dataset.from_dict({"anchor": questions, "positive": chunks})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_ratio=0.1,
        seed=ctx.seed,
        save_strategy="no",
        report_to=[],
        logging_steps=10,
        disable_tqdm=not ctx.progress,
        # the same chunk twice in a batch would be its own negative
        batch_sampler=BatchSamplers.NO_DUPLICATES,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=data, loss=MultipleNegativesRankingLoss(model)
    )
    trainer.train()
    folder = out / "model"
    model.save(str(folder))
    return folder


def effective_embedder(name: str) -> tuple[str, str | None]:
    """The embedder to use for `name`, and why it differs: a tuned folder whose manifest says
    it did not measure better on dev is replaced by its base model."""
    manifest = Path(name) / MANIFEST
    if not manifest.is_file():
        return name, None
    record = json.loads(manifest.read_text(encoding="utf-8"))
    if record.get("better"):
        return name, None
    why = (
        f"the tuned embedder in {name} did not retrieve better on dev (recall@5 "
        f"{record['before']['recall_at_5']} -> {record['after']['recall_at_5']}), so the rag "
        f"lane uses its base model {record['base']}"
    )
    log.warning(why)
    return str(record["base"]), why
