"""Checkpoints and resume for the stages that train through a TRL / transformers `Trainer`.

Those stages use the Trainer's own checkpoints (`checkpoint-N/`: the PEFT adapter as
safetensors, optimizer and scheduler state, RNG, `trainer_state.json`) and its
`resume_from_checkpoint`, which restores all of it and skips the batches already seen. The
Trainer reads its `.pt` / `.pth` files with `torch.load(weights_only=True)`, the restricted
loader, and they are only ever read from the run's own directory.

What this module adds is the project's checkpoint convention (see `checkpoint.py`): a
checkpoint belongs to its run. Each run writes into `RUN_DIR/checkpoints/<run id>/`, so the
Trainer's pruning (`save_total_limit`) never touches another run's checkpoints, and each
checkpoint gets a `run_fingerprint.json` (the settings that shape training and a digest of the
tokenized data). `--resume` takes the newest checkpoint whose fingerprint matches and refuses,
saying what differs, when only other runs' checkpoints are there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compoundai.errors import UserInputError
from compoundai.provenance import json_digest
from compoundai_adapters.checkpoint import RunFingerprint
from compoundai_adapters.common import TrainSettings
from compoundai_adapters.loop import NOT_IN_FINGERPRINT

FINGERPRINT = "run_fingerprint.json"


def trainer_fingerprint(settings: TrainSettings, data: Any) -> RunFingerprint:
    """Settings that shape the trajectory (not paths, not checkpoint cadence) and the data."""
    config = {
        k: v
        for k, v in settings.model_dump(mode="json").items()
        if k not in NOT_IN_FINGERPRINT and not k.endswith("_file")
    }
    return RunFingerprint(config, json_digest(data))


@dataclass(frozen=True)
class TrainerRun:
    output_dir: Path  # the Trainer's output_dir: this run's checkpoint folder
    resume_from: Path | None  # a checkpoint-N folder, or None for a fresh start


def _trainer_checkpoints(run_dir: Path) -> list[tuple[int, Path, dict[str, Any]]]:
    found = []
    for stamp in (run_dir / "checkpoints").glob(f"*/checkpoint-*/{FINGERPRINT}"):
        try:
            step = int(stamp.parent.name.split("-")[-1])
            found.append((step, stamp.parent, json.loads(stamp.read_text())))
        except (ValueError, OSError):
            continue
    return sorted(found, key=lambda t: (t[0], str(t[1])))


def plan_trainer_run(
    run_dir: Path, fingerprint: RunFingerprint, resume: bool, log: Callable[[str], None] = print
) -> TrainerRun:
    """Where this run writes its checkpoints and which one it resumes from."""
    found = _trainer_checkpoints(run_dir)
    if resume:
        mine = [c for c in found if c[2].get("fingerprint") == fingerprint.digest]
        if mine:
            step, path, _ = mine[-1]
            log(f"resuming from {path.parent.name}/{path.name} (step {step})")
            return TrainerRun(path.parent, path)
        if found:
            step, path, other = found[-1]
            old = other.get("config") or {}
            keys = sorted(
                k
                for k in old.keys() | fingerprint.config.keys()
                if old.get(k) != fingerprint.config.get(k)
            )
            diff = [f"{k}: {old.get(k)!r} (now {fingerprint.config.get(k)!r})" for k in keys[:6]]
            if other.get("data") != fingerprint.data:
                diff.append("other training data")
            raise UserInputError(
                f"--resume: no checkpoint in {run_dir / 'checkpoints'} belongs to this run; the "
                f"newest, {path.name}, was written by a run with "
                f"{'; '.join(diff) or 'another fingerprint'}",
                hint="resume with the config and data it was trained with, or start afresh "
                "without --resume",
            )
        log(f"--resume: no checkpoint in {run_dir / 'checkpoints'}; starting from step 0")
    return TrainerRun(run_dir / "checkpoints" / uuid.uuid4().hex[:8], None)


def fingerprint_callback(fingerprint: RunFingerprint, output_dir: Path) -> Any:
    """A `TrainerCallback` stamping each checkpoint the Trainer saves with the run's fingerprint."""
    from transformers import TrainerCallback

    stamp = {**fingerprint.as_state(output_dir.name)}

    class StampCheckpoints(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            folder = output_dir / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                (folder / FINGERPRINT).write_text(json.dumps(stamp))
            return control

    return StampCheckpoints()


SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def trainer_args(
    settings: TrainSettings,
    plan: TrainerRun,
    *,
    batch: int,
    bf16: bool,
    device: str,
    progress: bool,
    eval_every: int | None,
) -> dict[str, Any]:
    """The `TrainingArguments` every TRL stage here sets the same way: the run's checkpoint
    folder, steps or epochs, the optimiser schedule, precision and device, a log every step,
    and the checkpoint cadence. A stage adds its own fields and builds its TRL config."""
    return dict(
        output_dir=str(plan.output_dir),
        max_steps=settings.max_steps or -1,
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=batch,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=SCHEDULES[settings.schedule],
        warmup_steps=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        activation_checkpointing=False,  # 135M fits; recomputation costs ~30% on this CPU
        bf16=bf16,
        use_cpu=device == "cpu",
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=1,
        save_steps=settings.save_every,
        save_total_limit=settings.keep_checkpoints,
        eval_strategy="steps" if eval_every else "no",
        eval_steps=eval_every,
        report_to=[],
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )


def logged_tokens(history: list[dict[str, Any]], resumed_from: int | None) -> tuple[int, int]:
    """Tokens a Trainer run has seen in all (its `num_tokens` log) and in this sitting (after
    the checkpoint it resumed from), for the manifest's tokens and tokens/s."""

    def until(step: float) -> int:
        seen = [int(float(h.get("num_tokens", 0))) for h in history if h.get("step", 0) <= step]
        return max(seen or [0])

    total = until(float("inf"))
    return total, total - until(resumed_from or 0)
