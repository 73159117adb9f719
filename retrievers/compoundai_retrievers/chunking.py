"""Chunking by tokens with overlap, and the content-hash ids that make ingestion idempotent.

Chunks are cut by `langchain-text-splitters`' recursive splitter (paragraphs, then lines, then
sentences, then words) with the length measured in the embedder's own tokens, so a default
chunk fits the model's window instead of being silently truncated. Each chunk keeps where it
came from (source, title, character offsets, PDF page) and a hash of its text.

The id of a chunk is a hash of (source, document id, text hash, which repeat of that text it is
in the document), not of its position: an edit near the top of a file changes only the chunks
whose text changed, so only those are embedded again; the others keep their ids, and their
moved offsets are updated in place by the index without re-embedding.

    >>> cfg = ChunkingConfig(chunk_size=8, chunk_overlap=2)
    >>> doc = SourceDocument("a.md", "one two three four five six seven eight nine ten", "a")
    >>> [c.text for c in chunk_document(doc, cfg, word_count)]
    ['one two three four five six seven eight', 'seven eight nine ten']
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compoundai_retrievers.loaders import MetadataValue, SourceDocument


class ChunkingConfig(BaseModel):
    """Chunk size and overlap in tokens (the embedder's tokenizer where it has one).

    The default (200 tokens, 32 overlap) leaves room under MiniLM's 256-token window.

    >>> ChunkingConfig().chunk_size
    200
    """

    model_config = ConfigDict(extra="forbid")

    chunk_size: int = Field(200, gt=0)
    chunk_overlap: int = Field(32, ge=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


@dataclass
class Chunk:
    """One piece of a document, ready to embed and store."""

    id: str
    text: str
    source: str
    title: str
    start: int
    end: int
    ordinal: int
    content_hash: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)

    def record_metadata(self) -> dict[str, MetadataValue]:
        """The flat metadata stored beside the vector (Chroma takes scalars only)."""
        return {
            **self.metadata,
            "source": self.source,
            "title": self.title,
            "start": self.start,
            "end": self.end,
            "chunk": self.ordinal,
            "content_hash": self.content_hash,
        }


def word_count(text: str) -> int:
    """A tokenizer-free token count (words and punctuation), for fakes and tests."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def content_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def chunk_id(source: str, doc_id: str, text_hash: str, repeat: int) -> str:
    key = f"{source}\x00{doc_id}\x00{text_hash}\x00{repeat}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


def make_splitter(config: ChunkingConfig, length: Callable[[str], int]) -> Any:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=config.chunk_size,
        chunk_overlap=config.chunk_overlap,
        length_function=length,
        separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
        keep_separator="end",
        strip_whitespace=True,
    )


def chunk_document(
    doc: SourceDocument,
    config: ChunkingConfig,
    length: Callable[[str], int] = word_count,
    *,
    splitter: Any = None,
    repeats: dict[tuple[str, str], int] | None = None,
) -> list[Chunk]:
    """Split one document into chunks with offsets, page numbers, hashes and stable ids.

    Pass one `repeats` dict for all documents of a source, so that two documents of the same
    source (LangChain pages without ids) repeating a text still get distinct ids.
    """
    splitter = splitter or make_splitter(config, length)
    doc_id = str(doc.metadata.get("doc_id", ""))
    page_starts = [start for start, _ in doc.pages]
    chunks: list[Chunk] = []
    repeats = {} if repeats is None else repeats
    cursor = 0
    for ordinal, piece in enumerate(splitter.split_text(doc.text)):
        start = doc.text.find(piece, cursor)
        if start < 0:  # the splitter normalised whitespace; fall back to a global search
            start = max(doc.text.find(piece), 0)
        cursor = start + 1
        text_hash = content_hash(piece)
        repeat = repeats.get((doc_id, text_hash), 0)
        repeats[doc_id, text_hash] = repeat + 1
        meta = dict(doc.metadata)
        if doc.pages:
            meta["page"] = doc.pages[bisect.bisect_right(page_starts, start) - 1][1]
        chunks.append(
            Chunk(
                id=chunk_id(doc.source, doc_id, text_hash, repeat),
                text=piece,
                source=doc.source,
                title=doc.title,
                start=start,
                end=start + len(piece),
                ordinal=ordinal,
                content_hash=text_hash,
                metadata=meta,
            )
        )
    return chunks
