"""The loop GRPO and RLOO share: a policy samples groups of answers, a reward scores them, TRL
updates a LoRA adapter with a KL penalty to the reference.

Why one module: TRL's `GRPOTrainer` and `RLOOTrainer` take the same model, data, generation and
KL settings and differ in how they turn a group's rewards into advantages (GRPO: the reward
minus its group's mean, divided by the group's spread; RLOO: the reward minus the mean of the
*other* answers in its group). What they reward differs per stage (GRPO: the task's checkable
metrics; RLOO: a trained reward model), so each stage module builds its reward functions and
this one runs the trainer: the bare base loaded (TRL applies LoRA from the peft config, and the
reference is that adapter disabled, so no second model in memory), checkpoints and `--resume`
by `trl_runs.py`, the reward-hacking guard as a callback, and the manifest (losses, per-step
seconds, the guard's curves and verdict). Generation is the expensive part on a CPU; it is
batched over `prompts_per_step x group_size` answers per step and TRL logs `step_time`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from compoundai_adapters.stage import forgetting_baseline, forgetting_facts
from compoundai_adapters.trl_runs import (
    fingerprint_callback,
    logged_tokens,
    plan_trainer_run,
    trainer_args,
    trainer_fingerprint,
)


class OnlineRLSettings(TrainSettings):
    """What GRPO and RLOO share: the prompts, the sampling and the KL penalty."""

    train_file: str
    eval_file: str | None = Field(None, description="Held-out prompts: the guard's metric.")
    prompt_field: str = "prompt"
    system: str | None = None
    group_size: int = Field(4, ge=2, description="Answers sampled per prompt.")
    prompts_per_step: int = Field(2, gt=0)
    temperature: float = Field(1.0, gt=0)
    kl_coef: float = Field(0.04, ge=0, description="beta: the KL penalty to the reference.")
    max_answer_tokens: int = Field(64, gt=0)
    learning_rate: float = Field(1e-5, gt=0)
    limit: int | None = Field(None, gt=0)
    eval_every: int | None = Field(None, gt=0)
    eval_limit: int | None = Field(
        None, gt=0, description="First N held-out prompts (each evaluation samples group_size)."
    )
    guard: GuardSettings | None = Field(default_factory=GuardSettings)


def prompt_rows(
    config: OnlineRLSettings, path: str, columns: dict[str, str]
) -> list[dict[str, Any]]:
    """Chat prompts (with the system message) and the extra `columns` (output name: field)
    the reward functions read; a row missing a field is a file:line error."""
    rows = read_jsonl_rows(path, [config.prompt_field, *columns.values()])
    out = []
    for row in rows:
        chat = [{"role": "user", "content": str(row[config.prompt_field])}]
        if config.system:
            chat.insert(0, {"role": "system", "content": config.system})
        out.append({"prompt": chat, **{name: row[f] for name, f in columns.items()}})
    return out


@dataclass
class Rewards:
    """The reward functions a stage trains on, with their weights (a 0 weight is logged, not
    trained on: a held-out signal for the guard), and what the guard reads."""

    funcs: list[Any]
    weights: list[float]
    reward_name: str
    heldout_key: str | None = None
    heldout_name: str | None = None
    data: dict[str, str] = field(default_factory=dict)  # extra inputs for the manifest's digests


def run_online_rl(
    config: OnlineRLSettings,
    stage: str,
    rewards: Rewards,
    columns: dict[str, str],
    ctx: RunContext | None = None,
    *,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> Path:
    """Train a LoRA adapter with TRL's `GRPOTrainer` (`stage="grpo"`) or `RLOOTrainer`
    (`"rloo"`); returns the adapter directory."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from compoundai_adapters.common import load_model

    trainers = {"grpo": (GRPOConfig, GRPOTrainer), "rloo": (RLOOConfig, RLOOTrainer)}
    config_cls, trainer_cls = trainers[stage]
    ctx = ctx or RunContext()
    if config.lora is None:
        raise UserInputError(f"{stage} here trains LoRA (the reference is the adapter disabled)")
    train_rows = prompt_rows(config, config.train_file, columns)[: config.limit]
    if not train_rows:
        raise UserInputError(f"{config.train_file}: no prompts to train on")
    eval_rows = prompt_rows(config, config.eval_file, columns) if config.eval_file else []
    eval_rows = eval_rows[: config.eval_limit]
    device = ctx.resolve_device()
    bf16 = use_bf16(config, device)
    model, tokenizer = load_model(config.model_copy(update={"lora": None}), ctx, device)
    model.config.use_cache = True  # generation is most of a step: keep the KV cache
    # general-text perplexity of the model the adapter is on, as the SFT stage measures it
    forgetting_ids, ppl_before = forgetting_baseline(config, model, tokenizer, bf16)
    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = trainer_fingerprint(config, train_rows)
    plan = plan_trainer_run(run_dir, fingerprint, resume)
    batch = config.prompts_per_step * config.group_size
    evaluate = config.eval_every if eval_rows else None
    common = trainer_args(
        config,
        plan,
        batch=batch,
        bf16=bf16,
        device=device,
        progress=ctx.progress,
        eval_every=evaluate,
    )
    args = config_cls(
        **common,
        num_generations=config.group_size,
        temperature=config.temperature,
        beta=config.kl_coef,
        max_completion_length=config.max_answer_tokens,
        reward_weights=rewards.weights,
    )
    extra = [fingerprint_callback(fingerprint, plan.output_dir)]
    guard = None
    if config.guard is not None:
        heldout_key, heldout_name = rewards.heldout_key, rewards.heldout_name
        if heldout_key is None and eval_rows and args.eval_strategy != "no":
            heldout_key, heldout_name = "eval_reward", "mean reward on held-out prompts"
        guard = RewardHackingGuard(
            config.guard,
            reward_name=rewards.reward_name,
            kl_name="KL to the reference (TRL's per-token estimate on the sampled answers)",
            heldout_name=heldout_name,
        )
        extra.append(guard.trainer_callback("reward", heldout_key=heldout_key, kl_key="kl"))
    trainer = trainer_cls(
        model=model,
        reward_funcs=rewards.funcs,
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
    tokens, tokens_this_run = logged_tokens(history, resumed)
    metrics = TrainMetrics(
        final_loss=losses[-1] if losses else None,
        first_loss=losses[0] if losses else None,
        steps=int(trainer.state.global_step),
        tokens=tokens,  # prompt and sampled tokens, as TRL counts them
        train_seconds=round(seconds, 1),
        tokens_per_s=round(tokens_this_run / seconds, 1) if seconds else 0.0,
        resumed_from_step=resumed,
    )
    metrics.forgetting = forgetting_facts(config, trained, forgetting_ids, ppl_before, bf16)
    data = {config.train_file: file_sha256(config.train_file)}
    if config.eval_file:
        data[config.eval_file] = file_sha256(config.eval_file)
    data.update(rewards.data)
    manifest = AdapterManifest(
        stage=stage,
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
        # judged again on the whole log: after a resume it holds the steps before the kill too
        guard=guard.replayed(history).report() if guard is not None else None,
    )
    out = save_artifact(trained, tokenizer, run_dir / "adapter", manifest)
    (run_dir / "losses.json").write_text(json.dumps(losses))
    return out
