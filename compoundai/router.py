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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from compoundai.profile import TaskProfile

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


class Decision(BaseModel):
    """The router's answer: a plan, lanes ranked by score, and the reasons behind it."""

    model_config = ConfigDict(extra="forbid")

    plan: str
    ranked: list[RankedLane]
    reasons: list[Reason]
    stages: list[str] = Field(default_factory=list)
    # The lane variant the plan builds (`finetune/sft+dpo` for "sft -> dpo"): what the
    # report's decision check compares with the measured winner.
    lane: str | None = None
    # Set by probe mode (`compoundai.probe.probe`): the cheap lanes' dev scores and whether
    # they overturned the rules.
    probe: dict[str, Any] | None = None

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

# `answer_overlap` (mean share of a reference answer's words found together in one passage)
# at or above HIGH: the answers are in the documents; under LOW: they are not. Measured on the
# squad_docs_qa slice: its own dev answers 1.0; answers to questions about other SQuAD
# articles 0.39 against the same corpus (short answers, years and names, match by chance);
# hh_preferences' chosen replies 0.20. Between the two thresholds the signal casts no vote.
HIGH_OVERLAP = 0.5
LOW_OVERLAP = 0.2


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
    """Behaviour, format, a label set or a schema: what fine-tuning teaches best.

    Fine-tuning needs enough examples to learn from: at least 5 per label, or 50 for a schema.
    The same examples, retrieved as nearest neighbours, are the cheap competitor (rag lane:
    demonstrations, and a neighbour vote for labels).
    """
    votes = []
    if p.n_labels and p.n_train >= 5 * p.n_labels:
        votes += [
            Vote(
                "finetune",
                2.0,
                "n_labels",
                p.n_labels,
                f"a fixed set of {p.n_labels} labels: label discipline is behaviour, which "
                "fine-tuning (SFT) teaches",
                "sft",
            ),
            Vote(
                "finetune",
                1.0,
                "n_train",
                p.n_train,
                f"{p.n_train} training examples, {p.n_train / p.n_labels:.0f} per label "
                "(at least 5 needed): enough to learn the label set from",
                "sft",
            ),
        ]
    if p.has_schema and p.n_train >= 50:
        fields = f" with {p.n_schema_fields} named fields" if p.n_schema_fields else ""
        votes += [
            Vote(
                "finetune",
                2.0,
                "has_schema",
                True,
                f"a strict JSON schema{fields}: format is what fine-tuning teaches",
                "sft",
            ),
            Vote(
                "finetune",
                1.0,
                "n_train",
                p.n_train,
                f"{p.n_train} input/JSON examples (at least 50 needed) to learn the format from",
                "sft",
            ),
        ]
    if (p.n_labels or p.has_schema) and p.n_train:
        votes.append(
            Vote(
                "rag",
                1.5,
                "n_train",
                p.n_train,
                f"the {p.n_train} labelled examples can be retrieved as nearest-neighbour "
                "demonstrations"
                + (" (and a neighbour vote is the cheap baseline)" if p.n_labels else ""),
            )
        )
    return votes


def examples_teach_behaviour(p: TaskProfile) -> list[Vote]:
    """Free-text examples that do not draw on documents teach how to answer: SFT.

    With documents whose words the answers share, the examples are questions about facts
    (RAG's business, see `answers_come_from_documents`); otherwise what a model learns from
    many input/answer pairs is their form and tone.
    """
    if p.output_type != "free_text" or p.n_train < 100:
        return []
    if p.n_documents and (p.answer_overlap is None or p.answer_overlap >= LOW_OVERLAP):
        return []
    why = "whose answers are not in the documents" if p.n_documents else "and no documents"
    return [
        Vote(
            "finetune",
            2.0,
            "n_train",
            p.n_train,
            f"{p.n_train} input/answer examples {why}: what they teach is how to answer "
            "(form, tone, domain usage), which SFT learns",
            "sft",
        )
    ]


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
    answers_in_docs = p.answer_overlap is None or p.answer_overlap >= LOW_OVERLAP
    if p.n_documents and p.n_train >= 100 and p.output_type == "free_text" and answers_in_docs:
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


def answers_come_from_documents(p: TaskProfile) -> list[Vote]:
    """Do the reference answers live in the documents? Then retrieval can supply them (RAG).

    If they do not, the documents are background, not a place to look answers up: domain
    knowledge, which the article sends to continued pretraining (mid-training) before SFT.
    Measured on at least 10 answers (see `compoundai.profile.answer_overlap`).
    """
    if p.answer_overlap is None or p.answers_measured < 10:
        return []
    where = (
        f"over {p.answers_measured} reference answers, {p.answer_overlap:.0%} of an answer's "
        f"words sit together in one passage ({p.answer_verbatim or 0:.0%} found verbatim)"
    )
    if p.answer_overlap >= HIGH_OVERLAP:
        return [
            Vote(
                "rag",
                2.0,
                "answer_overlap",
                p.answer_overlap,
                f"{where}: the answers are facts in the documents, which retrieval supplies",
                "rag",
            )
        ]
    if p.answer_overlap >= LOW_OVERLAP:
        return []
    votes = [
        Vote(
            "rag",
            -1.0,
            "answer_overlap",
            p.answer_overlap,
            f"{where}: the answers are not in the documents, so retrieving passages will not "
            "supply them",
        )
    ]
    if p.n_train >= 100:
        votes.append(
            Vote(
                "finetune",
                2.0,
                "answer_overlap",
                p.answer_overlap,
                "the documents are domain background rather than answers: continued "
                "pretraining on them (turned into question/answer pairs) before SFT",
                "pretrain",
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
            f"{p.n_preference_pairs} chosen/rejected training pairs: preferences between "
            "answers are what DPO learns",
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
    examples_teach_behaviour,
    facts_need_retrieval,
    answers_come_from_documents,
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
        # reasons of the top lane first, the weightiest first: what a reader checks first
        order = sorted(votes, key=lambda v: (ranked.index(v.lane), -v.weight))
        return Decision(
            lane=plan_lane(top, stages, profile),
            plan=plan,
            ranked=[RankedLane(lane=lane, score=round(scores[lane], 2)) for lane in ranked],
            reasons=[
                Reason(lane=v.lane, signal=v.signal, value=v.value, text=v.text, weight=v.weight)
                for v in order
            ],
            stages=stages,
        )


def plan_lane(top: str, stages: list[str], p: TaskProfile) -> str:
    """The lane variant a plan builds, named as the lanes name themselves.

    >>> plan_lane("finetune", ["sft", "dpo"], TaskProfile(task="t", output_type="free_text"))
    'finetune/sft+dpo'
    """
    if top == "prompt":
        return "prompt/5-shot" if p.n_train else "prompt/zero-shot"
    if top == "rag":
        return {"labels": "rag/knn-vote", "json_schema": "rag/demos"}.get(p.output_type, "rag")
    if top == "finetune":
        if "dpo" in stages:
            return "finetune/sft+dpo"
        if "pretrain" in stages:
            return "finetune/pretrain+sft"
        return "finetune/sft"
    return top


def _companions(top: str, scores: dict[str, float]) -> tuple[str, ...]:
    """Lanes whose stages join the top lane's plan: those scoring at least 2/3 of it."""
    return tuple(
        lane for lane, s in scores.items() if lane != top and s >= 2 * scores[top] / 3 and s >= 3.0
    )
