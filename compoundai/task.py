"""The task file: what the user wants done, with what data, under which constraints.

`TaskSpec` is the pydantic model of the YAML (`extra="forbid"`: a misspelt key is an error,
not a silent default). `load_task(path)` parses the YAML, validates it, resolves every path
relative to the YAML file, reads the data files and returns a `Task`. All problems found on
the way (YAML syntax, schema, missing files, bad JSONL rows, unknown labels) are collected
into one `UserInputError`, each with its file and line.

    >>> task = load_task("examples/banking77/task.yaml")   # doctest: +SKIP
    >>> task.spec.output.type, len(task.labels)            # doctest: +SKIP
    ('labels', 77)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from compoundai.config import Strict, line_of, read_yaml, validate
from compoundai.data import Example, PreferencePair
from compoundai.errors import Problem, UserInputError
from compoundai.task_checks import check_metrics, check_rows
from compoundai.task_files import read_task_files

KNOWN_METRICS = {
    "accuracy",
    "macro_f1",
    "exact_match",
    "f1",
    "json_valid",
    "schema_adherence",
    "slot_f1",
    "preference_accuracy",
    "mrr",
    "recall_at_5",
    "recall_at_10",
    "abstention_accuracy",
    "groundedness",
    "final_answer",
}
DEFAULT_METRICS = {
    "labels": ["accuracy", "macro_f1"],
    "json_schema": ["json_valid", "schema_adherence"],
    "free_text": ["exact_match", "f1"],
}


class OutputContract(Strict):
    """What an answer must look like: free text, one of a label set, or JSON under a schema."""

    type: Literal["free_text", "labels", "json_schema"] = "free_text"
    labels: list[str] | str | None = Field(
        None, description="The label set, inline or a path to a JSON list."
    )
    schema_: dict[str, Any] | str | None = Field(
        None, alias="schema", description="A JSON Schema, inline or a path to a .json file."
    )
    max_answer_tokens: int | None = Field(
        None,
        gt=0,
        le=4096,
        description="Tokens an answer may take (free text, JSON) [default: from the longest "
        "training answer].",
    )


class SplitFiles(Strict):
    """JSONL files per split; each split takes one path/glob or a list of them."""

    train: list[str] = Field(default_factory=list)
    dev: list[str] = Field(default_factory=list)
    test: list[str] = Field(default_factory=list)

    @field_validator("train", "dev", "test", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ExampleData(SplitFiles):
    """Labelled examples in JSONL, with the fields that hold the input and the output.

    `input_template` builds the input from several fields instead (`"{instruction}\n{input}"`).
    For free text a training row teaches one answer: a list there is its first item; held-out
    rows keep every reference (SQuAD style, `[]` for a question without an answer).
    """

    input_field: str = "input"
    input_template: str | None = None
    output_field: str | dict[str, str] = "output"
    id_field: str | None = None


class PreferenceData(SplitFiles):
    """Preference pairs in JSONL: which fields hold the prompt, the chosen and the rejected."""

    prompt_field: str = "prompt"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"
    id_field: str | None = None


class DocumentFields(Strict):
    """Which fields of a JSONL document row hold its text, id and title."""

    text: str = "text"
    id: list[str] = Field(default_factory=lambda: ["id", "doc_id"])
    title: str = "title"

    @field_validator("id", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Constraints(Strict):
    """What the deployment allows; the router weighs lanes against these."""

    max_latency_ms: float | None = Field(None, gt=0)
    budget_usd: float | None = Field(None, ge=0)
    local_only: bool = False
    gpu_available: bool | None = None  # None: detect at run time
    knowledge_freshness: Literal["static", "monthly", "weekly", "daily", "realtime"] = "static"


class ModelChoice(Strict):
    """Which generator and embedder to use: a store name, a Hugging Face id or a local path."""

    generator: str = "smollm2-135m-instruct"
    embedder: str = "all-minilm-l6-v2"
    openai_base_url: str | None = None  # set to use an OpenAI-compatible server as generator


class EvaluationSettings(Strict):
    """How `compare` and `run` sample the held-out cases."""

    limit: int | None = Field(None, gt=0, description="Stratified sample of N test cases.")
    seed: int = 0
    lanes: list[str] | None = None


class DecideSettings(Strict):
    """How `decide` and `run` measure the decision on dev (`compoundai.bakeoff`)."""

    budget_minutes: float | None = Field(
        15.0, gt=0, description="Wall-clock budget of the bake-off; null: no limit."
    )
    cases: int = Field(64, gt=1, description="Dev cases (or pairs) every lane is scored on.")
    first_cases: int = Field(
        24, gt=1, description="The small first sample the cheap lanes are screened on."
    )
    margin: float = Field(
        0.02, ge=0, description="Equivalence margin on the primary metric: 'tied' within it."
    )
    volume: int = Field(
        100_000, gt=0, description="Cases the training cost is spread over when comparing cost."
    )


class DPOSettings(Strict):
    """The DPO stage the finetune lane runs after SFT when the task has preference pairs.

    The learning rate is for the lane's LoRA adapter. On the hh example's 200 pairs (20 steps;
    `scripts/tune_dpo_hh.py`), 5e-5 left the DPO loss at 0.686 on average (ln 2 = 0.693 at the
    start): the stage hardly trained. 5e-4 averages 0.659, with perplexity on general text
    x1.05; 2e-3 diverges (0.722, x1.13). Preference accuracy on 200 held-out pairs of the
    shared train file: 0.435 for SFT, 0.430 at 5e-5 and 5e-4, 0.435 at 2e-3. DPO does move the
    scores (about 4 nats per answer at 5e-4), but chosen-minus-rejected log-likelihood margins
    on these pairs run to tens or hundreds of nats, mostly from answer length, so few flip.
    """

    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(5e-4, gt=0)
    beta: float = Field(0.1, gt=0)
    max_rows: int | None = Field(None, gt=0, description="Use at most N training pairs.")


class PretrainSettings(Strict):
    """Continued pretraining on the task's documents, the first stage of the
    finetune/pretrain+sft variant (tasks with `documents`): the facts go into the weights."""

    epochs: float = Field(3.0, gt=0)
    learning_rate: float = Field(1e-3, gt=0)


class QASettings(Strict):
    """Question/answer pairs synthesised from the documents (`compoundai.synth`), the first
    stage's training text in the finetune/qa+sft variant: the perplexity-curse remedy of
    Ovadia et al. 2023 (train on QA pairs about the documents, not on the documents' text)."""

    per_chunk: int = Field(3, gt=0, description="Questions asked per chunk.")
    k: int = Field(5, gt=0, description="Round-trip filter: the chunk is in the top k hits.")
    max_chunks: int | None = Field(None, gt=0, description="Sample N chunks [default: all].")


class DistillSettings(Strict):
    """The finetune/distill variant: SFT whose targets are a teacher's answers to the train
    inputs instead of the gold outputs. The teacher is an OpenAI-compatible endpoint
    (`teacher_base_url` and `teacher_model`: a larger model, or a compoundai-served system) or
    one of this task's own lanes (`teacher_lane`, e.g. `compound`: retrieval plus adapter
    distilled into a standalone adapter). Set one of the two; the variant exists only then."""

    teacher_base_url: str | None = None
    teacher_model: str = Field("default", description="The model name the endpoint knows.")
    teacher_lane: str | None = Field(None, description="A lane of this task, e.g. compound.")
    max_rows: int | None = Field(None, gt=0, description="Ask the teacher about N inputs.")

    @model_validator(mode="after")
    def _one_teacher(self) -> DistillSettings:
        if self.teacher_base_url and self.teacher_lane:
            raise ValueError("give teacher_base_url or teacher_lane, not both")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.teacher_base_url or self.teacher_lane)


class GRPOSettings(Strict):
    """The finetune/sft+grpo variant (opt in with `enabled`): GRPO after SFT, each sampled
    answer to a train input rewarded by the task's metrics against that row's reference (a
    verifiable reward), with a KL penalty to the SFT model (TRL's `GRPOTrainer`)."""

    enabled: bool = False
    metrics: list[str] | None = Field(None, description="Reward [default: the primary metric].")
    max_steps: int = Field(20, gt=0)
    group_size: int = Field(4, ge=2, description="Answers sampled per prompt.")
    prompts_per_step: int = Field(2, gt=0)
    learning_rate: float = Field(1e-5, gt=0)
    kl_coef: float = Field(0.04, ge=0)
    temperature: float = Field(1.0, gt=0)
    max_rows: int | None = Field(200, gt=0, description="Train prompts it samples from.")
    # 4 held-out points in the default 20 steps: the guard's trend window (4) can be judged
    eval_every: int = Field(
        5, gt=0, description="Steps between held-out rewards on dev (the guard's signal)."
    )
    eval_prompts: int = Field(8, gt=0, description="Dev inputs each held-out reward samples.")


class RLHFSettings(Strict):
    """The finetune/sft+rlhf variant (opt in with `enabled`, for tasks with preference pairs):
    a reward model trained on the train pairs (TRL's `RewardTrainer`, LoRA + score head on the
    generator), then the SFT model tuned against it with RLOO (TRL's `RLOOTrainer`; TRL 1.x has
    no PPO) with a KL penalty to the SFT model. `heldout_metrics` against each pair's chosen
    answer are logged, not trained on: the reward-hacking guard's signal."""

    enabled: bool = False
    reward_steps: int = Field(40, gt=0, description="Reward-model steps.")
    reward_learning_rate: float = Field(3e-4, gt=0)
    pairs_per_step: int = Field(4, gt=0)
    max_steps: int = Field(20, gt=0, description="RLOO steps.")
    group_size: int = Field(4, ge=2, description="Answers sampled per prompt.")
    prompts_per_step: int = Field(2, gt=0)
    learning_rate: float = Field(1e-5, gt=0)
    kl_coef: float = Field(0.05, ge=0)
    temperature: float = Field(1.0, gt=0)
    heldout_metrics: list[str] = Field(default_factory=lambda: ["f1"])
    max_rows: int | None = Field(200, gt=0, description="Train pairs it samples from.")


class FinetuneSettings(Strict):
    """How the finetune lane trains its LoRA adapter (defaults measured on banking77)."""

    epochs: float = Field(2.0, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    lora_rank: int = Field(16, gt=0)
    tokens_per_batch: int = Field(4096, gt=0)
    max_seq_len: int = Field(1024, gt=0)
    max_train_rows: int | None = Field(None, gt=0, description="Use at most N training rows.")
    seed: int = 0
    adapter: str | None = Field(
        None,
        description="A trained adapter directory (e.g. from `compoundai train sft`) to use "
        "instead of training one; relative to the task file.",
    )
    dpo: DPOSettings = Field(default_factory=DPOSettings)
    pretrain: PretrainSettings = Field(default_factory=PretrainSettings)
    qa: QASettings = Field(default_factory=QASettings)
    distill: DistillSettings = Field(default_factory=DistillSettings)
    grpo: GRPOSettings = Field(default_factory=GRPOSettings)
    rlhf: RLHFSettings = Field(default_factory=RLHFSettings)


class CompoundSettings(Strict):
    """The compound lane: an adapter trained on the rag prompts (RAFT, Zhang et al. 2024).

    Training uses `finetune`'s settings (epochs, learning rate, rank, batch); these say how
    many training prompts to build and, for documents, how often the gold passage is in them.
    """

    max_train_rows: int = Field(
        400,
        gt=0,
        description="Training prompts to build (each carries k retrieved demos or passages, "
        "so it is several times longer than a plain SFT row).",
    )
    gold_share: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Documents: the share of training prompts that hold the gold passage "
        "among the distractors; the rest are answered with the abstention reply.",
    )
    seed: int = 0


class TaskSpec(Strict):
    """The YAML task file, validated."""

    name: str = Field(min_length=1)
    description: str = ""
    instructions: str = Field(min_length=1)
    output: OutputContract = Field(default_factory=OutputContract)
    documents: list[str] = Field(default_factory=list)
    document_fields: DocumentFields = Field(default_factory=DocumentFields)
    examples: ExampleData | None = None
    preferences: PreferenceData | None = None
    constraints: Constraints = Field(default_factory=Constraints)
    metrics: list[str] = Field(default_factory=list)
    models: ModelChoice = Field(default_factory=ModelChoice)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    decide: DecideSettings = Field(default_factory=DecideSettings)
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)
    compound: CompoundSettings = Field(default_factory=CompoundSettings)


@dataclass
class Task:
    """A loaded task: the validated spec plus its data, read and checked."""

    spec: TaskSpec
    path: Path
    labels: list[str] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None
    documents: list[Path] = field(default_factory=list)
    examples: dict[str, list[Example]] = field(default_factory=dict)
    preferences: dict[str, list[PreferencePair]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what load_task warned about

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def metrics(self) -> list[str]:
        return self.spec.metrics or DEFAULT_METRICS[self.spec.output.type]

    def split(self, name: str) -> list[Example]:
        """The examples of one split (empty list when the task has none)."""
        return self.examples.get(name, [])


def load_task(path: str | Path, *, strict: bool = False) -> Task:
    """Parse, validate and load a task file; raise `UserInputError` listing every problem.

    Held-out inputs that also occur in the training split are a warning (logged, and kept in
    `task.warnings`); with `strict`, an error.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"task file not found: {path}", hint="pass the path to a task.yaml")
    raw, node = read_yaml(path, "task settings")
    spec, problems = validate(TaskSpec, raw, path, node)
    if spec is None:  # report the data problems of the sections that did validate too
        raise UserInputError(problems + problems_despite_schema(raw, path))
    task = Task(spec=spec, path=path)
    read_task_files(task, problems)
    for name in spec.metrics:
        if name not in KNOWN_METRICS:
            problems.append(
                Problem(
                    f"unknown metric {name!r}; known: {', '.join(sorted(KNOWN_METRICS))}",
                    file=str(path),
                    line=line_of(node, ("metrics",)),
                    field="metrics",
                )
            )
    problems += check_metrics(task, node) + check_rows(task, strict)
    if problems:
        raise UserInputError(problems)
    return task


def problems_despite_schema(raw: dict[str, Any], path: Path) -> list[Problem]:
    """The data problems of the sections that validate, when the whole file did not."""
    found: list[Problem] = []
    sections = ("output", "documents", "document_fields", "examples", "preferences")
    kept = {}
    for key in sections:
        if key not in raw:
            continue
        probe = {"name": "x", "instructions": "x", key: raw[key]}
        try:
            TaskSpec.model_validate(probe)
        except ValueError:
            continue
        kept[key] = raw[key]
    if not kept:
        return found
    spec = TaskSpec.model_validate({"name": "x", "instructions": "x", **kept})
    read_task_files(Task(spec=spec, path=path), found)
    return found
