"""Fakes for the UI tests, importable by the run's child process (`--context MODULE:FUNCTION`).

One scripted generator serves every bundled task: on a label task it names the label whose
words the query shares most (read from the label list in the system message), on a question
with numbered passages it answers with the first words of passage [1] and cites it, and it
says "I don't know." otherwise, so the free-text lanes abstain on some cases.
"""

from __future__ import annotations

import re
import time

from compoundai.context import RunContext
from compoundai.testing import FakeGenerator, HashEmbedder

LABELS_AFTER = "Answer with exactly one label from this list and nothing else:\n"


def _answer(chat: list[dict[str, str]], *, worse: bool = False) -> str:
    system = chat[0]["content"] if chat and chat[0]["role"] == "system" else ""
    query = chat[-1]["content"]
    if LABELS_AFTER in system:
        labels = system.split(LABELS_AFTER, 1)[1].split("\n")
        words = set(query.lower().replace("?", "").split())
        ranked = sorted(labels, key=lambda lb: -len(words & set(lb.split("_"))))
        # the "worse" generator takes the runner-up on every other case
        return ranked[1] if worse and len(query) % 2 else ranked[0]
    passage = re.search(r"\[1\]\s*(.*)", query)
    if passage and len(query) % 3:
        return " ".join(passage.group(1).split()[:4]) + " [1]"
    return "I don't know."


def generator(*, worse: bool = False) -> FakeGenerator:
    return FakeGenerator(lambda chat: _answer(chat, worse=worse), name="fake-ui")


def fake_context(ctx: RunContext) -> RunContext:
    """The worker's context with the fakes injected (what `compoundai ui` tests run with)."""
    ctx.clients["generator"] = generator()
    ctx.clients["embedder"] = HashEmbedder()
    return ctx


class SlowGenerator(FakeGenerator):
    """The same answers, a second each: a run long enough to cancel."""

    def generate(self, prompts, config=None):  # type: ignore[no-untyped-def]
        time.sleep(1.0)
        return super().generate(prompts, config)

    def score(self, prompt, continuations):  # type: ignore[no-untyped-def]
        time.sleep(1.0)
        return super().score(prompt, continuations)


def slow_context(ctx: RunContext) -> RunContext:
    ctx.clients["generator"] = SlowGenerator(_answer, name="fake-slow")
    ctx.clients["embedder"] = HashEmbedder()
    return ctx
