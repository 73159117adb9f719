"""Checkpoints that survive `kill -9`: safetensors only, written to a temp dir then renamed.

A checkpoint holds the trainable weights, the AdamW moments, the step, and the torch RNG
state. Data order is a pure function of (seed, epoch), so resuming at step N replays exactly
the batches an uninterrupted run would have seen. Nothing here is ever loaded with pickle.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

PREFIX = "step-"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (a directory with its `state.json`), or None."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return None
    done = [d for d in root.iterdir() if d.name.startswith(PREFIX) and (d / "state.json").is_file()]
    return max(done, key=lambda d: int(d.name[len(PREFIX) :]), default=None)


def save_checkpoint(
    run_dir: Path, step: int, model: Any, optimizer: Any, state: dict[str, Any], keep: int
) -> Path:
    import torch
    from safetensors.torch import save_file

    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:07d}"
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    names = {p: n for n, p in model.named_parameters() if p.requires_grad}
    weights = {n: p.detach().contiguous().clone() for p, n in names.items()}
    save_file(weights, str(tmp / "trainable.safetensors"))
    moments: dict[str, torch.Tensor] = {}
    adam_steps: dict[str, float] = {}
    for p, n in names.items():
        s = optimizer.state.get(p)
        if s:
            moments[f"{n}::exp_avg"] = s["exp_avg"].contiguous()
            moments[f"{n}::exp_avg_sq"] = s["exp_avg_sq"].contiguous()
            adam_steps[n] = float(s["step"])
    moments["::rng"] = torch.get_rng_state()
    save_file(moments, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "adam_steps": adam_steps}))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    old = sorted((d for d in root.iterdir() if d.name.startswith(PREFIX)), key=lambda d: d.name)
    for d in old[:-keep]:
        shutil.rmtree(d, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    """Restore weights, optimizer moments and RNG in place; return the saved trainer state."""
    import torch
    from safetensors.torch import load_file

    state: dict[str, Any] = json.loads((path / "state.json").read_text())
    weights = load_file(str(path / "trainable.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    moments = load_file(str(path / "optimizer.safetensors"))
    for name, steps in state["adam_steps"].items():
        p = params[name]
        optimizer.state[p] = {
            "step": torch.tensor(steps),
            "exp_avg": moments[f"{name}::exp_avg"].clone(),
            "exp_avg_sq": moments[f"{name}::exp_avg_sq"].clone(),
        }
    torch.set_rng_state(moments["::rng"])
    return state
