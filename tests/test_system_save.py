"""`CompoundSystem.save` / `load` and `compoundai build`, with fakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.contract import BuildInfo, OutputContract
from compoundai.errors import UserInputError
from compoundai.lanes import PromptLane
from compoundai.system import CompoundSystem
from compoundai.system_dir import FORMAT_VERSION, load_system, save_system
from compoundai.task import load_task
from compoundai.testing import FakeGenerator
from tests.conftest import BANKING, label_echo_generator


def test_prompt_system_round_trip_keeps_demos_and_answers(fake_ctx, tmp_path):
    task = load_task(BANKING)
    fake_ctx.clients["generator"] = label_echo_generator(task.labels)
    system = PromptLane(shots=5).build(task, fake_ctx)
    inputs = [c.input for c in task.split("test")[:20]]
    before = system.batch(inputs)
    saved = save_system(system, tmp_path / "sys", task=task, decision={"plan": "sft"})
    spec = json.loads((saved / "system.json").read_text())
    assert spec["format_version"] == FORMAT_VERSION and spec["kind"] == "compound"
    assert spec["demos"]["count"] == len(task.split("train"))
    assert spec["generator"]["backend"] == "custom" and spec["decision"] == {"plan": "sft"}
    prov = spec["provenance"]
    assert prov["data"]["examples.train"]["n"] == len(task.split("train"))
    assert len(prov["data"]["examples.train"]["sha256"]) == 64
    assert "python" in prov["versions"] and prov["task"] == task.name
    loaded = load_system(saved, fake_ctx)
    assert loaded.prompts(inputs) == system.prompts(inputs)
    assert [a.output for a in loaded.batch(inputs)] == [a.output for a in before]
    assert loaded.decision == {"plan": "sft"} and loaded.provenance == prov
    # saving again keeps decision and provenance
    again = json.loads((save_system(loaded, tmp_path / "sys2") / "system.json").read_text())
    assert again["decision"] == spec["decision"] and again["provenance"] == prov


def test_adapter_is_copied_without_pickles(fake_ctx, tmp_path):
    adapter = tmp_path / "adapter-src"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "training_args.bin").write_bytes(b"pickle")
    system = CompoundSystem(
        "finetune/sft",
        "finetune",
        "Classify.",
        OutputContract("labels", ["a", "b"]),
        FakeGenerator(default="b"),
        info=BuildInfo(adapter=str(adapter), fingerprint="sft-123"),
        contract_in_prompt=False,
    )
    saved = save_system(system, tmp_path / "sys")
    assert sorted(p.name for p in (saved / "adapter").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    spec = json.loads((saved / "system.json").read_text())
    assert spec["generator"]["adapter"] == "adapter" and spec["contract_in_prompt"] is False
    loaded = load_system(saved, generator=FakeGenerator(default="b"))
    assert loaded.info.adapter == str(saved / "adapter")
    assert loaded.info.fingerprint == "sft-123" and loaded.contract_in_prompt is False
    assert loaded.invoke("x").output == "b"


def test_load_and_save_refuse_what_they_cannot_trust(tmp_path):
    with pytest.raises(UserInputError, match="not a compoundai system"):
        load_system(tmp_path)
    system = CompoundSystem("s", "prompt", "Say.", OutputContract(), FakeGenerator(default="hi"))
    saved = save_system(system, tmp_path / "sys")
    spec = json.loads((saved / "system.json").read_text())
    spec["format_version"] = FORMAT_VERSION + 1
    (saved / "system.json").write_text(json.dumps(spec))
    with pytest.raises(UserInputError, match="upgrade compoundai"):
        load_system(saved)
    with pytest.raises(UserInputError, match="custom generator"):
        save_system(system, saved)  # replacing a system directory is fine
        load_system(saved)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UserInputError, match="refusing to overwrite"):
        save_system(system, tmp_path / "busy")


# -- compoundai build --------------------------------------------------------------------


@pytest.fixture
def hash_banking(tmp_path: Path) -> Path:
    """banking77 with the hash embedder, so building rag/knn-vote needs no model at all."""
    data = BANKING.parent / "data"
    text = BANKING.read_text().replace("data/", f"{data}/")
    path = tmp_path / "task.yaml"
    path.write_text(text + "models: {embedder: 'hash:64'}\n")
    return path


def _build(tmp_path: Path, *args: str):
    return CliRunner().invoke(
        cli, ["--cache-dir", str(tmp_path / "cache"), "--no-progress", "build", *args]
    )


def test_build_cli_saves_a_loadable_system(hash_banking, tmp_path, fake_ctx):
    out = tmp_path / "sys"
    result = _build(tmp_path, str(hash_banking), "-o", str(out), "--lane", "rag", "--json")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("built rag/knn-vote (lane given;")
    assert lines[1] == f"saved to {out}"
    summary = json.loads(lines[-1])
    assert summary["lane"] == "rag/knn-vote" and summary["plan"] == "rag"
    assert summary["routed"] is False and summary["system_dir"] == str(out)
    spec = json.loads((out / "system.json").read_text())
    assert spec["decision"]["plan"] == "rag" and spec["decision"]["ranked"]
    loaded = load_system(out, fake_ctx)
    answer = loaded.invoke("I am still waiting for my card to arrive")
    assert answer.output in load_task(hash_banking).labels and answer.extra["retrieved_ids"]


def test_build_cli_routes_when_no_lane_is_given(tmp_path, monkeypatch, fake_ctx):
    from tests.test_rag_lane import CORPUS, QUESTIONS, context_generator

    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in CORPUS))
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in QUESTIONS))
    (tmp_path / "task.yaml").write_text(
        "name: facts\ninstructions: Answer.\ndocuments: [corpus.jsonl]\n"
        "constraints: {knowledge_freshness: weekly}\n"
        "examples: {input_field: question, output_field: answers, test: q.jsonl}\n"
    )
    fake_ctx.clients["generator"] = context_generator()
    monkeypatch.setattr("compoundai.cli_build._ctx", lambda obj: fake_ctx)
    result = _build(tmp_path, str(tmp_path / "task.yaml"), "-o", str(tmp_path / "sys"))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("built rag (router plan: rag;")
    loaded = load_system(tmp_path / "sys", fake_ctx)
    assert loaded.invoke("What is the capital of France?").output == "Paris"


def test_build_cli_errors_name_the_fix(hash_banking, tmp_path):
    result = _build(tmp_path, str(hash_banking), "-o", str(tmp_path / "a"), "--lane", "rag/context")
    assert result.exit_code == 2
    assert "no lane variant 'rag/context'" in result.output
    assert "rag/knn-vote" in result.output  # the hint lists the variants that exist
    result = _build(tmp_path, str(hash_banking), "-o", str(tmp_path / "b"), "--lane", "telepathy")
    assert result.exit_code == 2 and "unknown lane" in result.output
    result = _build(tmp_path, str(hash_banking), "-o", str(tmp_path / "c"), "--lane", "rag/magic")
    assert result.exit_code == 2 and "rag/knn-vote" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
