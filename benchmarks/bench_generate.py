"""Label choice and generation speed of LocalGenerator against what a user would write.

Baseline: score each allowed label the lm-evaluation-harness way, one full forward over
prompt + label per candidate (batched over the candidates), in fp32 - the transformers
default. Ours: `LocalGenerator.score` (system prompt cached once, labels merged into a token
trie, one tree-masked forward) in the dtype compoundai picks (bf16 on AMX/AVX-512-bf16 CPUs).
Also reported: accuracy of both on the same dev cases (they must agree up to bf16 noise), and
greedy generation throughput in bf16 vs fp32. `tree_attention_gain` is ours with the tree
pass's attention as batched matmuls (`compoundai.generators.tree_attention`, the default for
a model in bf16) over ours with it on transformers' SDPA kernel (the default in fp32), in the
same run; `ours_cases_per_s` is whichever of the two is the default for `our_dtype`.

    python benchmarks/bench_generate.py [--cases 20] [--shots 5]

Last line: one JSON object with the figures; `ratio` is our label-scoring throughput over
the baseline's (higher is better).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from compoundai.context import RunContext
from compoundai.data import sample_cases
from compoundai.generators.base import GenerationConfig
from compoundai.generators.local import LocalGenerator
from compoundai.generators.tree_attention import use_tree_attention
from compoundai.lanes.prompt import PromptLane
from compoundai.task import load_task

ROOT = Path(__file__).resolve().parent.parent


def naive_label_scores(gen: LocalGenerator, chat: list[dict[str, str]], labels: list[str]):
    tok = gen.tokenizer
    prompt = tok(gen.render(chat), add_special_tokens=False)["input_ids"]
    conts = [tok(lab + gen.eos_token, add_special_tokens=False)["input_ids"] for lab in labels]
    width = len(prompt) + max(len(c) for c in conts)
    ids = torch.full((len(conts), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for row, c in enumerate(conts):
        ids[row, : len(prompt) + len(c)] = torch.tensor(prompt + c)
        mask[row, : len(prompt) + len(c)] = 1
    scores = []
    with torch.inference_mode():
        for start in range(0, len(conts), 16):
            logits = gen.model(
                input_ids=ids[start : start + 16], attention_mask=mask[start : start + 16]
            ).logits.float()
            logp = torch.log_softmax(logits, -1)
            for row, c in enumerate(conts[start : start + 16]):
                pos = range(len(prompt) - 1, len(prompt) - 1 + len(c))
                scores.append(sum(logp[row, p, t].item() for p, t in zip(pos, c, strict=True)))
    return scores


def timed_choices(score, chats: list, labels: list[str]) -> tuple[list[str], float]:
    """The best-scoring label of each chat under `score(chat, labels)`, and the seconds taken."""
    started = time.perf_counter()
    scores = (score(chat, labels) for chat in chats)
    picks = [labels[max(range(len(labels)), key=s.__getitem__)] for s in scores]
    return picks, time.perf_counter() - started


def agreement(a: list, b: list) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument(
        "--baseline-cases",
        type=int,
        default=None,
        help="score only this many cases the baseline way (it takes minutes a case in fp32); "
        "default: all of --cases",
    )
    parser.add_argument("--shots", type=int, default=0, help="demonstrations in each prompt")
    args = parser.parse_args()
    task = load_task(ROOT / "examples" / "banking77" / "task.yaml")
    cases = sample_cases(task.split("dev"), args.cases, seed=0)
    labels = task.labels
    figures: dict[str, float | str] = {
        "cases": len(cases),
        "labels": len(labels),
        "threads": torch.get_num_threads(),
    }

    ctx = RunContext(progress=False)
    fp32 = LocalGenerator(ctx=ctx, dtype="float32")
    ctx.clients["generator"] = fp32
    chats = PromptLane(shots=args.shots).build(task, ctx).prompts([c.input for c in cases])

    n_base = min(len(chats), args.baseline_cases or len(chats))
    base_pred, base_s = timed_choices(
        lambda chat, labs: naive_label_scores(fp32, chat, labs), chats[:n_base], labels
    )
    base_s *= len(chats) / n_base  # per case, scaled

    ours = LocalGenerator(ctx=ctx)  # dtype picked by compoundai
    default = ours._tree_attention
    # the tree pass's attention as batched matmuls and on transformers' SDPA kernel, the two
    # taking turns case by case (which goes first alternates), so that a machine getting
    # slower or faster during the run does not favour either
    registered = use_tree_attention(ours.model)  # False: the model has no SDPA to replace

    def attention(tree: bool):
        def score(chat, labs):
            ours._tree_attention = tree and registered
            return ours.score(chat, labs)

        return score

    for tree in (True, False):
        attention(tree)(chats[0], labels)  # warm the system-prompt cache, as a run does once
    picks: dict[bool, list[str]] = {True: [], False: []}
    seconds = {True: 0.0, False: 0.0}
    for i, chat in enumerate(chats):
        for tree in (True, False) if i % 2 == 0 else (False, True):
            (pick,), took = timed_choices(attention(tree), [chat], labels)
            picks[tree].append(pick)
            seconds[tree] += took
    ours._tree_attention = default
    tree_pred, sdpa_pred, tree_s, sdpa_s = picks[True], picks[False], seconds[True], seconds[False]
    our_pred, ours_s = (tree_pred, tree_s) if default else (sdpa_pred, sdpa_s)

    gold = [c.output for c in cases]
    figures.update(
        {
            "our_dtype": str(ours.dtype).replace("torch.", ""),
            "baseline_cases_per_s": round(len(cases) / base_s, 3),
            "ours_cases_per_s": round(len(cases) / ours_s, 3),
            "baseline_cases": n_base,
            "baseline_accuracy": agreement(base_pred, gold[:n_base]),
            "ours_accuracy": agreement(our_pred, gold),
            "same_choice": agreement(base_pred, our_pred[:n_base]),
            "ours_tree_cases_per_s": round(len(cases) / tree_s, 3),
            "ours_sdpa_cases_per_s": round(len(cases) / sdpa_s, 3),
            "same_choice_sdpa": agreement(sdpa_pred, tree_pred),
            "tree_attention_gain": round(sdpa_s / tree_s, 2),
            "ratio": round(base_s / ours_s, 2),
        }
    )

    prompts = [[{"role": "user", "content": c.input}] for c in cases]
    config = GenerationConfig(max_new_tokens=32)
    for name, gen in (("fp32", fp32), ("ours", ours)):
        gen.generate(prompts[:2], config)
        started = time.perf_counter()
        out = gen.generate(prompts, config)
        tokens = sum(g.completion_tokens for g in out)
        figures[f"generate_{name}_tokens_per_s"] = round(
            tokens / (time.perf_counter() - started), 1
        )
    figures["generate_ratio"] = round(
        float(figures["generate_ours_tokens_per_s"]) / float(figures["generate_fp32_tokens_per_s"]),
        2,
    )
    for key, value in figures.items():
        print(f"{key:>30}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
