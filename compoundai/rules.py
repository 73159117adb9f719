"""The rules: which lane to try first, from signals of the task, each resting on a measurement.

They began as the background article's rules of thumb ("labels and formats -> fine-tune,
facts -> RAG"), and on this stack the measurements refuted them: the rule plan matched the
test winner on none of the four bundled examples. They now follow the record
(`compoundai/resources/rules_record.json`, summarised from the examples' reports by
`scripts/rules_record.py`; `tests/test_rules_record.py` fails when a rule contradicts it), and
each vote cites the measurement it rests on. They are the *prior* of a measured decision
(`compoundai.bakeoff` tries lanes in their order) and, with `--rules-only`, the instant answer.

Every rule is one small function `(profile) -> list[Vote]`, read top to bottom. A vote adds to a
lane's score and carries its reason: the signal, its value, and a sentence. The rules stay
one piece (one file), so the whole prior reads in one place against the record it must match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from compoundai.profile import TaskProfile

# The measurements the rules cite (test splits of the bundled examples, SmolLM2-135M and
# MiniLM on a 2-core CPU; docs/results.md).
BANKING_KNN = "banking77 (77 labels, 1,540 examples): the 5-NN vote 0.851, the best lane"
BANKING_SFT = (
    "banking77's SFT on its 1,540 rows (20 a label, 34 optimizer steps) scored 0.448, on "
    "9,849 rows (128 a label, 310 steps) 0.869"
)
SNIPS_COMPOUND = "snips_json: compound 0.971 schema adherence against 0.886 for 5-shot prompting"
SQUAD_COMPOUND = "squad_docs_qa: compound (RAFT) F1 0.316 against 0.068 for plain retrieval"
HH_TIED = "hh_preferences: zero-shot 0.467, SFT 0.450, SFT+DPO 0.450 preference accuracy: tied"
LATENCY = "banking77 latency p50: the kNN vote 3 ms, prompting and fine-tuned lanes 370-690 ms"
LLM_LATENCY_MS = 370.0  # the fastest LLM lane measured per case on this CPU (labels)


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


def instructions_only(p: TaskProfile) -> list[Vote]:
    """A task with instructions and nothing else: prompting is the only lane that applies."""
    if p.n_train or p.n_documents or p.n_preference_pairs:
        return []
    return [
        Vote(
            "prompt",
            0.5,
            "no_data",
            True,
            "the task has instructions only (no examples, documents or preference pairs): "
            "nothing can be trained or retrieved, so the plan is the zero-shot prompt; add "
            "examples to measure it, or to let other lanes compete",
        )
    ]


def examples_fit_in_context(p: TaskProfile) -> list[Vote]:
    """Few-shot prompting uses the examples when they fit in the prompt budget (half the
    window, the other half for the instructions, the query and the answer)."""
    if p.n_train == 0:
        return []
    budget = p.context_window // 2
    if p.examples_tokens < budget:
        return [
            Vote(
                "prompt",
                1.0,
                "examples_tokens",
                p.examples_tokens,
                f"all {p.n_train} examples (~{p.examples_tokens} tokens) fit in half the "
                f"{p.context_window}-token context window: few-shot prompting can use them all",
            )
        ]
    return [
        Vote(
            "prompt",
            0.5,
            "examples_tokens",
            p.examples_tokens,
            f"the {p.n_train} examples (~{p.examples_tokens} tokens) exceed half the "
            f"{p.context_window}-token window ({budget} tokens): prompting sees only a few, "
            "chosen by similarity",
        )
    ]


def labelled_examples_are_retrieved(p: TaskProfile) -> list[Vote]:
    """A label set with examples: their nearest neighbours vote, or serve as demonstrations.

    Measured: on banking77 the 5-NN vote tied the best lane at no generator cost, while SFT on
    the same rows lost badly; fine-tuning a label set needs many examples a label.
    """
    if not p.n_labels or not p.n_train:
        return []
    per_label = p.n_train / p.n_labels
    votes = [
        Vote(
            "rag",
            3.0,
            "n_train",
            p.n_train,
            f"{p.n_train} labelled examples ({per_label:.0f} a label) to retrieve: their "
            f"nearest neighbours vote or serve as demonstrations ({BANKING_KNN})",
            "rag",
        )
    ]
    if per_label >= 100:
        votes.append(
            Vote(
                "finetune",
                2.0,
                "n_train",
                p.n_train,
                f"{per_label:.0f} examples a label is enough to fine-tune the label set "
                f"({BANKING_SFT})",
                "sft",
            )
        )
    else:
        votes.append(
            Vote(
                "finetune",
                0.5,
                "n_train",
                p.n_train,
                f"{per_label:.0f} examples a label is few for fine-tuning ({BANKING_SFT})",
                "sft",
            )
        )
    return votes


def schema_with_examples_needs_compound(p: TaskProfile) -> list[Vote]:
    """A strict JSON schema with examples: retrieved demonstrations plus an adapter trained
    on them (the compound lane) was clearly best on snips_json."""
    if not p.has_schema or p.n_train < 50:
        return []
    fields = f" with {p.n_schema_fields} named fields" if p.n_schema_fields else ""
    return [
        Vote(
            "compound",
            3.5,
            "has_schema",
            True,
            f"a strict JSON schema{fields} and {p.n_train} examples: an adapter trained on "
            f"retrieved demonstrations learns the format ({SNIPS_COMPOUND})",
            "sft",
        ),
        Vote(
            "rag",
            2.0,
            "n_train",
            p.n_train,
            f"the {p.n_train} input/JSON examples can be retrieved as demonstrations "
            "(rag/demos 0.879 on snips_json)",
        ),
    ]


def documents_and_questions_need_compound(p: TaskProfile) -> list[Vote]:
    """Documents plus question/answer examples: train the adapter with retrieved context
    (RAFT); documents alone: retrieve."""
    if not p.n_documents or p.output_type != "free_text":
        return []
    votes = []
    if p.corpus_tokens > p.context_window:
        votes.append(
            Vote(
                "rag",
                2.5,
                "corpus_tokens",
                p.corpus_tokens,
                f"the documents (~{p.corpus_tokens} tokens) exceed the {p.context_window}-token "
                "context window: retrieve, do not stuff",
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
                f"the documents (~{p.corpus_tokens} tokens) fit in the {p.context_window}-token "
                "window: they can go into the prompt",
            )
        )
    answers_in_docs = p.answer_overlap is None or p.answer_overlap >= LOW_OVERLAP
    if p.n_train >= 50 and answers_in_docs:
        votes.append(
            Vote(
                "compound",
                4.0,
                "n_train",
                p.n_train,
                f"documents plus {p.n_train} question/answer examples: an adapter trained with "
                f"retrieved passages answers from them and abstains ({SQUAD_COMPOUND})",
                "sft",
            )
        )
    return votes


# `answer_overlap` (mean share of a reference answer's words found together in one passage)
# at or above HIGH: the answers are in the documents; under LOW: they are not. Measured on the
# squad_docs_qa slice: its own dev answers 1.0; answers to questions about other SQuAD
# articles 0.39 against the same corpus (short answers, years and names, match by chance);
# hh_preferences' chosen replies 0.20. Between the two thresholds the signal casts no vote.
HIGH_OVERLAP = 0.5
LOW_OVERLAP = 0.2


def answers_come_from_documents(p: TaskProfile) -> list[Vote]:
    """Do the reference answers live in the documents? Then retrieval can supply them."""
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
                1.0,
                "answer_overlap",
                p.answer_overlap,
                f"{where}: the answers are facts in the documents, which retrieval supplies",
                "rag",
            )
        ]
    if p.answer_overlap >= LOW_OVERLAP:
        return []
    return [
        Vote(
            "rag",
            -1.0,
            "answer_overlap",
            p.answer_overlap,
            f"{where}: the answers are not in the documents, so retrieving passages will not "
            "supply them",
        )
    ]


def knowledge_that_changes_stays_out_of_weights(p: TaskProfile) -> list[Vote]:
    """Facts that change daily or faster belong in an index, updated in minutes: a lane that
    puts knowledge into weights goes stale (the knowledge cutoff)."""
    if not p.n_documents or p.knowledge_freshness in ("static", "monthly"):
        return []
    return [
        Vote(
            "rag",
            3.5,
            "knowledge_freshness",
            p.knowledge_freshness,
            f"knowledge changes {p.knowledge_freshness}: facts that change belong in an index "
            "(re-ingested in minutes, no retraining); weights trained on them go stale",
            "rag",
        ),
        Vote(
            "finetune",
            -3.0,
            "knowledge_freshness",
            p.knowledge_freshness,
            f"knowledge changes {p.knowledge_freshness}: "
            + (
                "no lane that trains the documents into the weights (continued pretraining, "
                "QA pairs, distilled facts) may be the plan"
                if p.knowledge_freshness in ("daily", "realtime")
                else "lanes that train the documents into the weights go stale between retrainings"
            ),
        ),
    ]


def preferences_alone_do_not_pay(p: TaskProfile) -> list[Vote]:
    """Preference pairs: DPO is the lane that learns them, but on hh_preferences neither SFT
    nor DPO moved preference accuracy from zero-shot's (tied)."""
    if p.n_preference_pairs < 50:
        return []
    return [
        Vote(
            "prompt",
            1.5,
            "n_preference_pairs",
            p.n_preference_pairs,
            f"{p.n_preference_pairs} preference pairs, but training on pairs like these did not "
            f"beat prompting ({HH_TIED})",
        ),
        Vote(
            "finetune",
            1.0,
            "n_preference_pairs",
            p.n_preference_pairs,
            f"{p.n_preference_pairs} chosen/rejected pairs are what DPO learns from (and a "
            "reward model for RLHF: `finetune.rlhf.enabled` adds the finetune/sft+rlhf lane to "
            "measure it)",
            "dpo",
        ),
    ]


def verifiable_answers_invite_rl(p: TaskProfile) -> list[Vote]:
    """Answers that can be checked (a numeric final answer) are a reward: reinforcement
    learning with verifiable rewards (GRPO) applies; SFT on the worked solutions first."""
    if p.numeric_answer_share is None or p.numeric_answer_share < 0.9 or p.n_train < 100:
        return []
    return [
        Vote(
            "finetune",
            1.0,
            "numeric_answer_share",
            p.numeric_answer_share,
            f"{p.numeric_answer_share:.0%} of the answers end in a number that can be checked: "
            "a verifiable reward, what GRPO-style training optimises (after SFT; "
            "`finetune.grpo.enabled` adds the finetune/sft+grpo lane to measure it)",
            "sft",
        )
    ]


def latency_penalises_what_is_slow(p: TaskProfile) -> list[Vote]:
    """A latency budget under what a generator call takes counts against every lane that
    calls the model; the non-LLM baselines (kNN vote, BM25) answer in milliseconds."""
    if p.max_latency_ms is None or p.max_latency_ms >= 2 * LLM_LATENCY_MS:
        return []
    votes = [
        Vote(
            lane,
            -2.0,
            "max_latency_ms",
            p.max_latency_ms,
            f"a {p.max_latency_ms:.0f} ms budget is under what a model call takes here ({LATENCY})",
        )
        for lane in ("prompt", "finetune", "compound")
    ]
    if p.n_labels and p.n_train:
        votes.append(
            Vote(
                "rag",
                1.0,
                "max_latency_ms",
                p.max_latency_ms,
                f"the kNN vote answers within a {p.max_latency_ms:.0f} ms budget ({LATENCY})",
                "rag",
            )
        )
    return votes


def constraints_on_training(p: TaskProfile) -> list[Vote]:
    """A GPU makes training cheap; a budget smaller than the estimated training cost rules it
    out; a local-only task cannot use a remote generator (nor train one)."""
    votes = []
    if p.gpu_available:
        votes += [
            Vote(
                lane,
                0.5,
                "gpu_available",
                True,
                "a GPU is available: training an adapter costs minutes, not the tens of "
                "minutes it takes on this project's 2-core CPU",
            )
            for lane in ("finetune", "compound")
        ]
    if p.budget_usd is not None and p.training_usd_estimate > p.budget_usd:
        votes += [
            Vote(
                lane,
                -5.0,
                "budget_usd",
                p.budget_usd,
                f"training is estimated at ${p.training_usd_estimate:.4f}, over the "
                f"${p.budget_usd:g} budget",
            )
            for lane in ("finetune", "compound")
        ]
    if p.local_only and p.remote_generator:
        votes.append(
            Vote(
                "prompt",
                0.0,
                "local_only",
                True,
                "the task is local-only but names a remote generator: lanes using it break the "
                "constraint and are excluded from the winner",
            )
        )
    if p.remote_generator:
        votes += [
            Vote(
                lane,
                -5.0,
                "remote_generator",
                True,
                "the generator is a remote server: lanes that train a local adapter cannot use it",
            )
            for lane in ("finetune", "compound")
        ]
    return votes


RULES: list[Rule] = [
    prompt_first,
    instructions_only,
    examples_fit_in_context,
    labelled_examples_are_retrieved,
    schema_with_examples_needs_compound,
    documents_and_questions_need_compound,
    answers_come_from_documents,
    knowledge_that_changes_stays_out_of_weights,
    preferences_alone_do_not_pay,
    verifiable_answers_invite_rl,
    latency_penalises_what_is_slow,
    constraints_on_training,
]
