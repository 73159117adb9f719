"""Attention for `LocalGenerator.score`'s tree pass: one batched matmul, not SDPA's CPU kernel.

Why it exists: choosing among banking77's 77 labels scores a token trie of ~460 nodes against
the ~600-token cached prompt in one forward pass with an arbitrary (tree) mask. On this
project's 2-core AMX CPU, PyTorch's SDPA kernel took 11.9 ms per layer for that shape in
bf16, and a plain `baddbmm` + softmax + `bmm` in bf16 5.1 ms; with 30 layers that was a third
of every label choice, and label choice is most of `make run`'s time.
`benchmarks/bench_generate.py` measures the whole `score` call both ways
(`tree_attention_gain`). In fp32, on a 2-core AMD EPYC without AVX-512, the same comparison
went the other way (0.88-0.91x: SDPA's fp32 kernel is the better one), so `score` takes this
path only for a model in bf16 (`pays_off`).

Only a call that passes `tree_attention=True` takes this path (the scoring pass, which
always brings its own 4D mask); everything else, generation included, goes to transformers'
own SDPA function unchanged. The model's `config._attn_implementation` names this function
(registered once with transformers' `AttentionInterface`, and SDPA's mask builder under the
same name) so that the flag can reach it.
"""

from __future__ import annotations

from typing import Any

NAME = "compoundai_tree"
_registered = False


def tree_attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-function signature; (batch, q, heads, dim) out, no weights."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not kwargs.get("tree_attention") or attention_mask is None or module.training:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    import torch

    batch, heads, q_len, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    # The query heads that share a key/value head are stacked along the query axis
    # (transformers' repeat_kv maps kv head i to query heads i*groups .. i*groups+groups-1),
    # so no key/value copy is made.
    q = query.reshape(batch * kv_heads, groups * q_len, dim)
    k = key.reshape(batch * kv_heads, kv_len, dim)
    v = value.reshape(batch * kv_heads, kv_len, dim)
    mask = _stacked_mask(attention_mask, query.dtype, batch, kv_heads, groups, q_len, kv_len)
    weights = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=scale)
    out = torch.bmm(torch.softmax(weights, dim=-1), v)
    out = out.reshape(batch, heads, q_len, dim).transpose(1, 2).contiguous()
    return out, None


_last_mask: tuple[Any, ...] | None = None


def _stacked_mask(
    mask: Any, dtype: Any, batch: int, kv_heads: int, groups: int, q_len: int, kv_len: int
) -> Any:
    """The mask laid out as the stacked query heads need it; every layer of one forward pass
    gets the same mask, so the copy is made once per pass, not once per layer."""
    global _last_mask
    key = (mask.data_ptr(), mask.shape, mask._version, dtype, kv_heads, groups)
    last = _last_mask  # one read: another thread may replace it meanwhile
    if last is not None and last[0] == key:
        return last[1]
    out = mask[:, :, :, :kv_len].to(dtype).expand(batch, kv_heads, q_len, kv_len)
    out = out.unsqueeze(2).expand(batch, kv_heads, groups, q_len, kv_len)
    out = out.reshape(batch * kv_heads, groups * q_len, kv_len)
    _last_mask = (key, out, mask)  # holding `mask` keeps its data_ptr from being reused
    return out


def pays_off(model: Any) -> bool:
    """Whether this path is the faster one for `model`: in bf16 (measured 2.3x SDPA's kernel
    per layer on AMX), not in fp32 (0.88-0.91x for the whole `score` call; see the docstring)."""
    import torch

    param = next(iter(model.parameters()), None)
    return param is not None and param.dtype == torch.bfloat16


def use_tree_attention(model: Any) -> bool:
    """Point `model`'s attention at `tree_attention_forward` where it now uses SDPA.

    Returns whether it did (a model on eager or flash attention keeps it, and `score` does
    not pass the flag)."""
    global _registered
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) not in ("sdpa", NAME):
        return False
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if not _registered:
        AttentionInterface.register(NAME, tree_attention_forward)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
        _registered = True
    for sub in model.modules():  # PEFT wraps the model; every config it holds must agree
        sub_config = getattr(sub, "config", None)
        if sub_config is not None and getattr(sub_config, "_attn_implementation", None) == "sdpa":
            sub_config._attn_implementation = NAME
    return True
