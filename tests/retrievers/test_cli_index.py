"""`compoundai index add / query / stats`, through click, with the hash embedder."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from compoundai.cli import cli
from tests.retrievers.conftest import write_corpus


def run(tmp_path: Path, *args: str) -> Result:
    base = ["--no-progress", "--cache-dir", str(tmp_path / "cache")]
    return CliRunner().invoke(cli, [*base, *args], catch_exceptions=False)


def test_add_prints_counts_as_last_line_and_is_idempotent(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    (docs / "bad.txt").write_bytes(b"\xff\xfe\xfd")
    index = str(tmp_path / "index")
    first = run(tmp_path, "index", "add", str(docs), "--index", index, "--embedder", "hash:64")
    assert first.exit_code == 0, first.output
    counts = json.loads(first.stdout.strip().splitlines()[-1])
    assert counts == {"added": 5, "unchanged": 0, "replaced": 0, "removed": 0, "failed": 1}
    assert "bad.txt:1: not UTF-8" in first.stderr
    again = run(tmp_path, "index", "add", str(docs), "--index", index)
    assert json.loads(again.stdout.strip().splitlines()[-1])["unchanged"] == 5
    strict = run(tmp_path, "index", "add", str(docs), "--index", index, "--strict")
    assert strict.exit_code == 2 and "bad.txt" in strict.stderr


def test_query_json_single_and_many(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    index = str(tmp_path / "index")
    run(tmp_path, "index", "add", str(docs), "--index", index, "--embedder", "hash:64")
    one = run(
        tmp_path, "index", "query", "capital of Portugal", "--index", index, "-k", "2", "--json"
    )
    hits = json.loads(one.stdout)
    assert len(hits) == 2
    assert set(hits[0]) == {"id", "score", "text", "source", "metadata"}
    assert hits[0]["metadata"]["doc_id"] == "lisbon"
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query": "Seine"}\n{"query": "Tiber", "id": 2}\n')
    many = run(tmp_path, "index", "query", "--queries", str(queries), "--index", index, "--json")
    nested = json.loads(many.stdout)
    assert [q[0]["metadata"]["title"] for q in nested] == ["Paris", "Rome"]
    plain = tmp_path / "q.txt"
    plain.write_text("Seine\n\nSpree\n")
    text = run(
        tmp_path, "index", "query", "--queries", str(plain), "--index", index, "--mode", "bm25"
    )
    assert text.exit_code == 0 and "query: Spree" in text.stdout and "berlin.txt" in text.stdout
    filtered = run(
        tmp_path,
        "index",
        "query",
        "capital",
        "--index",
        index,
        "--where",
        '{"title": "Madrid"}',
        "--json",
    )
    assert [h["metadata"]["doc_id"] for h in json.loads(filtered.stdout)] == ["madrid"]


def test_stats(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    index = str(tmp_path / "index")
    run(tmp_path, "index", "add", str(docs), "--index", index, "--embedder", "hash:32")
    out = run(tmp_path, "index", "stats", "--index", index, "--json")
    info = json.loads(out.stdout)
    assert (info["chunks"], info["sources"], info["embedder"], info["dim"]) == (
        5,
        4,
        "hash-embedder-32",
        32,
    )
    assert "5 from 4 sources" in run(tmp_path, "index", "stats", "--index", index).stdout


def test_user_mistakes_exit_2_with_every_problem(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    index = str(tmp_path / "index")
    missing = run(tmp_path, "index", "add", str(tmp_path / "nope"), "--index", index)
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    no_index = run(tmp_path, "index", "query", "x", "--index", str(tmp_path / "absent"))
    assert no_index.exit_code == 2 and "no index at" in no_index.stderr
    assert not (tmp_path / "absent").exists()
    neither = run(tmp_path, "index", "stats")
    assert neither.exit_code == 2 and "--index DIR" in neither.stderr
    run(tmp_path, "index", "add", str(docs), "--index", index, "--embedder", "hash:64")
    mismatch = run(tmp_path, "index", "add", str(docs), "--index", index, "--embedder", "hash:32")
    assert mismatch.exit_code == 2 and "refusing" in mismatch.stderr
    bad_rows = tmp_path / "q.jsonl"
    bad_rows.write_text('{"query": "ok"}\n{"q": 1}\nnot json\n')
    rows = run(tmp_path, "index", "query", "--queries", str(bad_rows), "--index", index)
    assert rows.exit_code == 2 and "q.jsonl:2" in rows.stderr and "q.jsonl:3" in rows.stderr
    where = run(tmp_path, "index", "query", "x", "--index", index, "--where", "{nope")
    assert where.exit_code == 2
    chunks = run(tmp_path, "index", "add", str(docs), "--index", index, "--chunk-size", "0")
    assert chunks.exit_code == 2 and "chunk_size" in chunks.stderr


def test_against_a_chroma_server(tmp_path: Path, chroma_server: str) -> None:
    docs = write_corpus(tmp_path / "docs")
    loc = ["--server", chroma_server, "--collection", "cli-test"]
    added = run(tmp_path, "index", "add", str(docs), *loc, "--embedder", "hash:64")
    assert json.loads(added.stdout.splitlines()[-1])["added"] == 5
    again = run(tmp_path, "index", "add", str(docs), *loc)
    assert json.loads(again.stdout.splitlines()[-1])["added"] == 0
    hits = json.loads(run(tmp_path, "index", "query", "Tiber", *loc, "--json").stdout)
    assert hits[0]["metadata"]["title"] == "Rome"
    down = run(tmp_path, "index", "stats", "--server", "http://127.0.0.1:9")
    assert down.exit_code == 1 and "no Chroma server answers" in down.stderr
