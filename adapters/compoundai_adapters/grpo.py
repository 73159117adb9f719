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
rises while the held-out reward falls, or the KL leaves `guard.kl_max`. The trainer, the
checkpoints (`--resume`) and the manifest are `online_rl.py`'s, shared with RLOO. The artifact
is a plain LoRA adapter (servable like SFT's).

    >>> GRPOStageConfig(output_dir="runs/g", train_file="qa.jsonl").group_size
    4
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from compoundai.context import RunContext
from compoundai.errors import UserInputError
from compoundai.provenance import file_sha256
from compoundai_adapters.online_rl import OnlineRLSettings, Rewards, run_online_rl


class GRPOStageConfig(OnlineRLSettings):
    stage: Literal["grpo"] = "grpo"
    reference_field: str = "reference"
    metrics: list[str] = Field(
        default_factory=lambda: ["exact_match"],
        min_length=1,
        description="Evaluator metrics scoring each sampled answer (averaged).",
    )
    schema_file: str | None = Field(
        None, description="JSON Schema file, for the schema_adherence metric."
    )


def metric_reward(
    names: list[str], json_schema: dict[str, Any] | None = None
) -> Callable[..., list[float]]:
    """A TRL reward function: each completion scored by the named metrics against its row's
    `reference` (averaged; a metric undefined on an answer scores 0).

    >>> reward = metric_reward(["exact_match"])
    >>> reward(prompts=["q", "q"], completions=["Paris", "Rome"], reference=["Paris", "Paris"])
    [1.0, 0.0]
    """
    import numpy as np

    from compoundai_evaluators.metrics import resolve_metrics
    from compoundai_evaluators.metrics.base import Row

    metrics = resolve_metrics(names, json_schema)

    def reward(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        texts = [c if isinstance(c, str) else str(c[-1]["content"]) for c in completions]
        refs = columns["reference"]
        rows = [Row(str(i), "", r, t, t) for i, (t, r) in enumerate(zip(texts, refs, strict=True))]
        scores = np.stack([np.nan_to_num(m.case_scores(rows), nan=0.0) for m in metrics])
        return [float(s) for s in scores.mean(axis=0)]

    reward.__name__ = "+".join(names)  # TRL logs rewards/<name>/mean
    return reward


def run_grpo(
    config: GRPOStageConfig,
    ctx: RunContext | None = None,
    *,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> Path:
    """Train a LoRA adapter with GRPO on the metric rewards; returns the adapter directory."""
    schema, data = None, {}
    if config.schema_file:
        path = Path(config.schema_file)
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserInputError(f"{path}: cannot read the JSON Schema: {exc}") from exc
        data[str(path)] = file_sha256(path)
    # unknown metric names (or schema_adherence without a schema) fail here, before loading
    reward: Any = metric_reward(config.metrics, schema)
    rewards = Rewards(
        [reward], [1.0], f"mean reward ({reward.__name__}) of the sampled answers", data=data
    )
    columns = {"reference": config.reference_field}
    return run_online_rl(config, "grpo", rewards, columns, ctx, resume=resume, callbacks=callbacks)
