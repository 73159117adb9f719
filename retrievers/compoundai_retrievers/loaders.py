"""Loading files into documents: text, Markdown, HTML, JSONL (field mapping) and PDF.

Why per file, with problems instead of exceptions: an ingestion run over a folder must not stop
at the first bad file. Each file either yields documents or one `FileProblem` that says what is
wrong and where (a binary file, bytes that are not UTF-8 with the line they sit on, an empty
file, a file over the size limit, a JSONL row that is not an object), and the rest of the folder
ingests. Every document carries its `source` (the file's absolute path, its folder resolved
but a symlinked file under the link's own name: the unit a re-ingestion replaces or removes)
and a title; JSONL rows also carry their own id and metadata fields. A folder walk says what it
skipped and why (hidden, unknown suffix, symlinked folder, symlink loop, not a regular file).

    >>> docs, problems = load_paths(["docs/"])            # doctest: +SKIP
    >>> docs[0].source, docs[0].title                     # doctest: +SKIP
    ('/abs/docs/intro.md', 'Introduction')
"""

from __future__ import annotations

import errno
import json
import os
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
# Text has tabs, newlines, form feeds and the odd ANSI escape; a file where more than this share
# of the first 8 KB is other control bytes is binary, even without a NUL.
MAX_CONTROL_SHARE = 0.1
_CONTROL_BYTES = [b for b in range(32) if b not in (9, 10, 11, 12, 13, 27)] + [127]


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


@dataclass(frozen=True)
class Skipped:
    """An entry a folder walk did not take, and why (`index add` says so in its summary)."""

    path: str
    reason: str


@dataclass
class Discovery:
    """The files a walk found, and every entry it skipped."""

    files: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def source_path(path: str | Path) -> Path:
    """The path a file is indexed under: absolute, its folder resolved, its own name kept.

    A symlinked file is indexed under the link, not its target, so the link's folder scopes it
    (`--cleanup scoped`) and deleting the link removes its chunks.

    >>> source_path("/tmp/../tmp/notes.md")
    PosixPath('/tmp/notes.md')
    """
    absolute = Path(os.path.abspath(Path(path).expanduser()))
    return absolute.parent.resolve() / absolute.name if absolute.name else absolute


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """The files under `paths` (see `discover_all`, which also says what it skipped).

    >>> discover(["README.md"])                          # doctest: +SKIP
    [PosixPath('/work/main/README.md')]
    """
    return discover_all(paths).files


def discover_all(paths: Iterable[str | Path]) -> Discovery:
    """Expand folders (recursively, known suffixes only) into files, and list what was skipped:
    hidden entries, unknown suffixes, symlinked folders (not followed, so no loop), symlink
    loops and broken links, and anything that is not a regular file.

    A file named explicitly is always taken, whatever its suffix; a path that does not exist is
    the user's mistake and raises `UserInputError` listing every such path.
    """
    found: dict[Path, None] = {}
    out = Discovery()
    missing = []
    for raw in paths:
        path = source_path(raw)
        if path.is_dir():
            _walk(path, found, out.skipped)
        elif path.is_file():
            found[path] = None
        elif path.is_symlink():
            missing.append(Problem(_link_problem(path), file=str(raw)))
        else:
            missing.append(Problem("no such file or folder", file=str(raw)))
    if missing:
        raise UserInputError(missing, hint="check the paths given to `index add`")
    out.files = list(found)
    return out


def _walk(folder: Path, found: dict[Path, None], skipped: list[Skipped]) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        skipped.append(Skipped(str(folder), f"cannot list: {exc.strerror or exc}"))
        return
    for entry in entries:
        path = folder / entry.name
        if entry.name.startswith("."):
            skipped.append(Skipped(str(path), "hidden"))
        elif entry.is_symlink() and not path.exists():
            skipped.append(Skipped(str(path), _link_problem(path)))
        elif entry.is_dir(follow_symlinks=False):
            _walk(path, found, skipped)
        elif entry.is_dir():
            skipped.append(Skipped(str(path), "symlinked folder, not followed"))
        elif not entry.is_file():
            skipped.append(Skipped(str(path), "not a regular file"))
        elif path.suffix.lower() not in KNOWN_SUFFIXES:
            skipped.append(Skipped(str(path), f"unknown suffix {path.suffix or '(none)'!r}"))
        else:
            found[path] = None


def _link_problem(path: Path) -> str:
    try:
        path.resolve(strict=True)
    except RuntimeError:
        return "symlink loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
    return "broken symlink (its target does not exist)"


def load_paths(
    paths: Iterable[str | Path], config: LoaderConfig | None = None
) -> tuple[list[SourceDocument], list[Problem]]:
    """Every document under `paths`, and every problem met on the way."""
    docs: list[SourceDocument] = []
    problems: list[Problem] = []
    for loaded in iter_files(discover_all(paths).files, config or LoaderConfig()):
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
    if _control_share(raw[:8192]) > MAX_CONTROL_SHARE:
        return _failed(source, "binary file (mostly control bytes): not text, not ingested")
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


def _control_share(head: bytes) -> float:
    """The share of C0 control bytes (other than tab, newlines, form feed, escape) and DEL."""
    controls = sum(head.count(bytes([b])) for b in _CONTROL_BYTES)
    return controls / len(head) if head else 0.0


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
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028
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
