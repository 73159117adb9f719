"""scripts/make_unseen_tasks.py: tasks cut from rows no bundled example holds, with no text
shared between their splits, that load as tasks; the same files on every run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from compoundai.task import load_task
from tests.conftest import ROOT

SHARED = ROOT.parent / "shared" / "data"
pytestmark = pytest.mark.skipif(
    not (SHARED / "snips_slots").is_dir(), reason="needs ../shared/data/snips_slots"
)


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_unseen_tasks", ROOT / "scripts" / "make_unseen_tasks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_unseen_tasks"] = module
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_snips_intents_uses_no_row_of_the_snips_example_and_no_text_twice(tmp_path):
    script = _script()
    out = tmp_path / "snips_intents"
    script.snips_intents(SHARED, out)
    task = load_task(out / "task.yaml")
    assert task.labels == sorted({e.output for e in task.split("train")}) and len(task.labels) == 7
    sizes = {s: len(task.split(s)) for s in ("train", "dev", "test")}
    assert sizes == {"train": 210, "dev": 70, "test": 140}
    assert task.spec.evaluation.limit == 140 and not task.warnings  # no leak warning
    example = script.used_ids("snips_json")
    ids = {e.id for s in ("train", "dev", "test") for e in task.split(s)}
    assert len(ids) == 420 and not ids & example
    texts = [{script.normal(e.input) for e in task.split(s)} for s in ("train", "dev", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    first = {p.name: p.read_bytes() for p in (out / "data").iterdir()}
    script.snips_intents(SHARED, out)  # deterministic: the same files again
    assert {p.name: p.read_bytes() for p in (out / "data").iterdir()} == first
    assert _rows(out / "data" / "test.jsonl")[0].keys() == {"id", "text", "intent"}


def test_restaurant_booking_is_json_of_the_booking_slots_from_unused_rows(tmp_path):
    script = _script()
    out = tmp_path / "restaurant_booking"
    script.restaurant_booking(SHARED, out)
    task = load_task(out / "task.yaml")
    assert task.spec.output.type == "json_schema"
    sizes = {s: len(task.split(s)) for s in ("train", "dev", "test")}
    assert sizes == {"train": 300, "dev": 64, "test": 80} and not task.warnings
    example = script.used_ids("snips_json")
    ids = {e.id for s in ("train", "dev", "test") for e in task.split(s)}
    assert len(ids) == 444 and not ids & example
    assert all(e.id.startswith("BookRestaurant-") for s in ("train", "test") for e in task.split(s))
    texts = [{script.normal(e.input) for e in task.split(s)} for s in ("train", "dev", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    # every answer is an object of the schema's slots (no intent field): the schema accepts it
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(task.json_schema)
    answers = [e.output for s in ("train", "dev", "test") for e in task.split(s)]
    assert all(isinstance(a, dict) and "intent" not in a for a in answers)
    assert all(validator.is_valid(a) for a in answers)
    first = {p.name: p.read_bytes() for p in (out / "data").iterdir()}
    script.restaurant_booking(SHARED, out)
    assert {p.name: p.read_bytes() for p in (out / "data").iterdir()} == first
