"""Resume after `kill -9`: a real training process is killed mid-run, resumed, and must end
exactly where an uninterrupted run ends (same data order, same optimizer state, same RNG)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import yaml

from compoundai.context import RunContext
from compoundai_adapters.common import load_config
from compoundai_adapters.sft import SFTConfig, run_sft
from tests.adapters.conftest import write_jsonl

STEPS = 60


def test_kill_9_then_resume_matches_uninterrupted_run(tmp_path, tiny_model_dir, sft_rows):
    write_jsonl(tmp_path / "train.jsonl", sft_rows * 4)
    settings = {
        "model": str(tiny_model_dir),
        "train_file": "train.jsonl",
        "prompt_field": "text",
        "completion_field": "label",
        "max_steps": STEPS,
        "tokens_per_batch": 96,
        "learning_rate": 5e-3,
        "save_every": 10,
        "precision": "fp32",
        "lora": {"rank": 4, "alpha": 8, "dropout": 0.1},  # dropout: the RNG must resume too
    }
    ctx = RunContext(cache_dir=tmp_path / "cache", progress=False)
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({**settings, "output_dir": "a"}))
    reference = run_sft(load_config(tmp_path / "a.yaml", SFTConfig), ctx)
    want = json.loads((reference / "manifest.json").read_text())["losses"]

    (tmp_path / "b.yaml").write_text(yaml.safe_dump({**settings, "output_dir": "b"}))
    cmd = [
        sys.executable,
        "-m",
        "compoundai",
        "--no-progress",
        "--cache-dir",
        str(tmp_path / "cache"),
        "train",
        "sft",
        str(tmp_path / "b.yaml"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpts = tmp_path / "b" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ckpts.is_dir() and any(d.name.startswith("step-") for d in ckpts.iterdir()):
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "b" / "adapter").exists()

    result = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "b" / "adapter" / "manifest.json").read_text())
    assert 0 < manifest["metrics"]["resumed_from_step"] < STEPS
    got = manifest["losses"]
    assert len(got) == STEPS
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 1e-4
