"""The router: rules from the background article, each firing on a measured signal.

Every rule is one small function `(profile) -> list[Vote]` in `RULES`, read top to bottom.
A vote adds to a lane's score and carries its reason: the signal, its value, and a sentence.
Scores rank the lanes; the plan string (DSPy BetterTogether style, `"rag -> sft"`) chains the
stages the winning mix needs. Nothing here is learned or hidden: a reader can audit a
`Decision` against `RULES` and the profile it cites.

Lanes: `prompt` (instructions, few-shot), `rag` (retrieval), `finetune` (LoRA stages: sft,
dpo, pretrain), `compound` (an adapter trained with retrieved context, behind the index).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from compoundai.profile import TaskProfile

LANES = ("prompt", "rag", "finetune", "compound")


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lane: str
    signal: str
    value: float | int | str | bool | None
    text: str


class RankedLane(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lane: str
    score: float


class Decision(BaseModel):
    """The router's answer: a plan, lanes ranked by score, and the reasons behind it."""

    model_config = ConfigDict(extra="forbid")

    plan: str
    ranked: list[RankedLane]
    reasons: list[Reason]
    stages: list[str] = Field(default_factory=list)

    @property
    def top_lane(self) -> str:
        return self.ranked[0].lane


@dataclass(frozen=True)
class Vote:
    lane: str
    weight: float
    signal: str
    value: float | int | str | bool | None
    text: str
    stage: str | None = None  # a training/serving stage this vote puts into the plan


Rule = Callable[[TaskProfile], list[Vote]]


def prompt_first(p: TaskProfile) -> list[Vote]:
    """Prompting is the cheapest lane; it is always a candidate and the baseline."""
    return [
        Vote(
            "prompt",
            1.0,
            "baseline",
            True,
            "prompting is the cheapest change: always tried first, and the baseline",
        )
    ]


def examples_fit_in_context(p: TaskProfile) -> list[Vote]:
    """If all the examples fit in the context window, prompting with them is a real option."""
    if p.n_train == 0:
        return []
    fits = p.examples_tokens < p.context_window // 2
    if fits:
        return [
            Vote(
                "prompt",
                1.0,
                "examples_tokens",
                p.examples_tokens,
                f"all {p.n_train} examples (~{p.examples_tokens} tokens) fit in half the "
                f"{p.context_window}-token context window: few-shot prompting can use them",
            )
        ]
    return [
        Vote(
            "prompt",
            0.5,
            "examples_tokens",
            p.examples_tokens,
            f"the {p.n_train} examples (~{p.examples_tokens} tokens) exceed the "
            f"{p.context_window}-token window: prompting sees only a few, chosen by similarity",
        )
    ]


def strict_output_needs_finetune(p: TaskProfile) -> list[Vote]:
    """Behaviour, format, a label set or a schema: what fine-tuning teaches best."""
    votes = []
    if p.n_labels and p.n_train >= 5 * p.n_labels:
        votes.append(
            Vote(
                "finetune",
                3.0,
                "n_labels",
                p.n_labels,
                f"a fixed set of {p.n_labels} labels with {p.n_train} training examples: "
                "label discipline is behaviour, which fine-tuning (SFT) teaches",
                "sft",
            )
        )
    if p.n_labels:
        votes.append(
            Vote(
                "rag",
                1.5,
                "n_train",
                p.n_train,
                "labelled examples can be retrieved as nearest-neighbour demonstrations "
                "(and a neighbour vote is the cheap baseline)",
            )
        )
    if p.has_schema and p.n_train >= 50:
        votes.append(
            Vote(
                "finetune",
                3.0,
                "has_schema",
                True,
                f"a strict JSON schema with {p.n_train} examples: format is what "
                "fine-tuning teaches",
                "sft",
            )
        )
    return votes


def facts_need_retrieval(p: TaskProfile) -> list[Vote]:
    """Facts that live outside the model, or change, belong in an index."""
    votes = []
    if p.n_documents:
        if p.corpus_tokens > p.context_window:
            votes.append(
                Vote(
                    "rag",
                    3.0,
                    "corpus_tokens",
                    p.corpus_tokens,
                    f"the documents (~{p.corpus_tokens} tokens) exceed the "
                    f"{p.context_window}-token context window: retrieve, do not stuff",
                    "rag",
                )
            )
        else:
            votes.append(
                Vote(
                    "prompt",
                    2.0,
                    "corpus_tokens",
                    p.corpus_tokens,
                    f"the documents (~{p.corpus_tokens} tokens) fit in the "
                    f"{p.context_window}-token window: put them in the prompt",
                )
            )
    if p.n_documents and p.knowledge_freshness != "static":
        votes.append(
            Vote(
                "rag",
                3.5,
                "knowledge_freshness",
                p.knowledge_freshness,
                f"knowledge changes {p.knowledge_freshness}: facts that change belong in an "
                "index, updated in minutes; weights and pasted prompts go stale",
                "rag",
            )
        )
    if p.n_documents and p.n_train >= 100 and p.output_type == "free_text":
        votes.append(
            Vote(
                "compound",
                2.5,
                "n_train",
                p.n_train,
                f"documents plus {p.n_train} question/answer examples: train the "
                "adapter with retrieved context (RAFT) to answer from the passages",
                "sft",
            )
        )
    return votes


def preferences_need_dpo(p: TaskProfile) -> list[Vote]:
    """Preferences between answers: DPO."""
    if p.n_preference_pairs < 50:
        return []
    return [
        Vote(
            "finetune",
            3.0,
            "n_preference_pairs",
            p.n_preference_pairs,
            f"{p.n_preference_pairs} chosen/rejected pairs: preferences are what DPO learns",
            "dpo",
        )
    ]


def latency_penalises_retrieval(p: TaskProfile) -> list[Vote]:
    """A tight latency budget counts against lanes that add retrieval and long prompts."""
    if p.max_latency_ms is None or p.max_latency_ms >= 500:
        return []
    return [
        Vote(
            "rag",
            -1.0,
            "max_latency_ms",
            p.max_latency_ms,
            f"a {p.max_latency_ms:.0f} ms latency budget leaves little room for retrieval",
        )
    ]


RULES: list[Rule] = [
    prompt_first,
    examples_fit_in_context,
    strict_output_needs_finetune,
    facts_need_retrieval,
    preferences_need_dpo,
    latency_penalises_retrieval,
]
STAGE_ORDER = ("rag", "pretrain", "sft", "dpo")


class Router:
    """Apply `RULES` to a profile. `decide` is the one verb.

    >>> from compoundai.profile import TaskProfile
    >>> Router().decide(TaskProfile(task="t", output_type="labels", n_labels=3, n_train=60)).plan
    'sft'
    """

    def __init__(self, rules: list[Rule] | None = None) -> None:
        self.rules = rules if rules is not None else RULES

    def decide(self, profile: TaskProfile) -> Decision:
        votes = [v for rule in self.rules for v in rule(profile)]
        scores = dict.fromkeys(LANES, 0.0)
        for v in votes:
            scores[v.lane] += v.weight
        ranked = sorted(LANES, key=lambda lane: (-scores[lane], LANES.index(lane)))
        top = ranked[0]
        chosen = {top, *_companions(top, scores)}
        stages = sorted(
            {v.stage for v in votes if v.stage and v.lane in chosen}, key=STAGE_ORDER.index
        )
        plan = " -> ".join(stages) if stages else top
        return Decision(
            plan=plan,
            ranked=[RankedLane(lane=lane, score=round(scores[lane], 2)) for lane in ranked],
            reasons=[
                Reason(lane=v.lane, signal=v.signal, value=v.value, text=v.text) for v in votes
            ],
            stages=stages,
        )


def _companions(top: str, scores: dict[str, float]) -> tuple[str, ...]:
    """Lanes whose stages join the top lane's plan: those scoring at least 2/3 of it."""
    return tuple(
        lane for lane, s in scores.items() if lane != top and s >= 2 * scores[top] / 3 and s >= 3.0
    )
