"""Shared fixtures. Fast tests use fakes; `slow` tests use the real small models from the cache.

Slow tests share the user's model cache (`$COMPOUNDAI_CACHE` or ~/.cache/compoundai) so the
one-time GGUF conversion is paid once per machine, not once per test.
"""

from __future__ import annotations

import os
from pathlib import Path

# Under pytest-xdist (`make test` runs two workers), each worker gets its share of the cores,
# so two model-running tests side by side do not each start a thread per core and thrash.
# Set before torch is imported; subprocesses the tests start inherit it.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import pytest  # noqa: E402 (after the thread count, which torch reads when it loads)

from compoundai.context import RunContext, default_cache_dir  # noqa: E402
from compoundai.testing import FakeGenerator, HashEmbedder, tiny_causal_lm  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BANKING = ROOT / "examples" / "banking77" / "task.yaml"
CORPUS = [
    "my card has not arrived yet",
    "what is the exchange rate",
    "card_arrival exchange_rate top_up",
    "the quick brown fox jumps over the lazy dog",
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama saved like any local model directory (trains in seconds)."""
    model, tok = tiny_causal_lm(CORPUS * 4, hidden_size=32, layers=2)
    out = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def fake_ctx(tmp_path: Path) -> RunContext:
    ctx = RunContext(cache_dir=tmp_path / "cache", progress=False)
    ctx.clients["embedder"] = HashEmbedder()
    return ctx


@pytest.fixture(scope="session")
def real_ctx() -> RunContext:
    return RunContext(cache_dir=default_cache_dir(), progress=False)


def label_echo_generator(labels: list[str]) -> FakeGenerator:
    """A fake that 'answers' with the label whose words overlap the query most."""

    def answer(chat: list[dict[str, str]]) -> str:
        query = set(chat[-1]["content"].lower().replace("?", "").split())
        return max(labels, key=lambda lb: len(query & set(lb.split("_"))))

    return FakeGenerator(answer)
