"""GRPO on the tiny random Llama: metric rewards, every trainable parameter moves, resume."""

from __future__ import annotations

import json

import pytest
import torch

from compoundai.errors import UserInputError
from compoundai_adapters.grpo import GRPOStageConfig, metric_reward, run_grpo
from tests.adapters.conftest import write_jsonl
from tests.adapters.test_reward import KillAfter, Snapshot

# the tiny model's vocabulary is these words, so sampled answers overlap the references
REFERENCE = "card arrival exchange rate top up"


def prompt_rows(n: int) -> list[dict]:
    return [{"prompt": f"card question {i}", "reference": REFERENCE} for i in range(n)]


def grpo_config(tmp_path, model_dir, **kw) -> GRPOStageConfig:
    base = dict(
        model=str(model_dir),
        output_dir=str(tmp_path / "grpo"),
        train_file=str(tmp_path / "train.jsonl"),
        metrics=["f1"],
        max_steps=3,
        group_size=4,
        prompts_per_step=2,
        max_answer_tokens=12,
        learning_rate=1e-2,
        precision="fp32",
        save_every=2,
        lora={"rank": 4, "alpha": 8},
    )
    return GRPOStageConfig(**{**base, **kw})


def test_metric_reward_scores_answers_with_the_evaluators_metrics():
    reward = metric_reward(["final_answer", "exact_match"])
    scores = reward(
        prompts=["q"] * 3, completions=["#### 42", "41", "#### 42"], reference=["42"] * 3
    )
    assert scores[1] == 0.0 and scores[0] == scores[2] > 0
    chat = [[{"role": "assistant", "content": "Paris"}]]
    assert metric_reward(["exact_match"])(prompts=["q"], completions=chat, reference=["Paris"]) == [
        1.0
    ]
    with pytest.raises(UserInputError, match="unknown metric"):
        metric_reward(["no_such_metric"])


def test_json_rewards_read_the_schema(tmp_path):
    """snips-style rewards: schema adherence needs the task's schema (a GRPO config names it
    as `schema_file`; without it the stage refuses before loading a model)."""
    schema = {
        "type": "object",
        "properties": {"intent": {"enum": ["PlayMusic"]}, "slots": {"type": "object"}},
        "required": ["intent", "slots"],
    }
    reward = metric_reward(["schema_adherence", "slot_f1"], schema)
    gold = json.dumps({"intent": "PlayMusic", "slots": {"artist": "Adele"}})
    answers = [gold, '{"intent": "PlayMusic", "slots": {}}', "not json"]
    scores = reward(prompts=["q"] * 3, completions=answers, reference=[gold] * 3)
    assert scores[0] == 1.0 and 0 < scores[1] < 1 and scores[2] == 0.0
    with pytest.raises(UserInputError, match="needs a JSON schema"):
        metric_reward(["schema_adherence"])
    write_jsonl(tmp_path / "train.jsonl", prompt_rows(2))
    config = grpo_config(tmp_path, tmp_path / "no-model", metrics=["schema_adherence"])
    with pytest.raises(UserInputError, match="needs a JSON schema"):
        run_grpo(config)
    (tmp_path / "schema.json").write_text("{not json")
    config = config.model_copy(update={"schema_file": str(tmp_path / "schema.json")})
    with pytest.raises(UserInputError, match="cannot read the JSON Schema"):
        run_grpo(config)


def test_grpo_trains_every_lora_parameter_and_records_the_guard(tmp_path, tiny_model_dir, ctx):
    write_jsonl(tmp_path / "train.jsonl", prompt_rows(8))
    write_jsonl(tmp_path / "dev.jsonl", prompt_rows(2))
    snap = Snapshot()
    (tmp_path / "general.txt").write_text("card arrival exchange rate top up " * 40)
    config = grpo_config(
        tmp_path,
        tiny_model_dir,
        eval_file=str(tmp_path / "dev.jsonl"),
        forgetting_texts=str(tmp_path / "general.txt"),
        forgetting_tokens=64,
    )
    out = run_grpo(config.model_copy(update={"eval_every": 1}), ctx, callbacks=[snap])
    unchanged = [n for n in snap.before if torch.equal(snap.before[n], snap.after[n])]
    assert snap.before and unchanged == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "grpo" and manifest["metrics"]["steps"] == 3
    assert len(manifest["step_seconds"]) == 3
    guard = manifest["guard"]
    assert guard["reward"] and all(r is not None for r in guard["reward"])
    assert [k for k in guard["kl"] if k is not None]
    held_out = [s for s, h in zip(guard["steps"], guard["heldout"], strict=True) if h is not None]
    assert held_out == [1, 2, 3]  # the held-out prompts' reward, every step
    assert (out / "adapter_model.safetensors").is_file()
    # the forgetting check, as for SFT: general-text perplexity before and after
    forgetting = manifest["metrics"]["forgetting"]
    assert forgetting["tokens"] == 64 and forgetting["perplexity_before"] > 0
    assert forgetting["ratio"] == pytest.approx(
        forgetting["perplexity_after"] / forgetting["perplexity_before"], rel=1e-3
    )


def test_killed_grpo_run_resumes_from_its_checkpoint(tmp_path, tiny_model_dir, ctx):
    write_jsonl(tmp_path / "train.jsonl", prompt_rows(8))
    config = grpo_config(tmp_path, tiny_model_dir, max_steps=4)
    with pytest.raises(KeyboardInterrupt):
        run_grpo(config, ctx, callbacks=[KillAfter(3)])
    out = run_grpo(config, ctx, resume=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["resumed_from_step"] == 2
    assert manifest["metrics"]["steps"] == 4 and len(manifest["losses"]) == 4


def test_the_shipped_grpo_config_loads():
    from pathlib import Path

    from compoundai_adapters.common import load_config

    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "examples/gsm8k_grpo/grpo.yaml", GRPOStageConfig)
    assert config.metrics == ["final_answer"] and config.group_size == 4
    assert config.eval_limit == 16  # each evaluation samples group_size answers per question
    for path in (config.train_file, config.eval_file):
        assert path and Path(path).is_file(), path
    # the guard's held-out reward reads dev: test is for final reports, never for deciding
    assert Path(config.eval_file).name == "dev.jsonl"
    assert metric_reward(config.metrics)(
        prompts=["q"], completions=["... #### 72"], reference=["48+24 = 72\n#### 72"]
    ) == [1.0]
