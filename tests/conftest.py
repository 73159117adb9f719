"""Shared fixtures. Fast tests use fakes; `slow` tests use the real small models from the cache.

Slow tests share the user's model cache (`$COMPOUNDAI_CACHE` or ~/.cache/compoundai) so the
one-time GGUF conversion is paid once per machine, not once per test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compoundai.context import RunContext, default_cache_dir
from compoundai.testing import FakeGenerator, HashEmbedder, tiny_causal_lm

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
