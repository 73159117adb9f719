"""The OpenAI backend against a real third-party server: llama-cpp-python's, on 127.0.0.1.

It serves the same SmolLM2 GGUF the model store converts, so the prompt and RAG lanes run end
to end with a server compoundai did not write as their generator. Also: a timeout, and a
server that goes away mid-run (a clear error; the answers finished before it are kept).

llama-cpp-python is built from source by `make test` (see the Makefile for the CPU flags);
where it could not be built these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from compoundai.context import RunContext
from compoundai.errors import RunTimeFailure
from compoundai.generators.base import GenerationConfig
from compoundai.generators.openai_backend import OpenAIGenerator
from compoundai.models import BUNDLED, _locate_bundled
from compoundai.serve import free_port
from compoundai.task import load_task
from tests.conftest import BANKING, ROOT

pytestmark = pytest.mark.slow

try:
    import llama_cpp  # noqa: F401

    HAVE_LLAMA_CPP = True
except ImportError:
    HAVE_LLAMA_CPP = False
    if os.environ.get("CI"):
        raise RuntimeError("llama-cpp-python is not installed; `make test` builds it") from None

MODEL = "smollm2"


def start_server(gguf: Path, port: int, log: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf), "--model_alias", MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "4096", "--n_threads", os.environ.get("OMP_NUM_THREADS", "2"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("llama.cpp server did not start in 90 s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def gguf(tmp_path_factory) -> Path:
    if not HAVE_LLAMA_CPP:
        pytest.skip("llama-cpp-python is not installed (make test builds it)")
    return _locate_bundled(BUNDLED["smollm2-135m-instruct"], tmp_path_factory.mktemp("gguf"))


@pytest.fixture(scope="module")
def llama_server(gguf, tmp_path_factory):
    port = free_port()
    proc = start_server(gguf, port, tmp_path_factory.mktemp("llama") / "server.log")
    yield f"http://127.0.0.1:{port}/v1"
    stop(proc)


def test_generator_answers_with_usage_from_llama_cpp(llama_server):
    gen = OpenAIGenerator(MODEL, base_url=llama_server, api_key="none")
    chats = [[{"role": "user", "content": f"What is {n} plus {n}?"}] for n in (1, 2, 3)]
    out = gen.generate(chats, GenerationConfig(max_new_tokens=12))
    assert len(out) == 3 and all(g.text for g in out)
    assert all(g.prompt_tokens > 5 and 0 < g.completion_tokens <= 12 for g in out)
    # greedy decoding is deterministic on this server too
    again = gen.generate(chats[:1], GenerationConfig(max_new_tokens=12))
    assert again[0].text == out[0].text


@pytest.fixture
def server_ctx(real_ctx) -> RunContext:
    """The real models' cache, but clients of its own: the OpenAI generator these tests make
    must not leak into the session's `real_ctx`, which other tests use with local models."""
    return RunContext(cache_dir=real_ctx.cache_dir, progress=False)


def test_prompt_and_rag_lanes_run_with_llama_cpp_as_generator(llama_server, server_ctx, tmp_path):
    from compoundai.run import run_task

    task = load_task(BANKING)
    task.spec.models.openai_base_url = llama_server
    task.spec.models.generator = MODEL
    report = run_task(
        task, tmp_path / "bank", lanes=["prompt", "rag"], limit=12, ctx=server_ctx, mode="rules"
    )
    lanes = {r.name: r for r in report.lanes}
    assert {"prompt/zero-shot", "rag/demos", "rag/knn-vote"} <= set(lanes)
    assert all(r.status == "ok" for r in lanes.values()), [r.message for r in lanes.values()]
    # the server's usage counts reach the report (a non-scoring backend generates and snaps)
    assert (
        lanes["rag/demos"].cost["prompt_tokens"] > 0 < lanes["rag/demos"].cost["completion_tokens"]
    )
    # the demos as chat turns make SmolLM2 answer with labels; knn-vote needs no generator
    assert lanes["rag/demos"].metrics["accuracy"].value >= 0.5

    docs = load_task(ROOT / "examples" / "squad_docs_qa" / "task.yaml")
    docs.spec.models.openai_base_url = llama_server
    docs.spec.models.generator = MODEL
    server_ctx.clients.pop("generator", None)
    report = run_task(docs, tmp_path / "docs", lanes=["rag"], limit=6, ctx=server_ctx, mode="rules")
    rag, bm25 = report.lanes  # the passages through the server, and the non-LLM baseline
    assert rag.name == "rag" and bm25.name == "rag/bm25"
    assert rag.status == "ok" and rag.cost["completion_tokens"] > 0
    assert rag.metrics["recall_at_5"].value > 0
    assert bm25.status == "ok" and bm25.cost["completion_tokens"] == 0


def test_a_timeout_is_a_clear_error(llama_server):
    gen = OpenAIGenerator(MODEL, base_url=llama_server, api_key="none", timeout=0.01, max_retries=0)
    with pytest.raises(RunTimeFailure, match=r"generation failed at http://127\.0\.0\.1"):
        gen.generate([[{"role": "user", "content": "Write a long story."}]])


def test_server_going_away_mid_run_keeps_finished_answers(gguf, server_ctx, tmp_path, monkeypatch):
    import importlib

    from compoundai.run import run_task

    # the module (the package's `compare` attribute is the function of that name)
    compare = importlib.import_module("compoundai_evaluators.compare")
    # answers are stored 8 at a time here (32 in a run): the same path with about 40 requests
    # through the server instead of about 88
    CACHE_CHUNK = 8
    monkeypatch.setattr(compare, "CACHE_CHUNK", CACHE_CHUNK)

    port = free_port()
    log = tmp_path / "server.log"
    proc = start_server(gguf, port, log)
    url = f"http://127.0.0.1:{port}/v1"
    task = load_task(BANKING)
    task.spec.models.openai_base_url = url
    task.spec.models.generator = MODEL
    cache = tmp_path / "out" / "cache"

    def answers_cached() -> int:
        return sum(len(f.read_text().splitlines()) for f in cache.glob("*.jsonl"))

    import threading

    def kill_after_first_chunk() -> None:
        deadline = time.monotonic() + 300
        while answers_cached() < CACHE_CHUNK and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()

    killer = threading.Thread(target=kill_after_first_chunk, daemon=True)
    killer.start()
    # one chunk and a few cases more: the kill lands while the second chunk is in flight
    # (each answer takes far longer than the killer's 50 ms poll), and the re-run has little
    # left to answer
    n = CACHE_CHUNK + 8
    try:
        report = run_task(
            task, tmp_path / "out", lanes=["prompt"], limit=n, ctx=server_ctx, mode="rules"
        )
    finally:
        killer.join()
    zero_shot, few_shot = report.lanes  # `prompt` is zero-shot and 5-shot
    for lane in (zero_shot, few_shot):
        assert lane.status == "failed" and "generation failed at http://127.0.0.1" in lane.message
    kept = answers_cached()  # the zero-shot chunks finished before the kill
    assert CACHE_CHUNK <= kept < n

    proc = start_server(gguf, port, log)  # back on the same address
    try:
        server_ctx.clients.pop("generator", None)
        report = run_task(
            task, tmp_path / "out", lanes=["prompt"], limit=n, ctx=server_ctx, mode="rules"
        )
    finally:
        stop(proc)
    zero_shot, few_shot = report.lanes
    assert zero_shot.status == few_shot.status == "ok"
    assert zero_shot.cached == kept and few_shot.cached == 0
