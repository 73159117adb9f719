"""The reward-model stage on the tiny random Llama: training, the manifest, resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from compoundai.errors import UserInputError
from compoundai_adapters.common import load_config
from compoundai_adapters.reward import RewardModelConfig, load_reward_model, run_reward
from compoundai_adapters.reward_eval import (
    calibration,
    evaluate_rewards,
    longer_answer_scores,
    pairwise_scores,
)
from tests.adapters.conftest import write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def pair_rows(n: int = 32) -> list[dict]:
    rows = []
    for i in range(n):
        if i % 2:
            rows.append({"prompt": f"my card {i}", "chosen": "card arrival", "rejected": "fox"})
        else:
            rows.append({"prompt": f"rate {i}", "chosen": "exchange rate", "rejected": "lazy dog"})
    return rows


def reward_config(tmp_path: Path, model_dir: Path, **kw) -> RewardModelConfig:
    base = dict(
        model=str(model_dir),
        output_dir=str(tmp_path / "run"),
        train_file=str(tmp_path / "pairs.jsonl"),
        max_steps=6,
        pairs_per_step=4,
        learning_rate=1e-2,
        save_every=2,
        precision="fp32",
        eval_share=0.25,
        resamples=300,
        lora={"rank": 4, "alpha": 8},
    )
    return RewardModelConfig(**{**base, **kw})


class Snapshot(TrainerCallback):
    """The trainable parameters when training starts and when it ends."""

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.before = trainable(model)

    def on_train_end(self, args, state, control, model=None, **kw):
        self.after = trainable(model)


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


class KillAfter(TrainerCallback):
    """Stands in for `kill -9`: the process dies at the end of step `n`, after its checkpoint."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.n:
            raise KeyboardInterrupt(f"killed at step {self.n}")


def test_reward_stage_trains_every_lora_and_score_parameter(tmp_path, tiny_model_dir, ctx):
    write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    snap = Snapshot()
    out = run_reward(reward_config(tmp_path, tiny_model_dir, eval_every=2), ctx, callbacks=[snap])
    assert any("score" in n for n in snap.before) and any("lora_A" in n for n in snap.before)
    unchanged = [n for n in snap.before if torch.equal(snap.before[n], snap.after[n])]
    assert unchanged == []
    saved = load_file(str(out / "adapter_model.safetensors"))
    assert any("score" in k for k in saved) and any("lora_B" in k for k in saved)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "reward" and manifest["metrics"]["steps"] == 6
    assert manifest["pairs"] == 24 and len(manifest["losses"]) == 6
    reward = manifest["reward"]
    assert reward["pairs"] == 8 and "held out: 8 of 32" in reward["source"]
    acc = reward["accuracy"]
    assert acc["ci_low"] <= acc["value"] <= acc["ci_high"]
    assert [b["name"] for b in reward["baselines"]] == ["longer_answer", "base_loglik"]
    assert sum(b["pairs"] for b in reward["calibration"]) == 8
    assert reward["curve_steps"] == [2, 4, 6]
    verdict = manifest["guard"]["verdict"]
    assert verdict["status"] == "ok" and (verdict["trend_points"], verdict["window"]) == (3, 4)
    # the saved reward model scores like the trained one
    model, tok = load_reward_model(out, ctx)
    ids = tok("card arrival", return_tensors="pt")
    assert model(**ids).logits.shape == (1, 1)


def test_killed_reward_run_resumes_from_its_checkpoint_and_matches(tmp_path, tiny_model_dir, ctx):
    write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    straight = run_reward(
        reward_config(tmp_path, tiny_model_dir, output_dir=str(tmp_path / "straight")), ctx
    )
    config = reward_config(
        tmp_path, tiny_model_dir, output_dir=str(tmp_path / "killed"), eval_every=2
    )
    with pytest.raises(KeyboardInterrupt):
        run_reward(config, ctx, callbacks=[KillAfter(3)])
    assert not (tmp_path / "killed" / "adapter").exists()
    out = run_reward(config, ctx, resume=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["resumed_from_step"] == 2  # the checkpoint before the kill
    assert manifest["metrics"]["steps"] == 6 and len(manifest["losses"]) == 6
    assert manifest["metrics"]["tokens_per_s"] > 0  # this run's tokens over this run's time
    guard = manifest["guard"]  # judged on the whole log, the steps before the kill included
    assert guard["steps"][0] == 1 and guard["verdict"]["status"] == "ok"
    pairs = zip(guard["steps"], guard["heldout"], strict=True)
    held_out_steps = [s for s, h in pairs if h is not None]
    assert held_out_steps == [2, 4, 6]
    assert manifest["reward"]["curve_steps"] == [2, 4, 6]
    a = load_file(str(straight / "adapter_model.safetensors"))
    b = load_file(str(out / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_resume_refuses_another_runs_checkpoints(tmp_path, tiny_model_dir, ctx):
    write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    config = reward_config(tmp_path, tiny_model_dir, max_steps=2, baselines=False)
    run_reward(config, ctx)
    other = config.model_copy(update={"learning_rate": 5e-3})
    with pytest.raises(UserInputError, match="learning_rate"):
        run_reward(other, ctx, resume=True)


def test_reward_config_refuses_what_it_cannot_do(tmp_path, tiny_model_dir, ctx):
    write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    with pytest.raises(UserInputError, match="forgetting_texts"):
        run_reward(reward_config(tmp_path, tiny_model_dir, forgetting_texts="x.txt"), ctx)
    with pytest.raises(UserInputError, match="lora"):
        run_reward(reward_config(tmp_path, tiny_model_dir, lora=None), ctx)


def test_the_shipped_reward_config_loads():
    config = load_config(ROOT / "examples/hh_preferences/reward.yaml", RewardModelConfig)
    for path in (config.train_file, config.eval_file, config.test_file):
        assert path and Path(path).is_file()


def test_pairwise_accuracy_baselines_and_calibration_are_paired():
    rng = np.random.default_rng(0)
    chosen = rng.normal(1.0, 1.0, 200)
    rejected = rng.normal(0.0, 1.0, 200)
    coin = {"coin": ("a fair coin", (rng.random(200) < 0.5).astype(float))}
    ev = evaluate_rewards(chosen, rejected, coin, source="s", resamples=500, buckets=4)
    assert ev.pairs == 200 and ev.accuracy.ci_low < ev.accuracy.value < ev.accuracy.ci_high
    (b,) = ev.baselines
    assert abs(b.accuracy.value - 0.5) < 0.1
    d = b.reward_model_minus_baseline
    assert d.value == pytest.approx(ev.accuracy.value - b.accuracy.value) and d.ci_low > 0
    # a reward whose margins carry signal: accuracy rises with the margin's size
    accs = [bucket.accuracy for bucket in ev.calibration]
    assert len(accs) == 4 and accs[-1] > accs[0]
    assert calibration([], 3) == []
    assert longer_answer_scores(["long answer", "x"], ["short", "x"]).tolist() == [1.0, 0.5]
    assert pairwise_scores([0.0], [1.0]).tolist() == [0.0]


def test_train_reward_command_prints_accuracy_and_baselines(tmp_path, tiny_model_dir):
    from click.testing import CliRunner

    from compoundai.cli import cli

    write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    config = reward_config(tmp_path, tiny_model_dir, max_steps=2, eval_every=1).model_dump(
        mode="json", exclude_defaults=True
    )
    (tmp_path / "rm.yaml").write_text(json.dumps(config))  # JSON is YAML
    args = ["--no-progress", "--cache-dir", str(tmp_path / "cache"), "train", "reward"]
    result = CliRunner().invoke(cli, [*args, str(tmp_path / "rm.yaml")])
    assert result.exit_code == 0, result.output
    assert "held-out pairwise accuracy" in result.output
    assert "baseline longer_answer" in result.output and "baseline base_loglik" in result.output
    assert "trend not judged: 2 held-out points, window 4" in result.output
    assert json.loads(result.output.strip().splitlines()[-1])["steps"] == 2
    help_text = CliRunner().invoke(cli, ["train", "--help"]).output
    assert "reward" in help_text


@pytest.mark.parametrize(
    "module",
    ["compoundai_adapters.guard", "compoundai_adapters.reward_eval", "compoundai_adapters.reward"],
)
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_base_loglik_margin_counts_only_the_answer_tokens(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from compoundai_adapters.reward import PairIds, loglik_margins

    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    def answer_logprob(ids: list[int], start: int) -> float:
        x = torch.tensor([ids])
        with torch.no_grad():
            logp = torch.log_softmax(lm(input_ids=x).logits[0, :-1], -1)
        return float(logp.gather(-1, x[0, 1:, None])[start - 1 :].sum())

    pair = PairIds({}, 3, [1, 2, 3, 4, 5, 6], [1, 2, 3, 7])
    (margin,) = loglik_margins(str(tiny_model_dir), [pair])
    expected = answer_logprob(pair.chosen, 3) - answer_logprob(pair.rejected, 3)
    assert margin == pytest.approx(expected, abs=1e-4)
