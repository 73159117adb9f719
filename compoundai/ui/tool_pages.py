"""Server-rendered pages, part three: start a run, watch it, and the playground.

These three need the script: the start form posts JSON to `/api/jobs`, the job page follows
`/api/jobs/<id>/events` (Server-Sent Events) and can cancel, the playground posts to
`/api/play` and shows the answer, the prompt and the passages. The page carries only ids and
choices; what runs where is decided on the server.
"""

from __future__ import annotations

from collections.abc import Sequence

from compoundai.ui.jobs import Job
from compoundai.ui.pages import e, layout, message, table
from compoundai.ui.runs import SystemEntry


def start_page(
    tasks: Sequence[str], lanes: Sequence[str], runs_dir: str, jobs: Sequence[Job]
) -> str:
    options = "".join(f'<option value="{e(t)}">' for t in tasks)
    boxes = "".join(
        f'<label class="check"><input type="checkbox" name="lanes" value="{e(lane)}"'
        f"{' checked' if lane in ('prompt', 'rag') else ''}> {e(lane)}</label>"
        for lane in lanes
    )
    form = (
        '<form id="start-form" class="stack">'
        '<label>Task file <input name="task_file" id="task-file" list="task-files" required '
        f'size="60" placeholder="examples/banking77/task.yaml"></label>'
        f'<datalist id="task-files">{options}</datalist>'
        f"<fieldset><legend>Lanes</legend>{boxes}</fieldset>"
        '<label>Limit (held-out cases) <input type="number" name="limit" id="limit" min="1" '
        'placeholder="the task\'s own"></label>'
        '<label>Output folder <input name="out_dir" id="out-dir" size="60" '
        f'placeholder="{e(runs_dir)}/TASK-DATE"></label>'
        '<p><button type="submit" id="start">Start</button> <span id="start-error" '
        'class="msg bad" hidden></span></p></form>'
    )
    parts = [
        "<h1>Start a run</h1>",
        '<p class="sub">Decides, builds the chosen lanes and compares them on the held-out cases, '
        "as <code>compoundai run</code> does; the run appears in the list when it is done. Lanes "
        "that train (finetune, compound) take minutes on a CPU.</p>",
        form,
    ]
    if jobs:
        rows = [
            [
                f'<a href="/jobs/{e(j.id)}">{e(j.id)}</a>',
                e(j.request.task_file),
                e(j.state),
                e(j.message),
            ]
            for j in sorted(jobs, key=lambda j: j.started, reverse=True)
        ]
        parts += ["<h2>Runs started here</h2>", table(["job", "task", "state", "message"], rows)]
    return layout("Start a run", "".join(parts), "/start")


def job_page(job: Job) -> str:
    body = (
        f"<h1>Run <code>{e(job.id)}</code></h1>"
        f'<p class="sub"><code>{e(job.request.task_file)}</code> → '
        f"<code>{e(job.request.out_dir)}</code> · lanes {e(', '.join(job.request.lanes))}"
        f"{f' · limit {job.request.limit}' if job.request.limit else ''}</p>"
        f'<div id="job" data-job="{e(job.id)}">'
        f'<p>State: <span id="job-state" class="badge info">{e(job.state)}</span> '
        '<span id="job-elapsed"></span> <button type="button" id="cancel">Cancel</button></p>'
        f'<p id="job-message">{e(job.message)}</p>'
        '<p id="job-result" hidden>'
        '<a id="job-run-link" class="button" href="#">Open the run</a></p>'
        '<pre id="progress" class="log" aria-live="polite"></pre></div>'
    )
    return layout(f"Run {job.id}", body, "/start")


def play_page(systems: Sequence[SystemEntry], chosen: str | None) -> str:
    usable = [s for s in systems if s.error is None]
    if not usable:
        text = (
            "No built system found under the UI's directories: build one with "
            "`compoundai build TASK.yaml -o DIR` and put DIR (or its parent) on the command line."
        )
        return layout("Playground", f"<h1>Playground</h1>{message(text, 'info')}", "/play")
    options = "".join(
        f'<option value="{e(s.id)}"{" selected" if s.id == chosen else ""}>'
        f"{e(s.name)} ({e(s.lane)}) · {e(s.id)}</option>"
        for s in usable
    )
    body = (
        "<h1>Playground</h1>"
        '<p class="sub">Type an input and see the system\'s answer, the prompt it was given and '
        "the passages it retrieved.</p>"
        '<form id="play-form" class="stack">'
        f'<label>System <select name="system" id="play-system">{options}</select></label>'
        '<label>Input <textarea name="input" id="play-input" rows="3" cols="80" required>'
        "</textarea></label>"
        '<p><button type="submit" id="play">Answer</button> '
        '<span id="play-error" class="msg bad" hidden></span></p></form>'
        '<section id="play-result" hidden><h2>Answer</h2><pre id="play-answer"></pre>'
        '<p id="play-facts"></p><h2>Prompt</h2><div id="play-prompt"></div>'
        '<h2>Retrieved</h2><ol id="play-passages"></ol></section>'
    )
    return layout("Playground", body, "/play")
