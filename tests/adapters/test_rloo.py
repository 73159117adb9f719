"""RLOO against a trained reward model on the tiny random Llama: the reward model's scores
reach the trainer, every trainable parameter moves, the held-out metric reaches the guard,
a killed run resumes, and a folder that is not a reward model is refused."""

from __future__ import annotations

import json

import pytest
import torch

from compoundai.errors import UserInputError
from compoundai_adapters.reward import run_reward
from compoundai_adapters.rloo import RLOOStageConfig, reward_model_reward, run_rloo
from tests.adapters.conftest import write_jsonl
from tests.adapters.test_reward import KillAfter, Snapshot, pair_rows, reward_config


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("rm")
    write_jsonl(tmp / "pairs.jsonl", pair_rows(16))
    from compoundai.context import RunContext

    ctx = RunContext(cache_dir=tmp / "cache", progress=False)
    return run_reward(reward_config(tmp, tiny_model_dir, max_steps=2), ctx)


def rloo_config(tmp_path, model_dir, reward_dir, **kw) -> RLOOStageConfig:
    write_jsonl(tmp_path / "prompts.jsonl", pair_rows(8))
    base = dict(
        model=str(model_dir),
        output_dir=str(tmp_path / "rloo"),
        train_file=str(tmp_path / "prompts.jsonl"),
        reward_model=str(reward_dir),
        max_steps=3,
        group_size=2,
        prompts_per_step=2,
        max_answer_tokens=8,
        learning_rate=1e-2,
        precision="fp32",
        save_every=2,
        lora={"rank": 4, "alpha": 8},
    )
    return RLOOStageConfig(**{**base, **kw})


def test_reward_model_reward_scores_each_completion(reward_dir, ctx):
    reward = reward_model_reward(reward_dir, ctx)
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "my card 1"}]
    answers = [
        [{"role": "assistant", "content": "card arrival"}],
        [{"role": "assistant", "content": "fox"}],
    ]
    scores = reward(prompts=[chat, chat], completions=answers)
    assert len(scores) == 2 and scores[0] != scores[1]
    # the system message is not part of what the reward model was trained on
    assert reward(prompts=["my card 1"], completions=["fox"]) == pytest.approx(
        [scores[1]], abs=1e-4
    )


def test_rloo_trains_every_lora_parameter_and_guards_on_the_heldout_metric(
    tmp_path, tiny_model_dir, reward_dir, ctx
):
    snap = Snapshot()
    out = run_rloo(rloo_config(tmp_path, tiny_model_dir, reward_dir), ctx, callbacks=[snap])
    unchanged = [n for n in snap.before if torch.equal(snap.before[n], snap.after[n])]
    assert snap.before and unchanged == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "rloo" and manifest["metrics"]["steps"] == 3
    assert str(reward_dir / "adapter_model.safetensors") in manifest["data"]
    guard = manifest["guard"]
    assert guard["heldout_name"].startswith("f1 of the sampled answers")
    assert all(r is not None for r in guard["reward"]) and len(guard["heldout"]) == 3
    assert all(h is not None for h in guard["heldout"])  # the 0-weight metric, every step


def test_killed_rloo_run_resumes_from_its_checkpoint(tmp_path, tiny_model_dir, reward_dir, ctx):
    config = rloo_config(tmp_path, tiny_model_dir, reward_dir, max_steps=4, heldout_metrics=[])
    with pytest.raises(KeyboardInterrupt):
        run_rloo(config, ctx, callbacks=[KillAfter(3)])
    out = run_rloo(config, ctx, resume=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["resumed_from_step"] == 2 and manifest["metrics"]["steps"] == 4


def test_rloo_refuses_a_folder_that_is_not_a_reward_model(tmp_path, tiny_model_dir, ctx):
    config = rloo_config(tmp_path, tiny_model_dir, tmp_path)
    with pytest.raises(UserInputError, match="not a reward model"):
        run_rloo(config, ctx)
