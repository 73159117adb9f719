"""Question/answer pairs synthesised from documents, kept only where the documents back them.

Why this exists: training a model on raw documents lowers their perplexity without the model
using the knowledge (the "perplexity curse"); Ovadia et al. 2023 measured Mistral-7B at 0.504 on
current events after plain fine-tuning on the documents and 0.588 after training on paraphrased
question/answer pairs of them. Turning documents into QA pairs is the step that finding calls
for, and the same pairs serve as training rows for a task that has documents but no examples,
and as a synthetic dev set (marked as synthetic wherever it is used).

Any `Generator` writes them: the task's local model, or a stronger teacher behind an
OpenAI-compatible endpoint. Each chunk of the index is shown to it with a request for
`per_chunk` questions whose answers are short phrases copied from the chunk, and every pair then
passes four filters, counted in the `SynthReport`:

1. **parsed**: the output holds `Q: ...` / `A: ...` lines (the rest is `unparsable`);
2. **supported**: the answer, SQuAD-normalised, occurs in the normalised chunk text
   (`unsupported` otherwise: an answer the chunk does not hold is a hallucination to train on);
3. **round-trip**: a dense search for the question finds the chunk among the top `k`
   (`not_retrieved` otherwise: a question that does not point at its chunk is too vague to
   teach the fact, and a retriever could not answer it either);
4. **distinct**: one pair per normalised question (`duplicates`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from compoundai.errors import UserInputError
from compoundai.generators.base import Chat, GenerationConfig, Generator
from compoundai.progress import bar as progress_bar
from compoundai.provenance import json_digest

SYSTEM = "You write quiz questions about a passage. Follow the format exactly."
ASK = (
    "Passage:\n{text}\n\nWrite {n} different questions that this passage answers. Each answer "
    "must be a short phrase copied exactly from the passage. Use this format, one pair after "
    "another:\nQ: <question>\nA: <answer>"
)
PAIR = re.compile(
    r"^\s*(?:\d+[.)]\s*)?(?:Q|Question)\s*\d*\s*[:.]\s*(?P<q>.+?)\s*$"
    r"\s*^\s*(?:A|Answer)\s*\d*\s*[:.]\s*(?P<a>.+?)\s*$",
    re.MULTILINE | re.IGNORECASE,
)


class SynthReport(BaseModel):
    """What synthesis made and what each filter rejected (pairs, except `chunks`)."""

    model_config = ConfigDict(extra="forbid")

    chunks: int = 0
    generated: int = 0  # pairs parsed from the outputs
    unparsable: int = 0  # outputs with no pair in them
    unsupported: int = 0
    not_retrieved: int = 0
    duplicates: int = 0
    kept: int = 0
    seconds: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        """Kept pairs over parsed pairs."""
        return self.kept / self.generated if self.generated else 0.0

    def contract(self) -> dict[str, float]:
        """The last JSON line of `compoundai synth qa`."""
        out: dict[str, float] = self.model_dump(exclude={"seconds"})
        out["acceptance_rate"] = round(self.acceptance_rate, 4)
        return out


@dataclass(frozen=True)
class QAPair:
    """One kept pair, with the chunk it came from."""

    id: str
    question: str
    answer: str
    chunk_id: str
    source: str
    doc_id: str = ""
    title: str = ""

    def row(self) -> dict[str, Any]:
        """The JSONL row (`input_field: question`, `output_field: answer` in a task file)."""
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "source": self.source,
            "title": self.title,
            "synthetic": True,
        }


def normalize(text: str) -> str:
    """SQuAD's answer normalisation (lower case, no punctuation, articles or extra spaces)."""
    from compoundai_evaluators.metrics import normalize_answer

    return str(normalize_answer(text))


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """The (question, answer) pairs in a generator's output.

    >>> parse_pairs("Q: Who led the Normans?\\nA: Rollo\\n\\n2. Q: When? A: later")
    [('Who led the Normans?', 'Rollo')]
    """
    pairs = []
    for m in PAIR.finditer(text):
        question, answer = m.group("q").strip(), m.group("a").strip().strip('"').rstrip(".")
        if question and answer:
            pairs.append((question, answer))
    return pairs


def chunk_prompt(text: str, n: int) -> Chat:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": ASK.format(text=text.strip(), n=n)},
    ]


SYNTHETIC_DEV_SHARE = 4  # one synthesised pair in 4 (by a hash of its id) is held out


def is_synthetic_dev(pair_id: str) -> bool:
    """Whether a synthesised pair belongs to the synthetic dev set of a task without a dev
    split (one pair in `SYNTHETIC_DEV_SHARE`, by a hash of its id, so the same pair is held
    out whatever else was synthesised). Every lane that trains on synthesised pairs leaves
    these out when the task has no dev split: the measured decision is made on them."""
    import hashlib

    digest = hashlib.blake2b(pair_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SYNTHETIC_DEV_SHARE == 0


def synthetic_split(items: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """(to train on, synthetic dev) of synthesised items (pairs or examples, by their `id`)."""
    held = [is_synthetic_dev(str(item.id)) for item in items]
    return [i for i, h in zip(items, held, strict=True) if not h], [
        i for i, h in zip(items, held, strict=True) if h
    ]


def synthesize_qa(
    index: Any,
    generator: Generator,
    *,
    per_chunk: int = 3,
    k: int = 5,
    max_chunks: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[list[QAPair], SynthReport]:
    """Pairs for the chunks of `index` (every chunk, or `max_chunks` drawn with `seed`), each
    through the filters of the module docstring. Greedy decoding: the same index and generator
    give the same pairs."""
    from compoundai_retrievers.search import dense_search

    if per_chunk < 1 or k < 1:
        raise UserInputError("per_chunk and k must be at least 1")
    started = time.perf_counter()
    chunks = [
        (rid, row)
        for rid, row in index.iter_records(include=("metadatas", "documents"))
        if str(row.get("document") or "").strip()
    ]
    if not chunks:
        raise UserInputError(
            "the index holds no text to write questions about",
            hint="point at text, Markdown, HTML, JSONL or PDF files with some text in them",
        )
    chunks.sort(key=lambda c: c[0])
    if max_chunks is not None and len(chunks) > max_chunks:
        import random

        chunks = sorted(random.Random(seed).sample(chunks, max_chunks), key=lambda c: c[0])
    report = SynthReport(chunks=len(chunks))
    config = GenerationConfig(max_new_tokens=48 * per_chunk + 16, temperature=0.0, seed=seed)
    candidates: list[tuple[str, dict[str, Any], str, str]] = []
    bar = progress_bar(desc="writing questions", unit="chunk", total=len(chunks), enabled=progress)
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        bar.update(len(batch))
        outputs = generator.generate(
            [chunk_prompt(row["document"], per_chunk) for _, row in batch], config
        )
        for (rid, row), out in zip(batch, outputs, strict=True):
            pairs = parse_pairs(out.text)[:per_chunk]
            if not pairs:
                report.unparsable += 1
            report.generated += len(pairs)
            text = normalize(row["document"])
            for question, answer in pairs:
                norm = normalize(answer)
                if not norm or f" {norm} " not in f" {text} ":
                    report.unsupported += 1
                    continue
                candidates.append((rid, row, question, answer))
    bar.close()
    kept: list[QAPair] = []
    seen: set[str] = set()
    questions = [c[2] for c in candidates]
    hits = dense_search(index, questions, k=k) if questions else []
    for (rid, row, question, answer), found in zip(candidates, hits, strict=True):
        if rid not in {h.id for h in found}:
            report.not_retrieved += 1
            continue
        key = normalize(question)
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        kept.append(
            QAPair(
                id="synth-" + json_digest([rid, question, answer])[:12],
                question=question,
                answer=answer,
                chunk_id=rid,
                source=str(row.get("source", "")),
                doc_id=str(row.get("doc_id", "")),
                title=str(row.get("title", "")),
            )
        )
    report.kept = len(kept)
    report.seconds = round(time.perf_counter() - started, 2)
    return kept, report


def write_pairs(path: Any, pairs: Sequence[QAPair]) -> None:
    from compoundai.data import write_jsonl

    write_jsonl(path, [p.row() for p in pairs])
