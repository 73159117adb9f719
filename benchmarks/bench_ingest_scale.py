"""Ingestion at scale, interrupted: 100k chunks with repeated boilerplate, `kill -9` midway.

The corpus (synthetic, written to a temp folder): one big file of `--big` chunks (more than
SQLite's 32,766 variables, which a single unpaged Chroma lookup of one file's records runs
into) and `--files` files of `--per-file` chunks each; a third of all chunks are the same few
boilerplate paragraphs (a footer, a disclaimer), so the vector-reuse lookup by content hash
matches thousands of records per text. The embedder is the hash fake (`hash:64`) and chunks
are one short paragraph each (`--chunk-size 12` tokens), so the time is ingestion's own:
chunking, lookups, writes.

Three runs of the real CLI (`compoundai index add`, each its own process, as a user runs it):

1. uninterrupted, into a fresh index: the reference (its seconds are the throughput figure);
2. into a second fresh index, killed with SIGKILL after `--kill-at` of the reference's time
   (retried earlier or later if the kill landed before the first write or after the last);
3. the same command again on the killed index, to completion.

Then both indexes' id sets are read (in a separate process) and compared: the re-run must end
with exactly the reference's ids, and the re-run's counts say what it found.

    python benchmarks/bench_ingest_scale.py [--big 40000] [--files 60] [--per-file 1000]

Last line: one JSON object; `identical` is the verdict, `chunks` the index size.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BOILERPLATE = [
    "Terms and conditions apply to every order.",
    "This message is confidential and intended only for you.",
    "Copyright reserved by the publisher.",
]


def write_corpus(root: Path, big: int, files: int, per_file: int) -> int:
    """The synthetic corpus; returns how many paragraphs (one chunk each) it holds."""
    root.mkdir(parents=True, exist_ok=True)

    def paragraphs(prefix: str, n: int) -> str:
        out = []
        for i in range(n):
            if i % 3 == 2:
                out.append(BOILERPLATE[i % len(BOILERPLATE)])
            else:
                out.append(f"{prefix} record {i} holds value {i * 7} in zone {i % 97}.")
        return "\n\n".join(out) + "\n"

    (root / "big.md").write_text(paragraphs("Ledger", big), encoding="utf-8")
    for f in range(files):
        (root / f"file_{f:03d}.md").write_text(paragraphs(f"Note{f}", per_file), encoding="utf-8")
    return big + files * per_file


def add_command(corpus: Path, index: Path, cache: Path) -> list[str]:
    return [
        sys.executable, "-m", "compoundai", "--cache-dir", str(cache), "--no-progress",
        "index", "add", str(corpus), "--index", str(index),
        "--embedder", "hash:64", "--chunk-size", "12", "--chunk-overlap", "0",
    ]  # fmt: skip


def run_add(corpus: Path, index: Path, cache: Path) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    done = subprocess.run(add_command(corpus, index, cache), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"index add failed ({done.returncode}): {done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def run_killed(corpus: Path, index: Path, cache: Path, after_s: float) -> None:
    proc = subprocess.Popen(
        add_command(corpus, index, cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        proc.wait(timeout=after_s)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


IDS = """
import json, sys
from compoundai.context import RunContext
from compoundai_retrievers.index import ChromaIndex
index = ChromaIndex.open(sys.argv[1], create=False, ctx=RunContext(progress=False))
ids = sorted(rid for rid, _ in index.iter_records([]))
json.dump(ids, open(sys.argv[2], "w"))
"""


def index_ids(index: Path, scratch: Path) -> list[str]:
    """The index's ids, read in a process of its own (embedded Chroma is one process's)."""
    if not (index / "chroma.sqlite3").exists():
        return []
    out = scratch / f"ids-{index.name}.json"
    done = subprocess.run([sys.executable, "-c", IDS, str(index), str(out)], capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode()[-2000:])
    return list(json.loads(out.read_text()))


def measure(
    big: int = 40_000,
    files: int = 60,
    per_file: int = 1000,
    kill_at: float = 0.5,
    workdir: Path | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Run the three ingestions and compare; see the module docstring."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        paragraphs = write_corpus(root / "corpus", big, files, per_file)
        cache = root / "cache"
        ref_s, ref_counts = run_add(root / "corpus", root / "reference", cache)
        reference = index_ids(root / "reference", root)
        log(f"reference: {len(reference)} chunks in {ref_s:.1f} s {ref_counts}")
        fraction, killed_ids, attempts = kill_at, [], 0
        while True:
            attempts += 1
            target = root / f"killed-{attempts}"
            run_killed(root / "corpus", target, cache, ref_s * fraction)
            killed_ids = index_ids(target, root)
            log(f"killed after {ref_s * fraction:.1f} s: {len(killed_ids)} chunks written")
            if 0 < len(killed_ids) < len(reference) or attempts == 4:
                break
            fraction = fraction * 1.5 if not killed_ids else fraction / 2
        rerun_s, rerun_counts = run_add(root / "corpus", target, cache)
        final = index_ids(target, root)
        log(f"re-run: {len(final)} chunks in {rerun_s:.1f} s {rerun_counts}")
        again_s, again_counts = run_add(root / "corpus", target, cache)
        return {
            "paragraphs": paragraphs,
            "chunks": len(reference),
            "reference_seconds": round(ref_s, 1),
            "chunks_per_s": round(len(reference) / ref_s, 1),
            "killed_after_s": round(ref_s * fraction, 1),
            "written_before_kill": len(killed_ids),
            "rerun_seconds": round(rerun_s, 1),
            "rerun_counts": rerun_counts,
            "unchanged_run_seconds": round(again_s, 1),
            "unchanged_run_counts": again_counts,
            "identical": final == reference,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big", type=int, default=40_000, help="Chunks in the big file.")
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--per-file", type=int, default=1000)
    parser.add_argument("--kill-at", type=float, default=0.5, help="Share of the reference time.")
    args = parser.parse_args()
    result = measure(args.big, args.files, args.per_file, args.kill_at)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
