"""`compoundai train {pretrain,sft,dpo,reward,rloo,grpo} CONFIG.yaml [--resume]`: stage commands.

The same command runs unchanged under `accelerate launch` (multi-process / multi-GPU): the
training loop reads the process rank and world size that accelerate sets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from compoundai.cli_common import _ctx, _errors_to_exit_codes
from compoundai.tracking import Tracking, tracking_options


@click.group()
def train() -> None:
    """Train an adapter: continued pretraining, SFT, DPO, a reward model, RLOO or GRPO (LoRA)."""


def _stage_command(stage: str, doc: str) -> click.Command:
    @click.command(name=stage, help=doc)
    @click.argument("config_file", type=click.Path(path_type=Path))
    @click.option("--resume", is_flag=True, help="Continue from the last checkpoint.")
    @tracking_options
    @click.pass_obj
    @_errors_to_exit_codes
    def command(
        obj: dict[str, Any],
        config_file: Path,
        resume: bool,
        track: str | None,
        tracking_uri: str | None,
    ) -> None:
        from compoundai_adapters.common import load_config

        tracking = Tracking(track, tracking_uri)
        tracking.check()  # before training: a missing MLflow is said now, not after an hour

        if stage == "sft":
            from compoundai_adapters.sft import SFTConfig as Config
            from compoundai_adapters.sft import run_sft as run
        elif stage == "reward":
            from compoundai_adapters.reward import RewardModelConfig as Config  # type: ignore[assignment]
            from compoundai_adapters.reward import run_reward as run  # type: ignore[assignment]
        elif stage == "grpo":
            from compoundai_adapters.grpo import GRPOStageConfig as Config  # type: ignore[assignment]
            from compoundai_adapters.grpo import run_grpo as run  # type: ignore[assignment]
        elif stage == "rloo":
            from compoundai_adapters.rloo import RLOOStageConfig as Config  # type: ignore[assignment]
            from compoundai_adapters.rloo import run_rloo as run  # type: ignore[assignment]
        elif stage == "dpo":
            from compoundai_adapters.dpo import DPOConfig as Config  # type: ignore[assignment]
            from compoundai_adapters.dpo import run_dpo as run  # type: ignore[assignment]
        else:
            from compoundai_adapters.pretrain import PretrainConfig as Config  # type: ignore[assignment]
            from compoundai_adapters.pretrain import run_pretrain as run  # type: ignore[assignment]
        config = load_config(config_file, Config)
        out = run(config, _ctx(obj), resume=resume)
        if int(os.environ.get("RANK", "0")) != 0:
            return
        from compoundai_adapters.artifacts import read_manifest

        manifest = read_manifest(out)
        m = manifest.metrics
        click.echo(f"adapter: {out}")
        click.echo(
            f"steps {m.steps}, tokens {m.tokens}, {m.train_seconds} s, "
            f"{m.tokens_per_s} tokens/s, MFU {m.mfu:.1%}, "
            f"loss {m.first_loss} -> {_loss(m.final_loss)}"
        )
        g = manifest.guard
        if manifest.stage in ("grpo", "rloo") and g is not None and g.reward:
            # their policy-gradient loss is ~0 at the sampling policy: the curves are what moved
            held = f", held-out {_span(g.heldout)}" if g.heldout else ""
            kls = [v for v in g.kl if v is not None]
            kl = f", KL max {max(kls):.4g}" if kls else ""
            click.echo(f"reward {_span(g.reward)}{kl}{held} (first -> last logged step)")
        if m.forgetting is not None:
            f = m.forgetting
            click.echo(
                f"forgetting check: general-text perplexity {f.perplexity_before} -> "
                f"{f.perplexity_after} (x{f.ratio})"
            )
        if manifest.reward is not None:
            _echo_reward(manifest)
        if manifest.guard is not None:
            v = manifest.guard.verdict
            note = f" ({v.reason})" if v.reason else ""
            if not v.flagged and v.trend_points < v.window:
                note = (
                    f" (trend not judged: {v.trend_points} held-out points, window {v.window}; "
                    "only the KL bound was checked)"
                )
            click.echo(f"reward-hacking guard: {v.status}{note}")
        click.echo(json.dumps({"adapter": str(out), **m.model_dump(mode="json")}, default=str))
        tracking.training(out, config=config.model_dump(mode="json"))

    return command


train.add_command(
    _stage_command("pretrain", "Continued pretraining (or from scratch) on documents.")
)
train.add_command(
    _stage_command("sft", "Supervised fine-tuning on prompt/completion or chat rows.")
)
train.add_command(_stage_command("dpo", "DPO on chosen/rejected preference pairs."))
train.add_command(
    _stage_command(
        "reward",
        "Reward model (LoRA + scalar head, TRL's RewardTrainer) on chosen/rejected pairs; "
        "reports held-out pairwise accuracy against the longer-answer and base "
        "log-likelihood baselines.",
    )
)
train.add_command(
    _stage_command(
        "rloo",
        "RLHF: the policy tuned against a reward model from `train reward` (TRL's RLOOTrainer, "
        "LoRA; TRL 1.x has no PPO), a KL penalty to the reference, and the reward-hacking "
        "guard on a metric logged but not trained on.",
    )
)
train.add_command(
    _stage_command(
        "grpo",
        "GRPO (TRL's GRPOTrainer, LoRA): sampled answers rewarded by the task's own metrics "
        "against each row's reference, a KL penalty to the reference model, and the "
        "reward-hacking guard.",
    )
)


@train.command("embedder")
@click.argument("task_file", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Output dir.")
@click.option(
    "--pairs",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="(question, chunk_id) pairs from `compoundai synth qa` [default: synthesise them].",
)
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--learning-rate", type=float, default=2e-5, show_default=True)
@click.option("--max-chunks", type=int, help="Synthesise questions for N chunks [default: all].")
@click.pass_obj
@_errors_to_exit_codes
def train_embedder(
    obj: dict[str, Any],
    task_file: Path,
    out: Path,
    pairs: Path | None,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    max_chunks: int | None,
) -> None:
    """Tune the task's embedder on (question, chunk) pairs about its documents (contrastive,
    sentence-transformers' trainer) and measure dev recall@5 and MRR before and after.

    Writes OUT/model (a sentence-transformers folder with compoundai-embedder.json); point
    `models.embedder` at it. The rag lane uses it only if it measured better on dev.
    """
    from compoundai.embedder_tuning import tune_embedder
    from compoundai.task import load_task

    task = load_task(task_file)
    manifest = tune_embedder(
        task,
        _ctx(obj),
        out,
        pairs_file=pairs,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_chunks=max_chunks,
    )
    b, a = manifest.before, manifest.after
    verdict = (
        f"better: set models.embedder to {out / 'model'}"
        if manifest.better
        else f"not better: the rag lane keeps {manifest.base}"
    )
    click.echo(
        f"dev retrieval over {a.questions} questions: recall@5 {b.recall_at_5:.3f} -> "
        f"{a.recall_at_5:.3f}, MRR {b.mrr:.3f} -> {a.mrr:.3f} ({manifest.pairs} pairs, "
        f"{manifest.seconds:.0f} s); {verdict}",
        err=True,
    )
    click.echo(manifest.model_dump_json())


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _span(curve: list[float | None]) -> str:
    """First -> last logged value of a guard curve (steps without one left out)."""
    points = [v for v in curve if v is not None]
    return f"{points[0]:.3f} -> {points[-1]:.3f}" if points else "n/a"


def _echo_reward(manifest: Any) -> None:
    r = manifest.reward
    a = r.accuracy
    click.echo(
        f"held-out pairwise accuracy {a.value:.3f} [{a.ci_low:.3f}, {a.ci_high:.3f}] "
        f"on {r.pairs} pairs ({r.source})"
    )
    from compoundai_evaluators.report import signed_interval

    for b in r.baselines:
        d = b.reward_model_minus_baseline
        click.echo(
            f"  baseline {b.name}: {b.accuracy.value:.3f} [{b.accuracy.ci_low:.3f}, "
            f"{b.accuracy.ci_high:.3f}]; reward model minus it "
            f"{signed_interval(d.value, d.ci_low, d.ci_high)}"
        )


@train.command("check-vllm")
@click.argument("adapter_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--max-lora-rank", type=int, default=16, show_default=True, help="vLLM's flag.")
@_errors_to_exit_codes
def check_vllm(adapter_dir: Path, max_lora_rank: int) -> None:
    """Check that vLLM (`--enable-lora`) can load ADAPTER_DIR (a saved adapter, or a system's)."""
    from compoundai.errors import Problem, UserInputError
    from compoundai_adapters.artifacts import vllm_problems

    if (adapter_dir / "adapter").is_dir() and not (adapter_dir / "adapter_config.json").exists():
        adapter_dir = adapter_dir / "adapter"  # a system directory: its adapter copy
    problems = vllm_problems(adapter_dir, max_lora_rank)
    if problems:
        raise UserInputError(
            [Problem(p) for p in problems], hint=f"vLLM would refuse {adapter_dir}"
        )
    click.echo(f"{adapter_dir}: loads in vLLM with --enable-lora --max-lora-rank {max_lora_rank}")
