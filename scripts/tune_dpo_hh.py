"""Learning-rate sweep for the hh example's `finetune/sft+dpo` lane, scored off the test split.

The scoring set is 200 pairs of `../shared/data/hh_rlhf_helpful/train.jsonl` that are in
none of the example's splits (filtered by `make_hh_preferences_example.py`'s own `pairs`). Each rate
trains (or reuses from the cache) the lane's DPO adapter on top of its cached SFT adapter and
prints one JSON line: the rate (0 = the SFT adapter alone), preference accuracy, seconds.

    COMPOUNDAI_CACHE=/tmp/cai_cache python scripts/tune_dpo_hh.py 0 5e-5 5e-4 2e-3
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from make_hh_preferences_example import pairs, read

from compoundai.context import RunContext
from compoundai.data import PreferencePair
from compoundai.lanes.finetune import FinetuneLane
from compoundai.task import load_task
from compoundai_evaluators.probes import preference_accuracy

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hh_preferences"
SHARED = ROOT.parent / "shared" / "data" / "hh_rlhf_helpful" / "train.jsonl"
MAX_CHARS = 2000  # the example's own filter (make_hh_preferences_example.py --max-chars)


def held_out_pairs(n: int = 200, seed: int = 123) -> list[PreferencePair]:
    used = {
        r["id"]
        for split in ("train", "dev", "test")
        for r in read(EXAMPLE / "data" / f"{split}.jsonl")
    }
    keep = [
        PreferencePair(r["id"], r["prompt"], r["chosen"], r["rejected"])
        for r in pairs(read(SHARED), MAX_CHARS)
        if r["id"] not in used
    ]
    random.Random(seed).shuffle(keep)
    return keep[:n]


def main(rates: list[float]) -> None:
    pairs = held_out_pairs()
    ctx = RunContext()
    for rate in rates:
        task = load_task(EXAMPLE / "task.yaml")
        settings = task.spec.finetune
        dpo = settings.dpo.model_copy(update={"learning_rate": rate or settings.dpo.learning_rate})
        task.spec.finetune = settings.model_copy(update={"dpo": dpo})
        started = time.time()
        system = FinetuneLane(("sft", "dpo") if rate else ("sft",)).build(task, ctx)
        accuracy = preference_accuracy(system, pairs)
        assert accuracy is not None
        print(
            json.dumps(
                {
                    "learning_rate": rate,
                    "preference_accuracy": round(float(accuracy.mean()), 3),
                    "pairs": len(pairs),
                    "seconds": round(time.time() - started),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main([float(x) for x in sys.argv[1:]] or [0.0, 5e-4])
