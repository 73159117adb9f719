"""The finetune lane: a LoRA adapter trained on the task's examples by `compoundai_adapters`.

`build` trains SFT on `examples.train` (each input as the user turn, its output as the
assistant answer: the label, the JSON object, or the answer text) under the same system message
the system will use at inference: the task's instructions. For labels and JSON the contract is
learnt from the answers, so the prompt does not list the labels or the schema (a 77-label list
would be read again on every call). With preference pairs and `dpo` in the lane's stages, DPO
then runs on top of the SFT model (the SFT adapter merged into the base, DPO's reference).
With documents and `pretrain` in the stages, a LoRA adapter is first trained on the documents'
text with the next-token loss (continued pretraining, the "unsupervised fine-tuning" of Ovadia
et al. 2023), merged into the base, and SFT runs on that model: the facts go into the weights
instead of the prompt. With `qa` instead, that first stage trains on question/answer pairs the
task's generator wrote about the documents' chunks and `compoundai.synth`'s filters kept (the
remedy Ovadia et al. found for the "perplexity curse": training on raw text lowers its
perplexity without the model using the facts); the filter counts are saved beside the adapter.
A two-stage adapter's forgetting is chained back to the original base
(perplexity after the last stage over perplexity before the first), and its training time
counts both stages.

Adapters are cached under `CACHE/adapters/<task>-<stage>-<hash>/`, the hash covering the
training rows, the system message, the base model and the settings: a second build with the
same data loads the adapter in seconds, and a build killed halfway resumes from its last
checkpoint. Label tasks are answered by label likelihood, as in every other lane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compoundai.context import RunContext
from compoundai.contract import (
    BuildInfo,
    ForgettingFacts,
    TrainingFacts,
    format_output,
)
from compoundai.data import slug, write_jsonl
from compoundai.errors import UserInputError
from compoundai.lanes.finetune_data import (
    _key,
    _train_cached,
    _weights_key,
    distill_rows,
    forgetting_check,
    grpo_adapter,
    merged_once,
    rlhf_adapter,
    sample_rows,
    stage_on_sft,
    stamp,
    synthesised_qa,
    training_system,
)
from compoundai.lanes.prompt import answer_generation, contract_of
from compoundai.provenance import file_sha256
from compoundai.system import CompoundSystem
from compoundai.task import Task


class FinetuneLane:
    """SFT on the task's examples; `stages=("sft", "dpo")` adds DPO on its preference pairs,
    `("pretrain", "sft")` continued pretraining on its documents first, `("qa", "sft")` on
    question/answer pairs synthesised from them; `("distill",)` is SFT on a teacher's answers
    (`finetune.distill`) instead of the gold outputs; `("sft", "grpo")` adds GRPO rewarded by
    the task's metric (`finetune.grpo`), `("sft", "rlhf")` a reward model on the preference
    pairs and RLOO against it (`finetune.rlhf`)."""

    family = "finetune"
    STAGES = (
        ("sft",),
        ("sft", "dpo"),
        ("sft", "grpo"),
        ("sft", "rlhf"),
        ("pretrain", "sft"),
        ("qa", "sft"),
        ("distill",),
    )

    def __init__(self, stages: tuple[str, ...] = ("sft",)) -> None:
        if tuple(stages) not in self.STAGES:
            choices = ", ".join("+".join(s) for s in self.STAGES)
            raise UserInputError(f"finetune stages must be one of {choices}, not {stages}")
        self.stages = stages
        self.name = "finetune/" + "+".join(stages)

    def system_message(self, task: Task) -> str:
        return task.spec.instructions

    def training_rows(self, task: Task) -> list[dict[str, str]]:
        """The SFT rows: the training examples, or, for a task of preference pairs alone, each
        pair's prompt with its chosen answer (what DPO then starts from)."""
        train = task.split("train")
        pairs = task.preferences.get("train", [])
        if not train and not pairs:
            raise UserInputError(
                "the finetune lane needs training examples (or preference pairs)",
                hint="add examples.train (a JSONL of inputs and outputs) to the task file",
            )
        if train:
            rows = [{"prompt": ex.input, "completion": format_output(ex.output)} for ex in train]
        else:
            rows = [{"prompt": p.prompt, "completion": p.chosen} for p in pairs]
        settings = task.spec.finetune
        return sample_rows(rows, settings.max_train_rows, settings.seed, "finetune-rows")

    def build(self, task: Task, ctx: RunContext) -> CompoundSystem:
        require_local_generator(task, "finetune")
        first = None  # the first stage's adapter, when there are two
        teacher = None  # finetune/distill: whose answers the rows hold
        if task.spec.finetune.adapter:
            adapter, rows = self._given_adapter(task), []
        else:
            rows = self.training_rows(task)
            if "distill" in self.stages:
                rows, teacher = distill_rows(task, ctx, rows)
            base = None
            if "pretrain" in self.stages or "qa" in self.stages:
                first, base = self._pretrain(task, ctx)
            adapter = self._sft(task, ctx, rows, base=base)
            if base is not None:
                stamp(adapter, serving_base=base)
        if "dpo" in self.stages:
            first = adapter
            adapter = self._dpo(task, ctx, adapter)
        if "grpo" in self.stages:
            first = adapter
            rows = rows or self.training_rows(task)
            adapter = grpo_adapter(task, ctx, adapter, rows, self.system_message(task))
        if "rlhf" in self.stages:
            first = adapter
            adapter = rlhf_adapter(task, ctx, adapter, self.system_message(task))
        generator, info = adapter_generator(task, ctx, adapter)
        if first is not None:
            chain_stages(info, first)
            synth = first.parent / "synth.json"
            if "qa" in self.stages and synth.is_file():
                import json

                info.synth = json.loads(synth.read_text(encoding="utf-8"))
                if info.training is not None:  # writing the pairs is part of training's cost
                    spent = float(info.synth.get("seconds", 0.0))
                    info.training.train_seconds = (info.training.train_seconds or 0.0) + spent
        info.stages, info.train_rows = list(self.stages), len(rows)
        info.teacher = teacher
        return CompoundSystem(
            self.name,
            self.family,
            task.spec.instructions,
            contract_of(task),
            generator,
            ctx=ctx,
            info=info,
            generation=answer_generation(task),
            contract_in_prompt=task.spec.output.type == "free_text",
        )

    # -- stages ----------------------------------------------------------------------------

    def _sft(
        self, task: Task, ctx: RunContext, rows: list[dict[str, str]], base: str | None = None
    ) -> Path:
        system = training_system(task, self.system_message(task))
        tag = f"{self.stages[0]}-sft" if base else self.stages[0]
        return train_sft_adapter(task, ctx, rows, system=system, tag=tag, base=base)

    def _pretrain(self, task: Task, ctx: RunContext) -> tuple[Path, str]:
        """A LoRA adapter trained on the documents' text (or, for `qa`, on QA pairs about
        them), and the base with it merged in."""
        from compoundai_adapters.pretrain import PretrainConfig, run_pretrain

        if not task.documents:
            raise UserInputError(
                f"the {self.name} lane trains on the task's documents, and it has none",
                hint="add `documents:` to the task file, or use finetune/sft",
            )
        settings = task.spec.finetune
        stage = self.stages[0]
        docs = sorted(str(p) for p in task.documents)
        exclude = {"dpo", "adapter", "max_train_rows", "distill", "grpo", "rlhf"}
        if stage == "pretrain":
            exclude.add("qa")
        key = _key(
            [file_sha256(p) for p in docs],
            task.spec.models.generator,
            settings.model_dump(exclude=exclude),
            # the qa stage's pairs also depend on the round-trip index's embedder and loader
            *(
                [task.spec.models.embedder, task.spec.document_fields.model_dump()]
                if stage == "qa"
                else []
            ),
            # without a dev split the synthetic dev pairs are left out of the qa stage's text
            *(["synthetic-dev-held-out"] if stage == "qa" and not task.split("dev") else []),
        )
        run_dir = ctx.cache_dir / "adapters" / f"{slug(task.name)}-{stage}-{key}"
        run_dir.mkdir(parents=True, exist_ok=True)
        train_files = docs if stage == "pretrain" else [str(synthesised_qa(task, ctx, run_dir))]
        config = PretrainConfig(
            model=task.spec.models.generator,
            output_dir=str(run_dir),
            train_files=train_files,
            epochs=settings.pretrain.epochs,
            learning_rate=settings.pretrain.learning_rate,
            lora={"rank": settings.lora_rank, "alpha": 2 * settings.lora_rank},
            tokens_per_batch=settings.tokens_per_batch,
            max_seq_len=settings.max_seq_len,
            seed=settings.seed,
            **forgetting_check(),
        )
        adapter = _train_cached(
            run_dir, lambda resume: run_pretrain(config, ctx, resume=resume), ctx
        )
        return adapter, str(merged_once(adapter, run_dir / "merged", ctx))

    def _given_adapter(self, task: Task) -> Path:
        path = (task.path.parent / str(task.spec.finetune.adapter)).resolve()
        if not (path / "adapter_model.safetensors").is_file():
            raise UserInputError(
                f"finetune.adapter: no adapter_model.safetensors in {path}",
                hint="point it at the adapter/ folder a `compoundai train` run wrote",
            )
        if not (path / "manifest.json").is_file():
            raise UserInputError(
                f"finetune.adapter: no manifest.json in {path}",
                hint="adapters trained by `compoundai train` carry one; retrain with it",
            )
        return path

    def _dpo(self, task: Task, ctx: RunContext, sft_adapter: Path) -> Path:
        from compoundai_adapters.dpo import DPOConfig, run_dpo

        pairs = task.preferences.get("train") or []
        if not pairs:
            raise UserInputError(
                "the finetune/sft+dpo lane needs preference pairs",
                hint="add preferences.train (prompt, chosen, rejected) to the task file",
            )
        settings = task.spec.finetune.dpo
        rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
        rows = sample_rows(rows, settings.max_rows, 0, "dpo-rows")
        key = _key(rows, _weights_key(sft_adapter), settings.model_dump())
        run_dir, merged, train_file = stage_on_sft(
            task, ctx, "dpo", key, sft_adapter, "pairs.jsonl", rows
        )
        config = DPOConfig(
            model=str(merged),
            output_dir=str(run_dir),
            train_file=str(train_file),
            epochs=settings.epochs,
            learning_rate=settings.learning_rate,
            beta=settings.beta,
            lora={"rank": task.spec.finetune.lora_rank, "alpha": 2 * task.spec.finetune.lora_rank},
            tokens_per_batch=task.spec.finetune.tokens_per_batch,
            max_seq_len=task.spec.finetune.max_seq_len,
            on_long_rows="skip",
            **forgetting_check(),
        )
        adapter = _train_cached(run_dir, lambda resume: run_dpo(config, ctx, resume=resume), ctx)
        stamp(adapter, fingerprint=f"dpo-{key}", serving_base=str(merged))
        return adapter


def require_local_generator(task: Task, lane: str) -> None:
    """Lanes that train an adapter need a local generator, not an OpenAI-compatible server."""
    if task.spec.models.openai_base_url:
        raise UserInputError(
            f"the {lane} lane trains a local model, but the task's generator is a server "
            f"({task.spec.models.openai_base_url})",
            hint="remove models.openai_base_url, or compare other lanes (--lanes prompt,rag)",
        )


def adapter_generator(task: Task, ctx: RunContext, adapter: Path) -> tuple[Any, BuildInfo]:
    """A `LocalGenerator` serving `adapter`, and the facts a report shows about it."""
    from compoundai.generators.local import LocalGenerator
    from compoundai_adapters.artifacts import read_manifest

    manifest = read_manifest(adapter)
    base = manifest.serving_base or manifest.base_model or task.spec.models.generator
    generator = LocalGenerator(base, ctx=ctx, adapter=adapter)
    m = manifest.metrics
    info = BuildInfo(
        adapter=str(adapter),
        base_model=base,
        fingerprint=manifest.fingerprint or _weights_key(adapter),
        training=TrainingFacts(
            steps=m.steps,
            tokens=m.tokens,
            train_seconds=m.train_seconds,
            tokens_per_s=m.tokens_per_s,
        ),
        forgetting=m.forgetting,
    )
    return generator, info


def train_sft_adapter(
    task: Task,
    ctx: RunContext,
    rows: list[dict[str, Any]],
    *,
    system: str | None,
    tag: str,
    base: str | None = None,
) -> Path:
    """A LoRA SFT adapter on `rows` with the task's `finetune` settings, cached and resumable.

    Rows are prompt/completion pairs under `system`, or (`system=None`) whole chats in a
    `messages` field. `base` replaces the task's generator as the model trained (a merged
    earlier stage). The cache folder is `CACHE/adapters/<task>-<tag>-<hash>/`.
    """
    from compoundai_adapters.sft import SFTConfig, run_sft

    settings = task.spec.finetune
    model = base or task.spec.models.generator
    # only the settings SFT uses: turning on another stage must not retrain the SFT adapter
    later = {"dpo", "pretrain", "qa", "distill", "grpo", "rlhf"}
    key = _key(rows, system, model, settings.model_dump(exclude=later))
    run_dir = ctx.cache_dir / "adapters" / f"{slug(task.name)}-{tag}-{key}"
    run_dir.mkdir(parents=True, exist_ok=True)
    train_file = run_dir / "train.jsonl"
    if not train_file.is_file():
        write_jsonl(train_file, rows)
    config = SFTConfig(
        model=model,
        output_dir=str(run_dir),
        train_file=str(train_file),
        format="messages" if system is None else "prompt_completion",
        system=system,
        epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        lora={"rank": settings.lora_rank, "alpha": 2 * settings.lora_rank},
        tokens_per_batch=settings.tokens_per_batch,
        max_seq_len=settings.max_seq_len,
        on_long_rows="skip",
        seed=settings.seed,
        **forgetting_check(),
    )
    adapter = _train_cached(run_dir, lambda resume: run_sft(config, ctx, resume=resume), ctx)
    stamp(adapter, fingerprint=f"{tag}-{key}")
    return adapter


def chain_stages(info: BuildInfo, first: Path) -> None:
    """Make a two-stage adapter's facts run from the original base: `info.forgetting` (the
    last stage's, measured against the merged model it trained) becomes perplexity after the
    last stage over perplexity before the `first` stage's adapter, and the training time and
    tokens add the first stage's."""
    from compoundai_adapters.artifacts import read_manifest

    metrics = read_manifest(first).metrics
    training = info.training or TrainingFacts()
    if training.train_seconds is not None:
        training.train_seconds = round(training.train_seconds + metrics.train_seconds, 1)
    if training.tokens is not None:
        training.tokens = round(training.tokens + metrics.tokens, 1)
    info.training = training
    earlier, last = metrics.forgetting, info.forgetting
    if earlier is None or not earlier.perplexity_before or last is None:
        info.forgetting = None  # unknown is not safe: the release gate says so
        return
    before, after = earlier.perplexity_before, last.perplexity_after
    info.forgetting = ForgettingFacts(
        **{**last.model_dump(), "perplexity_before": before, "ratio": round(after / before, 4)},
    )
    info.forgetting.chained_from = str(first)
