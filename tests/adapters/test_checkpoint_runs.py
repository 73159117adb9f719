"""Checkpoints belong to their run: an older run's checkpoints in the same output directory are
neither pruned in place of the new run's own, nor resumed from (tiny model, real training)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml

from compoundai.context import RunContext
from compoundai.errors import UserInputError
from compoundai_adapters.common import load_config
from compoundai_adapters.sft import SFTConfig, run_sft
from tests.adapters.conftest import write_jsonl

loop = importlib.import_module("compoundai_adapters.loop")


class Killed(Exception):
    """Stands in for kill -9 right after a checkpoint is written."""


def settings(tmp_path: Path, model: Path, **changes) -> SFTConfig:
    spec = {
        "model": str(model),
        "output_dir": "out",
        "train_file": "train.jsonl",
        "prompt_field": "text",
        "completion_field": "label",
        "max_steps": 30,
        "tokens_per_batch": 96,
        "learning_rate": 5e-3,
        "save_every": 10,
        "keep_checkpoints": 2,
        "precision": "fp32",
        "lora": {"rank": 4, "alpha": 8},
        **changes,
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(spec))
    return load_config(tmp_path / "run.yaml", SFTConfig)


def kill_after_step(monkeypatch, step: int) -> None:
    real = loop.save_checkpoint

    def save_then_die(run_dir, at, *args, **kwargs):
        path = real(run_dir, at, *args, **kwargs)
        if at == step:
            raise Killed(path)
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)


def steps(run_dir: Path) -> list[int]:
    """The steps of every complete checkpoint in the run's folder, of whichever run."""
    found = (run_dir / "checkpoints").glob("step-*/state.json")
    return sorted(json.loads(state.read_text())["step"] for state in found)


@pytest.fixture
def older_run(tmp_path, tiny_model_dir, sft_rows) -> Path:
    """`out/` holding a finished 30-step run's checkpoints (steps 20 and 30)."""
    write_jsonl(tmp_path / "train.jsonl", sft_rows * 4)
    run_sft(settings(tmp_path, tiny_model_dir), RunContext(progress=False))
    assert steps(tmp_path / "out") == [20, 30]
    return tmp_path / "out"


def test_a_fresh_run_keeps_its_own_checkpoint_and_resumes_from_it(
    tmp_path, tiny_model_dir, older_run, monkeypatch
):
    fresh = settings(tmp_path, tiny_model_dir, learning_rate=1e-3, max_steps=20)
    kill_after_step(monkeypatch, 10)
    with pytest.raises(Killed):
        run_sft(fresh, RunContext(progress=False))
    assert steps(older_run) == [10, 20, 30]  # its own new checkpoint was not pruned
    monkeypatch.undo()
    out = run_sft(fresh, RunContext(progress=False), resume=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["resumed_from_step"] == 10
    assert len(manifest["losses"]) == 20
    assert steps(older_run) == [10, 20, 20, 30]  # the older run's step 20 is still there


def test_resume_refuses_another_runs_checkpoints(tmp_path, tiny_model_dir, older_run):
    other = settings(tmp_path, tiny_model_dir, learning_rate=1e-3)
    with pytest.raises(UserInputError, match=re.escape("learning_rate: 0.005 (now 0.001)")):
        run_sft(other, RunContext(progress=False), resume=True)


def test_resume_refuses_checkpoints_trained_on_other_data(
    tmp_path, tiny_model_dir, older_run, sft_rows
):
    write_jsonl(tmp_path / "train.jsonl", list(reversed(sft_rows)) * 4)
    with pytest.raises(UserInputError, match="other training data"):
        run_sft(settings(tmp_path, tiny_model_dir), RunContext(progress=False), resume=True)


def test_pruning_orders_by_step_and_leaves_other_runs_alone(tmp_path, tiny_model_dir, older_run):
    fresh = settings(tmp_path, tiny_model_dir, learning_rate=1e-3, max_steps=40)
    run_sft(fresh, RunContext(progress=False))
    assert steps(older_run) == [20, 30, 30, 40]  # its own newest two, and the older run's
