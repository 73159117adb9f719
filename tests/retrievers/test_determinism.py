"""Two processes asking the same questions of the same persisted index get the same hits.

Dense search over a small collection is exact (every vector, ties broken by id), so the answer
does not depend on how Chroma's approximate HNSW graph came out after a reopen. The corpus is
built to be hard: many chunks with identical or near-identical vectors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

from click.testing import CliRunner

from compoundai.cli import cli


def _cli(tmp_path: Path, *args: str) -> list:
    cmd = [sys.executable, "-m", "compoundai", "--no-progress", "--cache-dir"]
    env = {**os.environ, "COMPOUNDAI_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [*cmd, str(tmp_path / "cache"), *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_index_query_in_two_processes_returns_identical_results(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    words = ["card", "arrived", "exchange", "rate", "top", "up", "refund", "pin"]
    for i in range(240):
        # many documents share their words exactly, so many vectors tie
        text = " ".join(words[(i + j) % len(words)] for j in range(3))
        (docs / f"doc{i:03d}.txt").write_text(f"{text}.\n", encoding="utf-8")
    index = str(tmp_path / "index")
    base = ["--no-progress", "--cache-dir", str(tmp_path / "cache")]
    added = CliRunner().invoke(
        cli, [*base, "index", "add", str(docs), "--index", index, "--embedder", "hash:16"]
    )
    assert added.exit_code == 0, added.output
    queries = tmp_path / "queries.txt"
    queries.write_text("card arrived\nexchange rate refund\npin top\nrefund\n", encoding="utf-8")
    args = ["index", "query", "--queries", str(queries), "--index", index, "-k", "8", "--json"]
    for mode in ("dense", "hybrid"):
        first = _cli(tmp_path, *args, "--mode", mode)
        second = _cli(tmp_path, *args, "--mode", mode)
        assert first == second
        assert len(first) == 4 and all(len(hits) == 8 for hits in first)
        if mode == "dense":  # ties rank by id
            for hits in first:
                for a, b in pairwise(hits):
                    assert a["score"] > b["score"] or (
                        a["score"] == b["score"] and a["id"] < b["id"]
                    )
