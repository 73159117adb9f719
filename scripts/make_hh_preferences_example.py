"""Copy a seeded slice of ../shared/data/hh_rlhf_helpful into examples/hh_preferences/data.

Each row is one preference pair: `id`, `prompt` (the dialogue up to the last "Assistant:"),
`chosen` and `rejected` (the two final assistant turns; the shared copy's `chosen_response` and
`rejected_response`). The same rows serve as examples (prompt -> chosen answer, for SFT and for
scoring) and as preference pairs (for DPO and preference accuracy).

Deterministic filters, applied before sampling: pairs whose two answers are equal or whose
rejected answer is empty are dropped (upstream quirks, 6 rows), and so are pairs longer than
`--max-chars` in all (prompt + both answers), so that a CPU run stays quick. `train` and `dev`
are disjoint seeded samples of the shared `train.jsonl`, `test` a seeded sample of the shared
`test.jsonl` (the shared folder's own split of the upstream file). Whitespace around each field
is stripped; no other text is changed. Re-running the script reproduces the files exactly.

    python scripts/make_hh_preferences_example.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

SOURCES = """\
# Data: Anthropic HH-RLHF, helpful-base (MIT)

Written by `scripts/make_hh_preferences_example.py` from `../shared/data/hh_rlhf_helpful` (see
its `SOURCES.md` for the upstream repository, commit and how its split was carved out).

- **Upstream:** `anthropics/hh-rlhf`, `helpful-base/test.jsonl.gz`; Bai et al. 2022, "Training
  a Helpful and Harmless Assistant with Reinforcement Learning from Human Feedback"
  (arXiv:2204.05862).
- **Licence:** MIT, Copyright (c) 2022 Anthropic. As upstream warns, the dialogues may contain
  offensive or upsetting text.
- `train.jsonl` ({n_train} pairs) and `dev.jsonl` ({n_dev} pairs): disjoint seeded samples of the
  shared `train.jsonl`; `test.jsonl` ({n_test} pairs): a seeded sample of the shared
  `test.jsonl`.
- Filters before sampling: pairs with equal or empty answers dropped; pairs over {max_chars}
  characters (prompt plus both answers) dropped.
- Fields: `id`, `prompt` (the shared `prompt`), `chosen`, `rejected` (the shared
  `chosen_response`, `rejected_response`), each with surrounding whitespace stripped.
"""


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def pairs(rows: list[dict[str, Any]], max_chars: int) -> list[dict[str, str]]:
    out = []
    for r in rows:
        row = {
            "id": r["id"],
            "prompt": r["prompt"].strip(),
            "chosen": r["chosen_response"].strip(),
            "rejected": r["rejected_response"].strip(),
        }
        if not row["rejected"] or not row["chosen"] or row["chosen"] == row["rejected"]:
            continue
        if len(row["prompt"]) + len(row["chosen"]) + len(row["rejected"]) > max_chars:
            continue
        out.append(row)
    return out


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{path.name}: {len(rows)} rows, {path.stat().st_size // 1024} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--dev", type=int, default=30)
    parser.add_argument("--test", type=int, default=60)
    parser.add_argument("--max-chars", type=int, default=2000)
    args = parser.parse_args()
    src = args.shared / "hh_rlhf_helpful"
    out = Path(__file__).resolve().parent.parent / "examples" / "hh_preferences" / "data"
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2204)
    pool = pairs(read(src / "train.jsonl"), args.max_chars)
    rng.shuffle(pool)
    train, dev = pool[: args.train], pool[args.train : args.train + args.dev]
    held_out = pairs(read(src / "test.jsonl"), args.max_chars)
    rng.shuffle(held_out)
    test = held_out[: args.test]
    for name, rows in (("train", train), ("dev", dev), ("test", test)):
        rows.sort(key=lambda r: r["id"])
        write(out / f"{name}.jsonl", rows)
    (out / "SOURCES.md").write_text(
        SOURCES.format(
            n_train=len(train), n_dev=len(dev), n_test=len(test), max_chars=args.max_chars
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
