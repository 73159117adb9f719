"""The reward-hacking guard: a reward that pays for length is caught, honest runs pass.

Three levels: a synthetic log (a policy padding its answers under a length-paying reward), a
real TRL run (a reward model learning "the longer answer wins" while held-out pairs prefer the
shorter one: the guard's TrainerCallback stops it), and a real run of our DPO loop on the same
shortcut. The real-run tests assert the run *stopped early* with a flagged verdict, so they
fail if the guard is removed or stops acting.
"""

from __future__ import annotations

import json

import pytest

from compoundai_adapters.dpo import DPOConfig, run_dpo
from compoundai_adapters.guard import GuardPoint, GuardSettings, RewardHackingGuard, judge
from compoundai_adapters.reward import RewardModelConfig, run_reward
from tests.adapters.conftest import write_jsonl

FILLER = " very" * 6


def length_paying_reward(answer: str) -> float:
    """The gameable reward: pays for words, whatever they say."""
    return float(len(answer.split()))


def exact_match(answer: str, gold: str) -> float:
    return float(answer.strip() == gold)


def policy_log(padding_per_step: float, steps: int = 12) -> list[GuardPoint]:
    """A policy that pads a growing share of its answers; scored by the gameable reward and,
    on held-out questions, by exact match (the metric it is not trained on)."""
    gold = ["Paris", "Rome", "Oslo", "Bern"] * 5
    points = []
    for step in range(1, steps + 1):
        padded = min(len(gold), round(step * padding_per_step))
        answers = [g + FILLER if i < padded else g for i, g in enumerate(gold)]
        reward = sum(map(length_paying_reward, answers)) / len(answers)
        heldout = sum(map(exact_match, answers, gold)) / len(gold)
        points.append(GuardPoint(step, reward=reward, kl=0.01 * step, heldout=heldout))
    return points


def test_a_length_paying_reward_is_flagged_on_a_synthetic_log():
    verdict = judge(policy_log(padding_per_step=1.5), GuardSettings(window=4))
    assert verdict.flagged and verdict.step == 4
    assert "reward rose" in (verdict.reason or "") and "held-out metric fell" in verdict.reason


def test_an_honest_run_is_not_flagged():
    # reward and held-out metric rise together, with noise in the held-out metric
    heldout = [0.50, 0.52, 0.51, 0.55, 0.54, 0.58, 0.60, 0.59]
    points = [GuardPoint(s, reward=0.1 * s, heldout=h) for s, h in enumerate(heldout, 1)]
    assert judge(points, GuardSettings(window=4)).status == "ok"
    # a fall inside the tolerance is not a flag either
    flat = [GuardPoint(s, reward=0.1 * s, heldout=0.6 - 0.001 * s) for s in range(1, 9)]
    assert judge(flat, GuardSettings(window=4, min_heldout_drop=0.05)).status == "ok"
    assert judge(flat, GuardSettings(window=4)).flagged


def test_kl_leaving_its_bound_is_flagged_and_the_first_flag_is_kept():
    guard = RewardHackingGuard(GuardSettings(kl_max=0.05))
    for point in policy_log(padding_per_step=0.0):  # no hacking; KL grows 0.01 a step
        guard.observe(point.step, point.reward, point.kl, point.heldout)
    assert guard.verdict.flagged and guard.verdict.step == 6 and guard.should_stop
    report = guard.report()
    assert report.steps == list(range(1, 13)) and report.verdict.points == 12


def shortcut_pairs(n: int, chosen_is_long: bool) -> list[dict]:
    rows = []
    for i in range(n):
        short, long = f"answer {i % 3}", f"answer {i % 3}{FILLER}"
        chosen, rejected = (long, short) if chosen_is_long else (short, long)
        rows.append({"prompt": f"question {i}", "chosen": chosen, "rejected": rejected})
    return rows


def test_the_guard_stops_a_trl_reward_model_learning_the_length_shortcut(
    tmp_path, tiny_model_dir, ctx
):
    write_jsonl(tmp_path / "train.jsonl", shortcut_pairs(32, chosen_is_long=True))
    write_jsonl(tmp_path / "dev.jsonl", shortcut_pairs(8, chosen_is_long=False))
    config = RewardModelConfig(
        model=str(tiny_model_dir),
        output_dir=str(tmp_path / "rm"),
        train_file=str(tmp_path / "train.jsonl"),
        eval_file=str(tmp_path / "dev.jsonl"),
        max_steps=30,
        pairs_per_step=4,
        learning_rate=1e-2,
        precision="fp32",
        eval_every=1,
        save_every=50,
        resamples=200,
        baselines=False,
        lora={"rank": 4, "alpha": 8},
        guard=GuardSettings(window=3),
        guard_metric="margin",
    )
    out = run_reward(config, ctx)
    manifest = json.loads((out / "manifest.json").read_text())
    verdict = manifest["guard"]["verdict"]
    assert verdict["status"] == "flagged", manifest["guard"]
    assert manifest["metrics"]["steps"] < 30  # the callback stopped the Trainer
    assert manifest["metrics"]["steps"] == verdict["step"]


def dpo_config(tmp_path, model_dir, **kw) -> DPOConfig:
    base = dict(
        model=str(model_dir),
        output_dir=str(tmp_path / "dpo"),
        train_file=str(tmp_path / "train.jsonl"),
        eval_file=str(tmp_path / "dev.jsonl"),
        max_steps=20,
        tokens_per_batch=128,
        learning_rate=1e-2,
        beta=0.5,
        precision="fp32",
        eval_every=1,
        save_every=50,
        guard=GuardSettings(window=3),
    )
    return DPOConfig(**{**base, **kw})


@pytest.mark.parametrize("guarded", [True, False])
def test_the_guard_stops_dpo_trained_on_a_length_paying_preference(
    tmp_path, tiny_model_dir, ctx, guarded
):
    write_jsonl(tmp_path / "train.jsonl", shortcut_pairs(16, chosen_is_long=True))
    write_jsonl(tmp_path / "dev.jsonl", shortcut_pairs(6, chosen_is_long=False))
    config = dpo_config(tmp_path, tiny_model_dir, guard=GuardSettings(window=3, stop=guarded))
    manifest = json.loads((run_dpo(config, ctx) / "manifest.json").read_text())
    guard = manifest["guard"]
    assert guard["verdict"]["status"] == "flagged", guard
    assert all(r is not None for r in guard["reward"]) and all(k is not None for k in guard["kl"])
    if guarded:
        assert manifest["metrics"]["steps"] == guard["verdict"]["step"] < 20
    else:  # recorded, not acted on
        assert manifest["metrics"]["steps"] == 20


def test_dpo_whose_held_out_pairs_agree_runs_to_the_end_unflagged(tmp_path, tiny_model_dir, ctx):
    write_jsonl(tmp_path / "train.jsonl", shortcut_pairs(16, chosen_is_long=True))
    write_jsonl(tmp_path / "dev.jsonl", shortcut_pairs(6, chosen_is_long=True))
    config = dpo_config(tmp_path, tiny_model_dir, max_steps=10)
    manifest = json.loads((run_dpo(config, ctx) / "manifest.json").read_text())
    guard = manifest["guard"]
    assert guard["verdict"]["status"] == "ok", guard
    assert manifest["metrics"]["steps"] == 10
    held = [h for h in guard["heldout"] if h is not None]
    assert len(held) == 10 and held[-1] > held[0]  # the held-out margin rose with the reward
