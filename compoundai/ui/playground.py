"""The playground: a built system loaded once, an input answered, and what it saw along the way.

Systems are loaded on first use with the UI's `RunContext` (an injected generator or embedder
replaces the saved ones, as in `load_system`) and kept for the next input. One answer at a time:
on a CPU a second concurrent generation only slows both down.
"""

from __future__ import annotations

import threading
from typing import Any

from compoundai.context import RunContext
from compoundai.contract import answer_content
from compoundai.ui.runs import SystemEntry

MAX_INPUT_CHARS = 20_000


class Playground:
    """Answers inputs with the systems found under the UI's directories.

    >>> Playground(RunContext()).answer(entry, "I lost my card")["answer"]  # doctest: +SKIP
    'lost_or_stolen_card'
    """

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.systems: dict[str, Any] = {}
        self._lock = threading.Lock()

    def answer(self, entry: SystemEntry, text: str) -> dict[str, Any]:
        """The answer, the chat prompt the system built, the passages it retrieved."""
        with self._lock:
            if entry.id not in self.systems:
                from compoundai.system_dir import load_system

                system = load_system(entry.path, self.ctx)
                system.ctx.progress = False
                self.systems[entry.id] = system
            system = self.systems[entry.id]
            chat = system.prompts([text])[0]
            answer = system.batch([text])[0]
        extra = answer.extra
        return {
            "system": system.name,
            "lane": system.lane,
            "answer": answer_content(answer),
            "output": answer.output,
            "text": answer.text,
            "latency_ms": round(float(answer.latency_ms), 1),
            "prompt": chat,
            "retrieved_ids": list(extra.get("retrieved_ids", [])),
            "passages": list(extra.get("contexts") or extra.get("neighbours") or []),
            "citations": list(extra.get("citations") or extra.get("cited") or []),
            "abstained": bool(extra.get("abstained", False)),
        }
