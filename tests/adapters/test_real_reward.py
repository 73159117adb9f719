"""The reward stage on the real SmolLM2-135M-Instruct, a few steps on hh-rlhf pairs (slow set).

The point is that the real model trains through TRL's RewardTrainer with LoRA and the score
head (every trainable parameter moves) and that the manifest carries the held-out figures and
both baselines, not that a few steps reach a target accuracy (see README, "Training").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from compoundai.context import RunContext
from compoundai.models import ModelStore
from compoundai_adapters.reward import RewardModelConfig, run_reward
from tests.adapters.conftest import write_jsonl
from tests.adapters.test_reward import Snapshot

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HH = ROOT / "examples/hh_preferences/data"


def short_pairs(path: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(rows, key=lambda r: len(r["prompt"]) + len(r["chosen"]) + len(r["rejected"]))[:n]


def test_reward_model_on_hh_moves_every_trainable_parameter(tmp_path, real_ctx: RunContext, ctx):
    smol = ModelStore(real_ctx).pull("smollm2-135m-instruct")
    write_jsonl(tmp_path / "train.jsonl", short_pairs(HH / "train.jsonl", 8))
    write_jsonl(tmp_path / "test.jsonl", short_pairs(HH / "test.jsonl", 6))
    config = RewardModelConfig(
        model=str(smol),
        output_dir=str(tmp_path / "rm"),
        train_file=str(tmp_path / "train.jsonl"),
        eval_file=str(tmp_path / "test.jsonl"),
        max_steps=3,
        pairs_per_step=2,
        learning_rate=1e-3,
        max_seq_len=256,
        on_long_rows="skip",
        resamples=200,
    )
    snap = Snapshot()
    out = run_reward(config, ctx, callbacks=[snap])
    unchanged = [n for n in snap.before if torch.equal(snap.before[n], snap.after[n])]
    assert snap.before and unchanged == []
    manifest = json.loads((out / "manifest.json").read_text())
    reward = manifest["reward"]
    assert reward["pairs"] == 6 and manifest["metrics"]["steps"] == 3
    assert {b["name"] for b in reward["baselines"]} == {"longer_answer", "base_loglik"}
    assert all(0 <= b["accuracy"]["value"] <= 1 for b in reward["baselines"])
