"""The generator Protocol: chat messages in, text out; optionally, log-likelihood scores.

Two verbs only. `generate` is what every backend has. `score` (log-probability of given
continuations after a prompt) is what lets a label task choose among its allowed labels by
likelihood, as lm-evaluation-harness does for multiple choice, instead of snapping free text
afterwards; backends that cannot score (most HTTP APIs) simply do not implement it, and lanes
check with `isinstance(gen, Scorer)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
Chat = list[Message]


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings shared by every backend. `temperature == 0` means greedy."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class Generation:
    """One answer, with the token counts that cost reports need."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    """Anything that answers chat prompts in batches."""

    name: str

    def generate(
        self, prompts: Sequence[Chat], config: GenerationConfig | None = None
    ) -> list[Generation]: ...


@runtime_checkable
class Scorer(Protocol):
    """A generator that can also give log p(continuation | prompt) for several continuations."""

    def score(self, prompt: Chat, continuations: Sequence[str]) -> list[float]: ...


@runtime_checkable
class PerplexityMeter(Protocol):
    """A local generator that can measure its model's perplexity on general text."""

    def general_perplexity(self, text_file: str, max_tokens: int = 4096) -> float: ...
