"""`--no-progress` hides every progress bar, transformers' "Loading weights" bars included."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.adapters.conftest import make_task


def _build(tmp_path, task, *flags: str) -> str:
    env = {**os.environ, "COMPOUNDAI_CACHE": str(tmp_path / "cache")}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    args = [sys.executable, "-m", "compoundai", *flags, "build", str(task)]
    args += ["-o", str(tmp_path / f"sys{len(flags)}"), "--lane", "prompt/zero-shot"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_no_progress_hides_the_model_loading_bars(tmp_path, tiny_model_dir, sft_rows):
    task = make_task(tmp_path, tiny_model_dir, sft_rows)
    assert "Loading weights" in _build(tmp_path, task)  # the bar this test looks for exists
    assert "Loading weights" not in _build(tmp_path, task, "--no-progress")
