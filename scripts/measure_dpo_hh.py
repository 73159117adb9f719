"""DPO of SmolLM2 on hh_rlhf_helpful train; preference accuracy on its test split, before/after.

Preference accuracy: the share of test pairs where the model gives the chosen answer a higher
log-likelihood than the rejected one (`compoundai_adapters.dpo.preference_accuracy`). The base
model is the same weights with the (zero-initialised) LoRA adapter, i.e. SmolLM2 itself.

    python scripts/measure_dpo_hh.py [--shared ../shared/data] [--train 400] [--test 200]

Writes the adapter under out/hh-dpo/ and prints one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from compoundai.context import RunContext
from compoundai_adapters.artifacts import load_adapter
from compoundai_adapters.common import load_model
from compoundai_adapters.dpo import DPOConfig, preference_accuracy, run_dpo

ROOT = Path(__file__).resolve().parent.parent


def pairs(path: Path, n: int, seed: int) -> list[dict[str, str]]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    random.Random(seed).shuffle(rows)
    return [
        {
            "prompt": r["prompt"].strip(),
            "chosen": r["chosen_response"].strip(),
            "rejected": r["rejected_response"].strip(),
        }
        for r in rows[:n]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    args = parser.parse_args()

    out = ROOT / "out" / "hh-dpo"
    out.mkdir(parents=True, exist_ok=True)
    train_file = out / "train.jsonl"
    train_file.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in pairs(args.shared / "hh_rlhf_helpful/train.jsonl", args.train, 0)
        )
    )
    test = pairs(args.shared / "hh_rlhf_helpful/test.jsonl", args.test, 0)
    config = DPOConfig(
        output_dir=str(out),
        train_file=str(train_file),
        epochs=args.epochs,
        learning_rate=args.lr,
        beta=args.beta,
        max_seq_len=768,
        on_long_rows="skip",
        tokens_per_batch=4096,
        save_every=20,
        forgetting_texts=str(ROOT / "tests/data/wikitext2_sample.txt"),
        forgetting_tokens=8000,
    )
    ctx = RunContext()
    base, tokenizer = load_model(config.model_copy(update={"lora": None}), ctx, "cpu")
    before = preference_accuracy(base, tokenizer, test, config, bf16=True)
    print(f"base preference accuracy on {len(test)} test pairs: {before:.3f}", flush=True)
    adapter = run_dpo(config, ctx)
    tuned = load_adapter(adapter, base)
    after = preference_accuracy(tuned, tokenizer, test, config, bf16=True)
    manifest = json.loads((adapter / "manifest.json").read_text())
    m = manifest["metrics"]
    print(f"after DPO: {after:.3f}")
    print(
        json.dumps(
            {
                "train_pairs": manifest.get("pairs"),
                "test_pairs": len(test),
                "preference_accuracy_before": round(before, 4),
                "preference_accuracy_after": round(after, 4),
                "train_seconds": m["train_seconds"],
                "tokens_per_s": m["tokens_per_s"],
                "loss": [m["first_loss"], m["final_loss"]],
                "forgetting": m.get("forgetting"),
                "adapter": str(adapter),
            }
        )
    )


if __name__ == "__main__":
    main()
