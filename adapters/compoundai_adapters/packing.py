"""Padding-free batches: short sequences packed into rows, positions restarting per sequence.

transformers reads restarting `position_ids` (with no attention mask) as packed sequences and
builds a block-diagonal causal mask, so no token attends across a sequence boundary. Rows are
at most `row_len` tokens (attention is quadratic in the row, so one giant row would waste most
of its compute on masked pairs); a batch is as many rows as fill `tokens_per_batch`. The few
padding tokens at a row's end form their own block and are never targets.

Only the positions that predict a target go through the output head (`TargetHead`), which
skips most of the 49k-way vocabulary projection when the loss covers only answer tokens.
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
    group: int = 0  # sequences of one group (a DPO pair) always share a batch


def pack(
    sequences: Sequence[Tokenized],
    tokens_per_batch: int,
    seed: int,
    row_len: int,
    pad_id: int = 0,
) -> list[dict[str, Any]]:
    """Seeded order of groups, greedily filled into batches of about `tokens_per_batch`.

    >>> b = pack([Tokenized([1, 2], [False, True]), Tokenized([3, 4, 5], [False, True, True])],
    ...          64, 0, row_len=8)
    >>> b[0]["position_ids"].tolist()
    [[0, 1, 2, 0, 1]]
    """
    groups: dict[int, list[Tokenized]] = {}
    for seq in sequences:
        groups.setdefault(seq.group, []).append(seq)
    order = list(groups)
    random.Random(seed).shuffle(order)
    batches: list[dict[str, Any]] = []
    current: list[Tokenized] = []
    used = 0
    for g in order:
        size = sum(len(s.ids) for s in groups[g])
        if current and used + size > tokens_per_batch:
            batches.append(_batch(current, row_len, pad_id))
            current, used = [], 0
        current += groups[g]
        used += size
    if current:
        batches.append(_batch(current, row_len, pad_id))
    return batches


def _batch(seqs: list[Tokenized], row_len: int, pad_id: int) -> dict[str, Any]:
    import torch

    # first-fit into rows, longest first
    rows: list[list[int]] = []  # indices into seqs
    room: list[int] = []
    for i in sorted(range(len(seqs)), key=lambda i: -len(seqs[i].ids)):
        n = len(seqs[i].ids)
        slot = next((r for r in range(len(rows)) if room[r] >= n), None)
        if slot is None:
            rows.append([])
            room.append(max(row_len, n))
            slot = len(rows) - 1
        rows[slot].append(i)
        room[slot] -= n
    width = max(sum(len(seqs[i].ids) for i in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    keep: list[int] = []
    targets: list[int] = []
    keep_seq: list[int] = []
    for r, row in enumerate(rows):
        offset = 0
        for i in row:
            seq = seqs[i]
            n = len(seq.ids)
            ids[r, offset : offset + n] = torch.tensor(seq.ids)
            positions[r, offset : offset + n] = torch.arange(n)
            for t in range(n - 1):  # position t predicts token t + 1
                if seq.target[t + 1]:
                    keep.append(r * width + offset + t)
                    targets.append(seq.ids[t + 1])
                    keep_seq.append(i)
            offset += n
        positions[r, offset:] = torch.arange(width - offset)  # padding: a block of its own
    return {
        "input_ids": ids,
        "position_ids": positions,
        "keep": torch.tensor(keep, dtype=torch.long),
        "targets": torch.tensor(targets, dtype=torch.long),
        "keep_seq": torch.tensor(keep_seq, dtype=torch.long),
        "n_seqs": len(seqs),
        "tokens": sum(len(s.ids) for s in seqs),
    }


def _target_head_class() -> Any:
    import torch

    class TargetHead(torch.nn.Module):
        """Wraps a causal LM: forward returns logits only at the kept (target) positions.

        The loss runs inside `forward`, so under DDP the wrapper is what gets wrapped and
        gradient synchronisation sees every parameter used.
        """

        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: Any, position_ids: Any, keep: Any) -> Any:
            causal = self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm
            decoder = getattr(causal, causal.base_model_prefix)
            hidden = decoder(
                input_ids=input_ids, position_ids=position_ids, use_cache=False
            ).last_hidden_state
            flat = hidden.reshape(-1, hidden.shape[-1])[keep]
            return causal.get_output_embeddings()(flat)

    return TargetHead


def target_head(lm: Any) -> Any:
    """`TargetHead(lm)`: see `_target_head_class`."""
    return _target_head_class()(lm)


def target_logprobs(head: Any, batch: dict[str, Any]) -> Any:
    """Log-probability of every target token in a batch, `(n_targets,)`."""
    import torch

    logits = head(batch["input_ids"], batch["position_ids"], batch["keep"]).float()
    return -torch.nn.functional.cross_entropy(logits, batch["targets"], reduction="none")


def mean_target_loss(head: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """Cross-entropy averaged over the batch's target tokens (the SFT and pretraining loss)."""
    logp = target_logprobs(head, batch)
    return -logp.mean(), int(logp.numel())


# Losses that are a mean over target tokens: the loop may run them in micro-batches.
PER_TARGET_LOSSES = {mean_target_loss}


def micro_batches(batch: dict[str, Any], max_tokens: int) -> list[dict[str, Any]]:
    """The batch's rows in slices of at most `max_tokens` padded tokens (at least one row each).

    For a loss that is a mean over target tokens, weighting each slice's mean by its share of
    the targets and accumulating the gradients gives the whole batch's gradient, while only one
    slice's activations are alive at a time: on banking77 (4,096 tokens a step) the training
    peak falls from about 7.4 GB to about 2 GB over the model (benchmarks/README.md).

    >>> b = pack([Tokenized([1, 2, 3], [False, True, True])] * 4, 64, 0, row_len=3)[0]
    >>> [len(m["targets"]) for m in micro_batches(b, 6)]
    [4, 4]
    """
    ids = batch["input_ids"]
    rows, width = ids.shape
    per = max(1, max_tokens // max(1, width))
    if per >= rows:
        return [batch]
    keep = batch["keep"]
    out = []
    for start in range(0, rows, per):
        end = min(rows, start + per)
        inside = (keep >= start * width) & (keep < end * width)
        out.append(
            {
                "input_ids": ids[start:end],
                "position_ids": batch["position_ids"][start:end],
                "keep": keep[inside] - start * width,
                "targets": batch["targets"][inside],
                "keep_seq": batch["keep_seq"][inside],
                "n_seqs": batch["n_seqs"],
                "tokens": int(inside.sum()),
            }
        )
    return out
