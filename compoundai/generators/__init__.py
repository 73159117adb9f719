"""Generators: the local transformers backend and the OpenAI-compatible HTTP backend.

Backends are imported lazily so that `import compoundai` never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compoundai.generators.base import Chat, Generation, GenerationConfig, Generator, Scorer

if TYPE_CHECKING:
    from compoundai.generators.local import LocalGenerator
    from compoundai.generators.openai_backend import OpenAIGenerator

__all__ = [
    "Chat",
    "Generation",
    "GenerationConfig",
    "Generator",
    "LocalGenerator",
    "OpenAIGenerator",
    "Scorer",
]


def __getattr__(name: str) -> Any:
    if name == "LocalGenerator":
        from compoundai.generators.local import LocalGenerator

        return LocalGenerator
    if name == "OpenAIGenerator":
        from compoundai.generators.openai_backend import OpenAIGenerator

        return OpenAIGenerator
    raise AttributeError(name)
