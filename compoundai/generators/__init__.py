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
    "make_generator",
]


def make_generator(model: str, base_url: str | None, ctx: Any) -> Generator:
    """`model` behind an OpenAI-compatible endpoint at `base_url`, or, without one, the local
    model (a store name, Hugging Face id or path) on `ctx`'s device."""
    if base_url:
        from compoundai.generators.openai_backend import OpenAIGenerator

        return OpenAIGenerator(model, base_url=base_url)
    from compoundai.generators.local import LocalGenerator

    return LocalGenerator(model, ctx=ctx)


def __getattr__(name: str) -> Any:
    if name == "LocalGenerator":
        from compoundai.generators.local import LocalGenerator

        return LocalGenerator
    if name == "OpenAIGenerator":
        from compoundai.generators.openai_backend import OpenAIGenerator

        return OpenAIGenerator
    raise AttributeError(name)
