"""The decision's types, and the router that decides from the rules alone (`--rules-only`).

`Decision` is what `decide` answers, measured (`compoundai.bakeoff`) or by the rules: a plan,
the lane it builds, lanes ranked, the reasons, and for a measured decision every measurement
(`evidence`). `Router` applies `compoundai.rules.RULES` to a profile: votes add to each lane's
score, the top lane's stages make the plan string (DSPy BetterTogether style, `"rag -> sft"`).
Nothing here is learned or hidden: a reader can audit a `Decision` against `RULES` and the
profile it cites.

Lanes: `prompt` (instructions, few-shot), `rag` (retrieval), `finetune` (LoRA stages: sft,
dpo, pretrain), `compound` (an adapter trained with retrieved context, behind the index).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from compoundai.profile import TaskProfile
from compoundai.rules import RULES, Rule, Vote

LANES = ("prompt", "rag", "finetune", "compound")


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lane: str
    signal: str
    value: float | int | str | bool | None
    text: str
    weight: float = 0.0  # what the reason added to (or took from) the lane's score


class RankedLane(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lane: str
    score: float


class Evidence(BaseModel):
    """One measurement (or finding) of a measured decision, in the order it was made."""

    model_config = ConfigDict(extra="forbid")

    lane: str
    stage: str  # rules | cheap | rung | choose
    data_share: float | None = None
    cases: int | None = None
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    seconds: float | None = None
    p95_ms: float | None = None  # the lane's p95 latency per case on these cases
    train_seconds: float | None = None
    train_tokens: int | None = None
    steps: int | None = None
    settings: dict[str, float] = Field(default_factory=dict)
    note: str = ""


class Decision(BaseModel):
    """The router's answer: a plan, lanes ranked by score, and the reasons behind it.

    `mode` says how it was made: `rules` (the rules alone, instantly) or `measured` (the
    bake-off on dev, `compoundai.bakeoff`, with every measurement in `evidence`).
    """

    model_config = ConfigDict(extra="forbid")

    plan: str
    ranked: list[RankedLane]
    reasons: list[Reason]
    stages: list[str] = Field(default_factory=list)
    # The lane variant the plan builds (`finetune/sft+dpo` for "sft -> dpo"): what the
    # report's decision check compares with the measured winner.
    lane: str | None = None
    mode: str = "rules"
    evidence: list[Evidence] = Field(default_factory=list)
    # measured mode: each measured lane's (predicted, for training lanes) full-data dev score
    predictions: dict[str, dict[str, float]] = Field(default_factory=dict)
    # measured mode: the share and settings each training lane stopped at (what `run` builds)
    training_plans: dict[str, dict[str, float]] = Field(default_factory=dict)
    metric: str | None = None
    split: str | None = None  # what the decision measured on: dev, or a train slice
    seconds: float | None = None
    rule_plan: str | None = None  # measured mode: what the rules alone would have planned

    @property
    def top_lane(self) -> str:
        return self.ranked[0].lane


STAGE_ORDER = ("rag", "pretrain", "qa", "sft", "dpo", "rlhf", "grpo")
# Knowledge that changes this often belongs in an index; see `knowledge_in_weights`.
FRESH = ("daily", "realtime")
WEIGHT_KNOWLEDGE = ("pretrain", "qa", "distill")


def knowledge_in_weights(lane: str) -> bool:
    """Whether a lane variant trains facts into the weights: continued pretraining on the
    documents or on QA pairs about them, or distilling a teacher's answers. Such a lane goes
    stale when the facts change (the knowledge cutoff), so it is never the plan for a task whose
    `knowledge_freshness` is daily or realtime (`Router.decide`, and the bake-off's `choose`).

    >>> knowledge_in_weights("finetune/pretrain+sft@25%"), knowledge_in_weights("compound")
    (True, False)
    """
    family, _, variant = lane.split("@", 1)[0].partition("/")
    return family == "finetune" and any(s in variant.split("+") for s in WEIGHT_KNOWLEDGE)


def changing_knowledge(p: TaskProfile) -> bool:
    """The task has documents whose facts change daily or faster."""
    return bool(p.n_documents) and p.knowledge_freshness in FRESH


class Router:
    """Apply `RULES` to a profile. `decide` is the one verb.

    >>> from compoundai.profile import TaskProfile
    >>> Router().decide(TaskProfile(task="t", output_type="labels", n_labels=3, n_train=60)).plan
    'rag'
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
        stages = sorted(
            {v.stage for v in votes if v.stage and v.lane == top}, key=STAGE_ORDER.index
        )
        dropped = []
        if changing_knowledge(profile):
            dropped = [s for s in stages if s in WEIGHT_KNOWLEDGE]
            stages = [s for s in stages if s not in WEIGHT_KNOWLEDGE]
        lane = plan_lane(top, stages, profile)
        plan = plan_of(lane)
        # reasons of the top lane first, the weightiest first: what a reader checks first
        order = sorted(votes, key=lambda v: (ranked.index(v.lane), -v.weight))
        if dropped:
            order.insert(0, freshness_reason(top, dropped, profile))
        return Decision(
            lane=lane,
            plan=plan,
            ranked=[RankedLane(lane=lane, score=round(scores[lane], 2)) for lane in ranked],
            reasons=[
                Reason(lane=v.lane, signal=v.signal, value=v.value, text=v.text, weight=v.weight)
                for v in order
            ],
            stages=[s.strip() for s in plan.split("->")],
        )


def freshness_reason(lane: str, dropped: list[str], p: TaskProfile) -> Vote:
    """Why a stage that trains the documents into the weights left the plan."""
    return Vote(
        lane,
        0.0,
        "knowledge_freshness",
        p.knowledge_freshness,
        f"knowledge changes {p.knowledge_freshness}: the plan keeps the facts in the index, "
        f"not continued pretraining or distillation ({', '.join(dropped)} left out), because "
        "weights trained on them would answer with yesterday's facts until retrained",
    )


def plan_lane(top: str, stages: list[str], p: TaskProfile) -> str:
    """The lane variant a plan builds, named as the lanes name themselves.

    >>> plan_lane("finetune", ["sft", "dpo"], TaskProfile(task="t", output_type="free_text"))
    'finetune/sft+dpo'
    """
    if top == "prompt":
        fits = p.n_documents and p.corpus_tokens <= p.context_window // 2
        if fits and p.output_type == "free_text":
            return "prompt/stuffed"
        return "prompt/5-shot" if p.n_train else "prompt/zero-shot"
    if top == "rag":
        return {"labels": "rag/knn-vote", "json_schema": "rag/demos"}.get(p.output_type, "rag")
    if top == "finetune":
        if "dpo" in stages:
            return "finetune/sft+dpo"
        if "grpo" in stages:
            return "finetune/sft+grpo"
        if "pretrain" in stages:
            return "finetune/pretrain+sft"
        if "qa" in stages:
            return "finetune/qa+sft"
        return "finetune/sft"
    return top


def plan_of(lane: str) -> str:
    """The plan string (DSPy BetterTogether style) of a lane variant.

    >>> plan_of("finetune/sft+dpo"), plan_of("compound"), plan_of("rag/knn-vote")
    ('sft -> dpo', 'rag -> sft', 'rag')
    """
    base = lane.split("@", 1)[0]
    family, _, variant = base.partition("/")
    if family == "finetune":
        return " -> ".join((variant or "sft").split("+"))
    if family == "compound":
        return "rag -> sft"
    return family
