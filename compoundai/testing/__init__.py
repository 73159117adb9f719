"""Fakes for fast tests: no downloads, no real model, deterministic.

- `FakeGenerator`: scripted answers (a list, a mapping from the last user message, or a
  function), and scripted `score` so label tasks can be tested without a model.
- `HashEmbedder`: words hashed into a fixed-size vector; texts sharing words are close.
- `tiny_causal_lm()`: a randomly initialised Llama with a byte-level BPE tokenizer trained on
  the spot, small enough to train for a few steps in a unit test.

Real models are for the `slow` tests; these are what the fast ones run on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from compoundai.generators.base import Chat, Generation, GenerationConfig

__all__ = ["FakeGenerator", "HashEmbedder", "tiny_causal_lm"]


def _last_user(chat: Chat) -> str:
    return next((m["content"] for m in reversed(chat) if m["role"] == "user"), "")


class FakeGenerator:
    """A scripted generator. Records every prompt it was given in `.calls`.

    >>> gen = FakeGenerator({"hi": "hello"}, default="?")
    >>> [g.text for g in gen.generate([[{"role": "user", "content": "hi"}]])]
    ['hello']
    """

    def __init__(
        self,
        responses: Sequence[str] | Mapping[str, str] | Callable[[Chat], str] = (),
        *,
        default: str = "",
        scores: Callable[[Chat, str], float] | None = None,
        name: str = "fake",
        latency_ms: float | Callable[[Chat], float] | None = None,
    ) -> None:
        """`latency_ms`, when given, is the latency each generation reports (a number, or one
        computed from the prompt), so tests of latency constraints need no clock."""
        self.name = name
        self.latency_ms = latency_ms
        self.responses = responses
        self.default = default
        self.scores = scores
        self.calls: list[Chat] = []
        self._next = 0

    def _answer(self, chat: Chat) -> str:
        if callable(self.responses):
            return self.responses(chat)
        if isinstance(self.responses, Mapping):
            return self.responses.get(_last_user(chat), self.default)
        if self._next < len(self.responses):
            self._next += 1
            return self.responses[self._next - 1]
        return self.default

    def generate(
        self, prompts: Sequence[Chat], config: GenerationConfig | None = None
    ) -> list[Generation]:
        out = []
        for chat in prompts:
            self.calls.append(chat)
            text = self._answer(chat)
            prompt_tokens = sum(len(m["content"].split()) for m in chat)
            extra: dict[str, object] = {}
            if self.latency_ms is not None:
                ms = self.latency_ms(chat) if callable(self.latency_ms) else self.latency_ms
                extra["latency_ms"] = float(ms)
            out.append(Generation(text, prompt_tokens, len(text.split()), extra=extra))
        return out

    def score(self, prompt: Chat, continuations: Sequence[str]) -> list[float]:
        """Scripted scores; by default the continuation equal to the scripted answer wins."""
        self.calls.append(prompt)
        if self.scores is not None:
            return [self.scores(prompt, c) for c in continuations]
        answer = self._answer(prompt)
        return [0.0 if c == answer else -10.0 - i * 1e-3 for i, c in enumerate(continuations)]


class HashEmbedder:
    """Deterministic bag-of-words embeddings: each lower-cased word hashed to a dimension.

    >>> emb = HashEmbedder(dim=32)
    >>> v = emb.embed(["card arrived", "card arrived late", "exchange rate"])
    >>> bool(v[0] @ v[1] > v[0] @ v[2])
    True
    """

    def __init__(self, dim: int = 64, name: str = "hash-embedder") -> None:
        self.dim = dim
        self.name = f"{name}-{dim}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
        return out


_TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer(corpus: Iterable[str] = (), vocab_size: int = 400) -> Any:
    """A byte-level BPE tokenizer trained in milliseconds, with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = list(corpus) or ["the quick brown fox jumps over the lazy dog"] * 4
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = _TINY_CHAT_TEMPLATE
    return fast


def tiny_causal_lm(
    corpus: Iterable[str] = (), *, hidden_size: int = 32, layers: int = 2, seed: int = 0
) -> tuple[Any, Any]:
    """A randomly initialised tiny Llama and its tokenizer: `(model, tokenizer)`.

    >>> model, tok = tiny_causal_lm()     # doctest: +SKIP
    >>> model.num_parameters() < 100_000  # doctest: +SKIP
    True
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer(corpus)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config), tokenizer
