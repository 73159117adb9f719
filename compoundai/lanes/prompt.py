"""The prompt lane: instructions plus the output contract, zero-shot or few-shot.

Few-shot demonstrations are the training examples nearest to the query (embedding cosine),
given as chat turns (user message -> assistant answer). The format matters as much as the
choice: the same demonstrations pasted into the system prompt as plain text were measured
to score 0.00 on banking77 with SmolLM2, as chat turns 0.855.
"""

from __future__ import annotations

from compoundai.context import RunContext
from compoundai.contract import BuildInfo, OutputContract, format_output
from compoundai.errors import UserInputError
from compoundai.generators.base import GenerationConfig, Generator
from compoundai.provenance import json_digest
from compoundai.system import CompoundSystem, DemoBank
from compoundai.task import Task


def shared_generator(task: Task, ctx: RunContext) -> Generator:
    """The task's generator: the injected one (`ctx.clients["generator"]`), else the task's
    model, loaded once per run (`ctx.shared`) and shared by every lane that prompts it."""
    injected = ctx.clients.get("generator")
    if injected is not None:
        return injected
    from compoundai.generators import make_generator

    models = task.spec.models
    url = models.openai_base_url
    key = ("generator", "openai", models.generator, url) if url else (
        "generator", "local", models.generator
    )  # fmt: skip
    return ctx.shared(key, lambda: make_generator(models.generator, url, ctx))


def answer_tokens(task: Task) -> int:
    """How many tokens an answer may take: `output.max_answer_tokens`, else half again the
    longest training answer (at ~3.5 characters a token) plus 16, between 32 and 256; labels 24.

    Without it every free-text lane could generate 256 tokens even when told to answer with a
    phrase, which made a 30-case dev measurement of squad take over 15 minutes.
    """
    spec = task.spec.output
    if spec.type == "labels":
        return 24
    if spec.max_answer_tokens:
        return spec.max_answer_tokens
    answers = [format_output(e.output) for e in task.split("train") if e.output is not None]
    if not answers:
        answers = [p.chosen for p in task.preferences.get("train", [])]
    if not answers:
        return 256
    longest = max(len(a) for a in answers) / 3.5
    return int(min(256, max(32, 1.5 * longest + 16)))


def answer_generation(task: Task) -> GenerationConfig:
    """The decoding settings of a lane's answers (greedy; `answer_tokens` of them)."""
    return GenerationConfig(max_new_tokens=answer_tokens(task))


def contract_of(task: Task) -> OutputContract:
    return OutputContract(task.spec.output.type, list(task.labels), task.json_schema)


class PromptLane:
    """Zero-shot (`shots=0`) or few-shot with the `shots` nearest training examples."""

    family = "prompt"

    def __init__(self, shots: int = 0) -> None:
        self.shots = shots
        self.name = "prompt/zero-shot" if shots == 0 else f"prompt/{shots}-shot"

    def build(self, task: Task, ctx: RunContext) -> CompoundSystem:
        demos = None
        if self.shots:
            train = task.split("train")
            if not train:
                raise UserInputError(
                    f"{self.name} needs training examples to draw demonstrations from",
                    hint="add examples.train to the task file",
                )
            from compoundai_retrievers.embedders import make_embedder

            embedder = make_embedder(task.spec.models.embedder, ctx)
            key = ("demos", embedder.name, json_digest([[e.id, e.input] for e in train]))
            # one bank of embedded examples per run: every lane that needs it shares it
            demos = ctx.shared(key, lambda: DemoBank(train, embedder))
        return CompoundSystem(
            self.name,
            self.family,
            task.spec.instructions,
            contract_of(task),
            shared_generator(task, ctx),
            demos=demos,
            shots=self.shots,
            generation=answer_generation(task),
            ctx=ctx,
            info=BuildInfo(shots=self.shots),
        )
