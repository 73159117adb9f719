"""Loading files into documents: text, Markdown, HTML, JSONL (field mapping) and PDF.

Why per file, with problems instead of exceptions: an ingestion run over a folder must not stop
at the first bad file. Each file either yields documents or one `FileProblem` that says what is
wrong and where (a binary file, bytes that are not UTF-8 with the line they sit on, an empty
file, a file over the size limit, a JSONL row that is not an object), and the rest of the folder
ingests. Every document carries its `source` (the file's resolved path, the unit a re-ingestion
replaces or removes) and a title; JSONL rows also carry their own id and metadata fields.

    >>> docs, problems = load_paths(["docs/"])            # doctest: +SKIP
    >>> docs[0].source, docs[0].title                     # doctest: +SKIP
    ('/abs/docs/intro.md', 'Introduction')
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from compoundai.errors import Problem, UserInputError

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
KNOWN_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".jsonl", ".pdf"}
MetadataValue = str | int | float | bool


class LoaderConfig(BaseModel):
    """How files are read. JSONL rows map fields to text, id, title and metadata.

    >>> LoaderConfig(text_field="body", metadata_fields=["lang"]).id_fields
    ['id', 'doc_id']
    """

    model_config = ConfigDict(extra="forbid")

    text_field: str = "text"
    id_fields: list[str] = Field(default_factory=lambda: ["id", "doc_id"])
    title_field: str = "title"
    metadata_fields: list[str] = Field(default_factory=list)
    max_file_mb: float = Field(50.0, gt=0)


@dataclass
class SourceDocument:
    """One document: a whole file, or one JSONL row, or a PDF's pages joined."""

    source: str
    text: str
    title: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    # (start offset, page number) pairs for PDFs, so chunks can cite their page.
    pages: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class LoadedFile:
    """What one file gave: its documents, or the problem that stopped it."""

    source: str
    documents: list[SourceDocument] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively, known suffixes only, hidden entries skipped) into files.

    A file named explicitly is always taken, whatever its suffix; a path that does not exist is
    the user's mistake and raises `UserInputError` listing every such path.

    >>> discover(["README.md"])                          # doctest: +SKIP
    [PosixPath('/work/main/README.md')]
    """
    found: dict[Path, None] = {}
    missing = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and child.suffix.lower() in KNOWN_SUFFIXES and not hidden:
                    found[child.resolve()] = None
        elif path.is_file():
            found[path.resolve()] = None
        else:
            missing.append(Problem("no such file or folder", file=str(raw)))
    if missing:
        raise UserInputError(missing, hint="check the paths given to `index add`")
    return list(found)


def load_paths(
    paths: Iterable[str | Path], config: LoaderConfig | None = None
) -> tuple[list[SourceDocument], list[Problem]]:
    """Every document under `paths`, and every problem met on the way."""
    docs: list[SourceDocument] = []
    problems: list[Problem] = []
    for loaded in iter_files(discover(paths), config or LoaderConfig()):
        docs += loaded.documents
        problems += loaded.problems
    return docs, problems


def iter_files(files: Iterable[Path], config: LoaderConfig) -> Iterator[LoadedFile]:
    """Load files one at a time, so a caller can batch and show progress."""
    for path in files:
        yield load_file(path, config)


def load_file(path: Path, config: LoaderConfig | None = None) -> LoadedFile:
    """Read one file into documents; never raises for a bad file, reports it instead."""
    config = config or LoaderConfig()
    source = str(path)
    try:
        size = path.stat().st_size
        if size > config.max_file_mb * 1e6:
            msg = f"file is {size / 1e6:.1f} MB, over the {config.max_file_mb:g} MB limit"
            return _failed(source, msg + " (raise it with --max-file-mb)")
        raw = path.read_bytes()
    except OSError as exc:
        return _failed(source, f"cannot read: {exc.strerror or exc}")
    suffix = path.suffix.lower()
    if not raw.strip():
        return _failed(source, "empty file: nothing to index")
    if suffix == ".pdf":
        return _load_pdf(path, raw)
    if b"\x00" in raw[:8192]:
        return _failed(source, "binary file (NUL bytes): not text, not ingested")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 1].hex()
        msg = f"not UTF-8: byte 0x{bad} at offset {exc.start}; re-save the file as UTF-8"
        return LoadedFile(source, problems=[Problem(msg, file=source, line=line)])
    if suffix == ".jsonl":
        return _load_jsonl(source, text, config)
    if suffix in HTML_SUFFIXES:
        return _load_html(source, text)
    return LoadedFile(source, [SourceDocument(source, text, _markdown_title(text, path))])


def _failed(source: str, message: str) -> LoadedFile:
    return LoadedFile(source, problems=[Problem(message, file=source)])


def _markdown_title(text: str, path: Path) -> str:
    match = re.search(r"^#\s+(.+?)\s*#*\s*$", text[:4000], flags=re.MULTILINE)
    return match.group(1) if match else path.stem.replace("_", " ")


def _load_html(source: str, text: str) -> LoadedFile:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    if soup.title:
        soup.title.decompose()
    body = re.sub(r"\n\s*\n+", "\n\n", soup.get_text("\n")).strip()
    if not body:
        return _failed(source, "HTML page has no visible text")
    return LoadedFile(source, [SourceDocument(source, body, title or Path(source).stem)])


def _load_jsonl(source: str, text: str, config: LoaderConfig) -> LoadedFile:
    out = LoadedFile(source)
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            out.problems.append(Problem(f"not JSON: {exc.msg}", file=source, line=number))
            continue
        if not isinstance(row, dict):
            out.problems.append(Problem("row is not a JSON object", file=source, line=number))
            continue
        body = row.get(config.text_field)
        if not isinstance(body, str) or not body.strip():
            msg = f"no text in field {config.text_field!r} (set --text-field)"
            out.problems.append(Problem(msg, file=source, line=number))
            continue
        row_id = next((str(row[f]) for f in config.id_fields if row.get(f) is not None), None)
        row_id = row_id or f"line-{number}"
        if row_id in seen:
            msg = f"duplicate id {row_id!r}: the row is skipped"
            out.problems.append(Problem(msg, file=source, line=number))
            continue
        seen.add(row_id)
        meta: dict[str, MetadataValue] = {"doc_id": row_id, "line": number}
        for name in config.metadata_fields:
            value = row.get(name)
            if isinstance(value, str | int | float | bool):
                meta[name] = value
        title = row.get(config.title_field)
        out.documents.append(
            SourceDocument(source, body, str(title) if title else row_id, metadata=meta)
        )
    if not out.documents and not out.problems:
        out.problems.append(Problem("JSONL file has no rows", file=source))
    return out


def _load_pdf(path: Path, raw: bytes) -> LoadedFile:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    source = str(path)
    try:
        reader = PdfReader(io.BytesIO(raw))
        texts = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        return _failed(source, f"not a readable PDF: {exc}")
    pages, parts, offset = [], [], 0
    for number, page_text in enumerate(texts, start=1):
        pages.append((offset, number))
        parts.append(page_text)
        offset += len(page_text) + 2
    body = "\n\n".join(parts)
    if not body.strip():
        return _failed(source, "PDF has no extractable text (scanned images need OCR first)")
    meta = reader.metadata
    title = str(meta.title) if meta is not None and meta.title else path.stem
    return LoadedFile(source, [SourceDocument(source, body, title, pages=pages)])
