"""RLHF's second half: the policy tuned against a trained reward model with TRL's RLOO.

Why RLOO and not PPO: TRL 1.x has no `PPOTrainer` (it was removed from `trl` and is not in
`trl.experimental` either; `RLOOTrainer` is the online RL-from-a-reward-model trainer it
keeps). RLOO (REINFORCE leave-one-out, Ahmadian et al. 2024) samples `group_size` answers per
prompt and uses, as each answer's baseline, the mean reward of the *other* answers in its group:
no value model to train, which on a CPU is half of PPO's cost, and the same KL penalty to the
reference (`kl_coef`; the reference is the policy's LoRA adapter disabled).

The reward is a model from `compoundai train reward` (`reward_model`: its adapter folder),
scoring each prompt + sampled answer tokenized exactly as it was trained (the user turn
through the chat template, the answer, EOS; the policy's system message is not part of it).
A reward model is a proxy, and a gameable one, so the reward-hacking guard needs a signal the
policy is not trained on: `heldout_metrics` (evaluator metrics against each row's
`reference_field`, by default the chosen answer) are computed on every sampled answer and
logged at weight 0, and the guard flags a run whose reward rises while that metric falls (or
whose KL leaves `guard.kl_max`). Without them the guard reads the reward on the held-out
prompts (`eval_file`). The loop, checkpoints, `--resume` and the manifest are `online_rl.py`'s.

    >>> RLOOStageConfig(output_dir="r", train_file="p.jsonl", reward_model="rm/adapter").kl_coef
    0.05
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from compoundai.context import RunContext
from compoundai.errors import UserInputError
from compoundai.provenance import file_sha256
from compoundai_adapters.grpo import metric_reward
from compoundai_adapters.online_rl import OnlineRLSettings, Rewards, run_online_rl


class RLOOStageConfig(OnlineRLSettings):
    stage: Literal["rloo"] = "rloo"
    reward_model: str = Field(description="A reward model's adapter folder (train reward).")
    kl_coef: float = Field(0.05, ge=0, description="beta: the KL penalty to the reference.")
    reference_field: str = Field("chosen", description="What heldout_metrics compare against.")
    heldout_metrics: list[str] = Field(
        default_factory=lambda: ["f1"],
        description="Metrics against the reference, logged but not trained on (the guard's "
        "held-out signal); [] to use the reward on eval_file instead.",
    )


def reward_model_reward(
    adapter_dir: str | Path, ctx: RunContext | None = None, batch: int = 8
) -> Callable[..., list[float]]:
    """A TRL reward function scoring each (prompt, completion) with the trained reward model."""
    from compoundai_adapters.reward import (
        answer_ids,
        load_reward_model,
        prompt_ids,
        score_sequences,
    )

    model, tokenizer = load_reward_model(adapter_dir, ctx)

    def user_turn(prompt: Any) -> str:
        if isinstance(prompt, str):
            return prompt
        return str([m for m in prompt if m["role"] == "user"][-1]["content"])

    def reward(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
        texts = [c if isinstance(c, str) else str(c[-1]["content"]) for c in completions]
        seqs = [
            prompt_ids(tokenizer, user_turn(p)) + answer_ids(tokenizer, t)
            for p, t in zip(prompts, texts, strict=True)
        ]
        out: list[float] = []
        for i in range(0, len(seqs), batch):
            out += score_sequences(model, tokenizer, seqs[i : i + batch])
        return out

    reward.__name__ = "reward_model"
    return reward


def run_rloo(
    config: RLOOStageConfig,
    ctx: RunContext | None = None,
    *,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> Path:
    """Tune a LoRA adapter against the reward model with RLOO; returns the adapter directory."""
    from compoundai_adapters.artifacts import read_manifest

    folder = Path(config.reward_model)
    stage = read_manifest(folder).stage if (folder / "manifest.json").is_file() else None
    if stage != "reward":
        raise UserInputError(
            f"reward_model {folder} is not a reward model's adapter folder"
            + (f" (its manifest says stage {stage!r})" if stage else ""),
            hint="train one with `compoundai train reward CONFIG.yaml` and point reward_model "
            "at its OUTPUT_DIR/adapter",
        )
    funcs: list[Any] = [reward_model_reward(folder, ctx)]
    weights = [1.0]
    heldout_key = heldout_name = None
    if config.heldout_metrics:
        held = metric_reward(config.heldout_metrics)
        funcs.append(held)
        weights.append(0.0)  # logged, not trained on
        heldout_key = f"rewards/{held.__name__}/mean"
        heldout_name = f"{held.__name__} of the sampled answers against {config.reference_field}"
    weights_file = folder / "adapter_model.safetensors"
    rewards = Rewards(
        funcs,
        weights,
        "mean reward-model score of the sampled answers",
        heldout_key,
        heldout_name,
        data={str(weights_file): file_sha256(weights_file)},
    )
    columns = {"reference": config.reference_field} if config.heldout_metrics else {}
    return run_online_rl(config, "rloo", rewards, columns, ctx, resume=resume, callbacks=callbacks)
