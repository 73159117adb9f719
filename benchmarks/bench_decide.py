"""Deciding by measuring against the full bake-off: how much cheaper, and the same choice?

    python benchmarks/bench_decide.py                          # banking77
    python benchmarks/bench_decide.py --task examples/snips_json/task.yaml

In one run, on the same task and machine: (1) the measured decision on dev (`compoundai
decide`, default budget), then (2) the full bake-off (`compoundai run --full`: every lane
trained in full and compared on the test split). Each gets an empty cache of its own (answers,
indexes, adapters; the converted models are shared), so neither reuses the other's work. The
last line is JSON: `decide_s`, `full_s`, `ratio` (full_s / decide_s, higher is better: the
decision costs 1/ratio of the bake-off), `same_choice` (the decision's lane is the bake-off's
test winner or tied with it within the margin), and what each chose.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from compoundai.context import RunContext, default_cache_dir
from compoundai.run import decide, run_task
from compoundai.task import load_task

ROOT = Path(__file__).resolve().parents[1]


def fresh_cache(root: Path) -> Path:
    """An empty cache that shares only the converted models with the user's cache."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "models").symlink_to(default_cache_dir() / "models", target_is_directory=True)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", type=Path, default=ROOT / "examples/banking77/task.yaml")
    parser.add_argument("--out", type=Path, default=None, help="keep the full run's report here")
    parser.add_argument("--budget-minutes", type=float, default=None)
    args = parser.parse_args()
    task = load_task(args.task)
    with tempfile.TemporaryDirectory(prefix="bench-decide-") as tmp:
        base = Path(tmp)
        ctx = RunContext(cache_dir=fresh_cache(base / "decide"), progress=False)
        started = time.perf_counter()
        decision = decide(task, ctx, budget_minutes=args.budget_minutes)
        decide_s = time.perf_counter() - started
        print(f"decided: {decision.plan} ({decision.lane}) in {decide_s:.0f} s", file=sys.stderr)

        full_ctx = RunContext(cache_dir=fresh_cache(base / "full"), progress=False)
        out = args.out or base / "full-report"
        started = time.perf_counter()
        report = run_task(task, out, ctx=full_ctx, mode="full", decision=decision)
        full_s = time.perf_counter() - started
    tied = {v.lane for v in (report.verdict.versus_winner if report.verdict else []) if v.tied}
    same = decision.lane == report.winner or decision.lane in tied
    print(
        json.dumps(
            {
                "task": task.name,
                "decide_s": round(decide_s, 1),
                "full_s": round(full_s, 1),
                "ratio": round(full_s / decide_s, 2),
                "same_choice": same,
                "decided": decision.lane,
                "full_winner": report.winner,
                "tied_with_winner": sorted(tied),
                "machine": f"{platform.machine()}, {platform.python_version()}",
            }
        )
    )


if __name__ == "__main__":
    main()
