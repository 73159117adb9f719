"""OpenAIGenerator with the real `openai` client against a small real HTTP server on 127.0.0.1.

The server speaks just enough of the chat-completions API to check what the backend must do:
send the chat, read usage, retry a failing request, and turn a dead server into a clear error.
(The full third-party server tests live with the serving issue.)
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from compoundai.errors import RunTimeFailure
from compoundai.generators.base import GenerationConfig
from compoundai.generators.openai_backend import OpenAIGenerator


class Handler(BaseHTTPRequestHandler):
    fail_next = 0
    seen: ClassVar[list] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.seen.append(body)
        if Handler.fail_next:
            Handler.fail_next -= 1
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "busy"}}')
            return
        text = "echo: " + body["messages"][-1]["content"]
        payload = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.fail_next, Handler.seen = 0, []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_generate_in_order_with_usage(server):
    gen = OpenAIGenerator("m", base_url=server, api_key="k")
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
    out = gen.generate(prompts, GenerationConfig(max_new_tokens=5, seed=1))
    assert [g.text for g in out] == [f"echo: q{i}" for i in range(6)]
    assert out[0].prompt_tokens == 7 and out[0].completion_tokens == 3
    assert Handler.seen[0]["max_tokens"] == 5 and Handler.seen[0]["seed"] == 1


def test_retries_a_failing_request(server):
    Handler.fail_next = 1
    gen = OpenAIGenerator("m", base_url=server, api_key="k", max_retries=2)
    assert gen.generate([[{"role": "user", "content": "hi"}]])[0].text == "echo: hi"
    assert len(Handler.seen) == 2


def test_dead_server_is_a_clear_runtime_failure():
    gen = OpenAIGenerator(
        "m", base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0, timeout=2
    )
    with pytest.raises(RunTimeFailure, match=r"generation failed at http://127\.0\.0\.1:9/v1"):
        gen.generate([[{"role": "user", "content": "hi"}]])


def test_env_fallbacks(monkeypatch, server):
    monkeypatch.setenv("OPENAI_BASE_URL", server)
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("COMPOUNDAI_OPENAI_MODEL", "envmodel")
    gen = OpenAIGenerator()
    gen.generate([[{"role": "user", "content": "x"}]])
    assert Handler.seen[-1]["model"] == "envmodel"
