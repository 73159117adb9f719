"""`prompt/stuffed`: every document in the prompt, numbered, when they fit; context stuffing.

Why a lane of its own: "prompt engineering wins when the behaviour change fits inside the
context window" is the background article's first rule, and for a 3-page FAQ (1.4k tokens) the
zero-shot prompt scored F1 0.025 because the FAQ was not in it. This variant puts all the
documents into the system message, split into numbered passages, under the same rules as the
rag lane's passages prompt (answer briefly from the passages, cite them like [1], or say the
abstention reply), so it is the rag lane without retrieval. It is built only when the passages
fit in `STUFF_SHARE` of the generator's context window (the rest is the question and the
answer); otherwise it is "not built", with the measured size in the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compoundai.context import RunContext
from compoundai.contract import Answer, BuildInfo
from compoundai.data import read_jsonl, write_jsonl
from compoundai.errors import LaneNotBuiltError, UserInputError
from compoundai.generators.base import Chat, GenerationConfig
from compoundai.lanes.prompt import answer_tokens, contract_of, shared_generator
from compoundai.lanes.rag.prompts import CONTEXT_RULES, PASSAGE_CHARS
from compoundai.system import CompoundSystem
from compoundai.task import Task

if TYPE_CHECKING:
    from compoundai.system_dir import SystemFile

STUFF_SHARE = 0.5  # of the context window, for the documents; the rest is question and answer
CHARS_PER_TOKEN = 4.0  # when the generator has no tokenizer to count with


class StuffedSystem(CompoundSystem):
    """A prompt system whose system message holds every passage, numbered."""

    kind = "stuffed"

    def __init__(self, *args: Any, passages: Sequence[dict[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passages = list(passages)
        lines = ["Passages:"]
        for n, p in enumerate(self.passages, start=1):
            title = f"({p['title']}) " if p.get("title") else ""
            lines.append(f"[{n}] {title}{p['text']}")
        self.context = "\n".join(lines)
        self.contexts = [p["text"] for p in self.passages]

    def system_message(self) -> str:
        return f"{self.instructions}\n\n{CONTEXT_RULES}\n\n{self.context}"

    def prompts(self, inputs: Sequence[str]) -> list[Chat]:
        system = self.system_message()
        return [
            [{"role": "system", "content": system}, {"role": "user", "content": f"Question: {t}"}]
            for t in inputs
        ]

    def batch(self, inputs: Sequence[str]) -> list[Answer]:
        answers = self.answer(self.prompts(inputs))
        for answer in answers:
            cited = answer.extra.pop("cited", [])
            ids = [self.passages[n - 1]["id"] for n in cited if 0 < n <= len(self.passages)]
            answer.extra["citations"] = ids
            answer.extra["contexts"] = self.contexts
        return answers

    def save_parts(self, folder: Path) -> dict[str, Any]:
        write_jsonl(folder / "passages.jsonl", self.passages)
        return {"stuffed": {"passages": "passages.jsonl", "count": len(self.passages)}}

    @classmethod
    def restore(
        cls, kwargs: dict[str, Any], saved: SystemFile, folder: Path, ctx: RunContext
    ) -> CompoundSystem:
        spec = saved.stuffed
        if spec is None:
            raise UserInputError(f"{folder}: a stuffed system without its passages section")
        from compoundai.system_trust import confined

        kwargs.pop("demos", None)
        kwargs.pop("shots", None)
        passages = read_jsonl(confined(folder, spec.passages, "stuffed.passages"))
        return cls(**kwargs, passages=passages)


def document_passages(task: Task) -> list[dict[str, str]]:
    """The task's documents as the index reads them, cut into passages of `PASSAGE_CHARS`."""
    from compoundai.profile import split_passages
    from compoundai.task_files import document_loader
    from compoundai_retrievers.loaders import load_file

    loader = document_loader(task)
    out: list[dict[str, str]] = []
    for path in task.documents:
        loaded = load_file(Path(path), loader)
        for doc in loaded.documents:
            doc_id = str(doc.metadata.get("doc_id") or Path(doc.source).name)
            for n, text in enumerate(split_passages([doc.text], size=PASSAGE_CHARS)):
                out.append({"id": f"{doc_id}#{n}", "title": doc.title, "text": text})
    return out


def stuffed_tokens(passages: Sequence[dict[str, str]], generator: Any) -> int:
    """How many tokens the passages take in the prompt (the generator's tokenizer if it has
    one, else ~4 characters a token)."""
    text = "\n".join(f"[{n}] {p['title']} {p['text']}" for n, p in enumerate(passages, 1))
    counter = getattr(generator, "count_tokens", None)
    return int(counter(text)) if callable(counter) else int(len(text) / CHARS_PER_TOKEN)


class StuffedLane:
    """Every document in the prompt (see the module docstring)."""

    family = "prompt"
    name = "prompt/stuffed"

    def build(self, task: Task, ctx: RunContext) -> CompoundSystem:
        from compoundai.profile import context_window_of

        if not task.documents:
            raise LaneNotBuiltError(
                "prompt/stuffed puts the task's documents in the prompt, and it has none",
                hint="add `documents:` to the task file",
            )
        if task.spec.output.type != "free_text":
            raise LaneNotBuiltError("prompt/stuffed answers free text from the documents")
        passages = document_passages(task)
        generator = shared_generator(task, ctx)
        window, _ = context_window_of(task.spec.models.generator, ctx)
        tokens = stuffed_tokens(passages, generator)
        budget = int(window * STUFF_SHARE)
        if tokens > budget:
            raise LaneNotBuiltError(
                f"prompt/stuffed: the {len(passages)} passages of the documents are ~{tokens} "
                f"tokens, over {STUFF_SHARE:.0%} of the {window}-token window ({budget}): they "
                "do not fit, so they are retrieved instead (the rag lane)",
            )
        return StuffedSystem(
            self.name,
            self.family,
            task.spec.instructions,
            contract_of(task),
            generator,
            ctx=ctx,
            info=BuildInfo(k=len(passages)),
            generation=GenerationConfig(max_new_tokens=min(64, answer_tokens(task) + 8)),
            passages=passages,
        )
