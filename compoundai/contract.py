"""The output contract's one abstention rule: when is a free-text answer a refusal?

Why one module: before it, the rag lane turned a refusal ("I don't know.") into an empty answer,
which SQuAD v2 scores 1 on an unanswerable question, while the prompt and finetune lanes kept the
refusal text, which scores 0. The same behaviour scored F1 1.000 through one lane and 0.510
through another. Now every free-text lane passes its generated text through `free_text_output`
(called by `CompoundSystem.answer`), and the metrics apply the same `is_refusal` to whatever they
are given (`compoundai_evaluators.metrics.abstention.abstained`), so an abstention is scored the
same whichever lane produced it and whether or not the lane flagged it.

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

import re
from dataclasses import dataclass, field

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
