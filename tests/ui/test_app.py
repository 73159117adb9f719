"""The UI's HTTP side: pages and their messages, the key, the guards, the job API (start,
stream, cancel), the playground API, and `compoundai ui` refusing to serve off loopback
without a key."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from compoundai.context import RunContext
from compoundai.testing import HashEmbedder
from tests.conftest import ROOT
from tests.ui import fakes

pytest.importorskip("fastapi", reason="the UI needs the serve extra")
POST = {"X-CompoundAI-UI": "1"}


def _client(ui_runs, new_runs=None, **settings):
    """A client over the shared runs; runs started here go to `new_runs` (a folder of the test's
    own, also shown), so the shared folder stays as the other tests expect it."""
    from fastapi.testclient import TestClient

    from compoundai.ui.app import UISettings, create_ui_app

    ctx = RunContext(cache_dir=ui_runs.cache, progress=False)
    ctx.clients.update(generator=fakes.generator(), embedder=HashEmbedder())
    options = {"runs_dir": new_runs, "context_factory": "tests.ui.fakes:fake_context"}
    options |= {"base_dir": ROOT, **settings}
    dirs = [*ui_runs.dirs, *([new_runs] if new_runs else [])]
    return TestClient(create_ui_app(dirs, UISettings(**options), ctx))


@pytest.fixture(scope="module")
def client(ui_runs):
    with _client(ui_runs) as c:
        yield c


def test_every_page_renders(client):
    for path in [
        "/",
        "/run?id=0/banking-a",
        "/cases?run=0/squad&show=abstained",
        "/cases?run=0/banking-a&a=rag/knn-vote&b=prompt/zero-shot&show=flips",
        "/compare",
        "/compare?a=0/banking-a&b=0/banking-b",
        "/start",
        "/play",
        "/run/report?id=0/squad",
    ]:
        page = client.get(path)
        assert page.status_code == 200, path
        assert "<script" not in page.text or 'src="/static/ui.js"' in page.text
    case = client.get("/cases?run=0/squad").text
    first = case.split('class="case-link" href="')[1].split('"')[0].replace("&amp;", "&")
    assert client.get(first).status_code == 200
    assert client.get("/static/ui.js").headers["content-type"].startswith("text/javascript")


def test_bad_folders_and_files_are_messages_not_500s(client, ui_runs):
    runs = client.get("/").text
    assert f"{ui_runs.missing} does not exist" in runs
    assert "Unreadable runs" in runs and "broken" in runs
    broken = client.get("/run?id=0/broken")
    assert broken.status_code == 422 and "report.json" in broken.text and "not JSON" in broken.text
    assert client.get("/run?id=0/nothing").status_code == 404
    assert client.get("/case?run=0/squad&id=nope").status_code == 404
    missing = client.get("/cases?run=0/no-predictions")
    assert missing.status_code == 200 and "no predictions.jsonl" in missing.text
    assert "no predictions.jsonl" in client.get("/run?id=0/no-predictions").text
    other_task = client.get("/compare?a=0/banking-a&b=0/squad")
    assert other_task.status_code == 200 and "two tasks" in other_task.text
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/nowhere").status_code == 404


def test_the_api_key_cookie_and_bearer(ui_runs):
    with _client(ui_runs, api_key="s3cret") as c:
        assert c.get("/").status_code == 401 and "API key" in c.get("/").text
        assert c.get("/api/runs").json()["error"]["code"] == "invalid_api_key"
        assert c.get("/static/ui.css").status_code == 200
        assert c.get("/?key=wrong").status_code == 401
        opened = c.get("/run?id=0/squad&key=s3cret", follow_redirects=False)
        assert opened.status_code == 303 and opened.headers["location"] == "/run?id=0%2Fsquad"
        assert c.get("/run?id=0/squad").status_code == 200  # the cookie now
    with _client(ui_runs, api_key="s3cret") as c:
        headers = {"Authorization": "Bearer s3cret"}
        assert c.get("/api/runs", headers=headers).status_code == 200


def test_posts_need_the_ui_header_and_hosts_are_checked(ui_runs, client):
    refused = client.post("/api/play", json={"system": "1/squad-rag", "input": "x"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    with _client(ui_runs, allowed_hosts=["127.0.0.1"]) as c:
        assert c.get("/", headers={"Host": "evil.example:8765"}).status_code == 403
        assert c.get("/", headers={"Host": "127.0.0.1:8765"}).status_code == 200


def test_the_playground_api(client):
    question = "Who was the duke in the battle of Hastings?"
    answer = client.post(
        "/api/play", json={"system": "1/squad-rag", "input": question}, headers=POST
    )
    assert answer.status_code == 200
    data = answer.json()
    assert data["lane"] == "rag" and data["answer"]
    assert data["prompt"][-1]["role"] == "user" and question in data["prompt"][-1]["content"]
    assert len(data["retrieved_ids"]) == len(data["passages"]) == 5
    empty = client.post("/api/play", json={"system": "1/squad-rag", "input": " "}, headers=POST)
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "input"
    unknown = client.post("/api/play", json={"system": "9/x", "input": "hi"}, headers=POST)
    assert unknown.status_code == 404


def test_a_run_is_checked_before_it_starts(client, tmp_path):
    def start(**body):
        return client.post("/api/jobs", json=body, headers=POST)

    assert "choose a task file" in start(lanes=["prompt"]).json()["error"]["message"]
    bad_task = start(task_file=str(tmp_path / "none.yaml"), lanes=["prompt"])
    assert bad_task.status_code == 400
    task = "examples/banking77/task.yaml"
    assert "choose lanes" in start(task_file=task, lanes=["telepathy"]).json()["error"]["message"]
    assert (
        "at least 1" in start(task_file=task, lanes=["prompt"], limit=0).json()["error"]["message"]
    )
    outside = start(task_file=task, lanes=["prompt"], out_dir=str(tmp_path / "elsewhere"))
    assert "outside the UI's directories" in outside.json()["error"]["message"]


def _wait(client, job_id, states, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.3)
    raise TimeoutError(job)


def test_a_run_streams_its_progress_and_finishes(ui_runs, tmp_path):
    with _client(ui_runs, tmp_path) as client:
        _stream_a_run(client, tmp_path)


def _stream_a_run(client, new_runs):
    body = {"task_file": "examples/banking77/task.yaml", "lanes": ["prompt"], "limit": 6}
    body["out_dir"] = str(new_runs / "streamed")
    job = client.post("/api/jobs", json=body, headers=POST)
    assert job.status_code == 201
    job_id = job.json()["id"]
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: ") and line != "data: {}":
                events.append(json.loads(line[6:]))
    states = [e["state"] for e in events]
    assert states[-1] == "finished" and "running" in states
    assert len(events) >= 2 and "building prompt/5-shot" in events[-1]["lines"]
    assert events[-1]["run_url"] == "/run?id=3%2Fstreamed"
    assert client.get(events[-1]["run_url"]).status_code == 200


def test_a_run_can_be_cancelled(ui_runs, tmp_path):
    with _client(ui_runs, tmp_path, context_factory="tests.ui.fakes:slow_context") as c:
        body = {"task_file": "examples/banking77/task.yaml", "lanes": ["prompt"], "limit": 30}
        body["out_dir"] = str(tmp_path / "cancelled")
        job_id = c.post("/api/jobs", json=body, headers=POST).json()["id"]
        busy = c.post("/api/jobs", json=body | {"out_dir": ""}, headers=POST)
        assert busy.status_code == 400 and "already in progress" in busy.json()["error"]["message"]
        deadline = time.monotonic() + 120
        while not any(x.startswith("run ") for x in c.get(f"/api/jobs/{job_id}").json()["lines"]):
            assert time.monotonic() < deadline  # the worker has started run_task
            time.sleep(0.3)
        time.sleep(1.0)
        c.post(f"/api/jobs/{job_id}/cancel", headers=POST)
        job = _wait(c, job_id, {"cancelled", "finished", "failed"}, timeout=30)
        assert job["state"] == "cancelled" and "cached" in job["message"]
        assert not (tmp_path / "cancelled" / "report.json").exists()
        assert c.get(f"/jobs/{job_id}").status_code == 200


def test_the_cli_will_not_serve_off_loopback_without_a_key():
    from compoundai.cli import cli

    result = CliRunner().invoke(
        cli, ["ui", "out", "--host", "0.0.0.0"], env={"COMPOUNDAI_API_KEY": ""}
    )
    assert result.exit_code == 2 and "without an API key" in result.output
    assert "[DIR...]" in CliRunner().invoke(cli, ["ui", "--help"]).output
