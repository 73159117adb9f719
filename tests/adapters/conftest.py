from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compoundai.context import RunContext


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def sft_rows() -> list[dict]:
    rows = []
    for i in range(24):
        text, label = [
            ("my card has not arrived", "card_arrival"),
            ("what is the exchange rate", "exchange_rate"),
            ("how do I top up", "top_up"),
        ][i % 3]
        rows.append({"text": f"{text} {i}", "label": label})
    return rows


LABELS = ["card_arrival", "exchange_rate", "top_up"]


def make_task(tmp_path: Path, model: Path, rows: list[dict], **extra) -> Path:
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:6])
    spec = {
        "name": "tiny intents",
        "instructions": "Name the intent.",
        "output": {"type": "labels", "labels": LABELS},
        "examples": {
            "input_field": "text",
            "output_field": "label",
            "train": "train.jsonl",
            "test": "test.jsonl",
        },
        "models": {"generator": str(model)},
        "finetune": {"epochs": 2, "tokens_per_batch": 128, "learning_rate": 5e-3},
        **extra,
    }
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def task_without_training_rows(tmp_path: Path, model: Path) -> Path:
    """A label task with documents but no examples: lanes that train must refuse it."""
    (tmp_path / "notes.md").write_text("Card payments settle in two days.\n")
    spec = {
        "name": "no train",
        "instructions": "Name the intent.",
        "output": {"type": "labels", "labels": LABELS},
        "documents": ["notes.md"],
        "models": {"generator": str(model), "embedder": "hash:64"},
    }
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    return RunContext(cache_dir=tmp_path / "cache", progress=False)
