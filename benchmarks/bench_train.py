"""LoRA SFT throughput of compoundai_adapters against TRL's `SFTTrainer`, same data, same run.

The job: LoRA (r=16, alpha=32, all linear layers) SFT of SmolLM2-135M-Instruct on a fixed
banking77 slice (the first N rows of examples/banking77/data/train.jsonl), one epoch, each
message as the user turn under the task's system message and its label as the answer, loss on
the answer tokens only.

- Baseline: TRL `SFTTrainer` with its default `SFTConfig` (batch 8, padding to the longest
  row, gradient checkpointing on, bf16 autocast; `use_cpu=True`, without which its bf16
  default refuses to start on a CPU), on the same rows in TRL's
  conversational prompt/completion form and the same `peft.LoraConfig`. `--trl-tuned` adds a
  second baseline with gradient checkpointing off and padding-free packing, TRL's own
  fastest CPU settings.
- Ours: `run_sft` (packed rows, bf16 autocast on a bf16 base with fp32 LoRA weights,
  target-only output head), twice: with about TRL's step size (460 tokens, ~8 rows a step,
  so both take the same number of optimizer steps: `ratio_same_steps`) and with the shipped
  4096-token steps (`ratio`).

Tokens/s counts the real (non-padding) tokens of the slice divided by the training time
(model loading excluded on both sides). MFU is 6 x parameters x tokens/s over a bf16 matmul
peak measured in the same run.

    python benchmarks/bench_train.py [--rows 256] [--trl-tuned]

Last line: one JSON object; `ratio` is our tokens/s over TRL's defaults (higher is better).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from compoundai.context import RunContext
from compoundai.data import iter_jsonl
from compoundai.models import ModelStore
from compoundai_adapters.common import count_params, measure_peak_flops
from compoundai_adapters.sft import SFTConfig, run_sft

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "examples/banking77/data/train.jsonl"
SYSTEM = (
    "You are the routing assistant of an online bank. Read the customer's message and name "
    "the intent it expresses."
)
LR = 1e-3


def rows_of(n: int) -> list[dict[str, str]]:
    rows = []
    for _, row in iter_jsonl(TRAIN, []):
        rows.append({"prompt": row["text"], "completion": row["label"]})
        if len(rows) == n:
            break
    return rows


def run_ours(
    rows: list[dict[str, str]], ctx: RunContext, work: Path, batch_tokens: int
) -> dict[str, float]:
    train = work / "ours.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = SFTConfig(
        output_dir=str(work / f"ours-{batch_tokens}"),
        train_file=str(train),
        system=SYSTEM,
        epochs=1,
        learning_rate=LR,
        lora={"rank": 16, "alpha": 32, "target_modules": "all-linear"},
        tokens_per_batch=batch_tokens,
        max_seq_len=256,
        save_every=10_000,
    )
    out = run_sft(config, ctx)
    metrics = json.loads((out / "manifest.json").read_text())["metrics"]
    return {
        "seconds": metrics["train_seconds"],
        "tokens": metrics["tokens"],
        "steps": metrics["steps"],
        "first_loss": metrics["first_loss"],
        "final_loss": metrics["final_loss"],
    }


def run_trl(
    rows: list[dict[str, str]], model_path: Path, work: Path, tuned: bool
) -> dict[str, float]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig as TRLConfig
    from trl import SFTTrainer

    data = Dataset.from_list(
        [
            {
                "prompt": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": r["prompt"]},
                ],
                "completion": [{"role": "assistant", "content": r["completion"]}],
            }
            for r in rows
        ]
    )
    # padding-free without packing needs max_length=None (the rows are short: nothing to cut)
    extra = (
        {"gradient_checkpointing": False, "padding_free": True, "max_length": None} if tuned else {}
    )
    args = TRLConfig(
        output_dir=str(work / ("trl-tuned" if tuned else "trl")),
        num_train_epochs=1,
        learning_rate=LR,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=0,
        use_cpu=not torch.cuda.is_available(),  # TRL's bf16 default refuses to start without it
        **extra,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear")
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=lora
    )
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "seconds": round(seconds, 1),
        "tokens": tokens,
        "steps": output.global_step,
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(losses[-10:]) / len(losses[-10:]) if losses else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=256, help="banking77 training rows")
    parser.add_argument("--trl-tuned", action="store_true", help="also TRL without checkpointing")
    args = parser.parse_args()

    torch.set_num_threads(torch.get_num_threads())
    ctx = RunContext(progress=False)
    model_path = ModelStore(ctx).resolve("smollm2-135m-instruct")
    rows = rows_of(args.rows)
    peak = measure_peak_flops(bf16=True)
    from transformers import AutoModelForCausalLM

    n_params, _ = count_params(AutoModelForCausalLM.from_pretrained(model_path))

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"TRL SFTTrainer, default settings, {len(rows)} rows ...", flush=True)
        results["trl_default"] = run_trl(rows, model_path, work, tuned=False)
        print(json.dumps({"trl_default": results["trl_default"]}), flush=True)
        # same optimizer steps as TRL (8 rows of ~57 tokens a step), then the shipped batches
        for name, batch_tokens in (("ours_same_steps", 460), ("ours", 4096)):
            print(f"compoundai run_sft, {batch_tokens} tokens a step ...", flush=True)
            results[name] = run_ours(rows, ctx, work, batch_tokens)
            print(json.dumps({name: results[name]}), flush=True)
        if args.trl_tuned:
            print("TRL SFTTrainer, no checkpointing, padding-free ...", flush=True)
            results["trl_tuned"] = run_trl(rows, model_path, work, tuned=True)

    for name, r in results.items():
        r["tokens_per_s"] = round(r["tokens"] / r["seconds"], 1)
        r["mfu"] = round(6 * n_params * r["tokens_per_s"] / peak, 4)
        print(
            f"{name:12s} {r['tokens']:7d} tokens {r['steps']:4d} steps {r['seconds']:7.1f} s "
            f"{r['tokens_per_s']:7.1f} tok/s  MFU {r['mfu']:.1%}  "
            f"loss {r['first_loss']:.3f} -> {r['final_loss']:.3f}"
        )
    summary = {
        "rows": len(rows),
        "peak_bf16_flops": round(peak),
        "threads": torch.get_num_threads(),
        **results,
        "ratio": round(results["ours"]["tokens_per_s"] / results["trl_default"]["tokens_per_s"], 2),
        "ratio_same_steps": round(
            results["ours_same_steps"]["tokens_per_s"] / results["trl_default"]["tokens_per_s"], 2
        ),
    }
    if "trl_tuned" in results:
        summary["ratio_vs_tuned"] = round(
            results["ours"]["tokens_per_s"] / results["trl_tuned"]["tokens_per_s"], 2
        )
    print(
        f"ratio (ours / TRL defaults): {summary['ratio']}x with the shipped 4096-token steps, "
        f"{summary['ratio_same_steps']}x with TRL's step size"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
