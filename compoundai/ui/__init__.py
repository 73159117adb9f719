"""`compoundai ui`: a local web app over the runs (report.json, predictions.jsonl) and systems.

Pages: the runs, one run (lanes, plots, the decision and its evidence, the release gate), its
cases side by side with per-case scores and flip filters, two runs compared, a run started and
watched live, and a playground for a built system. `app` is the FastAPI app, `runs` finds and
reads what is on disk, `cases` scores cases and compares runs, `jobs` and `worker` run a task
in a child process, `playground` answers with a built system, `pages`, `case_pages` and
`tool_pages` render HTML, `static/` holds the CSS and the script. FastAPI is imported only by
`create_ui_app` (the `serve` extra).
"""

from __future__ import annotations

from typing import Any

__all__ = ["UISettings", "create_ui_app"]


def __getattr__(name: str) -> Any:
    # `compoundai.ui.UISettings` without importing the app module (and FastAPI) up front
    if name in __all__:
        from compoundai.ui import app

        return getattr(app, name)
    raise AttributeError(name)
