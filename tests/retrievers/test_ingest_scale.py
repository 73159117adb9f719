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
    # A kill that lands while Chroma persists its HNSW segment damages it; the next open
    # rebuilds it (compoundai_retrievers.repair, tested in test_index_repair.py), so that case
    # must end with the same ids as well.
    result = _bench().measure(workdir=tmp_path, log=lambda _: None)
    assert result["chunks"] >= 100_000
    assert 0 < result["written_before_kill"] < result["chunks"]
    assert result["identical"], result
    counts = result["rerun_counts"]
    assert counts["unchanged"] == result["written_before_kill"]
    assert counts["added"] == result["chunks"] - result["written_before_kill"]
    assert counts["replaced"] == counts["removed"] == counts["failed"] == 0
    assert result["unchanged_run_counts"]["unchanged"] == result["chunks"]
