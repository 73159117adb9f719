"""A system directory is untrusted input: a tampered `system.json` is refused before it is used.

Every case builds a real system (`compoundai build`, rag/knn-vote on banking77 with the hash
embedder, or a tiny local model with a LoRA adapter), tampers with one thing, runs
`compoundai serve` on it (uvicorn stubbed out) and checks: exit 2 naming the field, no network
call (`socket.connect`, `getaddrinfo`), the OpenAI client never built, and no file opened or
listed in the folder outside the system directory (Python's audit hooks see every `open`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.context import RunContext
from compoundai.contract import BuildInfo, OutputContract
from compoundai.errors import UserInputError
from compoundai.generators.local import LocalGenerator
from compoundai.system import CompoundSystem
from compoundai.system_dir import load_system, save_system
from compoundai.system_trust import ALLOW_REMOTE_ENV, url_allowed
from tests.conftest import BANKING

# -- what the process touched ----------------------------------------------------------------

_EVENTS: list[tuple[str, Any]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _EVENTS is None:
        return
    if event in ("open", "os.listdir", "os.scandir") and args and args[0] is not None:
        path = args[0]
        if isinstance(path, int):
            return
        _EVENTS.append((event, os.fsdecode(path)))
    elif event in ("socket.connect", "socket.getaddrinfo"):
        _EVENTS.append((event, repr(args[1] if event == "socket.connect" else args[:2])))


sys.addaudithook(_audit)


class Watch:
    """Records the files opened and network calls made while a command runs."""

    def __init__(self, outside: Path) -> None:
        self.outside = str(outside.resolve())
        self.events: list[tuple[str, Any]] = []

    def __enter__(self) -> Watch:
        global _EVENTS
        _EVENTS = self.events
        return self

    def __exit__(self, *exc: object) -> None:
        global _EVENTS
        _EVENTS = None

    @property
    def outside_reads(self) -> list[str]:
        return [
            p
            for e, p in self.events
            if e != "socket.connect" and str(Path(p).resolve()).startswith(self.outside)
        ]

    @property
    def network(self) -> list[Any]:
        return [a for e, a in self.events if e.startswith("socket.")]


# -- building and tampering ----------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A built rag/knn-vote system (generator: none) in `sys`, and its cache."""
    root = tmp_path_factory.mktemp("trust")
    data = BANKING.parent / "data"
    task = root / "task.yaml"
    task.write_text(
        BANKING.read_text().replace("data/", f"{data}/") + "models: {embedder: 'hash:64'}\n"
    )
    args = ["--cache-dir", str(root / "cache"), "--no-progress", "build", str(task)]
    result = CliRunner().invoke(cli, [*args, "-o", str(root / "built"), "--lane", "rag"])
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A real LoRA adapter for the tiny model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", task_type="CAUSAL_LM")
    out = tmp_path_factory.mktemp("adapter")
    get_peft_model(base, config).save_pretrained(out)
    return out


@pytest.fixture
def case(workspace, tmp_path):
    """A fresh copy of the built system in tmp_path/sys, and tmp_path/outside beside it."""
    folder = tmp_path / "sys"
    shutil.copytree(workspace / "built", folder, symlinks=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    return folder, outside


def edit(folder: Path, change) -> None:
    path = folder / "system.json"
    spec = json.loads(path.read_text())
    change(spec)
    path.write_text(json.dumps(spec))


def serve(workspace: Path, folder: Path, monkeypatch, *extra: str):
    """`compoundai serve FOLDER`, with uvicorn.run and the OpenAI client recorded, not run."""
    calls: dict[str, list[Any]] = {"uvicorn": [], "openai": []}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls["uvicorn"].append(kw))
    from compoundai.generators import openai_backend

    real_init = openai_backend.OpenAIGenerator.__init__

    def spy(self, *args, **kwargs):
        calls["openai"].append((args, kwargs))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(openai_backend.OpenAIGenerator, "__init__", spy)
    cache = ["--cache-dir", str(workspace / "cache"), "--no-progress"]
    result = CliRunner().invoke(cli, [*cache, "serve", *extra, str(folder)])
    return result, calls


def refused(result, field: str) -> None:
    assert result.exit_code == 2, result.output
    assert field in result.output, result.output


def test_the_untampered_system_serves(workspace, case, monkeypatch):
    folder, outside = case
    with Watch(outside) as watch:
        result, calls = serve(workspace, folder, monkeypatch)
    assert result.exit_code == 0, result.output
    assert len(calls["uvicorn"]) == 1 and not watch.network


def test_a_remote_base_url_is_refused_without_a_network_call(workspace, case, monkeypatch):
    folder, outside = case
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-of-the-user")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv(ALLOW_REMOTE_ENV, raising=False)
    evil = "http://evil.example:8080/v1"
    edit(
        folder, lambda s: s.update(generator={"backend": "openai", "model": "x", "base_url": evil})
    )
    with Watch(outside) as watch:
        result, calls = serve(workspace, folder, monkeypatch)
    refused(result, "generator.base_url")
    assert "--allow-remote http://evil.example:8080/v1" in result.output
    assert calls["openai"] == [] and calls["uvicorn"] == [] and watch.network == []
    # no base URL means OpenAI's own API: also only when allowed
    edit(folder, lambda s: s["generator"].pop("base_url"))
    result, calls = serve(workspace, folder, monkeypatch)
    refused(result, "generator.base_url")
    assert calls["openai"] == []


def test_an_allowed_base_url_is_served(workspace, case, monkeypatch):
    folder, _ = case
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    url = "http://127.0.0.1:9/v1"
    edit(folder, lambda s: s.update(generator={"backend": "openai", "model": "x", "base_url": url}))
    result, calls = serve(workspace, folder, monkeypatch, "--allow-remote", url + "/")
    assert result.exit_code == 0, result.output
    assert calls["openai"][0][1]["base_url"] == url
    monkeypatch.setenv(ALLOW_REMOTE_ENV, f"https://other.example, {url}")
    result, _ = serve(workspace, folder, monkeypatch)
    assert result.exit_code == 0, result.output


def test_url_allow_list_matching():
    assert url_allowed("http://h:80/v1", ["http://H/v1/"])
    assert url_allowed("https://h/v1/chat", ["https://h"])  # an origin allows its paths
    assert not url_allowed("https://h.evil/v1", ["https://h"])
    assert not url_allowed("http://h/v1", ["https://h/v1"])  # the scheme counts
    assert not url_allowed("http://h/v2", ["http://h/v1"])


@pytest.mark.parametrize(
    ("field", "change"),
    [
        (
            "demos.file",
            lambda s: s.update(
                demos={"file": "../outside/demos.jsonl", "count": 1, "embedder": "hash:64"}
            ),
        ),
        (
            "rag.index.records",
            lambda s: s["rag"]["index"].update(records="../outside/records.jsonl"),
        ),
        ("rag.index.embeddings", lambda s: s["rag"]["index"].update(embeddings="/etc/passwd")),
        ("rag.index.embedder", lambda s: s["rag"]["index"].update(embedder="../outside/model")),
        (
            "generator.model",
            lambda s: s.update(
                generator={"backend": "local", "model": "../outside/model", "model_in_system": True}
            ),
        ),
        ("generator.model", lambda s: s.update(generator={"backend": "local", "model": "OUTSIDE"})),
    ],
)
def test_paths_out_of_the_directory_are_refused(
    workspace, case, monkeypatch, tiny_model_dir, field, change
):
    folder, outside = case
    shutil.copytree(tiny_model_dir, outside / "model")
    shutil.copy(folder / "index" / "records.jsonl", outside / "records.jsonl")
    (outside / "demos.jsonl").write_text('{"id": "1", "input": "x", "output": "card_arrival"}\n')

    def tamper(spec):
        change(spec)
        if spec["generator"].get("model") == "OUTSIDE":
            spec["generator"]["model"] = str(outside / "model")

    edit(folder, tamper)
    with Watch(outside) as watch:
        result, _ = serve(workspace, folder, monkeypatch)
    refused(result, field)
    assert watch.outside_reads == [] and watch.network == []


@pytest.mark.parametrize("link", ["index/records.jsonl", "system.json", "index"])
def test_a_symlink_out_of_the_directory_is_refused(workspace, case, monkeypatch, link):
    folder, outside = case
    target = outside / Path(link).name
    shutil.move(folder / link, target)
    (folder / link).symlink_to(target)
    with Watch(outside) as watch:
        result, _ = serve(workspace, folder, monkeypatch)
    assert result.exit_code == 2, result.output
    assert "outside the system directory" in result.output
    assert watch.outside_reads == []


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("generation.max_new_tokens", lambda s: s["generation"].update(max_new_tokens="lots")),
        ("generation.max_new_tokens", lambda s: s["generation"].update(max_new_tokens=0)),
        ("generation.stop", lambda s: s["generation"].update(stop=[""])),
        ("rag.k", lambda s: s["rag"].update(k=0)),
        ("generator.backend", lambda s: s["generator"].update(backend="pickle")),
        ("rag.index", lambda s: s["rag"].pop("index")),
        ("surprise", lambda s: s.update(surprise=1)),
    ],
)
def test_wrong_types_are_exit_2_naming_the_field(workspace, case, monkeypatch, field, change):
    folder, _ = case
    edit(folder, change)
    result, calls = serve(workspace, folder, monkeypatch)
    refused(result, field)
    assert calls["uvicorn"] == []


def test_the_saved_index_path_is_never_opened(workspace, case, monkeypatch):
    """`rag.index.path` names where the index was built; a tampered one pointing outside the
    cache is not opened: the index is rebuilt in the cache from the records in the system."""
    folder, outside = case
    spec = json.loads((folder / "system.json").read_text())
    original = Path(spec["rag"]["index"]["path"]).parent
    shutil.copytree(original, outside / "idx")
    edit(folder, lambda s: s["rag"]["index"].update(path=str(outside / "idx" / "chroma")))
    from compoundai_retrievers.index import ChromaIndex

    opened: list[str] = []
    real_open = ChromaIndex.open.__func__

    def spy(cls, path=None, **kw):
        opened.append(str(path))
        return real_open(cls, path, **kw)

    monkeypatch.setattr(ChromaIndex, "open", classmethod(spy))
    with Watch(outside) as watch:
        result, _ = serve(workspace, folder, monkeypatch)
    assert result.exit_code == 0, result.output
    assert opened and not any(p.startswith(str(outside)) for p in opened)
    assert watch.outside_reads == []


# -- a local model with an adapter -----------------------------------------------------------


def _local_system(tmp_path: Path, tiny_model_dir: Path, adapter_dir: Path) -> Path:
    """A system whose generator is the tiny model (copied in) with a LoRA adapter."""
    ctx = RunContext(cache_dir=tmp_path / "cache", progress=False)
    system = CompoundSystem(
        "finetune/sft",
        "finetune",
        "Classify.",
        OutputContract("labels", ["a", "b"]),
        LocalGenerator(str(tiny_model_dir), ctx=ctx),
        info=BuildInfo(adapter=str(adapter_dir), base_model=str(tiny_model_dir)),
        ctx=ctx,
    )
    return save_system(system, tmp_path / "sys")


def test_a_local_model_and_adapter_travel_with_the_system(tmp_path, tiny_model_dir, adapter_dir):
    folder = _local_system(tmp_path, tiny_model_dir, adapter_dir)
    spec = json.loads((folder / "system.json").read_text())
    assert spec["generator"]["model"] == "base_model" and spec["generator"]["model_in_system"]
    assert (folder / "base_model" / "model.safetensors").is_file()
    ctx = RunContext(cache_dir=tmp_path / "cache2", progress=False)
    with Watch(tiny_model_dir) as watch:
        loaded = load_system(folder, ctx)
    assert loaded.invoke("x").output in ("a", "b")
    assert watch.outside_reads == []  # nothing read from where the model was built


@pytest.mark.parametrize("what", ["adapter-out", "adapter-link", "weights-link", "bin-only"])
def test_a_tampered_adapter_or_base_model_is_refused(
    tmp_path, tiny_model_dir, adapter_dir, monkeypatch, what
):
    folder = _local_system(tmp_path, tiny_model_dir, adapter_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    if what == "adapter-out":
        shutil.copytree(folder / "adapter", outside / "adapter")
        edit(folder, lambda s: s["generator"].update(adapter="../outside/adapter"))
        field = "generator.adapter"
    elif what == "adapter-link":
        weights = folder / "adapter" / "adapter_model.safetensors"
        shutil.move(weights, outside / weights.name)
        weights.symlink_to(outside / weights.name)
        field = "generator.adapter"
    elif what == "weights-link":
        weights = folder / "base_model" / "model.safetensors"
        shutil.move(weights, outside / weights.name)
        weights.symlink_to(outside / weights.name)
        field = "generator.model"
    else:  # the safetensors replaced by a pickle: never loaded
        (folder / "adapter" / "adapter_model.safetensors").unlink()
        (folder / "adapter" / "adapter_model.bin").write_bytes(b"pickle")
        field = "generator.adapter"
    ctx = RunContext(cache_dir=tmp_path / "cache2", progress=False)
    with Watch(outside) as watch, pytest.raises(UserInputError) as err:
        load_system(folder, ctx)
    assert any(p.field == field for p in err.value.problems), str(err.value)
    assert watch.outside_reads == []


def test_pickled_weights_are_never_loaded(tmp_path, tiny_model_dir):
    """A model folder holding only a pickled pytorch_model.bin is refused, not loaded."""
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "pickled"
    out.mkdir()
    for file in tiny_model_dir.iterdir():
        if file.suffix != ".safetensors":
            shutil.copy(file, out / file.name)
    torch.save(load_file(tiny_model_dir / "model.safetensors"), out / "pytorch_model.bin")
    assert not list(out.glob("*.safetensors")) and list(out.glob("*.bin"))
    with pytest.raises(UserInputError):
        LocalGenerator(str(out), ctx=RunContext(cache_dir=tmp_path / "c", progress=False))
