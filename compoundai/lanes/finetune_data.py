"""Training rows the finetune lane takes from somewhere other than the task's gold outputs.

Split out of `finetune.py` so that module stays about SFT, DPO and pretraining (it also keeps the
adapter-cache helpers both share): `distill_rows`
(a teacher's answers to the train inputs, for `finetune/distill`), `synthesised_qa`
(question/answer pairs written about the documents' chunks, the first stage's text for
`finetune/qa+sft`) and `grpo_adapter` (GRPO after SFT, rewarded by the task's metric against
each train row's reference, for `finetune/sft+grpo`) and `rlhf_adapter` (a reward model on the
preference pairs, then RLOO against it, for `finetune/sft+rlhf`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compoundai.cache_lock import filling
from compoundai.context import RunContext
from compoundai.contract import format_output, parse_output
from compoundai.data import slug, write_jsonl
from compoundai.errors import RunTimeFailure, UserInputError
from compoundai.generators.base import Chat
from compoundai.hardware import release_memory
from compoundai.lanes.prompt import answer_generation, contract_of
from compoundai.provenance import file_sha256, json_digest
from compoundai.task import Task


def _key(*parts: Any) -> str:
    return json_digest(list(parts))[:16]


def stamp(adapter: Path, **fields: str) -> None:
    """Record this lane's facts in the adapter's manifest (the training stack owns the file)."""
    from compoundai_adapters.artifacts import stamp as record

    record(adapter, **fields)


def _weights_key(adapter: Path) -> str:
    """A content hash of an adapter's weights."""
    return file_sha256(adapter / "adapter_model.safetensors")[:16]


def _train_cached(run_dir: Path, train: Any, ctx: RunContext) -> Path:
    """Run `train(resume)` unless `run_dir/adapter` is complete; resume a killed run. Under
    the folder's lock: another process training the same adapter is waited for, then reused."""
    adapter = run_dir / "adapter"
    with filling(run_dir, "training this adapter"):
        if (adapter / "manifest.json").is_file() and (
            adapter / "adapter_model.safetensors"
        ).is_file():
            if ctx.progress:
                print(f"finetune: reusing the adapter in {adapter}")
            return adapter
        resume = (run_dir / "checkpoints").is_dir()
        # the run's shared generator waits idle while training loads a copy of its own: in
        # fp32 that is 0.54 GB of SmolLM2 on top of the training peak (benchmarks/README.md)
        if ctx.release_idle("generator"):
            release_memory()
        train(resume)
    return adapter


def merged_once(adapter: Path, merged: Path, ctx: RunContext) -> Path:
    """`adapter` merged into its base and saved as a model in `merged`, unless it is there."""
    from compoundai_adapters.artifacts import merge_and_export

    with filling(merged, "merging this adapter"):
        if not (merged / "config.json").is_file():
            merge_and_export(adapter, merged, ctx)
    return merged


def sample_rows(rows: list[Any], limit: int | None, seed: int, tag: str) -> list[Any]:
    """At most `limit` of `rows`, drawn with a seeded RNG named `tag` (all of them under it)."""
    if not limit or len(rows) <= limit:
        return rows
    return RunContext(seed=seed).rng(tag).sample(rows, limit)


def training_system(task: Task, system: str) -> str:
    """The system message a stage trains under: `system`, plus the output contract for free
    text (labels and JSON learn their contract from the answers)."""
    if task.spec.output.type == "free_text":
        return f"{system}\n\n{contract_of(task).describe()}"
    return system


def stage_on_sft(
    task: Task, ctx: RunContext, stage: str, key: str, sft_adapter: Path, name: str, rows: list[Any]
) -> tuple[Path, Path, Path]:
    """A stage that trains over the SFT model (DPO, GRPO): its cache folder
    `CACHE/adapters/<task>-<stage>-<key>/`, the SFT adapter merged into the base there
    (`sft-merged`, the stage's reference and serving base) and its training rows written to
    `name`, each made once."""
    run_dir = ctx.cache_dir / "adapters" / f"{slug(task.name)}-{stage}-{key}"
    run_dir.mkdir(parents=True, exist_ok=True)
    merged = merged_once(sft_adapter, run_dir / "sft-merged", ctx)
    train_file = run_dir / name
    if not train_file.is_file():
        write_jsonl(train_file, rows)
    return run_dir, merged, train_file


def distill_rows(
    task: Task, ctx: RunContext, rows: list[dict[str, str]]
) -> tuple[list[dict[str, str]], str]:
    """`rows` with each completion replaced by the teacher's answer to its prompt, and the
    teacher's name. Answers that break the output contract (no label, no JSON) or abstain are
    dropped: a student should not learn them. The answers are cached under
    `CACHE/distill/<task>-<hash>.jsonl`, the hash covering the teacher and the inputs."""
    settings = task.spec.finetune.distill
    if not settings.configured and "teacher" not in ctx.clients:
        raise UserInputError(
            "the finetune/distill lane needs a teacher",
            hint="set finetune.distill.teacher_base_url (and teacher_model), or "
            "finetune.distill.teacher_lane (e.g. compound) in the task file",
        )
    rows = sample_rows(rows, settings.max_rows, task.spec.finetune.seed, "distill-rows")
    inputs = [r["prompt"] for r in rows]
    answer, name, identity = _teacher(task, ctx)
    cache = ctx.cache_dir / "distill" / f"{slug(task.name)}-{_key(identity, inputs)}.jsonl"
    if cache.is_file():
        from compoundai.data import iter_jsonl

        texts = [str(r["answer"]) for _, r in iter_jsonl(cache, [])]
    else:
        texts = answer(inputs)
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(cache, [{"input": i, "answer": t} for i, t in zip(inputs, texts, strict=True)])
    contract = contract_of(task)
    kept = []
    for prompt, text in zip(inputs, texts, strict=True):
        output = parse_output(contract, text)
        if output is None or output == "":
            continue
        # a label answer must name the label; parse_output also snaps near-misses by spelling
        if contract.type == "labels" and str(output).lower() not in text.lower():
            continue
        kept.append({"prompt": prompt, "completion": format_output(output)})
    if not kept:
        raise RunTimeFailure(
            f"the teacher {name} gave no usable answer to {len(inputs)} train inputs "
            "(each broke the output contract or abstained)"
        )
    return kept, f"{name} ({len(kept)} of {len(inputs)} answers kept)"


def _teacher(task: Task, ctx: RunContext) -> tuple[Any, str, Any]:
    """A function from inputs to the teacher's answer texts, the teacher's name, and what
    decides its answers (the cache key of them)."""
    settings = task.spec.finetune.distill
    if settings.teacher_lane:
        from compoundai.lanes import lanes_for

        family = settings.teacher_lane.split("/", 1)[0]
        lanes = [lane for lane in lanes_for([family], task) if lane.name == settings.teacher_lane]
        if not lanes or "distill" in settings.teacher_lane:
            raise UserInputError(
                f"finetune.distill.teacher_lane: no lane {settings.teacher_lane!r} for this task",
                hint="name a lane a report of this task shows, e.g. compound or rag",
            )
        system = lanes[0].build(task, ctx)

        def from_lane(inputs: list[str]) -> list[str]:
            return [format_output(a.output) for a in system.batch(inputs)]

        return from_lane, f"lane {system.name}", [system.name, system.info.fingerprint]
    generator = ctx.clients.get("teacher")
    if generator is None:
        from compoundai.generators.openai_backend import OpenAIGenerator

        generator = OpenAIGenerator(settings.teacher_model, base_url=settings.teacher_base_url)
    message = f"{task.spec.instructions}\n\n{contract_of(task).describe()}"

    def from_endpoint(inputs: list[str]) -> list[str]:
        chats: list[Chat] = [
            [{"role": "system", "content": message}, {"role": "user", "content": text}]
            for text in inputs
        ]
        return [g.text for g in generator.generate(chats, answer_generation(task))]

    where = f" at {settings.teacher_base_url}" if settings.teacher_base_url else ""
    name = f"{getattr(generator, 'name', 'teacher')}{where}"
    return from_endpoint, name, [name, message, answer_generation(task).max_new_tokens]


def synthesised_qa(task: Task, ctx: RunContext, run_dir: Path) -> Path:
    """`run_dir/qa.jsonl`: the kept QA pairs about the task's document chunks as training text
    (`Question: ...` / `Answer: ...`), written once; the filter counts go to `synth.json`."""
    out = run_dir / "qa.jsonl"
    if out.is_file():
        return out
    import json

    from compoundai.lanes.prompt import shared_generator
    from compoundai.lanes.rag.store import RagStore
    from compoundai.synth import synthesize_qa, write_pairs
    from compoundai_retrievers.embedders import make_embedder

    qa = task.spec.finetune.qa
    store = RagStore.for_documents(task, ctx, make_embedder(task.spec.models.embedder, ctx))
    pairs, report = synthesize_qa(
        store.index,
        shared_generator(task, ctx),
        per_chunk=qa.per_chunk,
        k=qa.k,
        max_chunks=qa.max_chunks,
        seed=task.spec.finetune.seed,
        progress=ctx.progress,
    )
    if not pairs:
        raise RunTimeFailure(
            f"no synthesised question/answer pair passed the filters ({report.contract()}): "
            "use a stronger generator for the task, or finetune/pretrain+sft"
        )
    write_pairs(run_dir / "pairs.jsonl", pairs)
    record: dict[str, Any] = {**report.contract(), "seconds": report.seconds}
    if not task.split("dev"):  # the synthetic dev set decides: never trained on
        from compoundai.synth import synthetic_split

        pairs, held = synthetic_split(pairs)
        record["held_out_as_dev"] = len(held)
    (run_dir / "synth.json").write_text(json.dumps(record) + "\n", encoding="utf-8")
    write_jsonl(out, [{"text": f"Question: {p.question}\nAnswer: {p.answer}"} for p in pairs])
    return out


def _grpo_rows(task: Task, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """GRPO prompts: each train input with its reference (the gold output as text)."""
    settings = task.spec.finetune.grpo
    out = [{"prompt": r["prompt"], "reference": r["completion"]} for r in rows]
    return sample_rows(out, settings.max_rows, task.spec.finetune.seed, "grpo-rows")


def _grpo_dev_rows(task: Task) -> list[dict[str, Any]]:
    """GRPO's held-out prompts: the dev inputs with their references (a free-text case's
    acceptable answers as a list, so every row's reference has one type)."""
    out: list[dict[str, Any]] = []
    for ex in task.split("dev"):
        if task.spec.output.type == "free_text":
            ref: Any = (
                [str(a) for a in ex.output] if isinstance(ex.output, list) else [str(ex.output)]
            )
        else:
            ref = format_output(ex.output)
        out.append({"prompt": ex.input, "reference": ref})
    return out


def general_text() -> str | None:
    """The bundled general-text sample for the forgetting check, when it is installed."""
    path = Path(__file__).resolve().parents[1] / "resources" / "general_text.txt"
    return str(path) if path.is_file() else None


def forgetting_check() -> dict[str, Any]:
    """Every local stage's forgetting check (config fields): general-text perplexity of the
    model under the adapter before and after (a stage over the merged SFT model is chained
    back to the original base by the lane)."""
    text = general_text()
    return {"forgetting_texts": text, "forgetting_tokens": 8000} if text else {}


def grpo_adapter(
    task: Task, ctx: RunContext, sft_adapter: Path, rows: list[dict[str, str]], system: str
) -> Path:
    """GRPO on the SFT-merged model, rewarded by the task's metric against each train
    row's reference; the adapter is served over that merged model."""
    from compoundai_adapters.grpo import GRPOStageConfig, run_grpo

    settings = task.spec.finetune.grpo
    metrics = settings.metrics or [task.metrics[0]]
    prompts = _grpo_rows(task, rows)
    dev = _grpo_dev_rows(task)[: settings.eval_prompts]
    answer_len = answer_generation(task).max_new_tokens
    key = _key(
        prompts,
        dev,
        _weights_key(sft_adapter),
        settings.model_dump(exclude={"eval_every", "eval_prompts"}),  # measured, not trained
        metrics,
        answer_len,
        task.json_schema,
        bool(forgetting_check()),
    )
    run_dir, merged, train_file = stage_on_sft(
        task, ctx, "grpo", key, sft_adapter, "prompts.jsonl", prompts
    )
    dev_file = None
    if dev:  # the reward on dev inputs the policy never trains on: the guard's held-out signal
        dev_file = run_dir / "dev.jsonl"
        write_jsonl(dev_file, dev)
    schema_file = None
    if task.json_schema is not None:  # for schema_adherence
        import json

        schema_file = run_dir / "schema.json"
        schema_file.write_text(json.dumps(task.json_schema, sort_keys=True), encoding="utf-8")
    config = GRPOStageConfig(
        model=str(merged),
        output_dir=str(run_dir),
        train_file=str(train_file),
        eval_file=str(dev_file) if dev_file else None,
        eval_every=settings.eval_every if dev_file else None,
        system=training_system(task, system),
        metrics=metrics,
        schema_file=str(schema_file) if schema_file else None,
        group_size=settings.group_size,
        prompts_per_step=settings.prompts_per_step,
        temperature=settings.temperature,
        kl_coef=settings.kl_coef,
        max_answer_tokens=answer_len,
        learning_rate=settings.learning_rate,
        max_steps=settings.max_steps,
        lora={"rank": task.spec.finetune.lora_rank, "alpha": 2 * task.spec.finetune.lora_rank},
        seed=task.spec.finetune.seed,
        **forgetting_check(),
    )
    adapter = _train_cached(run_dir, lambda resume: run_grpo(config, ctx, resume=resume), ctx)
    stamp(adapter, fingerprint=f"grpo-{key}", serving_base=str(merged))
    return adapter


def rlhf_adapter(task: Task, ctx: RunContext, sft_adapter: Path, system: str) -> Path:
    """RLHF after SFT: a reward model trained on the task's train pairs (held out: its dev
    pairs, else a share of train), then RLOO on the SFT-merged model against it; the adapter
    is served over that merged model."""
    from compoundai_adapters.reward import RewardModelConfig, run_reward
    from compoundai_adapters.rloo import RLOOStageConfig, run_rloo

    pairs = task.preferences.get("train") or []
    if not pairs:
        raise UserInputError(
            "the finetune/sft+rlhf lane needs preference pairs",
            hint="add preferences.train (prompt, chosen, rejected) to the task file",
        )
    settings = task.spec.finetune.rlhf
    seed = task.spec.finetune.seed
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    rows = sample_rows(rows, settings.max_rows, seed, "rlhf-rows")
    dev = [
        {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
        for p in task.preferences.get("dev") or []
    ]
    lora = {"rank": task.spec.finetune.lora_rank, "alpha": 2 * task.spec.finetune.lora_rank}
    generator = task.spec.models.generator
    reward_keys = ["reward_steps", "reward_learning_rate", "pairs_per_step"]
    rm_key = _key(rows, dev, generator, lora, settings.model_dump(include=set(reward_keys)), seed)
    rm_dir = ctx.cache_dir / "adapters" / f"{slug(task.name)}-reward-{rm_key}"
    rm_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(rm_dir / "pairs.jsonl", rows)
    if dev:
        write_jsonl(rm_dir / "dev.jsonl", dev)
    reward_config = RewardModelConfig(
        model=generator,
        output_dir=str(rm_dir),
        train_file=str(rm_dir / "pairs.jsonl"),
        eval_file=str(rm_dir / "dev.jsonl") if dev else None,
        max_steps=settings.reward_steps,
        learning_rate=settings.reward_learning_rate,
        pairs_per_step=settings.pairs_per_step,
        max_seq_len=task.spec.finetune.max_seq_len,
        on_long_rows="skip",
        lora=lora,
        seed=seed,
    )
    reward = _train_cached(
        rm_dir, lambda resume: run_reward(reward_config, ctx, resume=resume), ctx
    )
    answer_len = answer_generation(task).max_new_tokens
    key = _key(
        rows,
        _weights_key(sft_adapter),
        _weights_key(reward),
        settings.model_dump(),
        answer_len,
        bool(forgetting_check()),
    )
    run_dir, merged, train_file = stage_on_sft(
        task, ctx, "rlhf", key, sft_adapter, "prompts.jsonl", rows
    )
    config = RLOOStageConfig(
        model=str(merged),
        output_dir=str(run_dir),
        train_file=str(train_file),
        reward_model=str(reward),
        system=training_system(task, system),
        heldout_metrics=settings.heldout_metrics,
        group_size=settings.group_size,
        prompts_per_step=settings.prompts_per_step,
        temperature=settings.temperature,
        kl_coef=settings.kl_coef,
        max_answer_tokens=answer_len,
        learning_rate=settings.learning_rate,
        max_steps=settings.max_steps,
        max_seq_len=task.spec.finetune.max_seq_len,
        lora=lora,
        seed=seed,
        **forgetting_check(),
    )
    adapter = _train_cached(run_dir, lambda resume: run_rloo(config, ctx, resume=resume), ctx)
    stamp(adapter, fingerprint=f"rlhf-{key}", serving_base=str(merged))
    return adapter
