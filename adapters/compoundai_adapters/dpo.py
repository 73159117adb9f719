"""DPO: learn from chosen/rejected pairs without a reward model.

The loss is -log sigmoid(beta * [(log pi(chosen) - log ref(chosen)) - (log pi(rejected) -
log ref(rejected))]). With LoRA the reference is the same base with the adapter disabled, so no
second model is held in memory; its log-probabilities are computed once, before training, for
every sequence (they never change). A pair's two sequences are packed into the same row.

The reward-hacking guard (`guard.py`) watches every step: the implicit reward margin
beta * [(log pi - log ref)(chosen) - (log pi - log ref)(rejected)] on the step's batch, a KL
estimate (the mean |log pi - log ref| per answer token on that batch: a drift measure on the
pair data, not a KL over samples from the policy), and, when `eval_file` is given, the same
margin on held-out pairs every `eval_every` steps. The curves and the verdict land in the
manifest's `guard`; a flagged run stops (unless `guard.stop` is false).

    >>> DPOConfig(output_dir="runs/x", train_file="pairs.jsonl").beta
    0.1
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from compoundai.chat import render_chat
from compoundai.context import RunContext
from compoundai.errors import Problem, UserInputError
from compoundai_adapters.common import (
    TrainSettings,
    packed_row_len,
    pair_too_long,
    read_jsonl_rows,
)
from compoundai_adapters.guard import GuardSettings, RewardHackingGuard
from compoundai_adapters.packing import Tokenized, pack, target_head, target_logprobs
from compoundai_adapters.stage import finish_stage, start_stage


class DPOConfig(TrainSettings):
    stage: Literal["dpo"] = "dpo"
    train_file: str
    prompt_field: str = "prompt"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"
    beta: float = Field(0.1, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    on_long_rows: Literal["error", "skip"] = "error"
    limit: int | None = Field(None, gt=0)
    eval_file: str | None = Field(None, description="Held-out pairs: the guard's metric.")
    eval_every: int = Field(10, gt=0, description="Held-out margin every N steps.")
    guard: GuardSettings | None = Field(
        default_factory=GuardSettings, description="null: curves logged, never stopped."
    )


def pair_sequences(
    rows: list[dict[str, Any]], config: DPOConfig, tokenizer: Any, source: str
) -> list[Tokenized]:
    """Two sequences per pair (chosen first), same prompt, the answer tokens as targets."""
    seqs: list[Tokenized] = []
    problems: list[Problem] = []
    eos = tokenizer.eos_token or ""
    for n, row in enumerate(rows):
        prompt = render_chat(
            tokenizer, [{"role": "user", "content": row[config.prompt_field]}], open_answer=True
        )
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        pair = []
        for field in (config.chosen_field, config.rejected_field):
            a_ids = tokenizer(str(row[field]) + eos, add_special_tokens=False)["input_ids"]
            pair.append(
                Tokenized(
                    p_ids + a_ids, [False] * len(p_ids) + [True] * len(a_ids), group=len(seqs) // 2
                )
            )
        if pair_too_long(max(len(s.ids) for s in pair), config, problems, source, n + 1):
            continue
        seqs += pair
    if problems:
        raise UserInputError(problems[:50])
    if not seqs:
        raise UserInputError(f"no usable preference pairs in {source}")
    return seqs


def sequence_logprobs(head: Any, batch: dict[str, Any]) -> Any:
    """Summed answer log-probability of each sequence in the batch, `(n_seqs,)`."""
    import torch

    logp = target_logprobs(head, batch)
    sums = torch.zeros(batch["n_seqs"], dtype=logp.dtype, device=logp.device)
    return sums.index_add(0, batch["keep_seq"].to(logp.device), logp)


def attach_reference(model: Any, batches: list[dict[str, Any]], bf16: bool) -> None:
    """Store the reference model's per-sequence log-probs in each batch (adapter disabled)."""
    import torch

    disabled = model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
    with torch.inference_mode(), disabled, torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        head = target_head(model)
        for batch in batches:
            batch["ref_logps"] = sequence_logprobs(head, batch).float().clone()


def dpo_loss_fn(beta: float, seen: dict[str, float] | None = None) -> Any:
    """The DPO loss; with `seen`, each call leaves its batch's reward margin and KL estimate."""

    def loss_fn(head: Any, batch: dict[str, Any]) -> tuple[Any, int]:
        import torch
        import torch.nn.functional as F

        logps = sequence_logprobs(head, batch)
        ratios = logps - batch["ref_logps"]
        margin = ratios[0::2] - ratios[1::2]  # chosen minus rejected, pair by pair
        if seen is not None:
            with torch.no_grad():
                keep = batch["keep_seq"].to(ratios.device)
                tokens = torch.bincount(keep, minlength=batch["n_seqs"]).clamp(min=1)
                seen["reward"] = float(beta * margin.mean())
                seen["kl"] = float((ratios.abs() / tokens).mean())
        return -F.logsigmoid(beta * margin).mean(), int(margin.numel())

    return loss_fn


class DPOGuard:
    """Feeds the reward-hacking guard from the DPO loop (see the module docstring)."""

    def __init__(
        self, config: DPOConfig, model: Any, held_out: list[dict[str, Any]], bf16: bool
    ) -> None:
        self.config, self.model, self.held_out, self.bf16 = config, model, held_out, bf16
        self.seen: dict[str, float] = {}
        self.guard = RewardHackingGuard(
            config.guard or GuardSettings(stop=False),
            reward_name="implicit reward margin, training batch",
            kl_name="mean |log pi/ref| per answer token, training batch (not on-policy)",
            heldout_name="implicit reward margin, held-out pairs" if held_out else None,
        )

    def held_out_margin(self) -> float:
        import torch

        head = target_head(self.model)
        margins = []
        self.model.eval()
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=self.bf16):
            for batch in self.held_out:
                ratios = sequence_logprobs(head, batch).float().cpu() - batch["ref_logps"]
                margins += (self.config.beta * (ratios[0::2] - ratios[1::2])).tolist()
        self.model.train()
        return sum(margins) / max(1, len(margins))

    def observe(self, step: int) -> bool:
        heldout = None
        if self.held_out and (step % self.config.eval_every == 0 or step == 1):
            heldout = round(self.held_out_margin(), 6)
        self.guard.observe(step, self.seen.get("reward"), self.seen.get("kl"), heldout)
        return self.guard.should_stop


def run_dpo(config: DPOConfig, ctx: RunContext | None = None, *, resume: bool = False) -> Path:
    """Train a DPO adapter; returns the output directory."""
    ctx = ctx or RunContext()
    if config.lora is None:
        raise UserInputError(
            "DPO here needs LoRA (the reference is the base with the adapter "
            "disabled); set a lora: section"
        )
    fields = [config.prompt_field, config.chosen_field, config.rejected_field]
    rows = read_jsonl_rows(config.train_file, fields)[: config.limit]
    run = start_stage(config, ctx)
    seqs = pair_sequences(rows, config, run.tokenizer, config.train_file)
    batches = pack(
        seqs,
        config.tokens_per_batch,
        config.seed,
        packed_row_len(config),
        run.tokenizer.pad_token_id,
    )
    attach_reference(run.model, batches, run.bf16)
    held_out: list[dict[str, Any]] = []
    if config.eval_file:
        eval_rows = read_jsonl_rows(config.eval_file, fields)
        skip = config.model_copy(update={"on_long_rows": "skip"})
        eval_seqs = pair_sequences(eval_rows, skip, run.tokenizer, config.eval_file)
        held_out = pack(
            eval_seqs,
            config.tokens_per_batch,
            config.seed,
            packed_row_len(config),
            run.tokenizer.pad_token_id,
        )
        attach_reference(run.model, held_out, run.bf16)
    monitor = DPOGuard(config, run.model, held_out, run.bf16)
    return finish_stage(
        run,
        batches,
        dpo_loss_fn(config.beta, monitor.seen),
        resume=resume,
        data_files=[config.train_file, *([config.eval_file] if config.eval_file else [])],
        extra={"pairs": len(seqs) // 2},
        observe=monitor.observe,
        extra_after=lambda: {"guard": monitor.guard.report()},
    )


def preference_margins(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], config: DPOConfig, bf16: bool = False
) -> list[float]:
    """log p(chosen) - log p(rejected) under `model`, pair by pair (over-long pairs skipped)."""
    import torch

    seqs = pair_sequences(
        rows, config.model_copy(update={"on_long_rows": "skip"}), tokenizer, "eval"
    )
    margins = []
    head = target_head(model)
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        for i in range(0, len(seqs), 2):
            batch = pack(seqs[i : i + 2], 10**9, 0, config.max_seq_len)[0]
            chosen, rejected = sequence_logprobs(head, batch).tolist()
            margins.append(chosen - rejected)
    return margins


def preference_accuracy(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], config: DPOConfig, bf16: bool = False
) -> float:
    """Share of pairs where the model gives the chosen answer the higher log-likelihood."""
    margins = preference_margins(model, tokenizer, rows, config, bf16)
    return sum(m > 0 for m in margins) / max(1, len(margins))
