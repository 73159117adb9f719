"""What every stage shares: the config fields, loading the base model with LoRA, the FLOPs peak.

Stages are self-contained (TRL's config+trainer pairing); only things that would otherwise be
copied verbatim live here. Speed choices, measured on the 2-core AMX CPU this project is
developed on: the frozen base runs in bf16 where the CPU supports it, LoRA weights stay fp32
(PEFT's `autocast_adapter_dtype`), the forward runs under bf16 autocast, and there is no
gradient checkpointing (a 135M model fits easily; recomputation costs ~30% throughput).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveInt

from compoundai.config import Strict, load_yaml_model
from compoundai.context import RunContext
from compoundai.errors import Problem, RunTimeFailure, UserInputError
from compoundai.hardware import cpu_has_bf16, loading_bars, quiet_peft


class LoraSettings(Strict):
    """LoRA on the chosen modules; `all-linear` means every linear layer but the output head."""

    rank: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class TrainSettings(Strict):
    """Fields every stage has. Paths are relative to the config file."""

    model: str = "smollm2-135m-instruct"
    output_dir: str
    lora: LoraSettings | None = Field(default_factory=LoraSettings)  # null: full fine-tuning
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    tokens_per_batch: int = Field(4096, gt=0, description="Packed tokens per optimizer step.")
    micro_tokens: PositiveInt | Literal["auto"] | None = Field(
        "auto",
        description="Tokens per forward/backward pass of the SFT and pretraining losses: a "
        "batch of more is accumulated in slices of this size (the same gradient, a fraction of "
        "the activation memory). auto: 512 (a third less activation memory than 1,024; as "
        "fast in bf16, 10% slower in fp32; see `micro_tokens_for`). null: the whole batch in "
        "one pass.",
    )
    max_seq_len: int = Field(1024, gt=0)
    row_len: int | None = Field(
        None,
        gt=0,
        description="Packed row length in tokens (default: the smaller of max_seq_len and 256). "
        "Attention is quadratic in a row; a longer sequence gets a row of its own.",
    )
    save_every: int = Field(50, gt=0, description="Checkpoint every N steps.")
    keep_checkpoints: int = Field(2, gt=0)
    seed: int = 0
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    forgetting_texts: str | None = Field(
        None,
        description="A text file of general text; perplexity before/after goes in the manifest.",
    )
    forgetting_tokens: int = Field(20_000, gt=0)
    quantize_4bit: bool = Field(False, description="QLoRA: needs bitsandbytes and a GPU.")


def micro_tokens_for(settings: TrainSettings) -> int | None:
    """The tokens of one forward/backward pass: `micro_tokens`, with `auto` resolved.

    `auto` is 512 tokens. LoRA SFT on SmolLM2-135M, 4,096-token steps, peak RSS of the
    training process: in fp32 (2-core AMD EPYC) 4.59 GB at 1,024, 2.84 GB at 512 (10% fewer
    tokens/s), 1.99 GB at 256 (25% fewer); in bf16 (2-core AMD EPYC with AVX-512 bf16, the
    compound lane's 200-token chats) 2.55 GB at 1,024, 1.75 GB at 512 (344 against 359
    tokens/s, inside the run-to-run spread): benchmarks/README.md, "Memory of make run".

    >>> micro_tokens_for(TrainSettings(model="m", output_dir="o"))
    512
    >>> micro_tokens_for(TrainSettings(model="m", output_dir="o", micro_tokens=None))
    """
    if settings.micro_tokens == "auto":
        return 512
    return settings.micro_tokens


def packed_row_len(config: TrainSettings) -> int:
    """Rows of 256 tokens measured fastest for short SFT rows on the 2-core CPU."""
    return config.row_len or min(config.max_seq_len, 256)


def load_config(path: str | Path, model: type[Any]) -> Any:
    """Read a stage config YAML (every problem listed with its line) and resolve its paths
    relative to the config file."""
    path = Path(path)
    config = load_yaml_model(path, model, what="config")
    base = path.parent
    paths = ("output_dir", "train_file", "eval_file", "test_file", "forgetting_texts")
    for name in (*paths, "reward_model", "schema_file"):
        value = getattr(config, name, None)
        if isinstance(value, str) and not Path(value).is_absolute():
            setattr(config, name, str(base / value))
    model_path = Path(config.model)
    if not model_path.is_absolute() and (base / model_path).exists():
        config.model = str(base / model_path)
    return config


def use_bf16(settings: TrainSettings, device: str) -> bool:
    if settings.precision != "auto":
        return settings.precision == "bf16"
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_bf16()


def load_model(settings: TrainSettings, ctx: RunContext, device: str) -> tuple[Any, Any]:
    """The base model and tokenizer, with LoRA applied when `settings.lora` is set."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from compoundai.models import ModelStore

    path = ModelStore(ctx).resolve(settings.model)
    bf16 = use_bf16(settings, device)
    kwargs: dict[str, Any] = {}
    if settings.quantize_4bit:
        kwargs["quantization_config"] = _qlora_config()
    # A frozen base can live in bf16; full fine-tuning keeps fp32 master weights.
    dtype = torch.bfloat16 if bf16 and settings.lora is not None else torch.float32
    try:
        with loading_bars(ctx.progress):
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, use_safetensors=True, **kwargs
            )
    except OSError as exc:
        raise UserInputError(f"cannot load model {settings.model!r}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.use_cache = False
    if settings.lora is not None:
        model = apply_lora(model, settings.lora)
    return model.to(device), tokenizer  # type: ignore[arg-type]


def lora_config(lora: LoraSettings, task_type: str = "CAUSAL_LM") -> Any:
    """PEFT's `LoraConfig` for these settings (`SEQ_CLS` also trains and saves the score head:
    the reward stage; the TRL stages hand it to their trainer as `peft_config`)."""
    from peft import LoraConfig

    return LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type=task_type,
        bias="none",
    )


def apply_lora(model: Any, lora: LoraSettings) -> Any:
    from peft import get_peft_model

    with quiet_peft():
        return get_peft_model(model, lora_config(lora), autocast_adapter_dtype=True)


def _qlora_config() -> Any:
    import torch

    if not torch.cuda.is_available():
        raise UserInputError(
            "quantize_4bit (QLoRA) needs a CUDA GPU and bitsandbytes; this machine has no GPU",
            hint="set quantize_4bit: false to train LoRA on the bf16/fp32 base",
        )
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise UserInputError("quantize_4bit needs bitsandbytes: pip install bitsandbytes") from None
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
    )


def count_params(model: Any) -> tuple[int, int]:
    """(all parameters of the base model, trainable parameters)."""
    total = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def measure_peak_flops(bf16: bool, size: int = 2048, repeats: int = 5) -> float:
    """Measured matmul FLOP/s on this machine, the denominator of model-FLOPs utilisation."""
    import torch

    dtype = torch.bfloat16 if bf16 else torch.float32
    rng = torch.Generator().manual_seed(0)  # its own stream: training's RNG stays untouched
    a = torch.randn(size, size, generator=rng).to(dtype)
    b = torch.randn(size, size, generator=rng).to(dtype)
    a @ b  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    elapsed = time.perf_counter() - started
    return 2 * size**3 * repeats / elapsed


def read_jsonl_rows(path: str | Path, required: list[str]) -> list[dict[str, Any]]:
    """JSONL rows that have every required non-empty field; all bad rows listed with lines."""
    from compoundai.data import iter_jsonl

    problems: list[Problem] = []
    rows = []
    for lineno, row in iter_jsonl(Path(path), problems):
        missing = [f for f in required if row.get(f) in (None, "", [])]
        if missing:
            problems.append(
                Problem(
                    f"missing or empty field(s): {', '.join(missing)}", file=str(path), line=lineno
                )
            )
            continue
        rows.append(row)
    if problems:
        raise UserInputError(problems)
    return rows


def pair_too_long(
    longest: int, config: Any, problems: list[Problem], source: str, line: int
) -> bool:
    """Whether a preference pair of `longest` tokens is over `config.max_seq_len` (then left
    out); with `on_long_rows: error` it is also a problem at its file and line."""
    if longest <= config.max_seq_len:
        return False
    if config.on_long_rows == "error":
        problems.append(
            Problem(
                f"pair is {longest} tokens, over max_seq_len {config.max_seq_len} "
                "(raise max_seq_len or set on_long_rows: skip)",
                file=source,
                line=line,
            )
        )
    return True


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def fail(message: str) -> RunTimeFailure:
    return RunTimeFailure(message)
