"""Copy a stratified, seeded slice of ../shared/data/snips_slots into examples/snips_json/data.

Each row keeps `id, text, intent, slots` (the upstream `entities` offsets are dropped: the task
outputs the `{intent, slots}` object). Upstream files are grouped by intent, so every split takes
a fixed number of rows per intent, chosen with a fixed seed: `train` and `dev` from the upstream
training file (disjoint), `test` from the upstream held-out (`validate_*`) file. `schema.json` is
the output contract: the 7 intents and the 39 slot names seen in the full upstream training set.

Re-running this script reproduces the committed files exactly.

    python scripts/make_snips_json_example.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

SOURCES = """\
# Data: SNIPS 2017 custom-intent NLU benchmark (CC0 1.0)

Written by `scripts/make_snips_json_example.py` from `../shared/data/snips_slots` (see its
`SOURCES.md` for the upstream repository, commit and conversion).

- **Upstream:** `sonos/nlu-benchmark`, `2017-06-custom-intent-engines/`. Licence: CC0 1.0
  (public domain dedication). Upstream asks publications to cite Coucke et al. 2018, "Snips
  Voice Platform: an embedded Spoken Language Understanding system for private-by-design voice
  interfaces" (arXiv:1805.10190).
- `train.jsonl` ({n_train} rows, {train_per} per intent) and `dev.jsonl` ({n_dev} rows,
  {dev_per} per intent): disjoint seeded samples of the upstream training files.
- `test.jsonl` ({n_test} rows, {test_per} per intent): a seeded sample of the upstream held-out
  (`validate_*`) files.
- Fields: `id, text, intent, slots` (`slots` maps a slot name to its value, or to a list of
  values when the slot occurs more than once). The character offsets of the shared copy's
  `entities` field are left out; no text was edited.
- `schema.json`: the JSON Schema of an answer, built from the 7 intents and the 39 slot names of
  the full upstream training set.
"""


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def per_intent(
    rows: list[dict[str, Any]], n: int, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["intent"]].append(row)
    taken, rest = [], []
    for intent in sorted(groups):
        members = groups[intent][:]
        rng.shuffle(members)
        taken += members[:n]
        rest += members[n:]
    return taken, rest


def schema_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    intents = sorted({r["intent"] for r in rows})
    slots = sorted({s for r in rows for s in r["slots"]})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "SNIPS utterance",
        "description": "The intent of a voice-assistant request and the slot values it names.",
        "type": "object",
        "properties": {
            "intent": {"enum": intents},
            "slots": {
                "type": "object",
                "properties": {s: {"$ref": "#/$defs/value"} for s in slots},
                "additionalProperties": False,
            },
        },
        "required": ["intent", "slots"],
        "additionalProperties": False,
        "$defs": {
            "value": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "minItems": 2},
                ]
            }
        },
    }


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{path.name}: {len(rows)} rows, {path.stat().st_size // 1024} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--train-per-intent", type=int, default=100)
    parser.add_argument("--dev-per-intent", type=int, default=10)
    parser.add_argument("--test-per-intent", type=int, default=20)
    args = parser.parse_args()
    src = args.shared / "snips_slots"
    out = Path(__file__).resolve().parent.parent / "examples" / "snips_json" / "data"
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    keep = ("id", "text", "intent", "slots")
    upstream_train = [{k: r[k] for k in keep} for r in read(src / "train.jsonl")]
    upstream_test = [{k: r[k] for k in keep} for r in read(src / "test.jsonl")]
    train, rest = per_intent(upstream_train, args.train_per_intent, rng)
    dev, _ = per_intent(rest, args.dev_per_intent, rng)
    test, _ = per_intent(upstream_test, args.test_per_intent, rng)
    for name, rows in (("train", train), ("dev", dev), ("test", test)):
        write(out / f"{name}.jsonl", rows)
    schema = schema_of(upstream_train)
    (out / "schema.json").write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    (out / "SOURCES.md").write_text(
        SOURCES.format(
            n_train=len(train),
            train_per=args.train_per_intent,
            n_dev=len(dev),
            dev_per=args.dev_per_intent,
            n_test=len(test),
            test_per=args.test_per_intent,
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
