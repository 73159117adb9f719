"""What retrieved records look like in a prompt, and how answers name them.

Shared by the rag systems at inference and by the compound lane when it builds its RAFT
training prompts: an adapter trained on these exact prompts is served behind these exact
prompts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compoundai.contract import ABSTAIN_TEXT

CONTEXT_RULES = (
    "Answer the question using only the numbered passages. Answer briefly, in a few words, "
    "and cite the passages you used like [1]. If the passages do not contain the answer, "
    f"reply exactly: {ABSTAIN_TEXT}"
)
PASSAGE_CHARS = 1200  # each passage is cut to this many characters in the prompt


def hit_id(hit: Any) -> str:
    """A retrieved record's id as the evaluators match it: `doc_id#chunk`, or an example's id."""
    meta = hit.metadata
    if meta.get("example_id"):
        return str(meta["example_id"])
    doc = meta.get("doc_id") or Path(str(hit.source)).name
    return f"{doc}#{meta.get('chunk', 0)}"


def output_of(hit: Any) -> Any:
    """The labelled output a retrieved training example carries in its metadata."""
    raw = hit.metadata.get("output_json")
    return json.loads(raw) if isinstance(raw, str) else raw


def user_turn(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def context_prompt(question: str, hits: Sequence[Any]) -> str:
    """The user turn of the passages prompt: numbered passages, then the question."""
    lines = ["Passages:"]
    for n, h in enumerate(hits, start=1):
        title = h.metadata.get("title")
        text = " ".join(h.text.split())[:PASSAGE_CHARS]
        lines.append(f"[{n}] {f'({title}) ' if title else ''}{text}")
    return "\n".join(lines) + f"\n\nQuestion: {question}"
