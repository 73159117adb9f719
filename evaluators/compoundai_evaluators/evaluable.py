"""What the evaluators need from a system: the `Evaluable` Protocol, and nothing more.

Why a Protocol: evaluation must see systems, never how they were built (the lanes, the training
stack). Anything with a name, a lane family, a generator (for its name and whether it is
remote), typed build facts (`compoundai.contract.BuildInfo`: fingerprint, training cost,
forgetting) and a `batch` method can be compared: a `CompoundSystem`, a test's scripted stand-in,
a user's own wrapper around another product. `prompts` is optional (`Prompted`): a system that
has it gets answer-cache keys that change when its prompts change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from compoundai.contract import Answer, BuildInfo


@runtime_checkable
class Evaluable(Protocol):
    name: str
    lane: str  # the lane family: prompt, rag, finetune, compound
    generator: Any  # `.name`; `.base_url` when it is a remote server
    info: BuildInfo

    def batch(self, inputs: Sequence[str]) -> list[Answer]: ...


@runtime_checkable
class Prompted(Protocol):
    def prompts(self, inputs: Sequence[str]) -> list[Any]: ...
