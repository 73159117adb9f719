"""The output contract: what an answer is, what it must look like, and how text becomes one.

Why one leaf module: every lane produces `Answer`s and every evaluator scores them, so the
answer type, the contract a task sets (free text, a label set, a JSON schema), the parsing of
generated text into the contract's output, and the typed facts a built system carries for the
reports (`BuildInfo`) are the vocabulary both sides share. Evaluators import this, never the
runtime system (`compoundai.system`) or the lanes.

**The one abstention rule.** Before it, the rag lane turned a refusal ("I don't know.") into an
empty answer, which SQuAD v2 scores 1 on an unanswerable question, while the prompt and finetune
lanes kept the refusal text, which scores 0: the same behaviour scored F1 1.000 through one lane
and 0.510 through another. Now every free-text lane passes its generated text through
`free_text_output` (called by `CompoundSystem.answer`), and the metrics apply the same
`is_refusal` to whatever they are given (`compoundai_evaluators.metrics.squad.scored_prediction`),
so an abstention is scored the same whichever lane produced it and whether or not the lane
flagged it.

How abstention is scored (the README says the same): a free-text answer *abstains* when its
lane flags it (`extra["abstained"]`), when it is empty, or when `is_refusal` recognises it; an
abstaining answer's output is the empty string. SQuAD v2 EM and F1 then score it 1 on an
unanswerable question and 0 on an answerable one, and `abstention_accuracy` counts it as an
abstention. Label and JSON tasks have no abstention: their answers are scored as they are.

`is_refusal` recognises a whole answer that declines, not any answer containing "not": "The
Normans were not mentioned by Bede." is an answer; "The passages do not mention it." is not.

    >>> is_refusal("I'm not sure."), is_refusal("The Normans were not mentioned by Bede.")
    (True, False)
    >>> free_text_output("Rollo [2]")
    FreeText(output='Rollo', abstained=False, cited=[2])
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from compoundai.config import Strict

ABSTAIN_TEXT = "I don't know."

# Where an answer would have come from: "the passages do not say", "not in the context".
_SOURCE = r"(?:the |these |those |this |provided |given |above |retrieved )*" + (
    r"(?:passages?|context|documents?|texts?|articles?|paragraphs?|sources?|information|"
    r"excerpts?|snippets?|data)"
)
_NEG = r"(?:do not|does not|did not|don't|doesn't|didn't|do n't|does n't)"
_SAY = (
    r"(?:say|state|mention|contain|provide|include|specify|give|tell|answer|cover|"
    r"discuss|indicate|describe|address)"
)
_CANNOT = r"(?:cannot|can't|can not|could not|couldn't|unable to|am unable to|not able to)"
_FIND = (
    r"(?:know|answer|tell|say|find|determine|be determined|be answered|be found|identify|"
    r"locate|provide|confirm|help)"
)
# Each pattern must match the whole (normalised) answer, or its first clause: a refusal is an
# answer that declines, not an answer that happens to contain "not".
_WHOLE = [
    r"i (?:do not|don't|dont|do n't) (?:know|have (?:that|this|the|enough|an?)\b.*|"
    r"see\b.*|find\b.*)",
    r"i(?: am|'m|m| m) (?:not (?:sure|certain|aware)|unsure|uncertain)"
    r"(?: (?:what|about|of|if|whether|how|who|when|where|which|why|that)\b.*)?",
    rf"i {_CANNOT} {_FIND}\b.*",
    r"(?:it is |it's |that is |this is )?(?:unknown|unclear|uncertain|not known|unanswerable|"
    r"not answerable|not available|not specified|not stated|not mentioned|not given|not provided|"
    r"not clear|undetermined)\b(?:\s+(?:from|in|by) " + _SOURCE + r".*)?",
    rf"(?:n/?a|none|nothing|no idea|no answer|no response)(?: (?:in|from|given|found in) "
    rf"{_SOURCE}.*)?",
    r"(?:no information|no data|no mention|no details?|not enough information|insufficient "
    r"information|unknown answer)\b.*",
    r"there (?:is|are) no (?:answer|information|mention|data|details?|evidence|way)\b.*",
    r"there (?:is|are)n't (?:an answer|any information|enough information)\b.*",
    rf"{_SOURCE} {_NEG} {_SAY}\b.*",
    rf"{_SOURCE} (?:has|have|had|gives?|provides?|contains?) no\b.*",
    rf"(?:the )?(?:answer|question) {_CANNOT} be (?:found|determined|answered)\b.*",
    rf"(?:the )?(?:answer|question) (?:is|was) not (?:in|found in|given in|answerable from) "
    rf"{_SOURCE}.*",
    rf"{_CANNOT} (?:be )?(?:determine|determined|answer|answered|tell|say|find|found)\b.*",
    r"(?:sorry|unfortunately)\b.*(?:do not|don't|cannot|can't|unable|no information)\b.*",
    r"not (?:sure|certain)",
    rf"(?:it is |it's |that is |this is |the answer is )?not (?:in|found in|given in|from|"
    rf"covered by|contained in|present in) {_SOURCE}.*",
]
# ...and these anywhere: "it is not mentioned in the passages", "not stated in the context".
_ANYWHERE = [
    rf"\bnot (?:mentioned|stated|given|provided|specified|found|included|covered|answered|"
    rf"available|discussed) (?:in|by|within) {_SOURCE}\b",
    rf"\b{_SOURCE} {_NEG} {_SAY}\b",
    r"\bno (?:information|mention|answer|details?|data) (?:about|on|of|regarding|in|is given)\b",
    rf"\b(?:cannot|can't|can not|unable to) (?:be )?(?:determined?|answered?) "
    rf"(?:from|with|based on|given) {_SOURCE}\b",
]
_WHOLE_RE = re.compile(r"^(?:" + "|".join(_WHOLE) + r")$")
_ANYWHERE_RE = re.compile("|".join(_ANYWHERE))
_CITATION = re.compile(r"\s*\[(\d+(?:\s*[,;-]\s*\d+)*)\]")


def _normalise(text: str) -> str:
    """Lower case, curly quotes straightened, outer punctuation and spaces squeezed."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    text = re.sub(r"[\"`*_]", "", text)
    text = " ".join(text.split())
    return text.strip(" .!?,;:-'()")


def is_refusal(text: str) -> bool:
    """Whether a free-text answer declines to answer (see the module docstring).

    Empty text counts: it answers nothing.

    >>> [is_refusal(t) for t in ["Unknown.", "The passages don't say.", "Cannot determine.",
    ...                          "No information.", "I don't know", "Paris", "not Paris"]]
    [True, True, True, True, True, False, False]
    """
    norm = _normalise(text)
    if not norm:
        return True
    first = re.split(r"(?<=[.!?;])\s+", norm, maxsplit=1)[0]
    first = first.strip(" .!?,;:-'()")
    return bool(_WHOLE_RE.match(norm) or _WHOLE_RE.match(first) or _ANYWHERE_RE.search(norm))


def strip_citations(text: str) -> tuple[str, list[int]]:
    """The answer without its `[n]` markers, and the passage numbers it cited.

    >>> strip_citations("In France [1], near Paris [2, 3].")
    ('In France, near Paris.', [1, 2, 3])
    """
    cited: list[int] = []
    for group in _CITATION.findall(text):
        cited += [int(n) for n in re.findall(r"\d+", group)]
    clean = _CITATION.sub("", text).strip()
    return clean, sorted(set(cited))


@dataclass(frozen=True)
class FreeText:
    """A free-text answer after the contract: the output scored, and what it said aside."""

    output: str
    abstained: bool
    cited: list[int] = field(default_factory=list)


def free_text_output(text: str) -> FreeText:
    """The output of a generated free-text answer: citations stripped, refusals made empty.

    >>> free_text_output("I don't know. [1]")
    FreeText(output='', abstained=True, cited=[1])
    """
    clean, cited = strip_citations(text)
    if is_refusal(clean):
        return FreeText("", True, cited)
    return FreeText(clean, False, cited)


# -- answers and the contract ------------------------------------------------------------------


@dataclass
class Answer:
    """One system answer: the raw text, the parsed output, and what it cost.

    `extra` carries what the lane knows besides its output, under keys the metrics read:
    `retrieved_ids`, `contexts` (passages), `neighbours` (retrieved examples), `citations`,
    `abstained` / `abstain_reason`, `votes`, `logprob`.
    """

    text: str
    output: Any
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutputContract:
    """What an answer must be: free text, one label of a set, or JSON under a schema."""

    type: str = "free_text"
    labels: list[str] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None

    def describe(self) -> str:
        """The contract as an instruction the model reads."""
        if self.type == "labels":
            return "Answer with exactly one label from this list and nothing else:\n" + "\n".join(
                self.labels
            )
        if self.type == "json_schema":
            return (
                "Answer with one JSON object that follows this JSON Schema, and nothing "
                "else:\n" + json.dumps(self.json_schema)
            )
        return "Answer briefly."


def format_output(value: Any) -> str:
    """An output as the text a model writes (and trains on): strings as they are, else JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def answer_content(answer: Answer) -> str:
    """What a reader gets: the parsed output as text, else the raw text (e.g. an abstention)."""
    if answer.output is None or answer.output == "":
        return answer.text
    return format_output(answer.output)


def text_chunks(text: str) -> list[str]:
    """`text` split at word boundaries, each piece keeping its leading space (stream pieces)."""
    return re.findall(r"\s*\S+", text) or [text]


def snap_to_label(text: str, labels: Sequence[str]) -> str | None:
    """The label the text names: exact, then contained, then the closest by spelling.

    >>> snap_to_label(" card_arrival.", ["card_arrival", "top_up"])
    'card_arrival'
    """
    cleaned = text.strip().strip("\"'`.").strip()
    if cleaned in labels:
        return cleaned
    lowered = cleaned.lower()
    for label in sorted(labels, key=len, reverse=True):
        if label.lower() in lowered:
            return label
    close = difflib.get_close_matches(lowered, [lb.lower() for lb in labels], n=1, cutoff=0.0)
    if close:
        return next(lb for lb in labels if lb.lower() == close[0])
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> Any:
    """The first JSON object in the text, or None. `NaN` and `Infinity` are not JSON.

    >>> parse_json('Sure: {"a": 1} done'), parse_json('{"a": NaN}')
    ({'a': 1}, None)
    """
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder(parse_constant=_reject_constant).raw_decode(text[start:])
    except (json.JSONDecodeError, ValueError):
        return None
    return value


def parse_output(contract: OutputContract, text: str) -> Any:
    """Generated text as the contract's output (free text: an abstention is the empty string).

    >>> parse_output(OutputContract("json_schema"), 'x {"a": 1}')
    {'a': 1}
    >>> parse_output(OutputContract(), "Unknown.")
    ''
    """
    if contract.type == "labels":
        return snap_to_label(text, contract.labels)
    if contract.type == "json_schema":
        return parse_json(text)
    return free_text_output(text).output


# -- what a built system carries for the reports -------------------------------------------------


class TrainingFacts(Strict):
    """What training an adapter took (from its manifest; two stages add up)."""

    steps: int | None = None
    tokens: float | None = None
    train_seconds: float | None = None
    tokens_per_s: float | None = None


class ForgettingFacts(Strict):
    """General-text perplexity before and after training (the release gate's forgetting)."""

    perplexity_before: float
    perplexity_after: float
    ratio: float | None = None
    text: str | None = None
    tokens: int | None = None
    chained_from: str | None = None  # two stages: measured from before the first one


class BuildInfo(Strict):
    """Typed facts a lane records about the system it built, for fingerprints and reports.

    Saved in system.json; the evaluators read these fields (never a dict with `.get()`).
    """

    fingerprint: str | None = None  # what else decides the answers (an adapter's hash, ...)
    build_seconds: float = 0.0
    training: TrainingFacts | None = None
    forgetting: ForgettingFacts | None = None
    adapter: str | None = None  # the adapter folder the generator serves
    adapter_copied_from: str | None = None
    base_model: str | None = None
    stages: list[str] | None = None
    train_rows: int | None = None
    data_share: float = 1.0  # the share of its training data a rung lane was trained on
    settings: dict[str, float] | None = None  # the training settings a plan chose
    shots: int | None = None
    k: int | None = None
    index: str | None = None
    holds: str | None = None
    # finetune/qa+sft: what `compoundai.synth`'s filters kept and rejected
    synth: dict[str, float] | None = None
    teacher: str | None = None  # finetune/distill: whose answers it was trained on
    system_dir: str | None = Field(None, exclude=True)  # set by loading; never saved

    def train_cost(self) -> tuple[float, int]:
        """`(train_seconds, train_tokens)`, zeros for a lane that trains nothing."""
        if self.training is None:
            return 0.0, 0
        return float(self.training.train_seconds or 0.0), int(self.training.tokens or 0)
