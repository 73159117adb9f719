from __future__ import annotations

import json
from pathlib import Path

import pytest

from compoundai.testing import tiny_causal_lm

CORPUS = [
    "my card has not arrived yet",
    "what is the exchange rate",
    "card_arrival exchange_rate top_up",
    "the quick brown fox jumps over the lazy dog",
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama saved like any local model directory."""
    model, tok = tiny_causal_lm(CORPUS * 4, hidden_size=32, layers=2)
    out = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


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
