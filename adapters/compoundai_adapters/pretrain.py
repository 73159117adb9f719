"""Causal-LM training on raw documents: continued pretraining, or pretraining from scratch.

Continued pretraining (mid-training) teaches an existing model a domain's text, with a
decaying learning rate so it settles rather than drifts. From scratch builds a small model from
a config (`init_config`: a transformers config dict, random init) and trains it fully. Documents
are tokenized, joined with the end-of-text token and cut into `max_seq_len` blocks; every token
is a target.

    >>> PretrainConfig(output_dir="runs/x", train_files=["docs/*.txt"]).schedule
    'cosine'
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from compoundai.context import RunContext
from compoundai.errors import UserInputError
from compoundai_adapters.common import TrainSettings
from compoundai_adapters.packing import Tokenized, mean_target_loss, pack
from compoundai_adapters.stage import finish_stage, start_stage


class PretrainConfig(TrainSettings):
    stage: Literal["pretrain"] = "pretrain"
    train_files: list[str] = Field(min_length=1, description="Text/Markdown files or globs.")
    jsonl_text_field: str = "text"
    init_config: dict[str, Any] | None = Field(
        None, description="Pretrain from scratch: a transformers config (e.g. model_type: llama)."
    )
    learning_rate: float = Field(1e-4, gt=0)
    max_seq_len: int = Field(512, gt=0)


def read_documents(config: PretrainConfig, base: Path | None = None) -> tuple[list[str], list[str]]:
    """The texts of every file matched, and the file list (JSONL rows use `jsonl_text_field`)."""
    from compoundai.data import iter_jsonl
    from compoundai.errors import Problem

    files, texts, problems = [], [], []
    for pattern in config.train_files:
        full = pattern if Path(pattern).is_absolute() or base is None else str(base / pattern)
        matched = sorted(glob.glob(full, recursive=True))
        if not matched:
            problems.append(Problem(f"no files match {pattern}"))
        for name in matched:
            path = Path(name)
            if path.suffix == ".jsonl":
                texts += [
                    str(r[config.jsonl_text_field])
                    for _, r in iter_jsonl(path, problems)
                    if r.get(config.jsonl_text_field)
                ]
            else:
                try:
                    texts.append(path.read_text(encoding="utf-8"))
                except UnicodeDecodeError:
                    problems.append(Problem("not UTF-8 text", file=str(path)))
                    continue
            files.append(str(path))
    texts = [t for t in texts if t.strip()]
    if problems:
        raise UserInputError(problems)
    if not texts:
        raise UserInputError("the training files hold no text")
    return texts, files


def blocks(texts: list[str], tokenizer: Any, block: int) -> list[Tokenized]:
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
    return [
        Tokenized(stream[i : i + block], [True] * len(stream[i : i + block]), group=n)
        for n, i in enumerate(range(0, len(stream) - 1, block))
    ]


def scratch_model(config: PretrainConfig, ctx: RunContext) -> tuple[Any, Any]:
    """A randomly initialised model from `init_config`, with the base model's tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from compoundai.models import ModelStore

    spec = dict(config.init_config or {})
    kind = spec.pop("model_type", "llama")
    tokenizer = AutoTokenizer.from_pretrained(ModelStore(ctx).resolve(config.model))
    spec.setdefault("vocab_size", len(tokenizer))
    model_config = AutoConfig.for_model(kind, **spec)
    torch.manual_seed(config.seed)
    return AutoModelForCausalLM.from_config(model_config), tokenizer


def run_pretrain(
    config: PretrainConfig, ctx: RunContext | None = None, *, resume: bool = False
) -> Path:
    ctx = ctx or RunContext()
    texts, files = read_documents(config)
    model = tokenizer = None
    if config.init_config is not None:
        if config.lora is not None:
            raise UserInputError("pretraining from scratch trains every weight: set lora: null")
        model, tokenizer = scratch_model(config, ctx)
    run = start_stage(config, ctx, model, tokenizer)
    seqs = blocks(texts, run.tokenizer, config.max_seq_len)
    batches = pack(
        seqs, config.tokens_per_batch, config.seed, config.max_seq_len, run.tokenizer.pad_token_id
    )
    return finish_stage(
        run,
        batches,
        mean_target_loss,
        resume=resume,
        data_files=files,
        extra={
            "documents": len(texts),
            "blocks": len(seqs),
            "from_scratch": config.init_config is not None,
        },
    )
