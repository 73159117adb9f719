"""The three stages on the real SmolLM2-135M-Instruct, on small real slices (slow set).

The slices are the bundled examples' files (banking77, hh-rlhf helpful) and the WikiText-2
sample, so the tests run from a clean checkout. Each run is a handful of optimizer steps: the
point is that the real model trains through the real stack (bf16 autocast where the CPU has
it), not that it reaches a target accuracy (see README, "Training", for full runs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compoundai.context import RunContext
from compoundai.models import ModelStore
from compoundai_adapters.dpo import DPOConfig, preference_margins, run_dpo
from compoundai_adapters.pretrain import PretrainConfig, run_pretrain
from compoundai_adapters.sft import SFTConfig, run_sft
from tests.adapters.conftest import write_jsonl

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WIKI = ROOT / "tests/data/wikitext2_sample.txt"


@pytest.fixture(scope="module")
def smol(real_ctx: RunContext) -> Path:
    return ModelStore(real_ctx).pull("smollm2-135m-instruct")


def read_jsonl(path: Path, n: int) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()[:n]]


def test_sft_on_banking77_lowers_the_loss_and_records_forgetting(tmp_path, smol, ctx):
    rows = read_jsonl(ROOT / "examples/banking77/data/train.jsonl", 96)
    write_jsonl(tmp_path / "train.jsonl", rows)
    config = SFTConfig(
        model=str(smol),
        output_dir=str(tmp_path / "run"),
        train_file=str(tmp_path / "train.jsonl"),
        prompt_field="text",
        completion_field="label",
        system="Name the banking intent of the customer's message.",
        epochs=2,
        tokens_per_batch=1024,
        learning_rate=1e-3,
        forgetting_texts=str(WIKI),
        forgetting_tokens=2048,
    )
    out = run_sft(config, ctx)
    manifest = json.loads((out / "manifest.json").read_text())
    losses = manifest["losses"]
    assert len(losses) >= 4
    # the label tokens are new to the model: the loss falls well below where it started
    assert sum(losses[-2:]) / 2 < 0.7 * losses[0]
    forgetting = manifest["metrics"]["forgetting"]
    assert forgetting["perplexity_before"] > 1 and forgetting["perplexity_after"] > 1
    assert manifest["metrics"]["tokens_per_s"] > 0
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smol), out)


def test_dpo_on_hh_helpful_moves_margins_towards_chosen(tmp_path, smol, ctx):
    rows = read_jsonl(ROOT / "examples/hh_preferences/data/train.jsonl", 12)
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    config = DPOConfig(
        model=str(smol),
        output_dir=str(tmp_path / "dpo"),
        train_file=str(tmp_path / "pairs.jsonl"),
        max_seq_len=384,
        on_long_rows="skip",
        max_steps=6,
        tokens_per_batch=2048,
        learning_rate=5e-4,
    )
    out = run_dpo(config, ctx)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol)
    base = AutoModelForCausalLM.from_pretrained(smol)
    before = preference_margins(base, tok, rows, config)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smol), out)
    after = preference_margins(tuned, tok, rows, config)
    assert len(before) == len(after) >= 6
    # on the pairs it trained on, DPO raises the mean chosen-over-rejected margin
    assert sum(after) / len(after) > sum(before) / len(before)
    losses = json.loads((out / "manifest.json").read_text())["losses"]
    assert losses[-1] < losses[0]


def test_continued_pretraining_on_wikitext_lowers_its_perplexity(tmp_path, smol, ctx):
    text = WIKI.read_text()[:12_000]
    (tmp_path / "wiki.txt").write_text(text)
    config = PretrainConfig(
        model=str(smol),
        output_dir=str(tmp_path / "pt"),
        train_files=[str(tmp_path / "wiki.txt")],
        max_seq_len=512,
        tokens_per_batch=1024,
        epochs=2,
        learning_rate=1e-3,
        forgetting_texts=str(tmp_path / "wiki.txt"),  # here: the text it trains on
        forgetting_tokens=2048,
    )
    out = run_pretrain(config, ctx)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest.get("from_scratch") is False
    forgetting = manifest["metrics"]["forgetting"]
    assert forgetting["perplexity_after"] < forgetting["perplexity_before"]
