"""`compoundai index {add,query,stats}`: thin commands over `compoundai_retrievers`.

An index is a folder (`--index DIR`, embedded Chroma) or a Chroma server (`--server URL`),
plus a collection name. The index remembers its embedder, so `query` and `stats` need no
model flag. Machine-readable outputs follow DESIGN.md: `add` ends with one JSON line of
counts; `query --json` prints a list of hits (a list of lists with `--queries`).
chromadb and the models are imported inside the commands, so `import compoundai.cli` stays light.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from compoundai.cli_common import _ctx, _errors_to_exit_codes
from compoundai.errors import Problem, UserInputError

F = TypeVar("F", bound=Callable[..., Any])
SHOWN_SKIPPED = 20  # skipped entries listed one a line; the summary counts them all


def _location_options(fn: F) -> F:
    fn = click.option(
        "--collection", default="compoundai", show_default=True, help="Collection name."
    )(fn)
    fn = click.option(
        "--server", metavar="URL", help="A Chroma server (http://host:port) instead of a folder."
    )(fn)
    return click.option(
        "--index",
        "index_dir",
        type=click.Path(path_type=Path),
        help="Index folder (embedded Chroma). Required unless --server is given.",
    )(fn)


def _open(
    obj: dict[str, Any], index_dir: Path | None, server: str | None, collection: str, **kw: Any
) -> Any:
    from compoundai_retrievers.index import ChromaIndex

    if index_dir is None and server is None:
        raise UserInputError("give --index DIR (a folder) or --server URL (a Chroma server)")
    return ChromaIndex.open(index_dir, server=server, collection=collection, ctx=_ctx(obj), **kw)


@click.group("index")
def index() -> None:
    """Build and query a Chroma RAG index: idempotent ingestion, dense / BM25 / hybrid search."""


@index.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_location_options
@click.option(
    "--embedder",
    help="Embedder of a NEW index: a model name or path, openai:MODEL, or hash:DIM (a fake) "
    "[default: all-minilm-l6-v2]. An existing index keeps the one it recorded.",
)
@click.option("--chunk-size", type=int, help="Tokens per chunk [default: 200, or the index's].")
@click.option("--chunk-overlap", type=int, help="Overlap in tokens [default: 32, or the index's].")
@click.option(
    "--cleanup",
    type=click.Choice(["scoped", "full", "none"]),
    default="scoped",
    show_default=True,
    help="Remove chunks of files that are gone: under the given PATHs (scoped), of every file "
    "not given in this run (full), or never (none).",
)
@click.option("--text-field", default="text", show_default=True, help="JSONL: field with text.")
@click.option("--id-field", multiple=True, help="JSONL: id field(s) [default: id, doc_id].")
@click.option("--title-field", default="title", show_default=True, help="JSONL: title field.")
@click.option("--metadata-field", multiple=True, help="JSONL: field(s) kept as metadata.")
@click.option("--max-file-mb", type=float, default=50.0, show_default=True, help="Skip bigger.")
@click.option("--strict", is_flag=True, help="Exit 2 if any file could not be ingested.")
@click.pass_obj
@_errors_to_exit_codes
def index_add(
    obj: dict[str, Any],
    paths: tuple[Path, ...],
    index_dir: Path | None,
    server: str | None,
    collection: str,
    embedder: str | None,
    chunk_size: int | None,
    chunk_overlap: int | None,
    cleanup: str,
    text_field: str,
    id_field: tuple[str, ...],
    title_field: str,
    metadata_field: tuple[str, ...],
    max_file_mb: float,
    strict: bool,
) -> None:
    """Ingest PATHS (files and folders) idempotently; the last line is JSON counts.

    Supported: .txt .md .rst .html .jsonl .pdf (folders are searched recursively). Re-running
    on an unchanged corpus embeds and writes nothing.
    """
    from pydantic import ValidationError

    from compoundai_retrievers.chunking import ChunkingConfig
    from compoundai_retrievers.embedders import make_embedder
    from compoundai_retrievers.ingest import ingest
    from compoundai_retrievers.loaders import LoaderConfig, discover

    ctx = _ctx(obj)
    try:
        loader = LoaderConfig(
            text_field=text_field,
            id_fields=list(id_field) or ["id", "doc_id"],
            title_field=title_field,
            metadata_fields=list(metadata_field),
            max_file_mb=max_file_mb,
        )
        chunking = None
        if chunk_size is not None or chunk_overlap is not None:
            chunking = ChunkingConfig(
                chunk_size=200 if chunk_size is None else chunk_size,
                chunk_overlap=32 if chunk_overlap is None else chunk_overlap,
            )
    except ValidationError as exc:
        problems = [Problem(e["msg"], field=".".join(map(str, e["loc"]))) for e in exc.errors()]
        raise UserInputError(problems) from None
    discover(paths)  # every missing path listed before any index or model is touched
    emb = make_embedder(embedder, ctx) if embedder else None
    idx = _open(obj, index_dir, server, collection, embedder=emb, chunking=chunking)
    report = ingest(paths, idx, loader=loader, cleanup=cleanup)  # type: ignore[arg-type]
    for err in report.errors:
        where = f"{err.file}:{err.line}" if err.line else err.file
        click.echo(f"skipped {where}: {err.message}", err=True)
    for skip in report.skipped[:SHOWN_SKIPPED]:
        click.echo(f"skipped {skip.file}: {skip.message}", err=True)
    if len(report.skipped) > SHOWN_SKIPPED:
        click.echo(f"... and {len(report.skipped) - SHOWN_SKIPPED} more skipped", err=True)
    skipped = ""
    if report.skipped:
        reasons = Counter(k.message.split(" '")[0] for k in report.skipped)
        skipped = "; skipped " + ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
    click.echo(
        f"{report.files} files, {report.chunks} chunks in {idx.location} [{collection}] "
        f"({report.embedded} embedded, {report.seconds:.1f} s{skipped})",
        err=True,
    )
    click.echo(json.dumps(report.contract()))
    if strict and report.failed:
        failed = [Problem(e.message, file=e.file, line=e.line) for e in report.errors]
        raise UserInputError(failed, hint="--strict: fix or remove these files")


def read_queries(path: Path) -> list[str]:
    """Queries from a file: one a line, or JSONL rows with a `query` field (every bad row listed).

    >>> read_queries(Path("questions.jsonl"))   # doctest: +SKIP
    ['In what country is Normandy located?', ...]
    """
    try:
        lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError([Problem(f"cannot read queries: {exc}", file=str(path))]) from None
    numbered = [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
    jsonl = path.suffix == ".jsonl" or (numbered and numbered[0][1].startswith("{"))
    if not jsonl:
        return [line for _, line in numbered]
    queries, problems = [], []
    for n, line in numbered:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(f"not JSON: {exc.msg}", file=str(path), line=n))
            continue
        if not isinstance(row, dict) or not isinstance(row.get("query"), str):
            problems.append(Problem("row has no string field 'query'", file=str(path), line=n))
            continue
        queries.append(row["query"])
    if problems:
        raise UserInputError(problems)
    if not queries:
        raise UserInputError([Problem("no queries in the file", file=str(path))])
    return queries


@index.command("query")
@click.argument("text", required=False)
@_location_options
@click.option("-k", "k", type=int, default=5, show_default=True, help="Hits per query.")
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "dense", "bm25"]),
    default="hybrid",
    show_default=True,
    help="Dense vectors, BM25 keywords, or their reciprocal-rank fusion.",
)
@click.option("--where", help='Metadata filter, Chroma syntax: \'{"title": "Normans"}\'.')
@click.option(
    "--queries",
    "queries_file",
    type=click.Path(path_type=Path),
    help="Many queries: one a line, or JSONL with a 'query' field.",
)
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
@click.pass_obj
@_errors_to_exit_codes
def index_query(
    obj: dict[str, Any],
    text: str | None,
    index_dir: Path | None,
    server: str | None,
    collection: str,
    k: int,
    mode: str,
    where: str | None,
    queries_file: Path | None,
    as_json: bool,
) -> None:
    """Search the index for TEXT (or every query in --queries FILE)."""
    from compoundai_retrievers.search import search

    if (text is None) == (queries_file is None):
        raise UserInputError("give either a query TEXT or --queries FILE")
    filt = None
    if where:
        try:
            filt = json.loads(where)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"--where is not JSON: {exc.msg}") from None
        if not isinstance(filt, dict):
            raise UserInputError("--where must be a JSON object")
    queries = read_queries(queries_file) if queries_file else [str(text)]
    idx = _open(obj, index_dir, server, collection, create=False)
    results = search(idx, queries, k=k, mode=mode, where=filt)  # type: ignore[arg-type]
    if as_json:
        rows = [[hit.model_dump() for hit in hits] for hits in results]
        click.echo(json.dumps(rows if queries_file else rows[0], ensure_ascii=False, indent=1))
        return
    for query, hits in zip(queries, results, strict=True):
        if queries_file:
            click.echo(f"query: {query}")
        if not hits:
            click.echo("  (no hits)")
        for rank, hit in enumerate(hits, start=1):
            snippet = " ".join(hit.text.split())[:160]
            click.echo(f"{rank:>3}. {hit.score:.4f}  {hit.citation}\n     {snippet}")


@index.command("stats")
@_location_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@_errors_to_exit_codes
def index_stats(
    obj: dict[str, Any], index_dir: Path | None, server: str | None, collection: str, as_json: bool
) -> None:
    """Chunks, sources, embedder and chunking of an index."""
    info = _open(obj, index_dir, server, collection, create=False).info()
    if as_json:
        click.echo(info.model_dump_json(indent=2))
        return
    click.echo(f"index:      {info.location} [{info.collection}]")
    click.echo(f"chunks:     {info.chunks} from {info.sources} sources")
    click.echo(f"embedder:   {info.embedder} (dim {info.dim})")
    click.echo(
        f"chunking:   {info.chunking.chunk_size} tokens, {info.chunking.chunk_overlap} overlap"
    )
