"""`compoundai serve` with fake generators behind a real uvicorn server on 127.0.0.1.

Clients are the real ones users have: the official `openai` package (plain and streaming) and
LangChain's `ChatOpenAI`; raw `httpx` for the error paths the clients hide.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from compoundai.contract import OutputContract
from compoundai.lanes import PromptLane
from compoundai.serve import ServeSettings, create_app, load_systems, serve_in_thread
from compoundai.system import CompoundSystem
from compoundai.system_dir import save_system
from compoundai.task import load_task
from compoundai.testing import FakeGenerator
from tests.conftest import BANKING, label_echo_generator
from tests.test_rag_lane import QUESTIONS, context_generator, docs_task  # noqa: F401

KEY = "test-key-123"


class CountingGenerator(FakeGenerator):
    """Echoes the question; records the size of each `generate` call (the server's batches)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(lambda chat: "echo " + chat[-1]["content"])
        self.batch_sizes: list[int] = []
        self.configs: list = []
        self.delay = delay
        self.lock = threading.Lock()

    def generate(self, prompts, config=None):
        with self.lock:
            self.batch_sizes.append(len(prompts))
            self.configs.append(config)
        time.sleep(self.delay)
        return super().generate(prompts, config)


@pytest.fixture
def systems(fake_ctx):
    task = load_task(BANKING)
    fake_ctx.clients["generator"] = label_echo_generator(task.labels)
    banking = PromptLane().build(task, fake_ctx)
    echo = CompoundSystem(
        "echo", "prompt", "Repeat.", OutputContract(), CountingGenerator(0.05), ctx=fake_ctx
    )
    return {"banking77": banking, "echo": echo}


@pytest.fixture
def server(systems):
    settings = ServeSettings(api_key=KEY, max_body_bytes=20_000, max_tokens_limit=100)
    with serve_in_thread(create_app(systems, settings)) as url:
        yield url


def client(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0)


def test_openai_client_gets_the_systems_answer_with_usage(server):
    out = client(server).chat.completions.create(
        model="banking77",
        messages=[
            {"role": "system", "content": "ignored: the system has its own instructions"},
            {"role": "user", "content": "what is the exchange rate today?"},
        ],
    )
    assert out.choices[0].message.content == "exchange_rate"
    assert out.choices[0].finish_reason == "stop" and out.object == "chat.completion"
    assert out.usage.prompt_tokens > 0
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    extra = out.model_extra["compoundai"]
    assert extra["lane"] == "prompt" and extra["output"] == "exchange_rate"


def test_openai_client_streams_the_answer(server):
    stream = client(server).chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo one two three"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_langchain_chat_openai_plain_and_streaming(server):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="banking77", base_url=server, api_key=KEY, max_retries=0)
    assert llm.invoke("what is the exchange rate?").content == "exchange_rate"
    streamed = "".join(str(c.content) for c in llm.stream("my card arrival is late"))
    assert streamed == "card_arrival"


def test_models_and_health(server):
    models = client(server).models.list()
    assert sorted(m.id for m in models.data) == ["banking77", "echo"]
    health = httpx.get(server.removesuffix("/v1") + "/health").json()
    assert health["status"] == "ok" and health["models"] == ["banking77", "echo"]


@pytest.mark.parametrize("key", [None, "wrong"])
def test_missing_or_wrong_key_is_401(server, key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.post(
        server + "/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
        headers=headers,
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server + "/models", headers=headers).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        client(server, key or "no-key").models.list()


def post(url, body, **kw):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(url + "/chat/completions", content=data, headers=headers, **kw)


def test_oversized_request_is_413_with_an_openai_error(server):
    big = {"model": "echo", "messages": [{"role": "user", "content": "x" * 30_000}]}
    r = post(server, big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(30):
            yield b" " * 1000

    headers = {"Authorization": f"Bearer {KEY}"}
    r = httpx.post(server + "/chat/completions", content=chunks(), headers=headers)
    assert r.status_code == 413
    with pytest.raises(openai.APIStatusError) as err:
        client(server).chat.completions.create(**big)
    assert err.value.status_code == 413


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        ("[1, 2]", 400, None),
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
        ({"model": "echo", "messages": []}, 400, "messages"),
        ({"model": "echo", "messages": [{"role": "system", "content": "x"}]}, 400, "messages"),
        ({"model": "echo", "messages": [{"role": "user", "content": 5}]}, 400, "messages"),
        (
            {"model": "echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 101},
            400,
            "max_tokens",
        ),
        (
            {"model": "echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            400,
            "max_tokens",
        ),
        (
            {"model": "echo", "messages": [{"role": "user", "content": "x"}], "temperature": 9},
            400,
            "temperature",
        ),
        ({"model": "echo", "messages": [{"role": "user", "content": "x"}], "n": 3}, 400, "n"),
    ],
)
def test_bad_requests_get_openai_errors_not_tracebacks(server, body, status, param):
    r = post(server, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"] and "Traceback" not in r.text


def test_unknown_path_is_a_json_404(server):
    r = httpx.get(server + "/../../etc/passwd")
    assert r.status_code == 404 and "error" in r.json()


def test_a_failing_system_is_a_500_without_traceback(fake_ctx):
    def boom(chat):
        raise ValueError("secret internals")

    broken = CompoundSystem("broken", "prompt", "x", OutputContract(), FakeGenerator(boom))
    with serve_in_thread(create_app({"broken": broken})) as url:
        r = httpx.post(
            url + "/chat/completions",
            json={"model": "broken", "messages": [{"role": "user", "content": "x"}]},
        )
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
    assert "secret" not in r.text and "Traceback" not in r.text


def test_concurrent_clients_are_batched_and_all_answered(systems):
    gen = systems["echo"].generator
    settings = ServeSettings(max_batch=8, batch_wait_ms=20)
    with serve_in_thread(create_app(systems, settings)) as url:
        c = openai.OpenAI(base_url=url, api_key="none", max_retries=0)

        def ask(i: int) -> str:
            out = c.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=20
            )
            return out.choices[0].message.content

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, range(32)))
    assert answers == [f"echo q{i}" for i in range(32)]
    assert sum(gen.batch_sizes) == 32 and max(gen.batch_sizes) > 1
    assert max(gen.batch_sizes) <= 8
    assert all(cfg.max_new_tokens == 20 for cfg in gen.configs)


def test_requests_with_other_settings_are_not_mixed_into_a_batch(systems):
    gen = systems["echo"].generator
    with serve_in_thread(create_app(systems, ServeSettings(batch_wait_ms=50))) as url:
        c = openai.OpenAI(base_url=url, api_key="none", max_retries=0)

        def ask(i: int) -> None:
            c.chat.completions.create(
                model="echo",
                messages=[{"role": "user", "content": "x"}],
                max_tokens=10 + i % 2,
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, range(8)))
    assert sum(gen.batch_sizes) == 8
    assert {c.max_new_tokens for c in gen.configs} == {10, 11}


def test_a_full_queue_answers_503(systems):
    settings = ServeSettings(max_batch=1, max_queue=1, batch_wait_ms=0)
    systems["echo"].generator.delay = 0.5
    with serve_in_thread(create_app(systems, settings)) as url:
        body = {"model": "echo", "messages": [{"role": "user", "content": "x"}]}
        with ThreadPoolExecutor(4) as pool:
            codes = list(
                pool.map(
                    lambda _: (
                        httpx.post(url + "/chat/completions", json=body, timeout=10).status_code
                    ),
                    range(4),
                )
            )
    assert 200 in codes and 503 in codes and set(codes) <= {200, 503}


def test_rag_citations_ride_in_the_extra_field(fake_ctx, docs_task, tmp_path):  # noqa: F811
    from compoundai.lanes import lanes_for

    fake_ctx.clients["generator"] = context_generator()
    rag = lanes_for(["rag"], docs_task)[0].build(docs_task, fake_ctx)
    save_system(rag, tmp_path / "rag")
    loaded = load_systems([f"docs={tmp_path / 'rag'}"], fake_ctx, generator=context_generator())
    with serve_in_thread(create_app(loaded)) as url:
        c = openai.OpenAI(base_url=url, api_key="none")
        out = c.chat.completions.create(
            model="docs", messages=[{"role": "user", "content": QUESTIONS[0]["question"]}]
        )
        refused = c.chat.completions.create(
            model="docs", messages=[{"role": "user", "content": QUESTIONS[3]["question"]}]
        )
    assert out.choices[0].message.content == "Paris"
    assert out.model_extra["compoundai"]["citations"] == ["paris::000#0"]
    assert refused.model_extra["compoundai"]["abstained"] is True
    assert refused.choices[0].message.content  # the abstention text, not an empty message


def test_cli_refuses_a_public_host_without_a_key(tmp_path):
    from click.testing import CliRunner

    from compoundai.cli import cli

    result = CliRunner().invoke(cli, ["serve", str(tmp_path), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "without an API key" in result.output


def test_two_systems_with_one_name_are_refused(fake_ctx, systems, tmp_path):
    from compoundai.errors import UserInputError

    save_system(systems["echo"], tmp_path / "a")
    save_system(systems["echo"], tmp_path / "b")
    gen = FakeGenerator()
    with pytest.raises(UserInputError, match="two systems are named 'echo'"):
        load_systems([str(tmp_path / "a"), str(tmp_path / "b")], fake_ctx, generator=gen)
    both = load_systems([str(tmp_path / "a"), f"echo2={tmp_path / 'b'}"], fake_ctx, generator=gen)
    assert sorted(both) == ["echo", "echo2"]


def test_one_bad_request_does_not_fail_the_others_in_its_batch():
    def answer(chat):
        if "poison" in chat[-1]["content"]:
            raise RuntimeError("cannot answer /secret/path")
        return "fine"

    system = CompoundSystem("s", "prompt", "x", OutputContract(), FakeGenerator(answer))
    with serve_in_thread(create_app({"s": system}, ServeSettings(batch_wait_ms=100))) as url:
        body = lambda text: {"model": "s", "messages": [{"role": "user", "content": text}]}  # noqa: E731
        with ThreadPoolExecutor(6) as pool:
            texts = ["a", "b", "poison", "c", "d", "e"]
            responses = list(
                pool.map(lambda t: httpx.post(url + "/chat/completions", json=body(t)), texts)
            )
        health = httpx.get(url.removesuffix("/v1") + "/health")
    codes = [r.status_code for r in responses]
    assert codes == [200, 200, 500, 200, 200, 200]
    assert "/secret/path" not in responses[2].text
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_an_overlong_user_message_is_400(systems):
    with serve_in_thread(create_app(systems, ServeSettings(max_input_chars=50))) as url:
        r = httpx.post(
            url + "/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "x" * 51}]},
        )
    assert r.status_code == 400 and r.json()["error"]["code"] == "input_too_long"


def test_an_empty_key_in_the_environment_is_no_key(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from compoundai.cli import cli

    monkeypatch.setenv("COMPOUNDAI_API_KEY", "")
    result = CliRunner().invoke(cli, ["serve", str(tmp_path), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "without an API key" in result.output
