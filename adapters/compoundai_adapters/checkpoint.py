"""Checkpoints that survive `kill -9` and belong to their run: safetensors only, written to a
temp dir then renamed, each stamped with its run and what the run trains on.

A checkpoint holds the trainable weights, the AdamW moments, the step, and the torch RNG
state. Data order is a pure function of (seed, epoch), so resuming at step N replays exactly
the batches an uninterrupted run would have seen. Nothing here is ever loaded with pickle.

Why the stamp (`RunFingerprint`: the settings that shape the trajectory, and a digest of the
packed batches): an output directory can hold an older run's checkpoints. Pruning keeps the
newest `keep` checkpoints *of this run*, by step, so a fresh run never deletes its own new
checkpoint in favour of an older run's higher steps; and resume takes the newest checkpoint
whose fingerprint matches the run being resumed, refusing (a `UserInputError` saying what
differs) when only other runs' checkpoints are there. Checkpoints written before the stamp
existed cannot be checked: resume uses them with a warning.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compoundai.errors import UserInputError
from compoundai.provenance import json_digest

PREFIX = "step-"


@dataclass(frozen=True)
class RunFingerprint:
    """What a checkpoint must share with a run to resume it: settings and data."""

    config: dict[str, Any]
    data: str  # digest of the packed batches

    @property
    def digest(self) -> str:
        return json_digest([self.config, self.data])

    def as_state(self, run_id: str) -> dict[str, Any]:
        return {"run": run_id, "fingerprint": self.digest, "config": self.config, "data": self.data}


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk and its stamp (None for one written before stamps)."""

    path: Path
    step: int
    run: str | None
    fingerprint: str | None
    config: dict[str, Any] | None
    data: str | None


def checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Every complete checkpoint (a directory with a readable `state.json`), oldest step first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        if not d.name.startswith(PREFIX) or not (d / "state.json").is_file():
            continue
        try:
            state = json.loads((d / "state.json").read_text())
            step = int(state.get("step", d.name[len(PREFIX) :]))
        except (ValueError, OSError):
            continue
        stamp = state.get("run_fingerprint") or {}
        found.append(
            Checkpoint(
                d,
                step,
                stamp.get("run"),
                stamp.get("fingerprint"),
                stamp.get("config"),
                stamp.get("data"),
            )
        )
    return sorted(found, key=lambda c: (c.step, c.path.name))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint by step, of whichever run, or None."""
    found = checkpoints(run_dir)
    return found[-1].path if found else None


def resume_point(
    run_dir: Path, fingerprint: RunFingerprint, log: Callable[[str], None] = print
) -> Checkpoint | None:
    """The checkpoint to resume this run from: the newest whose fingerprint matches. None when
    there is no checkpoint; a `UserInputError` saying what differs when none matches."""
    found = checkpoints(run_dir)
    matching = [c for c in found if c.fingerprint == fingerprint.digest]
    if matching:
        return matching[-1]
    legacy = [c for c in found if c.fingerprint is None]
    if legacy:
        log(
            f"warning: {legacy[-1].path.name} was written before checkpoints recorded their "
            "run; resuming from it without checking it matches this config and data"
        )
        return legacy[-1]
    if not found:
        return None
    newest = found[-1]
    raise UserInputError(
        f"--resume: no checkpoint in {run_dir / 'checkpoints'} belongs to this run; the newest, "
        f"{newest.path.name}, was written by a run with {_difference(newest, fingerprint)}",
        hint="resume with the config and data it was trained with, or start afresh without "
        "--resume (another run's checkpoints are kept, not pruned)",
    )


def _difference(ckpt: Checkpoint, fingerprint: RunFingerprint) -> str:
    old = ckpt.config or {}
    keys = sorted(
        k for k in old.keys() | fingerprint.config.keys() if old.get(k) != fingerprint.config.get(k)
    )
    parts = [f"{k}: {old.get(k)!r} (now {fingerprint.config.get(k)!r})" for k in keys[:6]]
    if ckpt.data != fingerprint.data:
        parts.append("other training data (its batches differ)")
    return "; ".join(parts) or "another fingerprint"


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: Any,
    optimizer: Any,
    state: dict[str, Any],
    keep: int,
    *,
    run: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint of `step`, then prune: the newest `keep` checkpoints of this run
    (`run`, a `RunFingerprint.as_state`) stay, by step; other runs' are never touched."""
    import torch
    from safetensors.torch import save_file

    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    # the run's id in the name: two runs' step-N checkpoints never overwrite each other
    final = (
        root / f"{PREFIX}{step:07d}"
        if run is None
        else root / f"{PREFIX}{step:07d}-{run['run'][:8]}"
    )
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
    saved = {**state, "step": step, "adam_steps": adam_steps}
    if run is not None:
        saved["run_fingerprint"] = run
    (tmp / "state.json").write_text(json.dumps(saved))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    own = [c for c in checkpoints(run_dir) if run is None or c.run == run["run"]]
    for ckpt in own[:-keep]:
        shutil.rmtree(ckpt.path, ignore_errors=True)
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
