"""One training rung of the bake-off, alone, to profile where its time goes.

`make run`'s finetune/sft rungs spent time that was neither training nor scoring; this runs the
first rung exactly as `BakeOff` does (banking77 by default, the task's settings, its share of
the rows, the decision's dev cases) so a profiler can be put on it:

    py-spy record --rate 10 --format raw -o rung.raw -- python benchmarks/profile_rung.py

The adapter cache is a fresh temp folder (the model cache is the user's), so the rung trains.
Its breakdown on a 2-core AMD EPYC is in `benchmarks/README.md` ("Where a training rung's time
goes"). Last line: a JSON object with the rung's seconds, training seconds and dev score.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from compoundai.bakeoff.parts import first_share
from compoundai.bakeoff.search import BakeOff
from compoundai.context import RunContext, default_cache_dir
from compoundai.lanes import FinetuneLane
from compoundai.lanes.rungs import PlannedLane, TrainingPlan
from compoundai.task import load_task

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default=str(ROOT / "examples" / "banking77" / "task.yaml"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        (cache / "models").symlink_to(default_cache_dir() / "models")  # converted once
        ctx = RunContext(cache_dir=cache, progress=True)
        task = load_task(args.task)
        bake = BakeOff(task, ctx, lanes=["finetune"], budget_minutes=60)
        rows = len([e for e in task.split("train") if e.id not in bake.data.exclude])
        plan = TrainingPlan(share=first_share(rows), exclude=bake.data.exclude)
        started = time.perf_counter()
        lane = PlannedLane(FinetuneLane(("sft",)), plan)
        rung = bake.measure(lane, bake.data.cases, "rung", plan)
        if isinstance(rung, str):
            raise SystemExit(f"the rung failed: {rung}")
        print(
            json.dumps(
                {
                    "lane": rung.lane,
                    "share": rung.share,
                    "seconds": round(time.perf_counter() - started, 1),
                    "train_seconds": rung.train_seconds,
                    "per_case_ms": round(rung.per_case_ms, 1),
                    "cases": rung.units,
                    "value": rung.value,
                }
            )
        )


if __name__ == "__main__":
    main()
