from __future__ import annotations

import json
from pathlib import Path

import pytest


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
