"""Cut tasks the project has never seen from rows of ../shared/data the bundled examples left out.

Why: the router's rules and the bake-off's defaults were written while looking at the four
bundled examples; whether the measured decision also holds on a task nobody tuned them on is
issue 17's last check. Each task here is a new shape of problem (not a re-split of an example)
built from rows no bundled example holds, with a fixed seed, so re-running the script writes
the same files. The tasks are not examples: they are written under `out/unseen/` (ignored by
git), not `examples/`, and nothing in the rules or the tests names them.

    python scripts/make_unseen_tasks.py [--shared ../shared/data] [--out out/unseen]
    compoundai run out/unseen/snips_intents/task.yaml -o out/unseen-runs/snips_intents

Tasks:
- `snips_intents`: the 7 SNIPS intents as plain labels (no slots, no JSON), from SNIPS rows
  that examples/snips_json does not hold: 30 train, 10 dev and 20 test rows a label.
- `banking12`: 12 of the 77 banking intents (every sixth in name order), from banking rows
  that examples/banking77's task splits do not hold: 40 train, 10 dev and 15 test rows a label.
- `restaurant_booking`: JSON, not labels. A restaurant-booking request (SNIPS BookRestaurant)
  becomes one object of the 14 booking slots it names, under a schema of its own (no intent
  field; the slot names are the properties), from rows examples/snips_json does not hold:
  300 train, 64 dev and every one of the 80 test rows left.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def per_label(
    rows: list[dict[str, Any]], field: str, n: int, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`n` seeded rows of each value of `field`, and the rest."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row[field]].append(row)
    taken, rest = [], []
    for value in sorted(groups):
        members = groups[value][:]
        rng.shuffle(members)
        taken += members[:n]
        rest += members[n:]
    return taken, rest


def normal(text: str) -> str:
    return " ".join(text.lower().split())


def used_ids(example: str) -> set[str]:
    """The ids every split of a bundled example holds (the rows an unseen task must avoid)."""
    data = ROOT / "examples" / example / "data"
    return {r["id"] for f in data.glob("*.jsonl") for r in read(f) if "id" in r}


def cut(
    pool_train: list[dict[str, Any]],
    pool_test: list[dict[str, Any]],
    field: str,
    per: tuple[int, int, int],
    seed: int,
) -> tuple[list[dict[str, Any]], ...]:
    """Train and dev (`per[0]`, `per[1]` rows a label) from `pool_train`, test (`per[2]`) from
    `pool_test`; no dev or test text repeats a train or dev one (case and spaces aside)."""
    rng = random.Random(seed)
    train, rest = per_label(pool_train, field, per[0], rng)
    seen = {normal(r["text"]) for r in train}
    dev, _ = per_label([r for r in rest if normal(r["text"]) not in seen], field, per[1], rng)
    seen |= {normal(r["text"]) for r in dev}
    test, _ = per_label([r for r in pool_test if normal(r["text"]) not in seen], field, per[2], rng)
    return train, dev, test


def write_task(
    out: Path,
    splits: tuple[list[dict[str, Any]], ...],
    contract: tuple[str, Any],
    template: str,
) -> None:
    """The splits, the contract file (`labels.json` or `schema.json`, and its content) and the
    task file (`template`, given the test size)."""
    sizes = []
    for name, rows in zip(("train", "dev", "test"), splits, strict=True):
        write(out / "data" / f"{name}.jsonl", rows)
        sizes.append(f"{len(rows)} {name}")
    file, content = contract
    (out / "data" / file).write_text(json.dumps(content, indent=1) + "\n")
    (out / "task.yaml").write_text(template.format(n_test=len(splits[2])))
    print(f"{out}: {', '.join(sizes)}, {file}")


SNIPS_TASK = """\
# An unseen task (scripts/make_unseen_tasks.py): the 7 SNIPS intents as plain labels, from
# SNIPS 2017 rows (CC0 1.0) that examples/snips_json does not hold.
name: snips-intents
description: Name the intent of each request to a voice assistant, one of 7.
instructions: Name the intent of the request to the voice assistant.
output:
  type: labels
  labels: data/labels.json
examples:
  input_field: text
  output_field: intent
  id_field: id
  train: data/train.jsonl
  dev: data/dev.jsonl
  test: data/test.jsonl
constraints:
  local_only: true
  max_latency_ms: 2000
metrics: [accuracy, macro_f1]
evaluation:
  limit: {n_test}
  seed: 0
"""


def snips_pool(
    shared: Path, split: str, keep: tuple[str, ...], intent: str | None = None
) -> list[dict[str, Any]]:
    """The SNIPS `split` rows (of `intent`, else all) examples/snips_json does not hold, with
    only the `keep` fields."""
    used = used_ids("snips_json")
    return [
        {k: r[k] for k in keep}
        for r in read(shared / "snips_slots" / f"{split}.jsonl")
        if r["id"] not in used and intent in (None, r["intent"])
    ]


def snips_intents(shared: Path, out: Path) -> None:
    keep = ("id", "text", "intent")
    pool_train, pool_test = (snips_pool(shared, split, keep) for split in ("train", "test"))
    train, dev, test = cut(pool_train, pool_test, "intent", (30, 10, 20), seed=17)
    labels = sorted({r["intent"] for r in train})
    write_task(out, (train, dev, test), ("labels.json", labels), SNIPS_TASK)


BANKING_TASK = """\
# An unseen task (scripts/make_unseen_tasks.py): 12 of the 77 BANKING77 intents (CC BY 4.0),
# from rows that examples/banking77's task splits do not hold.
name: banking12
description: Route each message of an online bank's customer to one of 12 intents.
instructions: Name the banking intent of the customer's message.
output:
  type: labels
  labels: data/labels.json
examples:
  input_field: text
  output_field: label
  train: data/train.jsonl
  dev: data/dev.jsonl
  test: data/test.jsonl
constraints:
  local_only: true
  max_latency_ms: 2000
metrics: [accuracy, macro_f1]
evaluation:
  limit: {n_test}
  seed: 0
"""


def banking12(shared: Path, out: Path) -> None:
    example = ROOT / "examples" / "banking77" / "data"
    # the task's splits (train_full.jsonl feeds only the separate sft.yaml run)
    used = {
        normal(r["text"]) for f in ("train", "dev", "test") for r in read(example / f"{f}.jsonl")
    }
    labels = sorted(json.loads((shared / "banking77" / "labels.json").read_text()))[::6][:12]
    wanted = set(labels)
    pool_train = [
        r
        for r in read(shared / "banking77" / "train.jsonl")
        if r["label"] in wanted and normal(r["text"]) not in used
    ]
    pool_test = [
        r
        for r in read(shared / "banking77" / "test.jsonl")
        if r["label"] in wanted and normal(r["text"]) not in used
    ]
    splits = cut(pool_train, pool_test, "label", (40, 10, 15), seed=12)
    write_task(out, splits, ("labels.json", labels), BANKING_TASK)


BOOKING_TASK = """\
# An unseen task (scripts/make_unseen_tasks.py): restaurant-booking requests as JSON objects of
# their slots, from SNIPS 2017 BookRestaurant rows (CC0 1.0) that examples/snips_json does not
# hold.
name: restaurant-booking
description: >-
  Turn each request to book a restaurant into one JSON object of the booking details it names
  (party size, time, place, kind of restaurant...).
instructions: >-
  You fill in restaurant bookings. Give every booking detail the request mentions, copied word
  for word from the request, as one JSON object.
output:
  type: json_schema
  schema: data/schema.json
examples:
  input_field: text
  output_field: slots
  id_field: id
  train: data/train.jsonl
  dev: data/dev.jsonl
  test: data/test.jsonl
constraints:
  local_only: true
  max_latency_ms: 2000
metrics: [schema_adherence, json_valid, slot_f1]
evaluation:
  limit: {n_test}
  seed: 0
"""


def booking_schema(slots: list[str]) -> dict[str, Any]:
    """Every slot an optional string (a few SNIPS rows name one twice: then a list)."""
    value = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Restaurant booking",
        "description": "The booking details a request names, each copied from the request.",
        "type": "object",
        "properties": {slot: value for slot in slots},
        "additionalProperties": False,
    }


def restaurant_booking(shared: Path, out: Path) -> None:
    keep = ("id", "text", "intent", "slots")
    pool_train, pool_test = (
        snips_pool(shared, split, keep, "BookRestaurant") for split in ("train", "test")
    )
    train, dev, test = cut(pool_train, pool_test, "intent", (300, 64, 100), seed=21)
    slots = sorted({k for r in train for k in r["slots"]})
    splits = tuple(
        [{k: r[k] for k in ("id", "text", "slots")} for r in rows] for rows in (train, dev, test)
    )
    write_task(out, splits, ("schema.json", booking_schema(slots)), BOOKING_TASK)


TASKS = {
    "snips_intents": snips_intents,
    "banking12": banking12,
    "restaurant_booking": restaurant_booking,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "unseen")
    parser.add_argument("tasks", nargs="*", help=f"of {', '.join(TASKS)} [default: all]")
    args = parser.parse_args()
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown task {', '.join(unknown)}: choose from {', '.join(TASKS)}")
    for name in args.tasks or list(TASKS):
        TASKS[name](args.shared, args.out / name)


if __name__ == "__main__":
    main()
