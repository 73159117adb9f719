"""The training stages on a tiny random Llama: fast, and the mechanics checked for real."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from compoundai.errors import UserInputError
from compoundai_adapters.common import load_config
from compoundai_adapters.dpo import DPOConfig, preference_accuracy, preference_margins, run_dpo
from compoundai_adapters.pretrain import PretrainConfig, run_pretrain
from compoundai_adapters.sft import SFTConfig, run_sft, tokenize_chat
from tests.adapters.conftest import write_jsonl


def sft_config(tmp_path, model_dir, **kw):
    base = dict(
        model=str(model_dir),
        output_dir=str(tmp_path / "run"),
        train_file=str(tmp_path / "train.jsonl"),
        prompt_field="text",
        completion_field="label",
        max_steps=6,
        tokens_per_batch=128,
        learning_rate=1e-2,
        save_every=3,
        precision="fp32",
    )
    return SFTConfig(**{**base, **kw})


def test_sft_lora_changes_every_trainable_parameter(tmp_path, tiny_model_dir, sft_rows, ctx):
    write_jsonl(tmp_path / "train.jsonl", sft_rows)
    config = sft_config(tmp_path, tiny_model_dir)
    # what a fresh LoRA starts from, with the same seed as the run
    from transformers import AutoModelForCausalLM

    from compoundai_adapters.common import apply_lora

    torch.manual_seed(0)
    fresh = apply_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config.lora)
    initial = {n: p.detach().clone() for n, p in fresh.named_parameters() if p.requires_grad}

    out = run_sft(config, ctx)
    saved = load_file(str(out / "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)
    assert not any("lm_head" in k or "embed_tokens" in k for k in saved)
    trained_b = [k for k in saved if "lora_B" in k]
    assert trained_b and all(saved[k].abs().sum() > 0 for k in trained_b)  # B starts at zero
    n_lora_a = sum("lora_A" in n for n in initial)
    changed_a = sum(
        not torch.equal(saved[k], initial[n])
        for n in initial
        if "lora_A" in n
        for k in saved
        if k.replace(".weight", "") in n and "lora_A" in k
    )
    assert changed_a == n_lora_a
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "sft" and manifest["base_model"] == str(tiny_model_dir)
    assert manifest["metrics"]["steps"] == 6 and manifest["metrics"]["tokens_per_s"] > 0
    assert len(manifest["data"]) == 1
    config_json = json.loads((out / "adapter_config.json").read_text())
    assert not config_json.get("modules_to_save")


def test_full_finetune_changes_every_parameter(tmp_path, tiny_model_dir, sft_rows, ctx):
    write_jsonl(tmp_path / "train.jsonl", sft_rows)
    out = run_sft(sft_config(tmp_path, tiny_model_dir, lora=None, max_steps=3), ctx)
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    unchanged = [n for n in before if torch.equal(before[n], after[n])]
    assert unchanged == []


def test_adapter_loads_with_plain_peft_and_merges(tmp_path, tiny_model_dir, sft_rows, ctx):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from compoundai_adapters.artifacts import merge_and_export

    write_jsonl(tmp_path / "train.jsonl", sft_rows)
    out = run_sft(sft_config(tmp_path, tiny_model_dir, max_steps=3), ctx)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        want = model(input_ids=ids).logits
    merged = merge_and_export(out, tmp_path / "merged", ctx)
    with torch.no_grad():
        got = AutoModelForCausalLM.from_pretrained(merged)(input_ids=ids).logits
    assert torch.allclose(want, got, atol=1e-4)


def test_loss_only_on_answer_tokens(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    chat = [
        {"role": "user", "content": "my card"},
        {"role": "assistant", "content": "card_arrival"},
    ]
    seq = tokenize_chat(tok, chat)
    answer = tok.decode([t for t, m in zip(seq.ids, seq.target, strict=True) if m])
    assert answer == "card_arrival<|im_end|>"


def test_bad_data_is_listed_with_lines(tmp_path, tiny_model_dir, ctx):
    (tmp_path / "train.jsonl").write_text(
        '{"text": "ok", "label": "a"}\n{"text": ""}\nnot json\n'
        + json.dumps({"text": "long " * 400, "label": "a"})
        + "\n"
    )
    with pytest.raises(UserInputError) as info:
        run_sft(sft_config(tmp_path, tiny_model_dir), ctx)
    text = str(info.value)
    assert "train.jsonl:2: missing or empty field(s): text, label" in text
    assert "train.jsonl:3: invalid JSON" in text
    (tmp_path / "train.jsonl").write_text(json.dumps({"text": "long " * 400, "label": "a"}) + "\n")
    with pytest.raises(UserInputError, match="over max_seq_len"):
        run_sft(sft_config(tmp_path, tiny_model_dir, max_seq_len=64), ctx)
    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(UserInputError, match="holds no rows"):
        run_sft(sft_config(tmp_path, tiny_model_dir), ctx)


def test_config_problems_listed_and_paths_relative(tmp_path):
    (tmp_path / "c.yaml").write_text("output_dir: run\ntrain_file: t.jsonl\nepochs: -1\nfoo: 1\n")
    with pytest.raises(UserInputError) as info:
        load_config(tmp_path / "c.yaml", SFTConfig)
    fields = {p.field for p in info.value.problems}
    assert {"epochs", "foo"} <= fields
    (tmp_path / "c.yaml").write_text("output_dir: run\ntrain_file: t.jsonl\n")
    config = load_config(tmp_path / "c.yaml", SFTConfig)
    assert config.train_file == str(tmp_path / "t.jsonl")


def test_dpo_raises_preference_accuracy(tmp_path, tiny_model_dir, ctx):
    rows = [
        {"prompt": f"question {i}", "chosen": "yes thank you", "rejected": "no go away"}
        for i in range(8)
    ]
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    config = DPOConfig(
        model=str(tiny_model_dir),
        output_dir=str(tmp_path / "dpo"),
        train_file=str(tmp_path / "pairs.jsonl"),
        max_steps=8,
        tokens_per_batch=256,
        learning_rate=2e-2,
        precision="fp32",
        beta=0.5,
    )
    out = run_dpo(config, ctx)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = preference_margins(base, tok, rows, config)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    after = preference_margins(tuned, tok, rows, config)
    # DPO moves every pair's margin towards the chosen answer, relative to the reference
    assert all(a > b for a, b in zip(after, before, strict=True))
    assert 0.0 <= preference_accuracy(tuned, tok, rows, config) <= 1.0
    losses = json.loads((out / "manifest.json").read_text())["losses"]
    assert losses[-1] < losses[0]


def test_pretrain_from_scratch_and_forgetting_check(tmp_path, tiny_model_dir, ctx):
    (tmp_path / "doc.txt").write_text("the quick brown fox jumps over the lazy dog. " * 60)
    config = PretrainConfig(
        model=str(tiny_model_dir),
        output_dir=str(tmp_path / "pt"),
        train_files=[str(tmp_path / "*.txt")],
        lora=None,
        max_steps=10,
        max_seq_len=64,
        tokens_per_batch=128,
        learning_rate=5e-3,
        precision="fp32",
        init_config={
            "model_type": "llama",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        },
        forgetting_texts=str(tmp_path / "doc.txt"),
        forgetting_tokens=300,
    )
    out = run_pretrain(config, ctx)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["from_scratch"] is True
    f = manifest["metrics"]["forgetting"]
    # trained on that very text: its perplexity must fall
    assert f["perplexity_after"] < f["perplexity_before"]
    assert manifest["losses"][-1] < manifest["losses"][0]


def test_shipped_sft_config_validates():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "banking77" / "sft.yaml"
    config = load_config(path, SFTConfig)
    assert Path(config.train_file).is_file()
    assert Path(config.forgetting_texts).is_file()
    assert config.lora is not None and config.lora.target_modules == "all-linear"


def test_saved_adapter_passes_vllm_rules_and_a_bad_one_does_not(
    tmp_path, tiny_model_dir, sft_rows, ctx
):
    from compoundai_adapters.artifacts import vllm_problems

    write_jsonl(tmp_path / "train.jsonl", sft_rows)
    out = run_sft(sft_config(tmp_path, tiny_model_dir, max_steps=1), ctx)
    assert vllm_problems(out) == []
    config = json.loads((out / "adapter_config.json").read_text())
    config.update(r=12, use_dora=True, modules_to_save=["lm_head"], bias="all")
    (out / "adapter_config.json").write_text(json.dumps(config))
    problems = " | ".join(vllm_problems(out, max_lora_rank=16))
    for expected in ("rank 12", "DoRA", "modules_to_save", "bias='all'"):
        assert expected in problems


def test_training_rows_and_served_prompts_render_identically(tiny_model_dir):
    """One chat renderer: the tokens SFT trains on before the answer are the tokens the
    generator is prompted with (no training/serving skew)."""
    from compoundai.generators.local import LocalGenerator
    from compoundai_adapters.sft import SFTConfig, chat_of, tokenize_chat

    generator = LocalGenerator(str(tiny_model_dir))
    config = SFTConfig(output_dir="x", train_file="y", system="Name the intent.")
    row = {"prompt": "my card has not arrived", "completion": "card_arrival"}
    chat = chat_of(row, config)
    seq = tokenize_chat(generator.tokenizer, chat)
    answer_starts = seq.target.index(True)
    served = generator.tokenizer(generator.render(chat[:-1]), add_special_tokens=False)
    assert seq.ids[:answer_starts] == served["input_ids"]


def test_micro_batches_give_the_whole_batch_gradient(tiny_model_dir):
    """Gradient accumulation over row slices, each weighted by its share of the targets, is
    the whole batch's gradient: `micro_tokens` saves memory without changing the training."""
    from transformers import AutoModelForCausalLM

    from compoundai_adapters.packing import (
        Tokenized,
        mean_target_loss,
        micro_batches,
        pack,
        target_head,
    )

    seqs = [
        Tokenized(list(range(3, 3 + n)), [False] * (n // 2) + [True] * (n - n // 2))
        for n in (5, 9, 7, 12, 6, 8, 10, 4)
    ]
    batch = pack(seqs, 10_000, 0, row_len=16)[0]
    parts = micro_batches(batch, 32)
    assert len(parts) > 1 and sum(len(p["targets"]) for p in parts) == len(batch["targets"])

    def grads(slices):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        head = target_head(model)
        n_all = sum(len(p["targets"]) for p in slices)
        for p in slices:
            loss, _ = mean_target_loss(head, p)
            (loss * len(p["targets"]) / n_all).backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    whole, accumulated = grads([batch]), grads(parts)
    assert len(whole) == len(accumulated)
    assert all(
        torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(whole, accumulated, strict=True)
    )


def test_the_perplexity_before_training_is_measured_once_per_base(
    tmp_path, tiny_model_dir, sft_rows, ctx, monkeypatch
):
    """A fresh LoRA adapter leaves the base's outputs unchanged, so a second stage on the same
    base reuses the first one's baseline: the same number, one measurement fewer."""
    from compoundai_adapters import stage

    write_jsonl(tmp_path / "train.jsonl", sft_rows)
    (tmp_path / "general.txt").write_text("the bank sent my card to the wrong address. " * 40)
    calls = []
    measure = stage.perplexity
    monkeypatch.setattr(stage, "perplexity", lambda *a, **k: calls.append(1) or measure(*a, **k))
    kw = dict(max_steps=1, forgetting_texts=str(tmp_path / "general.txt"), forgetting_tokens=200)
    kw["train_file"] = str(tmp_path / "train.jsonl")
    outs = [run_sft(sft_config(tmp_path / name, tiny_model_dir, **kw), ctx) for name in ("a", "b")]
    facts = [json.loads((o / "manifest.json").read_text())["metrics"]["forgetting"] for o in outs]
    assert facts[0]["perplexity_before"] == facts[1]["perplexity_before"]
    assert len(calls) == 3  # before (once), after, after
    # a fresh measurement agrees with the reused one
    stage._BASELINES.clear()
    again = run_sft(sft_config(tmp_path / "c", tiny_model_dir, **kw), ctx)
    fresh = json.loads((again / "manifest.json").read_text())["metrics"]["forgetting"]
    assert fresh["perplexity_before"] == facts[1]["perplexity_before"]
