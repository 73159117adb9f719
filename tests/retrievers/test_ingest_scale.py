"""100k chunks with repeated boilerplate, `kill -9` midway, re-run: the exact ids of a clean run.

Runs `benchmarks/bench_ingest_scale.py` at its full size (the real CLI, one process per run,
the hash embedder): a few minutes on a 2-core CPU, hence `slow`. Its recorded result is in
`benchmarks/README.md`.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _bench():
    path = ROOT / "benchmarks" / "bench_ingest_scale.py"
    spec = importlib.util.spec_from_file_location("bench_ingest_scale", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_100k_chunks_killed_midway_then_rerun_end_with_the_clean_runs_ids(tmp_path):
    try:
        result = _bench().measure(workdir=tmp_path, log=lambda _: None)
    except RuntimeError as exc:
        if "hnsw segment reader" not in str(exc):
            raise
        # Seen on 2026-12-02: a kill that lands while Chroma persists its HNSW segment leaves
        # a truncated pickle, and the index cannot be opened again. A known, open bug (the
        # records are in chroma.sqlite3; rebuilding the segment is not implemented yet).
        pytest.xfail(f"kill -9 during Chroma's HNSW persist: index unreadable ({exc!s:.200})")
    assert result["chunks"] >= 100_000
    assert 0 < result["written_before_kill"] < result["chunks"]
    assert result["identical"], result
    counts = result["rerun_counts"]
    assert counts["unchanged"] == result["written_before_kill"]
    assert counts["added"] == result["chunks"] - result["written_before_kill"]
    assert counts["replaced"] == counts["removed"] == counts["failed"] == 0
    assert result["unchanged_run_counts"]["unchanged"] == result["chunks"]
