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
    if model is None:
        model, tokenizer = load_model(config, ctx, device)
    bf16 = use_bf16(config, device)
    run = StageRun(config, ctx, model, tokenizer, bf16, Path(config.output_dir))
    run.run_dir.mkdir(parents=True, exist_ok=True)
    run.forgetting_ids, run.ppl_before = forgetting_baseline(config, model, tokenizer, bf16)
    return run


def forgetting_baseline(
    config: TrainSettings, model: Any, tokenizer: Any, bf16: bool
) -> tuple[list[int] | None, float | None]:
    """The forgetting check's general-text tokens and the model's perplexity on them before
    training (None, None when the config names no text)."""
    if not config.forgetting_texts:
        return None, None
    ids = general_text_tokens(config.forgetting_texts, tokenizer, config.forgetting_tokens)
    return ids, perplexity(model, ids, bf16=bf16)


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
