"""`CompoundSystem`: a generator, a prompt template, optional demonstrations, an output parser.

It is what every lane builds and what `compare` and the server call. The output contract
decides how an answer is produced:
- a label set: each allowed label is scored by the model's likelihood and the best one wins
  (lm-evaluation-harness style); a backend that cannot score generates freely and the text is
  snapped to the closest label;
- a JSON schema: generate, then parse (and record whether it parsed);
- free text: generate, then the contract's one abstention rule (`compoundai.contract`).

This module is the runtime only. Saving a system to a directory and loading it back is
`compoundai.system_dir`'s (`save_system`, `load_system`); what a kind adds to the saved file it
writes in `save_parts` and reads in `restore`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from compoundai.context import RunContext
from compoundai.contract import (
    Answer,
    BuildInfo,
    OutputContract,
    answer_content,
    format_output,
    free_text_output,
    parse_output,
    text_chunks,
)
from compoundai.data import Example
from compoundai.errors import RunTimeFailure
from compoundai.generators.base import Chat, Generation, GenerationConfig, Generator, Scorer


class DemoBank:
    """Labelled examples with their embeddings; picks the nearest ones as demonstrations."""

    def __init__(self, examples: Sequence[Example], embedder: Any) -> None:
        self.examples = list(examples)
        self.embedder = embedder
        self.vectors = embedder.embed([e.input for e in self.examples])

    def nearest(self, inputs: Sequence[str], k: int) -> list[list[Example]]:
        """The k most similar examples for each input, most similar last (closest to the query)."""
        import numpy as np

        # queries one at a time (batch-invariant); the bank itself was embedded in batches
        path = getattr(self.embedder, "embed_queries", None)
        queries = path(list(inputs)) if callable(path) else self.embedder.embed(list(inputs))
        picks = []
        for query in queries:
            # One query at a time: a matrix-vector product's result cannot depend on the other
            # queries of the batch (a matrix product's does, by ~1e-7: the kernels block by the
            # row count), so a served answer does not depend on its batch. Ties: example order.
            sims = self.vectors @ query
            top = np.argsort(-sims, kind="stable")[:k]
            picks.append([self.examples[i] for i in reversed(top)])
        return picks


class CompoundSystem:
    """A runnable system: `invoke` one input, `batch` many.

    >>> from compoundai.testing import FakeGenerator
    >>> sys = CompoundSystem("demo", "prompt", "Classify.", OutputContract("labels", ["a", "b"]),
    ...                      FakeGenerator({"x": "b"}))
    >>> sys.invoke("x").output
    'b'
    """

    kind = "compound"  # what `load_system` rebuilds from system.json (`system_dir.KINDS`)

    def __init__(
        self,
        name: str,
        lane: str,
        instructions: str,
        contract: OutputContract,
        generator: Generator,
        *,
        demos: DemoBank | None = None,
        shots: int = 0,
        generation: GenerationConfig | None = None,
        ctx: RunContext | None = None,
        info: BuildInfo | None = None,
        contract_in_prompt: bool = True,
    ) -> None:
        self.name = name
        self.lane = lane
        self.instructions = instructions
        self.contract = contract
        self.generator = generator
        self.demos = demos
        self.shots = shots if demos is not None else 0
        self.generation = generation or GenerationConfig(
            max_new_tokens=24 if contract.type == "labels" else 256
        )
        self.ctx = ctx or RunContext()
        self.info = info or BuildInfo()
        # A fine-tuned adapter learnt the contract from its training answers; its prompt is the
        # instructions alone, exactly as in training (no 77-label list to read every time).
        self.contract_in_prompt = contract_in_prompt
        # Set by `load_system` (kept by a later save): the router's decision and the provenance.
        self.decision: dict[str, Any] | None = None
        self.provenance: dict[str, Any] | None = None

    # -- prompts ---------------------------------------------------------------------------

    def prompts(self, inputs: Sequence[str]) -> list[Chat]:
        """The chat prompt for each input: system contract, demonstrations as turns, query."""
        system = self.system_message()
        demos: list[list[Example]] = [[] for _ in inputs]
        if self.demos is not None and self.shots:
            demos = self.demos.nearest(inputs, self.shots)
        chats = []
        for text, shots in zip(inputs, demos, strict=True):
            chat: Chat = [{"role": "system", "content": system}]
            for ex in shots:
                chat.append({"role": "user", "content": ex.input})
                chat.append({"role": "assistant", "content": format_output(ex.output)})
            chat.append({"role": "user", "content": text})
            chats.append(chat)
        return chats

    def system_message(self) -> str:
        if not self.contract_in_prompt:
            return self.instructions
        return f"{self.instructions}\n\n{self.contract.describe()}"

    # -- running ---------------------------------------------------------------------------

    def invoke(self, text: str) -> Answer:
        return self.batch([text])[0]

    def batch(self, inputs: Sequence[str]) -> list[Answer]:
        return self.answer(self.prompts(inputs))

    def stream(self, text: str) -> Iterator[str]:
        """The answer's text in pieces. The whole answer is computed first: the output contract
        needs all of it (a label chosen by likelihood, JSON validated, citations stripped)."""
        yield from text_chunks(answer_content(self.invoke(text)))

    def as_runnable(self) -> Any:
        """This system as a LangChain `Runnable` (str in, the answer's text out).

        `batch` goes to the system's own `batch`, so a chain batches as the system does.

        >>> chain = system.as_runnable() | (lambda label: label.upper())  # doctest: +SKIP
        """
        from compoundai.langchain import SystemRunnable

        return SystemRunnable(system=self)

    def answer(self, chats: list[Chat]) -> list[Answer]:
        """Answer prompts already built: label likelihood, or generate and parse."""
        if self.contract.type == "labels" and isinstance(self.generator, Scorer):
            return self._choose_labels(chats)
        started = time.perf_counter()
        generations = self.generator.generate(chats, self.generation)
        per_case = (time.perf_counter() - started) * 1000 / max(len(chats), 1)
        answers = []
        for g in generations:
            latency = float(g.extra.get("latency_ms", per_case))  # type: ignore[arg-type]
            answer = Answer(g.text, None, g.prompt_tokens, g.completion_tokens, latency)
            if self.contract.type == "free_text":
                # the one abstention rule (`compoundai.contract`), the same for every lane
                said = free_text_output(g.text)
                answer.output = said.output
                if said.abstained:
                    answer.extra["abstained"] = True
                    answer.extra["abstain_reason"] = "the answer declines to answer"
                if said.cited:
                    answer.extra["cited"] = said.cited
            else:
                answer.output = self.parse(g.text)
            answers.append(answer)
        return answers

    def _choose_labels(self, chats: list[Chat]) -> list[Answer]:
        scorer: Any = self.generator
        labels = self.contract.labels
        answers = []
        for chat in self._progress(chats):
            started = time.perf_counter()
            scores = scorer.score(chat, labels)
            best = max(range(len(labels)), key=scores.__getitem__)
            latency = (time.perf_counter() - started) * 1000
            prompt_tokens = _count_tokens(self.generator, chat)
            answers.append(
                Answer(
                    labels[best], labels[best], prompt_tokens, 0, latency, {"logprob": scores[best]}
                )
            )
        return answers

    def parse(self, text: str) -> Any:
        """Turn generated text into the contract's output type (`contract.parse_output`)."""
        return parse_output(self.contract, text)

    def _progress(self, items: list[Any]) -> Any:
        if not self.ctx.progress or len(items) < 8:
            return items
        from tqdm.auto import tqdm

        return tqdm(items, desc=f"{self.name}: score labels", unit="case", leave=False)

    # -- saving (the format is `compoundai.system_dir`'s; these are a kind's own parts) ------

    def save_parts(self, folder: Path) -> dict[str, Any]:
        """What a system kind adds to system.json (and writes beside it); nothing here."""
        return {}

    @classmethod
    def restore(cls, kwargs: dict[str, Any], saved: Any, folder: Path, ctx: RunContext) -> Any:
        """Build the object from the common arguments `load_system` read; subclasses read
        their own parts of `saved` (the validated system.json)."""
        return cls(**kwargs)


class NoGenerator:
    """The generator slot of a system that never generates (the rag lane's kNN vote)."""

    name = "none"

    def generate(
        self, prompts: Sequence[Chat], config: GenerationConfig | None = None
    ) -> list[Generation]:
        raise RunTimeFailure("this system answers without a generator; it cannot generate")


def _count_tokens(generator: Any, chat: Chat) -> int:
    if hasattr(generator, "count_tokens") and hasattr(generator, "render"):
        return int(generator.count_tokens(generator.render(chat)))
    return sum(len(m["content"].split()) for m in chat)


__all__ = ["CompoundSystem", "DemoBank", "NoGenerator"]
