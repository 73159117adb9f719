"""Padding-free batches: several sequences packed into one row, positions restarting per sequence.

transformers reads restarting `position_ids` (with no attention mask) as packed sequences and
builds a block-diagonal causal mask, so no token attends across a sequence boundary and no
compute is spent on padding. Only the positions that have a target are sent through the output
head (`logits_to_keep`), which skips most of the 49k-way vocabulary projection when the loss
covers only the answer tokens.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tokenized:
    """One sequence: token ids, and a target flag per token (True: the loss covers it)."""

    ids: list[int]
    target: list[bool]
    group: int = 0  # sequences of one group (a DPO pair) are packed into the same row


def pack(sequences: Sequence[Tokenized], tokens_per_batch: int, seed: int) -> list[dict[str, Any]]:
    """Greedy packing in a seeded order; each batch is one row of at most `tokens_per_batch`.

    >>> rows = pack([Tokenized([1, 2], [False, True]), Tokenized([3, 4], [False, True])], 8, 0)
    >>> rows[0]["position_ids"].tolist()
    [[0, 1, 0, 1]]
    """
    groups: dict[int, list[int]] = {}
    for i, seq in enumerate(sequences):
        groups.setdefault(seq.group, []).append(i)
    order = list(groups)
    random.Random(seed).shuffle(order)
    batches: list[dict[str, Any]] = []
    current: list[Tokenized] = []
    used = 0
    for g in order:
        members = [sequences[i] for i in groups[g]]
        size = sum(len(s.ids) for s in members)
        if current and used + size > tokens_per_batch:
            batches.append(_row(current))
            current, used = [], 0
        current += members
        used += size
    if current:
        batches.append(_row(current))
    return batches


def _row(seqs: list[Tokenized]) -> dict[str, Any]:
    import torch

    ids, positions, seq_index, keep, targets, keep_seq = [], [], [], [], [], []
    offset = 0
    for n, seq in enumerate(seqs):
        ids += seq.ids
        positions += list(range(len(seq.ids)))
        seq_index += [n] * len(seq.ids)
        # position t predicts token t + 1: keep t when token t + 1 is a target
        for t in range(len(seq.ids) - 1):
            if seq.target[t + 1]:
                keep.append(offset + t)
                targets.append(seq.ids[t + 1])
                keep_seq.append(n)
        offset += len(seq.ids)
    return {
        "input_ids": torch.tensor([ids]),
        "position_ids": torch.tensor([positions]),
        "keep": torch.tensor(keep, dtype=torch.long),
        "targets": torch.tensor(targets, dtype=torch.long),
        "keep_seq": torch.tensor(keep_seq, dtype=torch.long),
        "n_seqs": len(seqs),
        "tokens": len(ids),
    }


def target_logprobs(model: Any, batch: dict[str, Any]) -> Any:
    """Log-probability of every target token in a packed row, `(n_targets,)`."""
    import torch

    out = model(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        logits_to_keep=batch["keep"],
        use_cache=False,
    )
    logits = out.logits[0].float()
    return -torch.nn.functional.cross_entropy(logits, batch["targets"], reduction="none")


def mean_target_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """Cross-entropy averaged over the row's target tokens (the SFT and pretraining loss)."""
    logp = target_logprobs(model, batch)
    return -logp.mean(), int(logp.numel())
