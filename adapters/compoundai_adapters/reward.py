"""Reward model: a scalar head on the base model, trained on chosen/rejected pairs with TRL.

The first half of RLHF: `AutoModelForSequenceClassification(num_labels=1)` on the base, LoRA
on its linear layers plus a trainable `score` head, fitted with TRL's `RewardTrainer`
(Bradley-Terry loss, -log sigmoid(r_chosen - r_rejected)). TRL, not our loop: the loss needs
the whole sequence-classification forward and a pair per row, which `RewardTrainer` and its
collator already do; our loop stays for SFT/DPO/pretraining, where it was measured faster.

Data: the same JSONL pairs the DPO stage reads (prompt, chosen, rejected), tokenized the same
way (the prompt through the chat template, the answer and EOS after it). Held-out pairs come
from `eval_file`, or else a seeded `eval_share` of the training file is held out before
training; they give the accuracy curve every `eval_every` steps and the guard's held-out
metric. The final figures are measured on `test_file` when given (else the held-out pairs):
the manifest's `reward` records pairwise accuracy with a paired-bootstrap interval,
calibration by margin bucket, and the two trivial baselines on the same pairs (see
`reward_eval.py`); `guard` records the reward-hacking guard's verdict on the training margin
against held-out accuracy.

The artifact is a PEFT adapter (LoRA plus the `score` head as a saved module, which is what a
reward model needs; vLLM's LoRA serving does not apply: a reward model scores, it does not
generate). `tokens_per_batch`, `row_len` and `forgetting_texts` do not apply here;
`pairs_per_step` sets the batch.

    >>> RewardModelConfig(output_dir="runs/rm", train_file="pairs.jsonl").pairs_per_step
    8
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from compoundai.chat import render_chat
from compoundai.context import RunContext
from compoundai.errors import Problem, UserInputError
from compoundai.hardware import loading_bars, quiet_peft
from compoundai.provenance import TRAINING_DISTS, file_sha256, versions
from compoundai_adapters.artifacts import AdapterManifest, TrainMetrics, write_manifest
from compoundai_adapters.common import (
    TrainSettings,
    count_params,
    lora_config,
    pair_too_long,
    read_jsonl_rows,
    use_bf16,
)
from compoundai_adapters.guard import GuardSettings, RewardHackingGuard
from compoundai_adapters.reward_eval import evaluate_rewards, longer_answer_scores
from compoundai_adapters.trl_runs import (
    fingerprint_callback,
    logged_tokens,
    plan_trainer_run,
    trainer_args,
    trainer_fingerprint,
)


class RewardModelConfig(TrainSettings):
    stage: Literal["reward"] = "reward"
    train_file: str
    eval_file: str | None = Field(None, description="Held-out pairs (default: eval_share).")
    test_file: str | None = Field(
        None, description="Pairs for the final figures (default: the held-out pairs)."
    )
    eval_share: float = Field(0.1, gt=0, lt=1)
    prompt_field: str = "prompt"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"
    learning_rate: float = Field(1e-4, gt=0)
    pairs_per_step: int = Field(8, gt=0)
    on_long_rows: Literal["error", "skip"] = "error"
    limit: int | None = Field(None, gt=0)
    eval_every: int | None = Field(
        None, gt=0, description="Held-out accuracy every N steps (the curve and the guard)."
    )
    margin_buckets: int = Field(4, gt=0)
    resamples: int = Field(2000, gt=0)
    baselines: bool = Field(True, description="Score the length and log-likelihood baselines.")
    guard: GuardSettings | None = Field(default_factory=GuardSettings)
    guard_metric: Literal["accuracy", "margin"] = Field(
        "accuracy", description="The held-out figure the guard watches (needs eval_every)."
    )


@dataclass(frozen=True)
class PairIds:
    row: dict[str, Any]
    prompt_len: int
    chosen: list[int]
    rejected: list[int]


def tokenize_pairs(
    rows: list[dict[str, Any]], config: RewardModelConfig, tokenizer: Any, source: str
) -> list[PairIds]:
    """Prompt (chat template) + answer + EOS for each side, as the DPO stage builds them."""
    out: list[PairIds] = []
    problems: list[Problem] = []
    for n, row in enumerate(rows):
        prompt = prompt_ids(tokenizer, str(row[config.prompt_field]))
        sides = [
            prompt + answer_ids(tokenizer, str(row[f]))
            for f in (config.chosen_field, config.rejected_field)
        ]
        if pair_too_long(max(len(s) for s in sides), config, problems, source, n + 1):
            continue
        out.append(PairIds(row, len(prompt), sides[0], sides[1]))
    if problems:
        raise UserInputError(problems[:50])
    return out


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The user turn through the chat template, open for the answer: what a reward scores."""
    text = render_chat(tokenizer, [{"role": "user", "content": prompt}], open_answer=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def answer_ids(tokenizer: Any, answer: str) -> list[int]:
    """The answer and EOS after it (the reward head reads the sequence's last tokens)."""
    text = answer + (tokenizer.eos_token or "")
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def held_out_rows(
    config: RewardModelConfig, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """(train rows, held-out rows, where the held-out rows came from)."""
    fields = [config.prompt_field, config.chosen_field, config.rejected_field]
    if config.eval_file:
        return rows, read_jsonl_rows(config.eval_file, fields), config.eval_file
    order = list(range(len(rows)))
    random.Random(config.seed).shuffle(order)
    n_eval = max(1, round(len(rows) * config.eval_share)) if len(rows) > 1 else 0
    held = set(order[:n_eval])
    train = [r for i, r in enumerate(rows) if i not in held]
    source = f"{config.train_file} (held out: {n_eval} of {len(rows)}, seed {config.seed})"
    return train, [rows[i] for i in sorted(held)], source


def load_reward_base(config: TrainSettings, ctx: RunContext) -> tuple[Any, Any, str]:
    """The base as a one-output sequence classifier, its tokenizer, and its local path."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    from compoundai.models import ModelStore

    path = str(ModelStore(ctx).resolve(config.model))
    torch.manual_seed(config.seed)  # the new score head's initial weights
    try:
        # the new score head is expected to be missing from a causal LM checkpoint: not news
        with loading_bars(ctx.progress), suppress_seqcls_warning():
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=1, dtype=torch.float32, use_safetensors=True
            )
    except OSError as exc:
        raise UserInputError(f"cannot load model {config.model!r}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, path


def score_pairs(
    model: Any, tokenizer: Any, pairs: list[PairIds], batch: int = 8, bf16: bool = False
) -> tuple[list[float], list[float]]:
    """Rewards `(chosen, rejected)` as two lists, one per pair, in eval mode."""
    chosen: list[float] = []
    rejected: list[float] = []
    for i in range(0, len(pairs), batch):
        part = pairs[i : i + batch]
        seqs = [p.chosen for p in part] + [p.rejected for p in part]
        r = score_sequences(model, tokenizer, seqs, bf16)
        chosen, rejected = chosen + r[: len(part)], rejected + r[len(part) :]
    return chosen, rejected


def score_sequences(
    model: Any, tokenizer: Any, seqs: list[list[int]], bf16: bool = False
) -> list[float]:
    """The reward of each token sequence, in one right-padded batch, in eval mode."""
    import torch

    device = next(model.parameters()).device
    width = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
    was_training = model.training
    model.eval()
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        out = model(input_ids=ids, attention_mask=mask, use_cache=False)
    model.train(was_training)
    return [float(x) for x in out.logits.squeeze(-1).float().tolist()]


def loglik_margins(path: str, pairs: list[PairIds], bf16: bool = False) -> list[float]:
    """log p(chosen answer) - log p(rejected answer) under the base causal LM, pair by pair."""
    import torch
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    lm.eval()

    def answer_logprob(ids: list[int], start: int) -> float:
        x = torch.tensor([ids])
        # the vocabulary projection only where answer tokens are predicted (prompts are long)
        hidden = lm.base_model(input_ids=x).last_hidden_state[0, start - 1 : -1]
        logp = torch.log_softmax(lm.get_output_embeddings()(hidden).float(), -1)
        return float(logp.gather(-1, x[0, start:, None]).sum())

    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        return [
            answer_logprob(p.chosen, p.prompt_len) - answer_logprob(p.rejected, p.prompt_len)
            for p in pairs
        ]


def run_reward(
    config: RewardModelConfig,
    ctx: RunContext | None = None,
    *,
    resume: bool = False,
    callbacks: list[Any] | None = None,
) -> Path:
    """Train a reward model (LoRA + score head); returns the adapter directory."""
    import numpy as np
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    ctx = ctx or RunContext()
    if config.lora is None:
        raise UserInputError("the reward stage trains LoRA plus a score head; set a lora: section")
    if config.forgetting_texts:
        raise UserInputError(
            "forgetting_texts: a reward model has no language-model head to measure "
            "perplexity with; remove it from the reward config"
        )
    fields = [config.prompt_field, config.chosen_field, config.rejected_field]
    rows = read_jsonl_rows(config.train_file, fields)[: config.limit]
    train_rows, eval_rows, eval_source = held_out_rows(config, rows)
    model, tokenizer, path = load_reward_base(config, ctx)
    train_pairs = tokenize_pairs(train_rows, config, tokenizer, config.train_file)
    eval_pairs = tokenize_pairs(eval_rows, config, tokenizer, config.eval_file or "held-out")
    if not train_pairs or not eval_pairs:
        raise UserInputError(
            f"{config.train_file}: {len(train_pairs)} training and {len(eval_pairs)} held-out "
            "pairs fit; the reward stage needs both"
        )

    def as_dataset(pairs: list[PairIds]) -> Any:
        rows = [{"chosen_ids": p.chosen, "rejected_ids": p.rejected} for p in pairs]
        return Dataset.from_list(rows)

    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = trainer_fingerprint(config, [[p.chosen, p.rejected] for p in train_pairs])
    plan = plan_trainer_run(run_dir, fingerprint, resume)
    device = ctx.resolve_device()
    bf16 = use_bf16(config, device)
    common = trainer_args(
        config,
        plan,
        batch=config.pairs_per_step,
        bf16=bf16,
        device=device,
        progress=ctx.progress,
        eval_every=config.eval_every,
    )
    args = RewardConfig(**common, max_length=None)  # long pairs were handled by on_long_rows
    guard = None
    extra_callbacks = [fingerprint_callback(fingerprint, plan.output_dir)]
    if config.guard is not None and config.eval_every:
        guard = RewardHackingGuard(
            config.guard,
            reward_name="training reward margin (r_chosen - r_rejected)",
            heldout_name=f"held-out pairwise {config.guard_metric}",
        )
        heldout_key = f"eval_{config.guard_metric}"
        extra_callbacks.append(guard.trainer_callback("margin", heldout_key=heldout_key))
    with quiet_peft():
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=as_dataset(train_pairs),
            eval_dataset=as_dataset(eval_pairs) if config.eval_every else None,
            processing_class=tokenizer,
            peft_config=lora_config(config.lora, "SEQ_CLS"),
            callbacks=[*extra_callbacks, *(callbacks or [])],
        )
    if not ctx.progress:  # without bars, no per-step dicts on stdout either
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(plan.resume_from) if plan.resume_from else None)
    seconds = time.perf_counter() - started
    trained: Any = trainer.model

    if config.test_file:
        eval_source = config.test_file
        test_rows = read_jsonl_rows(config.test_file, fields)
        eval_pairs = tokenize_pairs(
            test_rows, config.model_copy(update={"on_long_rows": "skip"}), tokenizer, "test"
        )
        if not eval_pairs:
            raise UserInputError(f"{config.test_file}: no pair fits max_seq_len")
    scoring_started = time.perf_counter()
    chosen, rejected = score_pairs(trained, tokenizer, eval_pairs, config.pairs_per_step, bf16)
    seconds_spent = {"reward_model": time.perf_counter() - scoring_started}
    baselines: dict[str, tuple[str, Any]] = {}
    if config.baselines:
        baselines["longer_answer"] = (
            "the longer answer (in characters) wins",
            longer_answer_scores(
                [p.row[config.chosen_field] for p in eval_pairs],
                [p.row[config.rejected_field] for p in eval_pairs],
            ),
        )
        loglik_started = time.perf_counter()
        margins = np.asarray(loglik_margins(path, eval_pairs, bf16 and device == "cpu"))
        seconds_spent["base_loglik"] = time.perf_counter() - loglik_started
        baselines["base_loglik"] = (
            "the base model's summed answer log-likelihood prefers it",
            np.where(margins > 0, 1.0, np.where(margins == 0, 0.5, 0.0)),
        )
    evaluation = evaluate_rewards(
        chosen,
        rejected,
        baselines,
        source=eval_source,
        resamples=config.resamples,
        seed=config.seed,
        buckets=config.margin_buckets,
    )
    history = trainer.state.log_history
    curve = [(int(h["step"]), float(h["eval_accuracy"])) for h in history if "eval_accuracy" in h]
    evaluation.seconds = {k: round(v, 1) for k, v in seconds_spent.items()}
    evaluation.curve_steps = [s for s, _ in curve]
    evaluation.curve_accuracy = [round(a, 4) for _, a in curve]
    losses = [round(float(h["loss"]), 5) for h in history if "loss" in h]

    resumed = None
    if plan.resume_from is not None:
        resumed = int(plan.resume_from.name.split("-")[-1])
    tokens, tokens_this_run = logged_tokens(history, resumed)
    total, trainable = count_params(trained)
    tail = losses[-10:]
    metrics = TrainMetrics(
        final_loss=sum(tail) / len(tail) if tail else None,
        first_loss=losses[0] if losses else None,
        steps=int(trainer.state.global_step),
        tokens=tokens,
        train_seconds=round(seconds, 1),
        tokens_per_s=round(tokens_this_run / seconds, 1) if seconds else 0.0,
        resumed_from_step=resumed,
    )
    data = {config.train_file: file_sha256(config.train_file)}
    for extra_file in (config.eval_file, config.test_file):
        if extra_file:
            data[extra_file] = file_sha256(extra_file)
    manifest = AdapterManifest(
        stage="reward",
        base_model=config.model,
        lora=config.lora.model_dump(),
        parameters={"base": total, "trainable": trainable},
        precision="bf16-autocast" if bf16 else "fp32",
        data=data,
        config=json.loads(config.model_dump_json()),
        metrics=metrics,
        losses=losses,
        versions=versions((*TRAINING_DISTS, "trl")),
        pairs=len(train_pairs),
        reward=evaluation,
        # judged again on the whole log: after a resume it holds the steps before the kill too
        guard=guard.replayed(history).report() if guard is not None else None,
    )
    out = run_dir / "adapter"
    out.mkdir(parents=True, exist_ok=True)
    trained.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    write_manifest(out, manifest)
    (run_dir / "losses.json").write_text(json.dumps(losses))
    return out


def load_reward_model(adapter_dir: str | Path, ctx: RunContext | None = None) -> tuple[Any, Any]:
    """A trained reward model (base + LoRA + score head) and its tokenizer, in eval mode.

    >>> model, tokenizer = load_reward_model("runs/rm/adapter")          # doctest: +SKIP
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    from compoundai_adapters.artifacts import read_manifest

    manifest = read_manifest(adapter_dir)
    base_config = RewardModelConfig(model=manifest.base_model, output_dir=".", train_file="-")
    base, _, _ = load_reward_base(base_config, ctx or RunContext(progress=False))
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    with quiet_peft():
        model = PeftModel.from_pretrained(base, str(adapter_dir), use_safetensors=True)
    return model.eval(), tokenizer
