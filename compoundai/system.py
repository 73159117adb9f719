"""`CompoundSystem`: a generator, a prompt template, optional demonstrations, an output parser.

It is what every lane builds and what `compare` and the server call. The output contract
decides how an answer is produced:
- a label set: each allowed label is scored by the model's likelihood and the best one wins
  (lm-evaluation-harness style); a backend that cannot score generates freely and the text is
  snapped to the closest label;
- a JSON schema: generate, then parse (and record whether it parsed);
- free text: generate.
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from compoundai.context import RunContext
from compoundai.data import Example
from compoundai.generators.base import Chat, GenerationConfig, Generator, Scorer


@dataclass
class Answer:
    """One system answer: the raw text, the parsed output, and what it cost."""

    text: str
    output: Any
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutputContract:
    type: str = "free_text"
    labels: list[str] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None

    def describe(self) -> str:
        """The contract as an instruction the model reads."""
        if self.type == "labels":
            return "Answer with exactly one label from this list and nothing else:\n" + "\n".join(
                self.labels
            )
        if self.type == "json_schema":
            return (
                "Answer with one JSON object that follows this JSON Schema, and nothing "
                "else:\n" + json.dumps(self.json_schema)
            )
        return "Answer briefly."


class DemoBank:
    """Labelled examples with their embeddings; picks the nearest ones as demonstrations."""

    def __init__(self, examples: Sequence[Example], embedder: Any) -> None:
        self.examples = list(examples)
        self.embedder = embedder
        self.vectors = embedder.embed([e.input for e in self.examples])

    def nearest(self, inputs: Sequence[str], k: int) -> list[list[Example]]:
        """The k most similar examples for each input, most similar last (closest to the query)."""
        queries = self.embedder.embed(list(inputs))
        sims = queries @ self.vectors.T
        picks = []
        for row in sims:
            top = row.argsort()[::-1][:k]
            picks.append([self.examples[i] for i in reversed(top)])
        return picks


def format_output(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class CompoundSystem:
    """A runnable system: `invoke` one input, `batch` many.

    >>> from compoundai.testing import FakeGenerator
    >>> sys = CompoundSystem("demo", "prompt", "Classify.", OutputContract("labels", ["a", "b"]),
    ...                      FakeGenerator({"x": "b"}))
    >>> sys.invoke("x").output
    'b'
    """

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
        info: dict[str, Any] | None = None,
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
        self.info = info or {}

    # -- prompts ---------------------------------------------------------------------------

    def prompts(self, inputs: Sequence[str]) -> list[Chat]:
        """The chat prompt for each input: system contract, demonstrations as turns, query."""
        system = f"{self.instructions}\n\n{self.contract.describe()}"
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

    # -- running ---------------------------------------------------------------------------

    def invoke(self, text: str) -> Answer:
        return self.batch([text])[0]

    def batch(self, inputs: Sequence[str]) -> list[Answer]:
        chats = self.prompts(inputs)
        if self.contract.type == "labels" and isinstance(self.generator, Scorer):
            return self._choose_labels(chats)
        started = time.perf_counter()
        generations = self.generator.generate(chats, self.generation)
        per_case = (time.perf_counter() - started) * 1000 / max(len(chats), 1)
        answers = []
        for g in generations:
            latency = float(g.extra.get("latency_ms", per_case))  # type: ignore[arg-type]
            answers.append(
                Answer(g.text, self.parse(g.text), g.prompt_tokens, g.completion_tokens, latency)
            )
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
        """Turn generated text into the contract's output type."""
        if self.contract.type == "labels":
            return snap_to_label(text, self.contract.labels)
        if self.contract.type == "json_schema":
            return parse_json(text)
        return text

    def _progress(self, items: list[Any]) -> Any:
        if not self.ctx.progress or len(items) < 8:
            return items
        from tqdm.auto import tqdm

        return tqdm(items, desc=f"{self.name}: score labels", unit="case", leave=False)


def _count_tokens(generator: Any, chat: Chat) -> int:
    if hasattr(generator, "count_tokens") and hasattr(generator, "render"):
        return int(generator.count_tokens(generator.render(chat)))
    return sum(len(m["content"].split()) for m in chat)


def snap_to_label(text: str, labels: Sequence[str]) -> str | None:
    """The label the text names: exact, then contained, then the closest by spelling."""
    cleaned = text.strip().strip("\"'`.").strip()
    if cleaned in labels:
        return cleaned
    lowered = cleaned.lower()
    for label in sorted(labels, key=len, reverse=True):
        if label.lower() in lowered:
            return label
    close = difflib.get_close_matches(lowered, [lb.lower() for lb in labels], n=1, cutoff=0.0)
    if close:
        return next(lb for lb in labels if lb.lower() == close[0])
    return None


def parse_json(text: str) -> Any:
    """The first JSON object in the text, or None."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError:
        return None
    return value
