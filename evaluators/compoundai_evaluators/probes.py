"""Probes: measurements of a system that are not answers to the held-out cases.

- `preference_accuracy`: on held-out chosen/rejected pairs, does the system's model give the
  chosen answer the higher log-likelihood (summed over its tokens, after the system's own
  prompt)? What DPO is meant to move; needs a generator that can score (`Scorer`).
- forgetting: general-text perplexity of the lane's model against the base model's. The
  training stack records it in the adapter manifest (`info["forgetting"]`, with
  `perplexity_before`, `perplexity_after`, `ratio`); `local_perplexity_hook` asks a system's
  generator for it (`PerplexityMeter`) when a general-text file is given: evaluation sees
  systems, never the training stack.

Both return per-item 0/1 scores or plain numbers; `compare` bootstraps them like any metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compoundai.data import PreferencePair
from compoundai.generators.base import PerplexityMeter, Scorer
from compoundai_evaluators.evaluable import Evaluable, Prompted

PerplexityHook = Callable[[Any], float | None]


def preference_accuracy(system: Any, pairs: Sequence[PreferencePair]) -> np.ndarray | None:
    """Per pair, 1.0 when the chosen answer scores higher than the rejected; None if no scorer.

    >>> from compoundai.data import PreferencePair
    >>> from compoundai.contract import OutputContract
    >>> from compoundai.system import CompoundSystem
    >>> from compoundai.testing import FakeGenerator
    >>> gen = FakeGenerator(scores=lambda chat, c: -len(c))  # prefers shorter answers
    >>> system = CompoundSystem("s", "prompt", "Answer.", OutputContract(), gen)
    >>> pairs = [PreferencePair("1", "q", "short", "much longer"),
    ...          PreferencePair("2", "q", "long one", "no")]
    >>> preference_accuracy(system, pairs).tolist()
    [1.0, 0.0]
    """
    generator = getattr(system, "generator", None)
    if not pairs or not isinstance(generator, Scorer):
        return None
    prompts = [p.prompt for p in pairs]
    if isinstance(system, Prompted):
        chats = system.prompts(prompts)
    else:
        chats = [[{"role": "user", "content": text}] for text in prompts]
    out = []
    for chat, pair in zip(chats, pairs, strict=True):
        chosen, rejected = generator.score(chat, [pair.chosen, pair.rejected])
        out.append(float(chosen > rejected))
    return np.array(out, dtype=float)


def forgetting_of(system: Evaluable) -> dict[str, float] | None:
    """The forgetting record a training run left in the system's build facts, if any."""
    record = system.info.forgetting
    if record is None or not record.perplexity_before:
        return None
    before, after = record.perplexity_before, record.perplexity_after
    return {
        "perplexity_before": float(before),
        "perplexity_after": float(after),
        "ratio": float(record.ratio or after / before),
    }


def local_perplexity_hook(text_file: str | Path, max_tokens: int = 4096) -> PerplexityHook:
    """A hook giving general-text perplexity for systems whose generator can measure it
    (`PerplexityMeter`: the local transformers backend); None for the others.

    Results are memoised per generator object, so lanes sharing one model pay once.

    >>> hook = local_perplexity_hook("general.txt")  # doctest: +SKIP
    >>> hook(system)                                  # doctest: +SKIP
    23.4
    """
    seen: dict[int, float | None] = {}

    def measure(system: Any) -> float | None:
        generator = getattr(system, "generator", None)
        if not isinstance(generator, PerplexityMeter):
            return None
        if id(generator) not in seen:
            seen[id(generator)] = generator.general_perplexity(str(text_file), max_tokens)
        return seen[id(generator)]

    return measure
