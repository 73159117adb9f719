"""One chat renderer for generation and training: what the model was trained on is what it is
asked.

Why one function: `LocalGenerator` rendered prompts and the SFT stage rendered training rows
with two copies of the same logic, a training/serving skew waiting to happen (a template
change in one and the adapter answers a prompt format it never saw). Both call `render_chat`.

    >>> from compoundai.testing import tiny_tokenizer
    >>> tok = tiny_tokenizer()
    >>> render_chat(tok, [{"role": "user", "content": "hi"}], open_answer=True)
    '<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n'
"""

from __future__ import annotations

from typing import Any

Chat = list[dict[str, str]]


def render_chat(tokenizer: Any, chat: Chat, open_answer: bool) -> str:
    """The chat as the model reads it, ending where the assistant's answer starts when
    `open_answer` (a prompt), or after the last turn (a transcript prefix).

    Models with a chat template use it; others (the tiny test model) get a plain transcript.
    """
    if getattr(tokenizer, "chat_template", None):
        return str(
            tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=open_answer)
        )
    text = "\n".join(f"{m['role']}: {m['content']}" for m in chat)
    return text + ("\nassistant:" if open_answer else "\n")
