"""The training loop every stage runs: packed batches in, a trained model and its figures out.

One loop, readable top to bottom: deterministic batch order per epoch, bf16 autocast where
supported, AdamW on the trainable parameters, warm-up then cosine/linear decay (the decaying
learning rate that continued pretraining wants), gradient clipping, a checkpoint every
`save_every` steps, and throughput (tokens/s) with model-FLOPs utilisation against a matmul
peak measured at start. A batch of a per-target loss (SFT, pretraining) larger than
`micro_tokens` runs in micro-batches whose gradients accumulate (same gradient, less memory).
Under `accelerate launch` each process takes its share of every step's
batches and DDP averages the gradients; only the main process writes.

A stage supplies the batches and a loss function; it does not subclass anything. It may also
pass `observe(step) -> stop?`, called after every optimizer step (the DPO stage feeds the
reward-hacking guard from it); a stop saves a checkpoint and ends the loop at that step.
"""

from __future__ import annotations

import math
import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compoundai_adapters.checkpoint import (
    RunFingerprint,
    load_checkpoint,
    resume_point,
    save_checkpoint,
)
from compoundai_adapters.common import (
    TrainSettings,
    count_params,
    measure_peak_flops,
    micro_tokens_for,
)
from compoundai_adapters.packing import PER_TARGET_LOSSES, micro_batches, target_head

# loss_fn(head, batch) -> (loss averaged over target tokens, number of target tokens), where
# head is `packing.target_head(model)` (possibly DDP-wrapped)
LossFn = Callable[[Any, dict[str, Any]], tuple[Any, int]]


@dataclass
class TrainResult:
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    mfu: float = 0.0
    peak_flops: float = 0.0
    final_loss: float = float("nan")
    losses: list[float] = field(default_factory=list)
    resumed_from: int | None = None


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The batch order of one epoch: a function of (seed, epoch) only, so resume replays it."""
    order = list(range(n))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return order


# Settings that do not change what the steps compute: a resume may change them.
NOT_IN_FINGERPRINT = {
    "output_dir",
    "save_every",
    "keep_checkpoints",
    "forgetting_texts",
    "forgetting_tokens",
    # what is measured alongside training, not what the steps compute
    "eval_every",
    "eval_limit",
    "guard",
    "guard_metric",
    "margin_buckets",
    "resamples",
    "baselines",
}


def run_fingerprint(
    settings: TrainSettings, batches: Sequence[dict[str, Any]], world: int = 1
) -> RunFingerprint:
    """The settings that shape the trajectory (data file paths aside: the batches' digest
    covers the data, tokenizer and packing) and the process count, for `checkpoint`."""
    import hashlib

    import torch

    config = {
        k: v
        for k, v in settings.model_dump(mode="json").items()
        if k not in NOT_IN_FINGERPRINT and not k.endswith("_file")
    }
    config["processes"] = world
    digest = hashlib.sha256()
    for batch in batches:
        for key in sorted(batch):
            value = batch[key]
            digest.update(key.encode())
            if hasattr(value, "detach"):
                tensor = value.detach().cpu().contiguous()
                digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
                digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
            else:
                digest.update(repr(value).encode())
    return RunFingerprint(config, digest.hexdigest())


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train_loop(
    model: Any,
    batches: Sequence[dict[str, Any]],
    loss_fn: LossFn,
    settings: TrainSettings,
    run_dir: Path,
    *,
    bf16: bool,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    observe: Callable[[int], bool] | None = None,
) -> TrainResult:
    """Train `model` on `batches` (each a dict of tensors with a `"tokens"` count)."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    accelerator = None
    if world > 1:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=not torch.cuda.is_available())
    main = rank == 0
    device = next(model.parameters()).device
    head = target_head(model)  # the loss runs through this; DDP wraps it, not the bare LM
    if accelerator is not None:
        head = accelerator.prepare_model(head)
    per_epoch = max(1, len(batches) // world)
    total = settings.max_steps or max(1, math.ceil(per_epoch * settings.epochs))
    warmup = int(total * settings.warmup_ratio)
    trainable = [p for p in model.parameters() if p.requires_grad]
    micro = micro_tokens_for(settings) if loss_fn in PER_TARGET_LOSSES else None
    optimizer = torch.optim.AdamW(
        trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    torch.manual_seed(settings.seed)
    result = TrainResult()
    start_step = 0
    fingerprint = run_fingerprint(settings, batches, world)
    run_id = uuid.uuid4().hex
    if resume:
        ckpt = resume_point(run_dir, fingerprint, log)  # refuses another run's checkpoints
        if ckpt is None:
            log(f"--resume: no checkpoint in {run_dir / 'checkpoints'}; starting from step 0")
        else:
            state = load_checkpoint(ckpt.path, model, optimizer)
            start_step = int(state["step"])
            result.losses = list(state.get("losses", []))
            result.tokens = int(state.get("tokens", 0))
            result.resumed_from = start_step
            run_id = ckpt.run or run_id  # its checkpoints are this run's: pruned with it
            log(f"resumed from {ckpt.path.name} (step {start_step} of {total})")

    n_params, _ = count_params(model)
    result.peak_flops = measure_peak_flops(bf16)
    bar = None
    if progress and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start_step, desc="train", unit="step")
    model.train()
    started = time.perf_counter()
    tokens_this_run = 0
    last = total
    for step in range(start_step, total):
        epoch, within = divmod(step, per_epoch)
        order = epoch_order(len(batches), settings.seed, epoch)
        batch = batches[order[(within * world + rank) % len(batches)]]
        for group in optimizer.param_groups:
            group["lr"] = settings.learning_rate * lr_factor(step, total, warmup, settings.schedule)
        inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
        parts = micro_batches(inputs, micro) if micro else [inputs]
        n_all = max(1, sum(len(p["targets"]) for p in parts))
        loss = torch.zeros((), device=device)
        for part in parts:  # gradient accumulation: each slice weighted by its targets
            weight = len(part["targets"]) / n_all if len(parts) > 1 else 1.0
            if not weight:
                continue
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                part_loss, _ = loss_fn(head, part)
            if not torch.isfinite(part_loss):
                raise RuntimeError(
                    f"loss is {part_loss.item()} at step {step}: lower the learning rate"
                )
            (part_loss * weight).backward()
            loss = loss + part_loss.detach() * weight
        torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens_this_run += int(batch["tokens"]) * world
        result.losses.append(round(float(loss.item()), 5))
        elapsed = time.perf_counter() - started
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                loss=f"{result.losses[-1]:.3f}", tok_s=f"{tokens_this_run / elapsed:.0f}"
            )
        stop = observe is not None and observe(step + 1)
        if main and ((step + 1) % settings.save_every == 0 or step + 1 == total or stop):
            save_checkpoint(
                run_dir,
                step + 1,
                model,
                optimizer,
                {"losses": result.losses, "tokens": result.tokens + tokens_this_run},
                settings.keep_checkpoints,
                run=fingerprint.as_state(run_id),
            )
        if stop:
            last = step + 1
            log(f"stopped at step {last} of {total}: the stage's observer asked to stop")
            break
    if bar is not None:
        bar.close()
    model.eval()
    result.seconds = time.perf_counter() - started
    result.steps = last
    result.tokens += tokens_this_run
    result.tokens_per_s = tokens_this_run / result.seconds if result.seconds else 0.0
    result.mfu = 6 * n_params * result.tokens_per_s / result.peak_flops / world
    tail = result.losses[-10:]
    result.final_loss = sum(tail) / len(tail) if tail else float("nan")
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return result
