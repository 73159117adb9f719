"""`compoundai serve` as users run it: the CLI in its own process, real built systems, real
models, the official `openai` client and LangChain's `ChatOpenAI` on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from compoundai.lanes import PromptLane, RagLane
from compoundai.serve import free_port
from compoundai.system_dir import load_system, save_system
from compoundai.task import load_task
from tests.conftest import BANKING

pytestmark = pytest.mark.slow
KEY = "real-key"


@pytest.fixture(scope="module")
def served(tmp_path_factory, real_ctx):
    folder = tmp_path_factory.mktemp("systems")
    task = load_task(BANKING)
    save_system(RagLane("knn-vote").build(task, real_ctx), folder / "knn", task=task)
    save_system(PromptLane(shots=5).build(task, real_ctx), folder / "fewshot", task=task)
    port = free_port()
    env = {**os.environ, "COMPOUNDAI_API_KEY": KEY, "COMPOUNDAI_CACHE": str(real_ctx.cache_dir)}
    log = (folder / "server.log").open("wb")
    cmd = [sys.executable, "-m", "compoundai", "serve", f"knn={folder / 'knn'}",
           f"fewshot={folder / 'fewshot'}", "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, (folder / "server.log").read_text()[-3000:]
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "compoundai serve did not start"
        time.sleep(0.3)
    yield url + "/v1", folder
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


QUESTIONS = [
    "My new card still hasn't arrived, when will it come?",
    "I want to change my PIN",
    "Why was I charged a fee for my transfer?",
]


def test_openai_client_gets_the_systems_answers_plain_and_streamed(served, real_ctx):

    url, folder = served
    client = openai.OpenAI(base_url=url, api_key=KEY)
    assert sorted(m.id for m in client.models.list().data) == ["fewshot", "knn"]
    labels = load_task(BANKING).labels
    for model in ("knn", "fewshot"):
        local = load_system(folder / model, real_ctx).batch(QUESTIONS)
        for question, expected in zip(QUESTIONS, local, strict=True):
            out = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": question}]
            )
            content = out.choices[0].message.content
            assert content == expected.output and content in labels, (model, question)
            assert out.model_extra["compoundai"]["lane"] in ("rag", "prompt")
    chunks = client.chat.completions.create(
        model="fewshot", messages=[{"role": "user", "content": QUESTIONS[1]}], stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == local[1].output
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url, api_key="wrong").models.list()


def test_langchain_chat_openai_against_the_cli_server(served, real_ctx):
    from langchain_openai import ChatOpenAI

    url, folder = served
    expected = load_system(folder / "knn", real_ctx).invoke(QUESTIONS[2]).output
    llm = ChatOpenAI(model="knn", base_url=url, api_key=KEY)
    assert llm.invoke(QUESTIONS[2]).content == expected
    assert "".join(str(c.content) for c in llm.stream(QUESTIONS[2])) == expected


def test_finetune_distill_learns_from_a_served_teacher(served, real_ctx, monkeypatch):
    """finetune/distill end to end: the teacher is the kNN-vote system behind `compoundai
    serve` (the real `openai` client), the student SmolLM2 with a LoRA adapter trained on the
    teacher's answers to 48 train inputs."""
    from compoundai.lanes import FinetuneLane
    from compoundai.task import DistillSettings

    url, _ = served
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    task = load_task(BANKING)
    task.spec.finetune.distill = DistillSettings(
        teacher_base_url=url, teacher_model="knn", max_rows=48
    )
    task.spec.finetune.epochs = 1
    system = FinetuneLane(("distill",)).build(task, real_ctx)
    assert system.info.teacher.startswith(f"knn at {url}")
    rows = (Path(system.info.adapter).parent / "train.jsonl").read_text().splitlines()
    taught = [json.loads(r)["completion"] for r in rows]
    assert len(taught) == system.info.train_rows and 40 <= len(taught) <= 48
    labels = set(task.labels)
    assert set(taught) <= labels
    # the teacher's answers, as the server gives them, are what the student was trained on
    client = openai.OpenAI(base_url=url, api_key=KEY)
    first = json.loads(rows[0])
    out = client.chat.completions.create(
        model="knn", messages=[{"role": "user", "content": first["prompt"]}]
    )
    assert out.choices[0].message.content == first["completion"]
    assert system.invoke(first["prompt"]).output in labels
