"""Ingestion throughput and retrieval quality of the Chroma index against LangChain's baseline.

Baseline (what a user would write): LangChain's `RecursiveCharacterTextSplitter` measuring
MiniLM tokens, then `Chroma.from_documents(chunks, HuggingFaceEmbeddings(model_name=PATH))`:
sentence-transformers in fp32, batch 32, uuid ids. Ours: `ingest_documents` into a
`ChromaIndex`: the same splitter settings and model path, MiniLM in bf16 where the CPU has
AMX / AVX-512 bf16, batch 64, texts embedded once per distinct content, content-hash ids
(so a re-run embeds nothing). Both sides run in this one process, on the same chunks,
alternating (baseline, ours, ours, baseline) so load from other work on the machine falls on
both alike; the time of each side is the mean of its timed runs (`--repeats`, default 2).

Corpora: `squad_v2_rag/corpus.jsonl` (422 paragraphs) and a synthetic corpus of short
documents built by recombining sentences of `train_corpus.jsonl` (`--synthetic-chunks`, one
chunk each). Quality: recall@1, recall@5 and MRR@10 of the gold paragraph for the dev questions
(`split == "dev"`), dense / BM25 / hybrid on our index, dense on the baseline's. Latency: one
query at a time, p50 / p95.

    python benchmarks/bench_ingest.py [--data ../shared/data] [--synthetic-chunks 20000]
                                      [--repeats 2]

Last line: one JSON object with the figures; `ratio` is our ingestion throughput over the
baseline's on the squad corpus (the baseline's seconds over ours for the same documents),
`ratio_synthetic` the same on the synthetic one.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from compoundai.context import RunContext
from compoundai.models import ModelStore
from compoundai_retrievers.chunking import ChunkingConfig
from compoundai_retrievers.embedders import SentenceTransformerEmbedder
from compoundai_retrievers.index import ChromaIndex
from compoundai_retrievers.ingest import ingest_documents
from compoundai_retrievers.loaders import SourceDocument
from compoundai_retrievers.search import search

ROOT = Path(__file__).resolve().parent.parent
CHUNKING = ChunkingConfig()  # 200 tokens, 32 overlap: the same for both sides


def load_squad(data: Path) -> tuple[list[SourceDocument], list[dict[str, Any]]]:
    folder = data / "squad_v2_rag"
    rows = [json.loads(line) for line in (folder / "corpus.jsonl").open()]
    docs = [
        SourceDocument(
            f"squad/{r['doc_id']}", r["text"], r["title"], metadata={"doc_id": r["doc_id"]}
        )
        for r in rows
    ]
    questions = [json.loads(line) for line in (folder / "questions.jsonl").open()]
    return docs, [q for q in questions if q["split"] == "dev"]


def synthetic_docs(data: Path, n: int, seed: int = 0) -> list[SourceDocument]:
    """`n` distinct short documents (2-3 real sentences each), one chunk apiece."""
    rows = [json.loads(line) for line in (data / "squad_v2_rag" / "train_corpus.jsonl").open()]
    sentences = [
        s.strip() for r in rows for s in re.split(r"(?<=[.!?])\s+", r["text"]) if len(s) > 30
    ]
    rng = random.Random(seed)
    return [
        SourceDocument(
            f"synthetic/{i:06d}",
            " ".join(rng.sample(sentences, rng.choice((2, 3)))),
            f"synthetic {i}",
            metadata={"doc_id": f"syn{i}"},
        )
        for i in range(n)
    ]


def run_baseline(docs: list[SourceDocument], model_path: str, folder: Path) -> dict[str, Any]:
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from transformers import AutoTokenizer

    started = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(
        model_name=model_path, encode_kwargs={"normalize_embeddings": True}
    )
    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        AutoTokenizer.from_pretrained(model_path),
        chunk_size=CHUNKING.chunk_size,
        chunk_overlap=CHUNKING.chunk_overlap,
    )
    lc_docs = [Document(page_content=d.text, metadata=dict(d.metadata)) for d in docs]
    loaded = time.perf_counter()
    chunks = splitter.split_documents(lc_docs)
    store = Chroma.from_documents(
        chunks,
        embeddings,
        persist_directory=str(folder),
        collection_name=f"lc-{uuid.uuid4().hex[:8]}",
    )
    seconds = time.perf_counter() - loaded
    return {
        "store": store,
        "chunks": len(chunks),
        "seconds": seconds,
        "setup_s": loaded - started,
    }


def run_ours(docs: list[SourceDocument], ctx: RunContext, folder: Path) -> dict[str, Any]:
    started = time.perf_counter()
    embedder = SentenceTransformerEmbedder(ctx=ctx)
    index = ChromaIndex.open(
        folder,
        collection=f"ours-{uuid.uuid4().hex[:8]}",
        embedder=embedder,
        chunking=CHUNKING,
        ctx=ctx,
    )
    loaded = time.perf_counter()
    report = ingest_documents(docs, index)
    seconds = time.perf_counter() - loaded
    again = ingest_documents(docs, index)  # idempotent re-run: nothing embedded
    return {
        "index": index,
        "chunks": report.added,
        "seconds": seconds,
        "setup_s": loaded - started,
        "reingest_s": again.seconds,
        "reingest_added": again.added,
    }


def timed_pair(
    docs: list[SourceDocument], model_path: str, ctx: RunContext, tmp: Path, repeats: int = 2
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Baseline, ours, ours, baseline, ...; each side's time is the mean of its runs."""
    base_runs: list[dict[str, Any]] = []
    our_runs: list[dict[str, Any]] = []
    for n in range(repeats):
        pair = [lambda: base_runs.append(run_baseline(docs, model_path, tmp / "lc"))]
        pair.append(lambda: our_runs.append(run_ours(docs, ctx, tmp / "ours")))
        for run in pair if n % 2 == 0 else reversed(pair):
            run()
    b1, o1 = base_runs[0], our_runs[0]
    base_s = statistics.mean(r["seconds"] for r in base_runs)
    ours_s = statistics.mean(r["seconds"] for r in our_runs)
    figures = {
        "documents": len(docs),
        "baseline_chunks": b1["chunks"],
        "ours_chunks": o1["chunks"],
        "baseline_s": round(base_s, 2),
        "ours_s": round(ours_s, 2),
        "baseline_chunks_per_s": round(b1["chunks"] / base_s, 2),
        "ours_chunks_per_s": round(o1["chunks"] / ours_s, 2),
        # the same corpus in both: the ratio of times is the ratio of throughputs, whatever
        # small difference the two splitters' separators make to the chunk count
        "ratio": round(base_s / ours_s, 2),
        "ours_reingest_s": round(o1["reingest_s"], 2),
        "ours_reingest_added": o1["reingest_added"],
        "repeats": repeats,
    }
    return b1, o1, figures


def quality(hit_doc_ids: list[list[str]], gold: list[str]) -> dict[str, float]:
    r1 = r5 = mrr = 0.0
    for ids, want in zip(hit_doc_ids, gold, strict=True):
        ranks = [n for n, d in enumerate(ids[:10], start=1) if d == want]
        if ranks:
            r1 += ranks[0] == 1
            r5 += ranks[0] <= 5
            mrr += 1.0 / ranks[0]
    n = len(gold)
    return {"recall@1": round(r1 / n, 3), "recall@5": round(r5 / n, 3), "mrr@10": round(mrr / n, 3)}


def dedupe(ids: list[str]) -> list[str]:
    """Chunks of one paragraph count once: the ranking is over paragraphs."""
    return list(dict.fromkeys(ids))


def latency_ms(fn: Any, queries: list[str]) -> dict[str, float]:
    times = []
    for q in queries:
        started = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(times, n=20)
    return {"p50": round(statistics.median(times), 1), "p95": round(cuts[18], 1)}


def evaluate(index: ChromaIndex, store: Any, dev: list[dict[str, Any]]) -> dict[str, Any]:
    questions = [q["question"] for q in dev]
    gold = [q["doc_id"] for q in dev]
    out: dict[str, Any] = {}
    for mode in ("dense", "bm25", "hybrid"):
        hits = search(index, questions, k=20, mode=mode)  # type: ignore[arg-type]
        ids = [dedupe([str(h.metadata.get("doc_id")) for h in row]) for row in hits]
        out[mode] = quality(ids, gold)
        out[mode]["latency_ms"] = latency_ms(
            lambda q, m=mode: search(index, [q], k=5, mode=m),  # type: ignore[misc]
            questions,
        )
    base_ids = [
        dedupe([d.metadata["doc_id"] for d in store.similarity_search(q, k=20)]) for q in questions
    ]
    out["baseline_dense"] = quality(base_ids, gold)
    out["baseline_dense"]["latency_ms"] = latency_ms(
        lambda q: store.similarity_search(q, k=5), questions
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--synthetic-chunks", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=2, help="Timed runs per side.")
    args = parser.parse_args()
    ctx = RunContext(progress=False)
    model_path = ModelStore(ctx).resolve("all-minilm-l6-v2")
    docs, dev = load_squad(args.data)
    figures: dict[str, Any] = {"threads": torch.get_num_threads(), "dev_questions": len(dev)}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base, ours, squad = timed_pair(docs, model_path, ctx, tmp, args.repeats)
        print(f"squad: {json.dumps(squad)}", flush=True)
        quality_figures = evaluate(ours["index"], base["store"], dev)
        print(f"quality: {json.dumps(quality_figures)}", flush=True)
        synthetic: dict[str, Any] = {}
        if args.synthetic_chunks:
            syn_docs = synthetic_docs(args.data, args.synthetic_chunks)
            _, _, synthetic = timed_pair(syn_docs, model_path, ctx, tmp, args.repeats)
            print(f"synthetic: {json.dumps(synthetic)}", flush=True)
    figures.update(
        {
            "squad": squad,
            "synthetic": synthetic,
            "quality": quality_figures,
            "ratio": squad["ratio"],
            "ratio_synthetic": synthetic.get("ratio"),
        }
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
