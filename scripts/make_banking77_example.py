"""Copy a stratified, seeded slice of ../shared/data/banking77 into examples/banking77/data.

`train.jsonl` (20 per label) is the task's training split, kept small so the default run is
quick; `train_full.jsonl` is every upstream training row except the dev ones, for `sft.yaml`.

The example must not depend on the shared folder at run time, and test files upstream are
sorted by label, so every split here takes a fixed number of rows per label, chosen with a
fixed seed. Re-running this script reproduces the committed files exactly.

    python scripts/make_banking77_example.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from collections import defaultdict
from pathlib import Path


def per_label(rows: list[dict], n: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["label"]].append(row)
    taken, rest = [], []
    for label in sorted(groups):
        members = groups[label][:]
        rng.shuffle(members)
        taken += members[:n]
        rest += members[n:]
    return taken, rest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--train-per-label", type=int, default=20)
    parser.add_argument("--dev-per-label", type=int, default=2)
    parser.add_argument("--test-per-label", type=int, default=10)
    args = parser.parse_args()
    src = args.shared / "banking77"
    out = Path(__file__).resolve().parent.parent / "examples" / "banking77" / "data"
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(77)
    read = lambda p: [json.loads(x) for x in p.read_text().splitlines() if x.strip()]  # noqa: E731
    train, rest = per_label(read(src / "train.jsonl"), args.train_per_label, rng)
    dev, unused = per_label(rest, args.dev_per_label, rng)
    test, _ = per_label(read(src / "test.jsonl"), args.test_per_label, rng)
    # every upstream train row but the dev ones: what sft.yaml trains on for the accuracy target
    train_full = train + unused
    splits = (("train", train), ("train_full", train_full), ("dev", dev), ("test", test))
    for name, rows in splits:
        with (out / f"{name}.jsonl").open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rows)} rows")
    shutil.copy(src / "labels.json", out / "labels.json")


if __name__ == "__main__":
    main()
