"""Start and finish a training stage: the steps every stage takes around its own data and loss.

`start_stage` loads the model (with LoRA) and measures general-text perplexity before;
`finish_stage` runs the shared loop, measures perplexity after, and saves the adapter with its
manifest. A stage module reads as: read data -> start_stage -> build batches -> finish_stage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compoundai.context import RunContext
from compoundai.contract import ForgettingFacts
from compoundai.generators.perplexity import general_text_tokens, perplexity
from compoundai.provenance import TRAINING_DISTS, file_sha256, versions
from compoundai_adapters.artifacts import AdapterManifest, TrainMetrics, save_artifact
from compoundai_adapters.common import TrainSettings, count_params, load_model, use_bf16
from compoundai_adapters.loop import LossFn, train_loop


@dataclass
class StageRun:
    config: TrainSettings
    ctx: RunContext
    model: Any
    tokenizer: Any
    bf16: bool
    run_dir: Path
    ppl_before: float | None = None
    forgetting_ids: list[int] | None = None


def start_stage(
    config: TrainSettings, ctx: RunContext, model: Any = None, tokenizer: Any = None
) -> StageRun:
    """Load the model (unless given) and measure perplexity on general text before training."""
    import torch

    device = ctx.resolve_device()
    torch.manual_seed(config.seed)  # LoRA's initial weights come from this stream
    weights = None
    if model is None:
        model, tokenizer = load_model(config, ctx, device)
        weights = _weights_key(config, ctx, model)
    bf16 = use_bf16(config, device)
    run = StageRun(config, ctx, model, tokenizer, bf16, Path(config.output_dir))
    run.run_dir.mkdir(parents=True, exist_ok=True)
    run.forgetting_ids, run.ppl_before = forgetting_baseline(
        config, model, tokenizer, bf16, weights
    )
    return run


# Perplexity before training, per (weights, tokens): a fresh LoRA adapter starts at zero
# (PEFT's B = 0), so every stage that loads the same base measures the same number, and the
# bake-off trains several rungs on one base (7.5 s saved each, SmolLM2 on 8,000 tokens).
_BASELINES: dict[tuple[Any, ...], float] = {}


def _weights_key(config: TrainSettings, ctx: RunContext, model: Any) -> tuple[Any, ...] | None:
    """What the freshly loaded model's outputs depend on: the weight files, dtype, LoRA."""
    from compoundai.models import ModelStore

    path = Path(ModelStore(ctx).resolve(config.model))
    if not path.is_dir() or config.quantize_4bit:
        return None
    files = sorted(
        (f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in path.glob("*.safetensors")
    )
    dtype = str(next(model.parameters()).dtype)
    return (str(path.resolve()), tuple(files), dtype, config.lora is not None)


def forgetting_baseline(
    config: TrainSettings,
    model: Any,
    tokenizer: Any,
    bf16: bool,
    weights: tuple[Any, ...] | None = None,
) -> tuple[list[int] | None, float | None]:
    """The forgetting check's general-text tokens and the model's perplexity on them before
    training (None, None when the config names no text). `weights` (a freshly loaded model's
    `_weights_key`) lets a later stage on the same base reuse the measurement."""
    if not config.forgetting_texts:
        return None, None
    ids = general_text_tokens(config.forgetting_texts, tokenizer, config.forgetting_tokens)
    key = None if weights is None else (weights, bf16, hash(tuple(ids)))
    if key is not None and key in _BASELINES:
        return ids, _BASELINES[key]
    before = perplexity(model, ids, bf16=bf16)
    if key is not None:
        _BASELINES[key] = before
    return ids, before


def forgetting_facts(
    config: TrainSettings, model: Any, ids: list[int] | None, before: float | None, bf16: bool
) -> ForgettingFacts | None:
    """The forgetting check after training: perplexity on the same tokens, against `before`."""
    if ids is None:
        return None
    after = perplexity(model, ids, bf16=bf16)
    return ForgettingFacts(
        text=config.forgetting_texts,
        tokens=len(ids),
        perplexity_before=round(before or 0.0, 3),
        perplexity_after=round(after, 3),
        ratio=round(after / before, 4) if before else None,
    )


def finish_stage(
    run: StageRun,
    batches: Sequence[dict[str, Any]],
    loss_fn: LossFn,
    *,
    resume: bool,
    data_files: list[str],
    extra: dict[str, Any],
    observe: Callable[[int], bool] | None = None,
    extra_after: Callable[[], dict[str, Any]] | None = None,
) -> Path:
    """Train, re-measure perplexity, save adapter + manifest; return the output directory.

    `observe` goes to the loop (called after each step; True stops); `extra_after` gives
    manifest fields known only once training ends (the guard's report)."""
    config = run.config
    result = train_loop(
        run.model,
        batches,
        loss_fn,
        config,
        run.run_dir,
        bf16=run.bf16,
        resume=resume,
        progress=run.ctx.progress,
        observe=observe,
    )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch, rank 0 saves
        return run.run_dir / "adapter"
    total, trainable = count_params(run.model)
    metrics = TrainMetrics(
        final_loss=result.final_loss,
        first_loss=result.losses[0] if result.losses else None,
        steps=result.steps,
        tokens=result.tokens,
        train_seconds=round(result.seconds, 1),
        tokens_per_s=round(result.tokens_per_s, 1),
        mfu=round(result.mfu, 4),
        peak_flops=result.peak_flops,
        resumed_from_step=result.resumed_from,
        processes=world,
    )
    metrics.forgetting = forgetting_facts(
        config, run.model, run.forgetting_ids, run.ppl_before, run.bf16
    )
    manifest = AdapterManifest(
        stage=getattr(config, "stage", "unknown"),
        base_model=config.model,
        lora=config.lora.model_dump() if config.lora else None,
        parameters={"base": total, "trainable": trainable},
        precision="bf16-autocast" if run.bf16 else "fp32",
        data={f: file_sha256(f) for f in data_files},
        config=json.loads(config.model_dump_json()),
        metrics=metrics,
        losses=result.losses,
        versions=versions(TRAINING_DISTS),
        **extra,
        **(extra_after() if extra_after is not None else {}),
    )
    out = save_artifact(run.model, run.tokenizer, run.run_dir / "adapter", manifest)
    (run.run_dir / "losses.json").write_text(json.dumps(result.losses))
    return out
