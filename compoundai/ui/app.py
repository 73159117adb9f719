"""The web UI's FastAPI app: pages over the runs found, the job API, the playground API.

FastAPI reads the handlers' annotations at definition time, so this module does not use
`from __future__ import annotations` (`Request` is imported inside `create_ui_app`).

What protects it (a local tool that can start runs on the machine):
- bound to 127.0.0.1 by the CLI; with `api_key` every request but /static and /health needs
  it, as `Authorization: Bearer KEY` or the cookie that `/?key=KEY` (or the login form) sets;
- `allowed_hosts`: requests naming another Host are refused (a web page elsewhere cannot reach
  the UI through DNS rebinding);
- every POST needs the `X-CompoundAI-UI` header, which a form on another site cannot send
  without the browser asking this server first (CORS), so no cross-site request starts a run;
- pages get an HTML error page, /api an OpenAI-style error body (`compoundai.serve`'s); an
  unreadable report or folder is a message on the page, never a traceback.
"""

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compoundai.context import RunContext
from compoundai.errors import CompoundAIError, UserInputError
from compoundai.serve.protocol import ServeError
from compoundai.ui import case_pages, pages, tool_pages
from compoundai.ui.cases import CaseTable, case_table, diff_runs
from compoundai.ui.jobs import JobManager, job_request, lane_choices
from compoundai.ui.playground import MAX_INPUT_CHARS, Playground
from compoundai.ui.runs import RunEntry, RunStore, read_predictions, task_files

log = logging.getLogger("compoundai.ui")
STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
KEY_COOKIE = "compoundai_ui_key"
POST_HEADER = "x-compoundai-ui"


@dataclass
class UISettings:
    """How one UI is run. `runs_dir`: where runs started here go (default: the first DIR).
    `context_factory`: `module:function` the run's child process calls on its `RunContext`
    (injected clients, see `jobs`)."""

    api_key: str | None = None
    allowed_hosts: Sequence[str] | None = None  # Host header names; None: any
    runs_dir: Path | None = None
    context_factory: str | None = None
    max_running: int = 1
    base_dir: Path | None = None  # task files are looked for (and resolved) from here


def create_ui_app(
    dirs: Sequence[str | Path], settings: UISettings | None = None, ctx: RunContext | None = None
) -> Any:
    """The web UI over the runs and systems under `dirs`.

    `ctx` is used in this process (the playground loads systems with it: tests inject fake
    clients there); runs started from the page get a child process with its cache dir, seed and
    device, and `settings.context_factory`.

    >>> app = create_ui_app(["out"])                    # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8765)   # doctest: +SKIP
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import (
            FileResponse,
            HTMLResponse,
            JSONResponse,
            RedirectResponse,
            Response,
            StreamingResponse,
        )
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UserInputError(
            "the UI needs FastAPI and uvicorn", hint="pip install 'compoundai[serve]'"
        ) from exc
    from contextlib import asynccontextmanager

    settings = settings or UISettings()
    ctx = ctx or RunContext()
    base_dir = (settings.base_dir or Path.cwd()).resolve()
    roots = [Path(d) for d in dirs]
    store = RunStore(roots)
    runs_dir = settings.runs_dir or (roots[0] if roots else base_dir / "out")
    jobs = JobManager(
        ctx, context_factory=settings.context_factory, max_running=settings.max_running
    )
    playground = Playground(ctx)
    tables: dict[Path, tuple[tuple[int, ...], CaseTable]] = {}  # per-case scores, by run

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            jobs.close()

    app = FastAPI(title="compoundai ui", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.jobs = jobs

    def html(text: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(text, status_code=status)

    def api_error(exc: ServeError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    def failure(request: Request, status: int, text: str, hint: str = "") -> Response:
        if request.url.path.startswith("/api/"):
            code = {401: "invalid_api_key", 403: "forbidden", 404: "not_found"}.get(status)
            return api_error(ServeError(status, text, code=code))
        return html(pages.error_page("Not found" if status == 404 else "Error", text, hint), status)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        path = request.url.path
        if settings.allowed_hosts is not None:
            host = request.headers.get("host", "").rsplit(":", 1)[0].strip("[]")
            if host not in settings.allowed_hosts:
                return failure(request, 403, f"this UI does not answer for the host {host!r}")
        if request.method == "POST" and request.headers.get(POST_HEADER) != "1":
            return failure(request, 403, "POST requests need the X-CompoundAI-UI: 1 header")
        if settings.api_key is None or path.startswith("/static/") or path == "/health":
            return await call_next(request)
        key = settings.api_key.encode()
        given = request.query_params.get("key")
        if given is not None and request.method == "GET" and not path.startswith("/api/"):
            if not hmac.compare_digest(given.encode(), key):
                return html(pages.login_page(wrong=True), 401)
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
            target = pages.url(path, **dict(rest))
            redirect = RedirectResponse(target, status_code=303)
            redirect.set_cookie(KEY_COOKIE, settings.api_key, httponly=True, samesite="strict")
            return redirect
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        cookie = request.cookies.get(KEY_COOKIE, "")
        if (scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key)) or (
            cookie and hmac.compare_digest(cookie.encode(), key)
        ):
            return await call_next(request)
        if path.startswith("/api/"):
            return api_error(ServeError(401, "missing or invalid API key", code="invalid_api_key"))
        return html(pages.login_page(wrong=False), 401)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return failure(request, 500, "internal error (the details are in the server's log)")

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return failure(request, exc.status_code, str(exc.detail))

    # -- static files and health ---------------------------------------------------------------

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        file = STATIC / name
        if "/" in name or file.suffix not in STATIC_TYPES or not file.is_file():
            raise StarletteHTTPException(404, f"no static file {name}")
        return FileResponse(file, media_type=STATIC_TYPES[file.suffix])

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "runs": len(store.scan().runs)}

    # -- runs ------------------------------------------------------------------------------

    def the_run(request: Request, run_id: str | None) -> RunEntry | Response:
        run = store.find_run(run_id or "")
        if run is None:
            return failure(request, 404, f"no run {run_id!r} under the UI's directories")
        if run.report is None:
            hint = "rerun it, or fix the file, then reload"
            return failure(request, 422, f"{run.path / 'report.json'}: {run.error}", hint)
        return run

    def cases_of(run: RunEntry) -> CaseTable:
        """The run's cases with per-case scores, computed again only when its files change."""
        files = [run.path / "report.json", run.path / "predictions.jsonl"]
        stamp = tuple(f.stat().st_mtime_ns if f.is_file() else 0 for f in files)
        cached = tables.get(run.path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        rows, problems = read_predictions(run.path)
        assert run.report is not None
        table = case_table(run.report, rows)
        table.problems = problems + table.problems
        tables[run.path] = (stamp, table)
        return table

    @app.get("/", response_class=HTMLResponse)
    def runs() -> Any:
        return html(pages.runs_page(store.scan(), [str(r) for r in roots]))

    @app.get("/api/runs")
    def runs_json() -> Any:
        scan = store.scan()
        return {
            "problems": scan.problems,
            "runs": [
                {
                    "id": r.id,
                    "path": str(r.path),
                    "task": r.task,
                    "winner": r.report.winner if r.report else None,
                    "outcome": r.outcome,
                    "error": r.error,
                }
                for r in scan.runs
            ],
            "systems": [{"id": s.id, "name": s.name, "lane": s.lane} for s in scan.systems],
        }

    @app.get("/run", response_class=HTMLResponse)
    def run_page(request: Request, id: str = "") -> Any:
        run = the_run(request, id)
        if not isinstance(run, RunEntry):
            return run
        notes = [] if run.has_predictions else ["no predictions.jsonl: the cases are not shown"]
        return html(pages.run_page(run, notes))

    @app.get("/run/report")
    def static_report(request: Request, id: str = "") -> Any:
        run = the_run(request, id)
        if not isinstance(run, RunEntry):
            return run
        if not (run.path / "report.html").is_file():
            return failure(request, 404, "this run has no report.html (compoundai report DIR)")
        return FileResponse(run.path / "report.html", media_type="text/html")

    @app.get("/cases", response_class=HTMLResponse)
    def cases_page(
        request: Request,
        run: str = "",
        a: str = "",
        b: str = "",
        metric: str = "",
        show: str = "all",
        q: str = "",
        page: int = 1,
    ) -> Any:
        found = the_run(request, run)
        if not isinstance(found, RunEntry):
            return found
        table = cases_of(found)
        return html(
            case_pages.cases_page(
                found, table, a=a, b=b, metric=metric, show=show, query=q, page=page
            )
        )

    @app.get("/case", response_class=HTMLResponse)
    def case_page(request: Request, run: str = "", id: str = "", a: str = "", b: str = "") -> Any:
        found = the_run(request, run)
        if not isinstance(found, RunEntry):
            return found
        table = cases_of(found)
        case = table.get(id)
        if case is None:
            return failure(request, 404, f"run {run} has no case {id!r}")
        return html(case_pages.case_page(found, table, case, a or None, b or None))

    @app.get("/compare", response_class=HTMLResponse)
    def compare_page(request: Request, a: str = "", b: str = "") -> Any:
        all_runs = store.scan().runs
        run_a = next((r for r in all_runs if r.id == a), None)
        run_b = next((r for r in all_runs if r.id == b), None)
        problem, diff = "", None
        if (a and run_a is None) or (b and run_b is None):
            problem = "one of the runs is not under the UI's directories any more"
        elif run_a is not None and run_b is not None:
            if run_a.report is None or run_b.report is None:
                problem = "one of the runs has an unreadable report.json"
            elif run_a.report.task != run_b.report.task:
                problem = (
                    f"these are runs of two tasks ({run_a.report.task}, {run_b.report.task}); "
                    "compare two runs of the same task"
                )
            else:
                ca = cases_of(run_a) if run_a.has_predictions else None
                cb = cases_of(run_b) if run_b.has_predictions else None
                diff = diff_runs(run_a, run_b, ca, cb)
        return html(case_pages.compare_page(all_runs, run_a, run_b, diff, problem))

    # -- starting runs ---------------------------------------------------------------------------

    @app.get("/start", response_class=HTMLResponse)
    def start_page() -> Any:
        page = tool_pages.start_page(
            task_files(base_dir), lane_choices(), str(runs_dir), list(jobs.jobs.values())
        )
        return html(page)

    def job_json(job_id: str) -> dict[str, Any]:
        job = jobs.jobs[job_id]
        data = job.snapshot()
        if job.state == "finished":
            out = job.request.out_dir.resolve()
            found = next((r for r in store.scan().runs if r.path.resolve() == out), None)
            data["run_url"] = pages.url("/run", id=found.id) if found else None
        return data

    @app.post("/api/jobs")
    async def start_job(request: Request) -> Any:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise ServeError(400, "the request body is not valid JSON") from None
        try:
            job = jobs.start(job_request(body, base_dir, Path(runs_dir), roots))
        except UserInputError as exc:
            raise ServeError(400, str(exc)) from None
        return JSONResponse(job_json(job.id), status_code=201)

    @app.get("/api/jobs/{job_id}")
    def job_state(job_id: str) -> Any:
        if job_id not in jobs.jobs:
            raise ServeError(404, f"no job {job_id}", code="not_found")
        return job_json(job_id)

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> Any:
        if job_id not in jobs.jobs:
            raise ServeError(404, f"no job {job_id}", code="not_found")
        jobs.cancel(job_id)
        return job_json(job_id)

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(request: Request, job_id: str) -> Any:
        if job_id not in jobs.jobs:
            raise ServeError(404, f"no job {job_id}", code="not_found")

        async def stream() -> AsyncIterator[str]:
            sent, last_beat = -1, time.monotonic()
            while True:
                job = jobs.jobs[job_id]
                if job.log.version != sent or job.done:
                    sent = job.log.version
                    yield f"data: {json.dumps(job_json(job_id))}\n\n"
                    if job.done:
                        yield "event: end\ndata: {}\n\n"
                        return
                elif time.monotonic() - last_beat > 15:
                    last_beat = time.monotonic()
                    yield ": keep-alive\n\n"
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.25)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    @app.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: str) -> Any:
        if job_id not in jobs.jobs:
            return failure(request, 404, f"no job {job_id} (jobs live as long as the UI server)")
        return html(tool_pages.job_page(jobs.jobs[job_id]))

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return api_error(exc)

    # -- the playground ------------------------------------------------------------------------

    @app.get("/play", response_class=HTMLResponse)
    def play_page(system: str = "") -> Any:
        return html(tool_pages.play_page(store.scan().systems, system or None))

    @app.post("/api/play")
    async def play(request: Request) -> Any:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise ServeError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ServeError(400, "the request must be a JSON object")
        system_id, text = str(body.get("system", "")), body.get("input")
        if not isinstance(text, str) or not text.strip():
            raise ServeError(400, "give an input to answer", param="input")
        if len(text) > MAX_INPUT_CHARS:
            raise ServeError(400, f"the input is over {MAX_INPUT_CHARS} characters", param="input")
        entry = store.find_system(system_id)
        if entry is None:
            raise ServeError(404, f"no system {system_id!r} under the UI's directories")

        try:
            return await asyncio.to_thread(playground.answer, entry, text)
        except CompoundAIError as exc:
            raise ServeError(400, str(exc).split("\n")[0]) from None

    return app
