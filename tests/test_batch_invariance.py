"""Served answers must not depend on the batch: the real MiniLM, alone and in batches (slow).

The server answers the requests waiting together in one `system.batch` call, so the same input
lands in batches of different sizes and company. Its retrieval (the query's embedding, the
nearest demonstrations, the kNN vote) must come out the same in every one: bit for bit for the
vectors, identical prompts and labels for the systems.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from compoundai.context import RunContext
from compoundai.lanes import PromptLane, RagLane
from compoundai.task import load_task
from compoundai_retrievers.embedders import make_embedder
from tests.conftest import BANKING, label_echo_generator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def task():
    return load_task(BANKING)


@pytest.fixture(scope="module")
def ctx(real_ctx, task):
    ctx = RunContext(cache_dir=real_ctx.cache_dir, progress=False)
    ctx.clients["generator"] = label_echo_generator(task.labels)
    return ctx


def inputs(task, n: int = 150) -> list[str]:
    return [c.input for c in task.split("test")[:n]]


def test_minilm_query_vectors_do_not_depend_on_the_batch(ctx, task):
    embedder = make_embedder(task.spec.models.embedder, ctx)
    texts = inputs(task, 64)
    together = embedder.embed_queries(texts)
    alone = np.stack([embedder.embed_queries([t])[0] for t in texts])
    assert np.array_equal(together, alone)
    shuffled = random.Random(0).sample(texts, len(texts))
    again = embedder.embed_queries([*shuffled, "a longer query that pads every other one"])
    order = {t: i for i, t in enumerate(texts)}
    assert all(np.array_equal(again[i], together[order[t]]) for i, t in enumerate(shuffled))


def test_few_shot_demonstrations_do_not_depend_on_the_batch(ctx, task):
    system = PromptLane(shots=5).build(task, ctx)
    texts = inputs(task)
    together = system.prompts(texts)
    alone = [system.prompts([t])[0] for t in texts]
    assert [i for i, (a, b) in enumerate(zip(together, alone, strict=True)) if a != b] == []


def test_knn_vote_labels_do_not_depend_on_the_batch(ctx, task):
    system = RagLane("knn-vote").build(task, ctx)
    texts = inputs(task)
    together = system.batch(texts)
    alone = []
    for text in texts:
        system._hits.clear()  # retrieval is memoised per input: search again, alone
        alone.append(system.batch([text])[0])
    assert [a.extra["retrieved_ids"] for a in alone] == [a.extra["retrieved_ids"] for a in together]
    assert [a.output for a in alone] == [a.output for a in together]
