"""Adapter artifacts: PEFT format plus a manifest, loadable with plain `PeftModel.from_pretrained`.

`adapter_config.json` + `adapter_model.safetensors` is what PEFT, vLLM (`--enable-lora`) and
TGI read. We never save `lm_head` / `embed_tokens` as trainable modules unless asked (vLLM
rejects adapters that carry them) and only ever load safetensors. `manifest.json` records
where the adapter came from: base model, stage, data hashes, metrics, library versions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from compoundai.config import Strict
from compoundai.contract import ForgettingFacts
from compoundai.errors import UserInputError
from compoundai.hardware import loading_bars, quiet_peft
from compoundai_adapters.guard import GuardReport
from compoundai_adapters.reward_eval import RewardEvaluation

MANIFEST = "manifest.json"


class TrainMetrics(Strict):
    """What one training run measured (the shared loop's figures and the forgetting check)."""

    final_loss: float | None = None
    first_loss: float | None = None
    steps: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    tokens_per_s: float = 0.0
    mfu: float = 0.0
    peak_flops: float = 0.0
    resumed_from_step: int | None = None
    processes: int = 1
    forgetting: ForgettingFacts | None = None


class AdapterManifest(Strict):
    """`manifest.json` beside a PEFT adapter: where it came from and what training measured.

    The training stack writes it; lanes read it and record their own facts through `stamp`
    (the content fingerprint they cache answers under, the merged base an adapter is served
    on), never by editing the file as a dict.
    """

    format: str = "compoundai-adapter/1"
    stage: str = "unknown"
    base_model: str
    lora: dict[str, Any] | None = None
    parameters: dict[str, int] = Field(default_factory=dict)
    precision: str = "fp32"
    data: dict[str, str] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: TrainMetrics = Field(default_factory=TrainMetrics)
    losses: list[float] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    examples: int | None = None  # sft
    pairs: int | None = None  # dpo
    documents: int | None = None  # pretrain
    blocks: int | None = None
    reward: RewardEvaluation | None = None  # reward model: held-out accuracy, baselines
    guard: GuardReport | None = None  # the reward-hacking guard's verdict and curves
    step_seconds: list[float] = Field(default_factory=list)  # grpo: sampling + update, per step
    from_scratch: bool | None = None
    fingerprint: str | None = None  # stamped by the lane that trained it
    serving_base: str | None = None  # the merged model a two-stage adapter is served on
    merged_from: str | None = None  # in a merged model's folder: the adapter folded in


def write_manifest(folder: Path, manifest: AdapterManifest) -> None:
    text = json.dumps(manifest.model_dump(mode="json"), indent=2, default=str)
    (folder / MANIFEST).write_text(text + "\n")


def save_artifact(model: Any, tokenizer: Any, out_dir: Path, manifest: AdapterManifest) -> Path:
    """Write the adapter (or the full model, for full fine-tuning) and the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(str(out_dir), safe_serialization=True, save_embedding_layers=False)
        config_path = out_dir / "adapter_config.json"
        config = json.loads(config_path.read_text())
        if config.get("modules_to_save"):
            raise RuntimeError("adapter would save full modules; refusing (vLLM rejects them)")
    else:
        model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    write_manifest(out_dir, manifest)
    return out_dir


def read_manifest(path: str | Path) -> AdapterManifest:
    """The manifest of an adapter folder; a user error when it is missing or damaged."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise UserInputError(f"{path} is not a compoundai adapter (no {MANIFEST})")
    try:
        return AdapterManifest.model_validate_json(file.read_text())
    except ValueError as exc:
        raise UserInputError(
            f"{file} is not a valid adapter manifest: {exc}".split("\n")[0],
            hint="retrain the adapter with `compoundai train`",
        ) from None


def stamp(adapter: Path, **fields: str) -> AdapterManifest:
    """Record a lane's facts (`fingerprint`, `serving_base`) in an adapter's manifest."""
    manifest = read_manifest(adapter)
    if all(getattr(manifest, k) == v for k, v in fields.items()):
        return manifest
    updated = manifest.model_copy(update=fields)
    write_manifest(adapter, AdapterManifest.model_validate(updated.model_dump()))
    return updated


def load_adapter(path: str | Path, base: Any) -> Any:
    """Attach a saved adapter to an already-loaded base model (safetensors only)."""
    from peft import PeftModel

    if not (Path(path) / "adapter_model.safetensors").is_file():
        raise UserInputError(f"no adapter_model.safetensors in {path}")
    with quiet_peft():
        return PeftModel.from_pretrained(base, str(path), use_safetensors=True)


def merge_and_export(adapter_dir: str | Path, out_dir: str | Path, ctx: Any = None) -> Path:
    """Fold the LoRA weights into the base and save a plain transformers model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from compoundai.context import RunContext
    from compoundai.models import ModelStore

    manifest = read_manifest(adapter_dir)
    base_path = ModelStore(ctx or RunContext()).resolve(manifest.base_model)
    with loading_bars(getattr(ctx, "progress", True)):
        base = AutoModelForCausalLM.from_pretrained(
            base_path, dtype="float32", use_safetensors=True
        )
    merged = load_adapter(adapter_dir, base).merge_and_unload()
    out = Path(out_dir)
    merged.save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(str(out))
    write_manifest(out, manifest.model_copy(update={"merged_from": str(adapter_dir)}))
    return out


# vLLM's LoRA loader (`vllm/lora/peft_helper.py` and the model's packed modules) accepts these
# ranks and, for Llama-family models such as SmolLM2, these target modules.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_LLAMA_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def vllm_problems(adapter_dir: str | Path, max_lora_rank: int = 16) -> list[str]:
    """What would stop vLLM (`--enable-lora --max-lora-rank N`) from loading this adapter.

    Checks the rules vLLM's PEFT helper enforces: a LoRA config with `r`, `lora_alpha` and
    `target_modules`; no bias, DoRA or `modules_to_save`; a rank vLLM supports and within
    `--max-lora-rank`; Llama target modules only; and LoRA tensors only in the safetensors
    (no `lm_head` / `embed_tokens` weights). An empty list means it loads.

    >>> vllm_problems("out/banking77-sft/adapter")                       # doctest: +SKIP
    []
    """
    from safetensors import safe_open

    folder = Path(adapter_dir)
    config_file, weights = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    if not config_file.is_file() or not weights.is_file():
        return [f"{folder}: needs adapter_config.json and adapter_model.safetensors"]
    config = json.loads(config_file.read_text())
    problems = []
    if config.get("peft_type") != "LORA":
        problems.append(f"peft_type is {config.get('peft_type')!r}; vLLM serves LORA adapters")
    missing = [k for k in ("r", "lora_alpha", "target_modules") if k not in config]
    if missing:
        problems.append(f"adapter_config.json lacks {', '.join(missing)}")
    if config.get("bias", "none") != "none":
        problems.append(
            f"bias={config['bias']!r} needs vLLM's --enable-lora-bias; train bias='none'"
        )
    if config.get("use_dora"):
        problems.append("DoRA adapters are not supported by vLLM")
    if config.get("modules_to_save"):
        problems.append(f"modules_to_save={config['modules_to_save']} is not supported by vLLM")
    rank = config.get("r")
    if isinstance(rank, int):
        if rank not in VLLM_LORA_RANKS:
            problems.append(f"rank {rank} is not one vLLM supports {VLLM_LORA_RANKS}")
        elif rank > max_lora_rank:
            problems.append(f"rank {rank} > --max-lora-rank {max_lora_rank}; raise that flag")
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    # PEFT may list full module paths (model.layers.0.mlp.up_proj); vLLM maps by the last part
    unknown = sorted({t.rsplit(".", 1)[-1] for t in targets} - VLLM_LLAMA_MODULES)
    if unknown:
        problems.append(f"target modules vLLM cannot map for Llama models: {unknown}")
    with safe_open(str(weights), framework="pt") as f:
        keys = list(f.keys())
    full = [k for k in keys if "lora_A" not in k and "lora_B" not in k]
    if full:
        problems.append(f"{len(full)} non-LoRA tensors (e.g. {full[0]}); vLLM rejects them")
    return problems
