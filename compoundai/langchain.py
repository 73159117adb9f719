"""`CompoundSystem.as_runnable()`: a system as a LangChain `Runnable` (needs langchain-core).

Input: a string, a dict with an `input` key, a LangChain prompt value or a list of messages
(the last human message is the input). Output: the answer's text (the parsed output, as the
server returns it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import Runnable, RunnableConfig

from compoundai.contract import answer_content, text_chunks
from compoundai.errors import UserInputError

if TYPE_CHECKING:
    from compoundai.system import CompoundSystem


def input_text(value: Any) -> str:
    """The system's input from what a chain passes along."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return str(value["input"])
    if hasattr(value, "to_messages"):  # a PromptValue
        value = value.to_messages()
    if isinstance(value, list):
        for message in reversed(value):
            if getattr(message, "type", None) == "human" and isinstance(message.content, str):
                return message.content
    raise UserInputError(
        f"a compound system takes text, not {type(value).__name__}",
        hint="pass a string, {'input': text}, or messages ending in a human message",
    )


class SystemRunnable(Runnable[Any, str]):
    """A `CompoundSystem` in a LangChain chain."""

    def __init__(self, system: CompoundSystem) -> None:
        self.system = system

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return answer_content(self.system.invoke(input_text(input)))

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[str]:
        answers = self.system.batch([input_text(i) for i in inputs])
        return [answer_content(a) for a in answers]

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[str]:
        yield from text_chunks(self.invoke(input, config))
