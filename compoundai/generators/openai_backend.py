"""`OpenAIGenerator`: any OpenAI-compatible chat endpoint through the official `openai` client.

OpenAI, vLLM, llama.cpp's server and compoundai's own server all speak this protocol. The
client does the retries (with backoff) and timeouts; we run requests concurrently from a small
thread pool, because a server batches concurrent requests far better than it serves a queue.
A failure after the retries raises `RunTimeFailure` naming the server and the cause.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from compoundai.errors import RunTimeFailure, UserInputError
from compoundai.generators.base import Chat, Generation, GenerationConfig


class OpenAIGenerator:
    """Chat completions from an OpenAI-compatible server.

    Arguments fall back to `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `COMPOUNDAI_OPENAI_MODEL`.

    >>> gen = OpenAIGenerator(model="smollm2", base_url="http://127.0.0.1:8000/v1",
    ...                       api_key="none")                          # doctest: +SKIP
    >>> gen.generate([[{"role": "user", "content": "Hi"}]])[0].text   # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        concurrency: int = 4,
        client: Any = None,
    ) -> None:
        self.name = model or os.environ.get("COMPOUNDAI_OPENAI_MODEL") or ""
        if not self.name:
            raise UserInputError(
                "no model name for the OpenAI backend",
                hint="pass model=... or set COMPOUNDAI_OPENAI_MODEL",
            )
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self.concurrency = concurrency
        if client is None:
            import openai

            key = api_key or os.environ.get("OPENAI_API_KEY")
            if not key and self.base_url is None:
                raise UserInputError(
                    "no API key for the OpenAI backend",
                    hint="set OPENAI_API_KEY, or pass base_url= for a local server",
                )
            client = openai.OpenAI(
                base_url=self.base_url,
                api_key=key or "not-needed",
                timeout=timeout,
                max_retries=max_retries,
            )
        self.client = client

    def generate(
        self, prompts: Sequence[Chat], config: GenerationConfig | None = None
    ) -> list[Generation]:
        config = config or GenerationConfig()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda chat: self._one(chat, config), prompts))

    def _one(self, chat: Chat, config: GenerationConfig) -> Generation:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.name,
            "messages": chat,
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
        }
        if config.seed is not None:
            kwargs["seed"] = config.seed
        if config.stop:
            kwargs["stop"] = list(config.stop)
        try:
            response = self.client.chat.completions.create(**kwargs)
        except openai.APIError as exc:
            where = self.base_url or "the OpenAI API"
            raise RunTimeFailure(f"generation failed at {where}: {exc}") from exc
        choice = response.choices[0]
        usage = response.usage
        return Generation(
            (choice.message.content or "").strip(),
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            choice.finish_reason or "stop",
        )
