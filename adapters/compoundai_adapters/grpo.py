"""GRPO with verifiable rewards: sampled answers scored by the task's own metrics, with TRL.

Reasoning RL as DeepSeek-R1 ran it: for each prompt the policy samples a group of
`group_size` answers at `temperature`; each answer's reward is a checkable metric against the
row's reference (the evaluators' metrics: `final_answer` for a numeric answer, `exact_match`
/ `f1` for extractive QA, `accuracy` for a label, `json_valid` / `slot_f1` for JSON; several
are averaged); the advantage is the reward minus its group's mean, so no value model is
needed, and `kl_coef` keeps the policy near the reference (the base with the adapter
disabled: LoRA means no second model in memory). TRL's `GRPOTrainer` runs the loop; its
generation is the expensive part on a CPU and is batched over `prompts_per_step x group_size`
answers per step (TRL logs `step_time` per step, which the manifest keeps).

The reward-hacking guard watches the training reward and KL against the same metric on
held-out prompts (`eval_file`, every `eval_every` steps) and stops the run when the reward
rises while the held-out reward falls, or the KL leaves `guard.kl_max`. Checkpoints and
`--resume` follow `trl_runs.py`. The artifact is a plain LoRA adapter (servable like SFT's).

    >>> GRPOStageConfig(output_dir="runs/g", train_file="qa.jsonl").group_size
    4
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from compoundai.context import RunContext
from compoundai.errors import UserInputError
from compoundai.provenance import TRAINING_DISTS, file_sha256, versions
from compoundai_adapters.artifacts import AdapterManifest, TrainMetrics, save_artifact
from compoundai_adapters.common import (
    TrainSettings,
    count_params,
    lora_config,
    read_jsonl_rows,
    use_bf16,
)
from compoundai_adapters.guard import GuardSettings, RewardHackingGuard
from compoundai_adapters.trl_runs import fingerprint_callback, plan_trainer_run, trainer_fingerprint


class GRPOStageConfig(TrainSettings):
    stage: Literal["grpo"] = "grpo"
    train_file: str
    eval_file: str | None = Field(None, description="Held-out prompts: the guard's metric.")
    prompt_field: str = "prompt"
    reference_field: str = "reference"
    system: str | None = None
    metrics: list[str] = Field(
        default_factory=lambda: ["exact_match"],
        min_length=1,
        description="Evaluator metrics scoring each sampled answer (averaged).",
    )
    group_size: int = Field(4, ge=2, description="Answers sampled per prompt.")
    prompts_per_step: int = Field(2, gt=0)
    temperature: float = Field(1.0, gt=0)
    kl_coef: float = Field(0.04, ge=0, description="beta: the KL penalty to the reference.")
    max_answer_tokens: int = Field(64, gt=0)
    learning_rate: float = Field(1e-5, gt=0)
    limit: int | None = Field(None, gt=0)
    eval_every: int | None = Field(None, gt=0)
    guard: GuardSettings | None = Field(default_factory=GuardSettings)


def metric_reward(names: list[str]) -> Callable[..., list[float]]:
    """A TRL reward function: each completion scored by the named metrics against its row's
    `reference` (averaged; a metric undefined on an answer scores 0).

    >>> reward = metric_reward(["exact_match"])
    >>> reward(prompts=["q", "q"], completions=["Paris", "Rome"], reference=["Paris", "Paris"])
    [1.0, 0.0]
    """
    import numpy as np

    from compoundai_evaluators.metrics import resolve_metrics
    from compoundai_evaluators.metrics.base import Row

    metrics = resolve_metrics(names)

    def reward(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        texts = [c if isinstance(c, str) else str(c[-1]["content"]) for c in completions]
        refs = columns["reference"]
        rows = [Row(str(i), "", r, t, t) for i, (t, r) in enumerate(zip(texts, refs, strict=True))]
        scores = np.stack([np.nan_to_num(m.case_scores(rows), nan=0.0) for m in metrics])
        return [float(s) for s in scores.mean(axis=0)]

    reward.__name__ = "+".join(names)  # TRL logs rewards/<name>/mean
    return reward


def _prompt_rows(config: GRPOStageConfig, path: str) -> list[dict[str, Any]]:
    rows = read_jsonl_rows(path, [config.prompt_field, config.reference_field])
    out = []
    for row in rows:
        chat = [{"role": "user", "content": str(row[config.prompt_field])}]
        if config.system:
            chat.insert(0, {"role": "system", "content": config.system})
        out.append({"prompt": chat, "reference": row[config.reference_field]})
    return out


def run_grpo(
    config: GRPOStageConfig,
    ctx: RunContext | None = None,
    *,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> Path:
    """Train a LoRA adapter with GRPO on the metric rewards; returns the adapter directory."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from compoundai_adapters.common import load_model

    ctx = ctx or RunContext()
    if config.lora is None:
        raise UserInputError("GRPO here trains LoRA (the reference is the adapter disabled)")
    if config.forgetting_texts:
        raise UserInputError("forgetting_texts is not measured by the grpo stage yet; remove it")
    train_rows = _prompt_rows(config, config.train_file)[: config.limit]
    eval_rows = _prompt_rows(config, config.eval_file) if config.eval_file else []
    reward: Any = metric_reward(config.metrics)  # unknown metric names fail here, before loading
    device = ctx.resolve_device()
    bf16 = use_bf16(config, device)
    # LoRA is applied by TRL from the peft config: load the bare base
    model, tokenizer = load_model(config.model_copy(update={"lora": None}), ctx, device)
    model.config.use_cache = True  # generation is most of a step: keep the KV cache
    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = trainer_fingerprint(config, train_rows)
    plan = plan_trainer_run(run_dir, fingerprint, resume)
    schedule = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
    args = GRPOConfig(
        output_dir=str(plan.output_dir),
        max_steps=config.max_steps or -1,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.prompts_per_step * config.group_size,
        per_device_eval_batch_size=config.prompts_per_step * config.group_size,
        num_generations=config.group_size,
        temperature=config.temperature,
        beta=config.kl_coef,
        max_completion_length=config.max_answer_tokens,
        learning_rate=config.learning_rate,
        lr_scheduler_type=schedule[config.schedule],
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        activation_checkpointing=False,
        bf16=bf16,
        use_cpu=device == "cpu",
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=1,
        save_steps=config.save_every,
        save_total_limit=config.keep_checkpoints,
        eval_strategy="steps" if config.eval_every and eval_rows else "no",
        eval_steps=config.eval_every,
        report_to=[],
        disable_tqdm=not ctx.progress,
        dataloader_num_workers=0,
    )
    extra = [fingerprint_callback(fingerprint, plan.output_dir)]
    guard = None
    if config.guard is not None:
        guard = RewardHackingGuard(
            config.guard,
            reward_name=f"mean reward ({reward.__name__}) of the sampled answers",
            kl_name="KL to the reference (TRL's per-token estimate on the sampled answers)",
            heldout_name="mean reward on held-out prompts" if eval_rows else None,
        )
        extra.append(guard.trainer_callback("reward", heldout_key="eval_reward", kl_key="kl"))
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if args.eval_strategy != "no" else None,
        processing_class=tokenizer,
        peft_config=lora_config(config.lora),
        callbacks=[*extra, *(callbacks or [])],
    )
    if not ctx.progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(plan.resume_from) if plan.resume_from else None)
    seconds = time.perf_counter() - started
    trained: Any = trainer.model
    history = trainer.state.log_history
    losses = [round(float(h["loss"]), 6) for h in history if "loss" in h]
    step_times = [round(float(h["step_time"]), 3) for h in history if "step_time" in h]
    total, trainable = count_params(trained)
    resumed = int(plan.resume_from.name.split("-")[-1]) if plan.resume_from else None
    metrics = TrainMetrics(
        final_loss=losses[-1] if losses else None,
        first_loss=losses[0] if losses else None,
        steps=int(trainer.state.global_step),
        tokens=max([int(float(h.get("num_tokens", 0))) for h in history] or [0]),
        train_seconds=round(seconds, 1),
        resumed_from_step=resumed,
    )
    data = {config.train_file: file_sha256(config.train_file)}
    if config.eval_file:
        data[config.eval_file] = file_sha256(config.eval_file)
    manifest = AdapterManifest(
        stage="grpo",
        base_model=config.model,
        lora=config.lora.model_dump(),
        parameters={"base": total, "trainable": trainable},
        precision="bf16-autocast" if bf16 else "fp32",
        data=data,
        config=json.loads(config.model_dump_json()),
        step_seconds=step_times,
        metrics=metrics,
        losses=losses,
        versions=versions((*TRAINING_DISTS, "trl")),
        examples=len(train_rows),
        guard=guard.replayed(history).report() if guard is not None else None,
    )
    out = save_artifact(trained, tokenizer, run_dir / "adapter", manifest)
    (run_dir / "losses.json").write_text(json.dumps(losses))
    return out
