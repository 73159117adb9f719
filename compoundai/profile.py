"""`profile(task) -> TaskProfile`: the measured signals the router decides on.

Every field is something counted or read from the task and its data, never a guess, so each
reason in a `Decision` can cite a number the user can check. The one estimate is tokens, at
`CHARS_PER_TOKEN` characters a token (the tokenizer is not loaded). Nothing here loads a model:
the answer/corpus signal is lexical (`answer_overlap`), cheap enough to run on every `decide`;
signals that need a model (semantic overlap, probe bake-offs) belong to a probe mode.

How `answer_overlap` is measured: the documents are read as the RAG index reads them (JSONL
rows, text, Markdown, HTML, PDF) and cut into passages (paragraphs, at most `PASSAGE_CHARS`
characters). For up to `MAX_ANSWERS` reference answers of the dev split (the train split when
there is no dev split; empty answers, i.e. unanswerable questions, are skipped), the answer's
content words (lower-cased, common function words dropped) are looked up in every passage;
an answer's overlap is the share of its words found together in its best passage, and
`answer_overlap` is the mean over answers. `answer_verbatim` is the share of answers found
word for word (case and spacing ignored) in some passage. Both are measured only for
free-text outputs: labels and JSON objects are not facts to look up.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from compoundai.context import RunContext
from compoundai.models import BUNDLED, ModelStore
from compoundai.task import Task

# Known context windows of the bundled generators, used before the model is pulled.
_BUNDLED_CONTEXT = {"smollm2-135m-instruct": 8192}
CHARS_PER_TOKEN = 4.0  # a rough, documented estimate; the tokenizer is not loaded here
PASSAGE_CHARS = 2000  # longer paragraphs are cut into pieces this long for `answer_overlap`
MAX_ANSWERS = 200  # the first N non-empty reference answers are measured
TRAIN_TOKENS_PER_S = 400.0  # LoRA SFT of SmolLM2-135M measured on the 2-core CPU
COMPUTE_USD_PER_HOUR = 0.10  # the default price table's local compute
_FINAL_NUMBER = re.compile(r"(?:####\s*)?-?[\d,]*\.?\d+\s*$")
_WORD = re.compile(r"\w+")
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        """a an the and or but of to in on at by for with from as is are was were be been being
        it its this that these those i you he she we they me him her us them my your his our
        their what which who whom whose when where why how not no yes do does did so than then
        there here if into over about also can could would should will shall may might must""",
    )
)


class TaskProfile(BaseModel):
    """Signals of one task. Token counts are estimates at ~4 characters a token."""

    model_config = ConfigDict(extra="forbid")

    task: str
    output_type: str
    n_labels: int = 0
    has_schema: bool = False
    n_train: int = 0
    n_dev: int = 0
    n_test: int = 0
    n_schema_fields: int = 0
    n_preference_pairs: int = 0  # training pairs: what DPO would learn from
    n_preference_heldout: int = 0
    n_documents: int = 0
    n_passages: int = 0
    corpus_tokens: int = 0
    examples_tokens: int = 0
    answer_overlap: float | None = None
    answer_verbatim: float | None = None
    answers_measured: int = 0
    unanswerable_share: float | None = None
    context_window: int = 2048
    context_window_source: str = "assumed"
    knowledge_freshness: str = "static"
    local_only: bool = False
    max_latency_ms: float | None = None
    budget_usd: float | None = None
    gpu_available: bool = False
    remote_generator: bool = False  # models.openai_base_url is set
    # share of the training answers whose last token is a number (gsm8k's "#### 18"):
    # checkable answers, a verifiable reward
    numeric_answer_share: float | None = None
    # what training an adapter on the examples would cost at the price table's default
    # compute price: tokens x epochs at TRAIN_TOKENS_PER_S (CPU) or 10x that on a GPU
    training_usd_estimate: float = 0.0


def _tokens(chars: int) -> int:
    return int(chars / CHARS_PER_TOKEN)


def context_window_of(model: str, ctx: RunContext) -> tuple[int, str]:
    """The generator's context window and where the number came from."""
    store = ModelStore(ctx)
    candidates = []
    if model in BUNDLED and store.is_cached(model):
        candidates.append(store.path_of(model) / "config.json")
    elif Path(model).is_dir():
        candidates.append(Path(model) / "config.json")
    for config in candidates:
        try:
            value = json.loads(config.read_text()).get("max_position_embeddings")
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(value, int):
            return value, str(config)
    if model in _BUNDLED_CONTEXT:
        return _BUNDLED_CONTEXT[model], f"bundled model {model}"
    return 2048, "assumed (model config not available locally)"


def profile(task: Task, ctx: RunContext | None = None) -> TaskProfile:
    """Measure a loaded task.

    >>> from compoundai.task import load_task
    >>> p = profile(load_task("examples/banking77/task.yaml"))   # doctest: +SKIP
    >>> p.n_labels                                                # doctest: +SKIP
    77
    """
    ctx = ctx or RunContext()
    spec = task.spec
    from compoundai.task_files import document_loader

    texts = document_texts(task.documents, document_loader(task))
    passages = split_passages(texts)
    train = task.split("train")
    example_chars = sum(len(e.input) + len(str(e.output)) for e in train)
    window, source = context_window_of(spec.models.generator, ctx)
    gpu = spec.constraints.gpu_available
    if gpu is None:
        gpu = ctx.resolve_device().startswith("cuda")
    reference = task.split("dev") or train
    overlap: tuple[float | None, float | None, int] = (None, None, 0)
    if spec.output.type == "free_text" and passages:
        overlap = answer_overlap([first_answer(e.output) for e in reference], passages)
    eval_rows = task.split("dev") or task.split("test")
    unanswerable = (
        sum(first_answer(e.output) == "" for e in eval_rows) / len(eval_rows)
        if eval_rows and spec.output.type == "free_text"
        else None
    )
    numeric = None
    if train and spec.output.type == "free_text":
        numeric = sum(bool(_FINAL_NUMBER.search(str(e.output))) for e in train) / len(train)
    epochs = spec.finetune.epochs
    throughput = TRAIN_TOKENS_PER_S * (10 if gpu else 1)
    training_usd = _tokens(example_chars) * epochs / throughput / 3600 * COMPUTE_USD_PER_HOUR
    return TaskProfile(
        task=spec.name,
        output_type=spec.output.type,
        n_labels=len(task.labels),
        has_schema=task.json_schema is not None,
        n_train=len(train),
        n_dev=len(task.split("dev")),
        n_test=len(task.split("test")),
        n_schema_fields=schema_fields(task.json_schema) if task.json_schema else 0,
        n_preference_pairs=len(task.preferences.get("train", [])),
        n_preference_heldout=sum(len(task.preferences.get(s, [])) for s in ("dev", "test")),
        n_documents=len(task.documents),
        n_passages=len(passages),
        corpus_tokens=_tokens(sum(len(t) for t in texts)),
        examples_tokens=_tokens(example_chars),
        answer_overlap=overlap[0],
        answer_verbatim=overlap[1],
        answers_measured=overlap[2],
        unanswerable_share=None if unanswerable is None else round(unanswerable, 3),
        context_window=window,
        context_window_source=source,
        knowledge_freshness=spec.constraints.knowledge_freshness,
        local_only=spec.constraints.local_only,
        max_latency_ms=spec.constraints.max_latency_ms,
        budget_usd=spec.constraints.budget_usd,
        gpu_available=bool(gpu),
        remote_generator=bool(spec.models.openai_base_url),
        numeric_answer_share=None if numeric is None else round(numeric, 3),
        training_usd_estimate=round(training_usd, 6),
    )


def document_texts(paths: Sequence[Path], loader: Any = None) -> list[str]:
    """The text of every document, read as the RAG index reads it (one JSONL row = one text,
    through the task's `document_fields` when `loader` carries them).

    Falls back to the file's raw text where the retrievers' loader cannot read the file.
    """
    from compoundai_retrievers.loaders import load_file  # light: no chromadb, no model

    texts: list[str] = []
    for path in paths:
        loaded = load_file(Path(path), loader)
        if loaded.documents:
            texts += [d.text for d in loaded.documents]
            continue
        try:
            texts.append(Path(path).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
    return texts


def split_passages(texts: Sequence[str], size: int = PASSAGE_CHARS) -> list[str]:
    """Paragraphs (blank-line separated), longer ones cut at whitespace into `size` pieces.

    >>> split_passages(["one\\n\\ntwo", "three four five"], size=10)
    ['one', 'two', 'three four', 'five']
    """
    out: list[str] = []
    for text in texts:
        for para in re.split(r"\n\s*\n", text):
            para = para.strip()
            while len(para) > size:
                cut = para.rfind(" ", 0, size + 1)
                cut = cut if cut > 0 else size
                out.append(para[:cut].strip())
                para = para[cut:].strip()
            if para:
                out.append(para)
    return out


def first_answer(output: Any) -> str:
    """The reference answer as text: a string, or the first non-empty string of a list."""
    if isinstance(output, str):
        return output.strip()
    if isinstance(output, list | tuple):
        return next((o.strip() for o in output if isinstance(o, str) and o.strip()), "")
    return "" if output is None else json.dumps(output, ensure_ascii=False)


def content_words(text: str) -> set[str]:
    """Lower-cased words of `text` without common function words.

    >>> sorted(content_words("The Duke of Normandy"))
    ['duke', 'normandy']
    """
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def answer_overlap(
    answers: Sequence[str], passages: Sequence[str], limit: int = MAX_ANSWERS
) -> tuple[float | None, float | None, int]:
    """`(mean best-passage word overlap, verbatim share, answers measured)`; see the module doc.

    >>> answer_overlap(["William the Conqueror", "Paris"], ["William the Conqueror won."])
    (0.5, 0.5, 2)
    """
    index: dict[str, list[int]] = {}
    for i, passage in enumerate(passages):
        for word in content_words(passage):
            index.setdefault(word, []).append(i)
    flat = [" ".join(p.lower().split()) for p in passages]
    scores, verbatim = [], 0
    for answer in [a for a in answers if a and content_words(a)][:limit]:
        words = content_words(answer)
        hits: Counter[int] = Counter()
        for word in words:
            hits.update(index.get(word, ()))
        scores.append(max(hits.values(), default=0) / len(words))
        needle = " ".join(answer.lower().split())
        verbatim += any(needle in p for p in flat)
    if not scores:
        return None, None, 0
    return round(sum(scores) / len(scores), 3), round(verbatim / len(scores), 3), len(scores)


def schema_fields(schema: dict[str, Any]) -> int:
    """How many named properties a JSON Schema declares, at every depth; a property declared
    in several branches (`allOf`, `anyOf`, `oneOf`) at the same place counts once.

    >>> schema_fields({"properties": {"a": {}, "b": {"properties": {"c": {}}}}})
    3
    >>> schema_fields({"allOf": [{"properties": {"a": {}}}, {"properties": {"a": {}, "b": {}}}]})
    2
    """
    seen: set[tuple[str, ...]] = set()
    stack: list[tuple[Any, tuple[str, ...]]] = [(schema, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                for name, sub in props.items():
                    seen.add((*path, name))
                    stack.append((sub, (*path, name)))
            for key, value in node.items():
                if key != "properties":
                    stack.append((value, path))  # branches describe the same place
        elif isinstance(node, list):
            stack += [(item, path) for item in node]
    return len(seen)
