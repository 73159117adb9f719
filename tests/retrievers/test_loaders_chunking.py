from __future__ import annotations

from pathlib import Path

import pytest

from compoundai.errors import UserInputError
from compoundai_retrievers.chunking import ChunkingConfig, chunk_document, word_count
from compoundai_retrievers.loaders import LoaderConfig, SourceDocument, load_file, load_paths
from tests.retrievers.conftest import write_corpus


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        page_no = len(objects) + 1
        kids.append(f"{page_no} 0 R")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {page_no + 1} 0 R "
            "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> "
            ">> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def test_every_format_loads_with_title_and_source(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    (root / "guide.pdf").write_bytes(make_pdf(["Oslo is the capital of Norway.", "Page two."]))
    docs, problems = load_paths([root])
    assert problems == []
    by_title = {d.title: d for d in docs}
    assert set(by_title) == {"Paris", "berlin", "Rome", "Madrid", "Lisbon", "guide"}
    assert "Tiber" in by_title["Rome"].text and "p{}" not in by_title["Rome"].text
    assert by_title["Lisbon"].metadata["doc_id"] == "lisbon"
    assert by_title["Paris"].source == str((root / "paris.md").resolve())
    pdf = by_title["guide"]
    assert "Oslo" in pdf.text and [p for _, p in pdf.pages] == [1, 2]


def test_jsonl_field_mapping_and_row_problems(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        '{"key": "a", "body": "alpha text", "lang": "en", "nested": {"x": 1}}\n'
        "[1, 2]\n"
        '{"key": "b", "body": ""}\n'
        '{"key": "a", "body": "dup"}\n'
        "{oops\n"
    )
    config = LoaderConfig(text_field="body", id_fields=["key"], metadata_fields=["lang", "nested"])
    loaded = load_file(path, config)
    assert [d.metadata for d in loaded.documents] == [{"doc_id": "a", "line": 1, "lang": "en"}]
    assert [(p.line, p.message.split(":")[0].split(" ")[0]) for p in loaded.problems] == [
        (2, "row"),
        (3, "no"),
        (4, "duplicate"),
        (5, "not"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("blob.bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        ("latin1.txt", "caf\u00e9 ok\nna\u00efve".encode("latin-1"), "not UTF-8: byte 0xe9"),
        ("empty.md", b"  \n\n", "empty file"),
        ("huge.txt", b"word " * 300_000, "over the 1 MB limit"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
    ],
)
def test_bad_files_are_reported_not_raised(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    loaded = load_file(path, LoaderConfig(max_file_mb=1))
    assert loaded.documents == []
    assert expected in loaded.problems[0].message
    assert loaded.problems[0].file == str(path)
    if name == "latin1.txt":
        assert loaded.problems[0].line == 1


def test_missing_paths_are_all_listed(tmp_path: Path) -> None:
    with pytest.raises(UserInputError) as err:
        load_paths([tmp_path / "nope", tmp_path / "also-nope"])
    assert len(err.value.problems) == 2


def test_folder_walk_skips_hidden_and_unknown_suffixes(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs", {"a.md": "alpha", "b.png": "x", ".hidden/c.md": "y"})
    docs, _ = load_paths([root])
    assert [Path(d.source).name for d in docs] == ["a.md"]


def test_chunks_respect_size_overlap_and_offsets() -> None:
    text = "\n\n".join(f"Paragraph {i} has some words about topic {i}." for i in range(40))
    doc = SourceDocument("s.md", text, "S")
    config = ChunkingConfig(chunk_size=30, chunk_overlap=12)
    chunks = chunk_document(doc, config, word_count)
    assert len(chunks) > 5
    for chunk in chunks:
        assert word_count(chunk.text) <= 30
        assert text[chunk.start : chunk.end] == chunk.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert chunks[1].start < chunks[0].end  # they overlap
    assert len({c.id for c in chunks}) == len(chunks)


def test_ids_depend_on_content_not_position() -> None:
    config = ChunkingConfig(chunk_size=6, chunk_overlap=0)
    base = "Alpha beta gamma delta.\n\nEpsilon zeta eta theta.\n\nIota kappa lambda mu."
    edited = "A new first paragraph here.\n\n" + base
    before = chunk_document(SourceDocument("s.md", base, "S"), config)
    after = chunk_document(SourceDocument("s.md", edited, "S"), config)
    assert {c.id for c in before} <= {c.id for c in after}
    moved = {c.id: c.start for c in after}
    assert all(moved[c.id] > c.start for c in before)
    other_source = chunk_document(SourceDocument("t.md", base, "S"), config)
    assert not {c.id for c in before} & {c.id for c in other_source}


def test_repeated_text_gets_distinct_ids() -> None:
    doc = SourceDocument("s.md", "Same words.\n\nSame words.\n\nSame words.", "S")
    chunks = chunk_document(doc, ChunkingConfig(chunk_size=3, chunk_overlap=0))
    assert len(chunks) == 3 and len({c.id for c in chunks}) == 3
    assert [c.start for c in chunks] == [0, 13, 26]


def test_chunking_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        ChunkingConfig(chunk_size=10, chunk_overlap=10)
    with pytest.raises(ValueError):
        ChunkingConfig(chunk_size=10, extra_field=1)  # type: ignore[call-arg]
