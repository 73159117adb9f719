"""Perplexity of a causal LM on general text: the forgetting check, for training and reports.

Fine-tuning a small model on a narrow task can erode what it knew (catastrophic forgetting).
Perplexity on a fixed slice of general English (WikiText-2 by default) measured before and
after training, with the same tokens, makes the erosion a number. Why here, in a leaf of the
core: the training stack measures it before and after each stage (the adapter manifest), and a
report measures it for any local system (`--general-text`); evaluation must see systems, not
trainers, so both call this instead of one importing the other.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def general_text_tokens(path: str | Path, tokenizer: Any, max_tokens: int) -> list[int]:
    """The first `max_tokens` token ids of a text file."""
    text = Path(path).read_text(encoding="utf-8")
    ids: list[int] = tokenizer(text[: max_tokens * 8], add_special_tokens=False)["input_ids"]
    return ids[:max_tokens]


def perplexity(model: Any, ids: list[int], window: int = 512, bf16: bool = False) -> float:
    """Token-level perplexity over `ids` in non-overlapping windows.

    >>> from compoundai.testing import tiny_causal_lm
    >>> model, tok = tiny_causal_lm()
    >>> perplexity(model, list(range(5, 60))) > 1
    True
    """
    import torch

    device = next(model.parameters()).device
    total_nll, count = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start : start + window]], device=device)
            if chunk.shape[1] < 2:
                break
            logits = model(input_ids=chunk, use_cache=False).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum")
            total_nll += float(nll)
            count += chunk.shape[1] - 1
    if was_training:
        model.train()
    return math.exp(total_nll / max(count, 1))
