"""LocalGenerator on the tiny random Llama: the mechanics, checked against plain transformers."""

import pytest
import torch

from compoundai.generators.base import GenerationConfig
from compoundai.generators.local import LocalGenerator, _token_trie
from compoundai.testing import tiny_causal_lm

CORPUS = ["card arrival exchange rate top up", "my card has not arrived", "transfer failed"]


@pytest.fixture(scope="module")
def gen():
    model, tok = tiny_causal_lm(CORPUS * 5)
    return LocalGenerator.from_model(model, tok, batch_size=4)


def chat(text, system=None):
    msgs = [{"role": "system", "content": system}] if system else []
    return [*msgs, {"role": "user", "content": text}]


def naive_score(gen, prompt, continuation):
    tok = gen.tokenizer
    p = tok(gen.render(prompt), add_special_tokens=False)["input_ids"]
    c = tok(continuation + gen.eos_token, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = gen.model(input_ids=torch.tensor([p + c])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    return sum(logp[len(p) - 1 + i, t].item() for i, t in enumerate(c))


@pytest.mark.parametrize("system", [None, "Pick a label.\ncard\ncard_arrival\ntransfer"])
def test_tree_scoring_equals_scoring_each_continuation_alone(gen, system):
    labels = ["card", "card_arrival", "card_arrived", "transfer", "top_up"]
    prompt = chat("my card has not arrived", system)
    got = gen.score(prompt, labels)
    want = [naive_score(gen, prompt, lab) for lab in labels]
    assert got == pytest.approx(want, abs=1e-4)
    # again, now from the cached system prefix
    assert gen.score(prompt, labels) == pytest.approx(want, abs=1e-4)


def test_batched_left_padded_generation_equals_one_by_one(gen):
    prompts = [
        chat("card"),
        chat("my card has not arrived at all yet, please help"),
        chat("transfer failed"),
        chat("top up"),
        chat("exchange rate today"),
    ]
    config = GenerationConfig(max_new_tokens=6)
    batched = [g.text for g in gen.generate(prompts, config)]
    single = [gen.generate([p], config)[0].text for p in prompts]
    assert batched == single
    g = gen.generate(prompts[:1], config)[0]
    assert g.prompt_tokens > 0 and 0 < g.completion_tokens <= 6


def test_sampling_is_seeded(gen):
    config = GenerationConfig(max_new_tokens=8, temperature=1.0, seed=3)
    a = gen.generate([chat("card")] * 2, config)
    b = gen.generate([chat("card")] * 2, config)
    assert [x.text for x in a] == [x.text for x in b]


def test_token_trie_shares_prefixes():
    paths, tokens, parents, depths = _token_trie([[5, 6, 7], [5, 6, 8], [9]])
    assert tokens == [5, 6, 7, 8, 9]
    assert paths == [[0, 1, 2], [0, 1, 3], [4]]
    assert parents == [-1, 0, 1, 1, -1] and depths == [0, 1, 2, 2, 0]


def test_tree_scoring_through_a_lora_adapter_equals_scoring_alone(tmp_path, monkeypatch):
    """The fine-tuned lanes score through PEFT: the `tree_attention` flag and `logits_to_keep`
    must reach the base model, and the adapter must change what is scored."""
    from peft import LoraConfig, get_peft_model

    model, tok = tiny_causal_lm(CORPUS * 5)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(tmp_path / "adapter")
    base, _ = tiny_causal_lm(CORPUS * 5)
    gen = LocalGenerator.from_model(base, tok)
    gen._setup(base, tok, tmp_path / "adapter")
    assert not gen._tree_attention  # an fp32 model keeps SDPA, the faster kernel in fp32
    from compoundai.generators.tree_attention import use_tree_attention

    gen._tree_attention = use_tree_attention(gen.model)  # as a bf16 model has it
    assert gen._tree_attention
    labels = ["card", "card_arrival", "transfer", "top_up"]
    prompt = chat("my card has not arrived", "Pick a label.\ncard\ntransfer")
    want = [naive_score(gen, prompt, lab) for lab in labels]
    from compoundai.generators import tree_attention

    calls = []
    stacked = tree_attention._stacked_mask
    monkeypatch.setattr(tree_attention, "_stacked_mask", lambda *a: calls.append(1) or stacked(*a))
    assert gen.score(prompt, labels) == pytest.approx(want, abs=1e-4)
    assert calls  # the batched-matmul path ran, not SDPA
    plain = LocalGenerator.from_model(tiny_causal_lm(CORPUS * 5)[0], tok)
    assert plain.score(prompt, labels) != pytest.approx(want, abs=1e-3)
