"""`compoundai train` unchanged under `accelerate launch` with two CPU processes (gloo DDP)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from tests.adapters.conftest import write_jsonl


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_cpu_processes_train_one_adapter(tmp_path, tiny_model_dir, sft_rows):
    pytest.importorskip("accelerate", reason="accelerate is not installed")
    write_jsonl(tmp_path / "train.jsonl", sft_rows * 4)
    config = {
        "model": str(tiny_model_dir),
        "train_file": "train.jsonl",
        "prompt_field": "text",
        "completion_field": "label",
        "output_dir": "run",
        "epochs": 3,
        "tokens_per_batch": 96,
        "learning_rate": 5e-3,
        "precision": "fp32",
        "lora": {"rank": 4, "alpha": 8},
    }
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump(config))
    command = [
        sys.executable,  # the launcher of this environment (its bin/ may not be on PATH)
        "-m",
        "accelerate.commands.launch",
        # accelerate's own multi-CPU path needs mpirun; --multi_gpu launches through torchrun,
        # and with no GPU the training loop's Accelerator joins a gloo process group on CPU
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(free_port()),
        "-m",
        "compoundai",
        "--no-progress",
        "train",
        "sft",
        str(tmp_path / "sft.yaml"),
    ]
    env = {**os.environ, "COMPOUNDAI_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    manifest = json.loads((tmp_path / "run/adapter/manifest.json").read_text())
    metrics = manifest["metrics"]
    assert metrics["processes"] == 2
    assert metrics["final_loss"] < metrics["first_loss"]
    # one summary, from rank 0 only
    assert done.stdout.count('"adapter":') == 1
    # the adapter loads with plain PEFT
    probe = (
        "from peft import PeftModel; from transformers import AutoModelForCausalLM as M; "
        f"PeftModel.from_pretrained(M.from_pretrained({str(tiny_model_dir)!r}), "
        f"{str(tmp_path / 'run/adapter')!r})"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=300)
