"""`profile(task) -> TaskProfile`: the measured signals the router decides on.

Every field is something counted or read from the task and its data, never a guess, so each
reason in a `Decision` can cite a number the user can check. Signals that need a model
(answer/corpus overlap with embeddings, probe bake-offs) are computed by the lanes issue's
probe mode; this module stays cheap enough to run on every `decide`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from compoundai.context import RunContext
from compoundai.models import BUNDLED, ModelStore
from compoundai.task import Task

# Known context windows of the bundled generators, used before the model is pulled.
_BUNDLED_CONTEXT = {"smollm2-135m-instruct": 8192}
CHARS_PER_TOKEN = 4.0  # a rough, documented estimate; the tokenizer is not loaded here


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
    n_preference_pairs: int = 0
    n_documents: int = 0
    corpus_tokens: int = 0
    examples_tokens: int = 0
    context_window: int = 2048
    context_window_source: str = "assumed"
    knowledge_freshness: str = "static"
    local_only: bool = False
    max_latency_ms: float | None = None
    budget_usd: float | None = None
    gpu_available: bool = False


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
    corpus_chars = 0
    for doc in task.documents:
        try:
            corpus_chars += doc.stat().st_size
        except OSError:
            continue
    train = task.split("train")
    example_chars = sum(len(e.input) + len(str(e.output)) for e in train)
    window, source = context_window_of(spec.models.generator, ctx)
    gpu = spec.constraints.gpu_available
    if gpu is None:
        gpu = ctx.resolve_device().startswith("cuda")
    return TaskProfile(
        task=spec.name,
        output_type=spec.output.type,
        n_labels=len(task.labels),
        has_schema=task.json_schema is not None,
        n_train=len(train),
        n_dev=len(task.split("dev")),
        n_test=len(task.split("test")),
        n_preference_pairs=sum(len(v) for v in task.preferences.values()),
        n_documents=len(task.documents),
        corpus_tokens=_tokens(corpus_chars),
        examples_tokens=_tokens(example_chars),
        context_window=window,
        context_window_source=source,
        knowledge_freshness=spec.constraints.knowledge_freshness,
        local_only=spec.constraints.local_only,
        max_latency_ms=spec.constraints.max_latency_ms,
        budget_usd=spec.constraints.budget_usd,
        gpu_available=bool(gpu),
    )
