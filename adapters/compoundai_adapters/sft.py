"""Supervised fine-tuning: instruction -> answer pairs, loss on the answer tokens only.

Data is JSONL in one of two forms: `prompt_completion` (a prompt field and a completion field,
optionally under a fixed system message) or `messages` (a chat; every assistant turn is a
target). Each example is rendered with the model's chat template exactly as it will be
prompted at inference, packed padding-free, and trained with LoRA (or fully) by the shared
loop. `documents_to_qa` turns raw documents into question/answer pairs with a generator: the
remedy for the "perplexity curse" (a model trained on raw text learns to continue it, not to
answer questions about it).

    >>> cfg = SFTConfig(output_dir="runs/x", train_file="train.jsonl",
    ...                 prompt_field="text", completion_field="label")
    >>> cfg.format
    'prompt_completion'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from compoundai.chat import render_chat
from compoundai.context import RunContext
from compoundai.errors import Problem, UserInputError
from compoundai_adapters.common import TrainSettings, packed_row_len, read_jsonl_rows
from compoundai_adapters.packing import Tokenized, mean_target_loss, pack
from compoundai_adapters.stage import StageRun, finish_stage, start_stage


class SFTConfig(TrainSettings):
    """An SFT run. `train_file` is JSONL; paths are relative to the config file."""

    stage: Literal["sft"] = "sft"
    train_file: str
    format: Literal["prompt_completion", "messages"] = "prompt_completion"
    prompt_field: str = "prompt"
    completion_field: str = "completion"
    messages_field: str = "messages"
    system: str | None = Field(None, description="A system message put before every prompt.")
    on_long_rows: Literal["error", "skip"] = "error"
    limit: int | None = Field(None, gt=0, description="Use only the first N rows.")


def chat_of(row: dict[str, Any], config: SFTConfig) -> list[dict[str, str]]:
    if config.format == "messages":
        return [
            {"role": m["role"], "content": str(m["content"])} for m in row[config.messages_field]
        ]
    chat = [{"role": "system", "content": config.system}] if config.system else []
    chat.append({"role": "user", "content": str(row[config.prompt_field])})
    completion = row[config.completion_field]
    if not isinstance(completion, str):
        completion = json.dumps(completion, ensure_ascii=False)
    chat.append({"role": "assistant", "content": completion})
    return chat


def tokenize_chat(tokenizer: Any, chat: list[dict[str, str]]) -> Tokenized:
    """Token ids of a chat with every assistant answer (and its end token) as targets.

    Each assistant turn is appended to the tokens of the prompt that precedes it, rendered
    with the chat template exactly as at inference.
    """
    ids: list[int] = []
    target: list[bool] = []
    eos = tokenizer.eos_token or ""
    for i, message in enumerate(chat):
        if message["role"] != "assistant":
            continue
        prompt = render_chat(tokenizer, chat[:i], open_answer=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if prompt_ids[: len(ids)] != ids:  # the template re-rendered history: keep this turn
            ids, target = [], []
        new = prompt_ids[len(ids) :]
        answer = tokenizer(message["content"] + eos, add_special_tokens=False)["input_ids"]
        ids += new + answer
        target += [False] * len(new) + [True] * len(answer)
    return Tokenized(ids, target)


def sft_sequences(
    rows: Sequence[dict[str, Any]], config: SFTConfig, tokenizer: Any, source: str
) -> list[Tokenized]:
    """Tokenize every row; over-long rows are listed (or skipped with `on_long_rows: skip`)."""
    seqs: list[Tokenized] = []
    problems: list[Problem] = []
    for n, row in enumerate(rows):
        seq = tokenize_chat(tokenizer, chat_of(row, config))
        if not any(seq.target):
            problems.append(
                Problem(
                    "row has no assistant answer to train on",
                    file=source,
                    line=row.get("__line__", n + 1),
                )
            )
        elif len(seq.ids) > config.max_seq_len:
            if config.on_long_rows == "error":
                problems.append(
                    Problem(
                        f"row is {len(seq.ids)} tokens, over max_seq_len {config.max_seq_len} "
                        "(raise max_seq_len or set on_long_rows: skip)",
                        file=source,
                        line=row.get("__line__", n + 1),
                    )
                )
        else:
            seqs.append(Tokenized(seq.ids, seq.target, group=len(seqs)))
    if problems:
        raise UserInputError(
            problems[:50]
            + ([Problem(f"... and {len(problems) - 50} more")] if len(problems) > 50 else [])
        )
    if not seqs:
        raise UserInputError(f"no usable training rows in {source}")
    return seqs


def run_sft(config: SFTConfig, ctx: RunContext | None = None, *, resume: bool = False) -> Path:
    """Train an SFT adapter; returns the output directory (adapter + manifest)."""
    ctx = ctx or RunContext()
    required = (
        [config.messages_field]
        if config.format == "messages"
        else [config.prompt_field, config.completion_field]
    )
    rows = read_jsonl_rows(config.train_file, required)[: config.limit]
    run: StageRun = start_stage(config, ctx)
    seqs = sft_sequences(rows, config, run.tokenizer, config.train_file)
    batches = pack(
        seqs,
        config.tokens_per_batch,
        config.seed,
        packed_row_len(config),
        run.tokenizer.pad_token_id,
    )
    return finish_stage(
        run,
        batches,
        mean_target_loss,
        resume=resume,
        data_files=[config.train_file],
        extra={"examples": len(seqs)},
    )


def documents_to_qa(
    documents: Sequence[str], generator: Any, per_document: int = 3
) -> list[dict[str, str]]:
    """Turn documents into question/answer rows for SFT, with `generator` writing the pairs.

    Each document is asked for `per_document` questions it answers, one `Q: ... A: ...` pair a
    line; pairs whose answer is not supported by the document's words are dropped.
    """
    from compoundai.generators.base import GenerationConfig

    prompts = [
        [
            {
                "role": "system",
                "content": "You write quiz questions about a text, with short answers "
                "taken from the text.",
            },
            {
                "role": "user",
                "content": f"Text:\n{doc[:3000]}\n\nWrite {per_document} questions "
                "about this text, each on its own line as "
                "'Q: <question> A: <answer>'.",
            },
        ]
        for doc in documents
    ]
    out = generator.generate(prompts, GenerationConfig(max_new_tokens=64 * per_document))
    rows = []
    for doc, gen in zip(documents, out, strict=True):
        words = set(doc.lower().split())
        for line in gen.text.splitlines():
            if "Q:" not in line or "A:" not in line:
                continue
            question, answer = (part.strip() for part in line.split("Q:", 1)[1].split("A:", 1))
            if question and answer and set(answer.lower().split()) <= words | {"a", "the"}:
                rows.append({"prompt": question, "completion": answer, "context": doc})
    return rows
