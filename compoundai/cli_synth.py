"""`compoundai synth qa`: question/answer pairs written from documents (`compoundai.synth`).

A thin command: it indexes the documents (idempotently, so a re-run embeds nothing), asks a
generator for pairs chunk by chunk, keeps the pairs the chunk supports and the index retrieves,
and writes them as JSONL that a task file reads with `input_field: question` and
`output_field: answer`. The last stdout line is the filter counts as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from compoundai.cli_common import _ctx, _errors_to_exit_codes
from compoundai.generators import make_generator


@click.group("synth")
def synth() -> None:
    """Synthesise training or dev data from documents."""


@synth.command("qa")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o", "--out", type=click.Path(path_type=Path), required=True, help="JSONL file to write."
)
@click.option(
    "--per-chunk",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Questions per chunk.",
)
@click.option(
    "--k",
    type=int,
    default=5,
    show_default=True,
    help="Round-trip filter: keep a pair only if its chunk is in the question's top k hits.",
)
@click.option(
    "--max-chunks",
    type=click.IntRange(min=1),
    help="Sample this many chunks (seeded) [default: all].",
)
@click.option(
    "--generator",
    "model",
    default="smollm2-135m-instruct",
    show_default=True,
    help="Model that writes the pairs: a store name, Hugging Face id or path; with "
    "--base-url, the model name the server knows.",
)
@click.option(
    "--base-url", help="An OpenAI-compatible server (a teacher) instead of a local model."
)
@click.option("--embedder", help="Embedder of the round-trip index [default: all-minilm-l6-v2].")
@click.option(
    "--index",
    "index_dir",
    type=click.Path(path_type=Path),
    help="Index folder to use (and keep) [default: one in the cache, per set of documents].",
)
@click.pass_obj
@_errors_to_exit_codes
def synth_qa(
    obj: dict[str, Any],
    paths: tuple[Path, ...],
    out: Path,
    per_chunk: int,
    k: int,
    max_chunks: int | None,
    model: str,
    base_url: str | None,
    embedder: str | None,
    index_dir: Path | None,
) -> None:
    """Write question/answer pairs about the documents under PATHS into OUT.

    Each pair must be supported by its chunk (the answer occurs in it) and retrieve it (the
    round trip); stderr says how many each filter rejected.
    """
    from compoundai.provenance import file_sha256, json_digest
    from compoundai.synth import synthesize_qa, write_pairs
    from compoundai_retrievers.embedders import make_embedder
    from compoundai_retrievers.index import ChromaIndex
    from compoundai_retrievers.ingest import ingest
    from compoundai_retrievers.loaders import discover

    ctx = _ctx(obj)
    files = discover(paths)  # every missing path listed before any model is loaded
    emb = make_embedder(embedder or "all-minilm-l6-v2", ctx)
    if index_dir is None:
        key = json_digest([emb.name, *[[str(f.resolve()), file_sha256(f)] for f in files]])
        index_dir = ctx.cache_dir / "synth" / key[:16]
    idx = ChromaIndex.open(index_dir, embedder=emb, ctx=ctx)
    ingested = ingest(paths, idx, cleanup="scoped")
    for err in ingested.errors:
        where = f"{err.file}:{err.line}" if err.line else err.file
        click.echo(f"skipped {where}: {err.message}", err=True)
    generator = make_generator(model, base_url, ctx)
    pairs, report = synthesize_qa(
        idx,
        generator,
        per_chunk=per_chunk,
        k=k,
        max_chunks=max_chunks,
        seed=ctx.seed,
        progress=ctx.progress,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_pairs(out, pairs)
    click.echo(
        f"{report.kept} of {report.generated} pairs kept ({report.acceptance_rate:.0%}) from "
        f"{report.chunks} chunks in {report.seconds:.1f} s; rejected: {report.unsupported} "
        f"unsupported by their chunk, {report.not_retrieved} not retrieving it in the top {k}, "
        f"{report.duplicates} duplicates; {report.unparsable} outputs held no pair -> {out}",
        err=True,
    )
    click.echo(json.dumps(report.contract()))
