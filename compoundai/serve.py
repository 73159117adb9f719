"""`compoundai serve`: compound systems behind an OpenAI-compatible HTTP API.

Every client that speaks the chat-completions API (the `openai` package, LangChain's
`ChatOpenAI`, curl) can call a built system. The request's last user message is the system's
input; the system builds its own prompt (instructions, demonstrations, retrieved passages), so
the client's system messages and earlier turns are not used. The answer is the system's parsed
output (a label, a JSON document, or text with citations stripped); citations, retrieved ids and
abstentions ride in an extra top-level `compoundai` field that OpenAI clients ignore.

    compoundai serve out/banking77-system --api-key "$KEY"

Endpoints: `POST /v1/chat/completions` (`stream=true` gives server-sent events), `GET
/v1/models`, `GET /health`. Errors have OpenAI's shape, `{"error": {"message", "type", "param",
"code"}}`, and never carry a traceback.

Concurrency: each system has one worker thread and a bounded queue. The worker takes every
waiting request with the same decoding settings (up to `max_batch`) and answers them in one
`system.batch` call, so concurrent clients share a forward pass instead of queueing for it.
A full queue answers 503, which the `openai` client retries with backoff.

Streaming sends the answer in chunks once it is complete: the output contract needs the whole
text first (a label is chosen by likelihood, JSON is validated, citations are stripped), so
tokens are not forwarded while they are generated.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations
# (`request: Request`, imported inside `create_app`) at definition time.
import asyncio
import copy
import hmac
import ipaddress
import json
import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from compoundai.errors import UserInputError
from compoundai.generators.base import GenerationConfig
from compoundai.system import Answer, CompoundSystem, answer_content, text_chunks

log = logging.getLogger("compoundai.serve")

API_KEY_ENV = "COMPOUNDAI_API_KEY"


@dataclass
class ServeSettings:
    """Limits and batching for one server. The defaults suit a CPU and small models."""

    api_key: str | None = None
    max_body_bytes: int = 1_000_000
    max_input_chars: int = 20_000
    max_tokens_limit: int = 1024
    max_batch: int = 16
    batch_wait_ms: float = 10.0
    max_queue: int = 256
    request_timeout_s: float = 300.0


class ServeError(Exception):
    """An HTTP error with OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type,
            code,
            param,
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


# -- batching ---------------------------------------------------------------------------------


@dataclass
class _Job:
    text: str
    config: GenerationConfig
    future: Future[Answer] = field(default_factory=Future)


class Batcher:
    """One worker thread that answers queued requests for one system in batches.

    Requests whose decoding settings match are answered together with one `system.batch`
    call; a request with other settings waits for the next batch. `submit` raises a 503
    `ServeError` when `max_queue` requests are already waiting.
    """

    def __init__(self, system: CompoundSystem, settings: ServeSettings) -> None:
        self.system = system
        self.settings = settings
        self.queue: queue.Queue[_Job | None] = queue.Queue()
        self.batches = 0
        self.answered = 0
        self._held: list[_Job] = []
        self._thread = threading.Thread(
            target=self._run, name=f"compoundai-serve-{system.name}", daemon=True
        )
        self._thread.start()

    def submit(self, text: str, config: GenerationConfig) -> Future[Answer]:
        if self.queue.qsize() + len(self._held) >= self.settings.max_queue:
            raise ServeError(
                503,
                f"server busy: {self.settings.max_queue} requests are waiting; retry later",
                type="server_error",
                code="overloaded",
            )
        job = _Job(text, config)
        self.queue.put(job)
        return job.future

    def close(self) -> None:
        self.queue.put(None)
        self._thread.join(timeout=30)

    def _next_batch(self) -> list[_Job] | None:
        first = self._held.pop(0) if self._held else self.queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000
        # Held jobs with the same settings go first (they have waited longest).
        for job in list(self._held):
            if len(batch) < self.settings.max_batch and job.config == first.config:
                self._held.remove(job)
                batch.append(job)
        while len(batch) < self.settings.max_batch:
            timeout = deadline - time.monotonic()
            try:
                waiting = (
                    self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
                )
            except queue.Empty:
                break
            if waiting is None:
                self.queue.put(None)  # stop after this batch
                break
            if waiting.config == first.config:
                batch.append(waiting)
            else:
                self._held.append(waiting)
        return batch

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            live = [j for j in batch if j.future.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                self._answer(live)
            except Exception as exc:
                # One request that breaks the system must not fail the others batched with
                # it: answer them one at a time, so only the culprit gets the error.
                if len(live) == 1:
                    self._fail(live[0], exc)
                    continue
                for job in live:
                    try:
                        self._answer([job])
                    except Exception as one:
                        self._fail(job, one)

    def _answer(self, jobs: list[_Job]) -> None:
        system = self.system
        if jobs[0].config != system.generation:
            system = copy.copy(system)
            system.generation = jobs[0].config
        answers = system.batch([j.text for j in jobs])
        if len(answers) != len(jobs):
            raise RuntimeError(f"{len(jobs)} inputs, {len(answers)} answers")
        self.batches += 1
        self.answered += len(jobs)
        for job, answer in zip(jobs, answers, strict=True):
            job.future.set_result(answer)

    @staticmethod
    def _fail(job: _Job, exc: Exception) -> None:
        log.error("a request failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
        if not job.future.done():
            job.future.set_exception(exc)


# -- request handling -------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}]
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                raise ServeError(400, "only text content parts are supported", param="messages")
        return "".join(parts)
    raise ServeError(400, "message content must be a string or a list of parts", param="messages")


@dataclass
class ChatRequest:
    """The fields of a chat-completions request that a compound system uses."""

    model: str
    text: str
    config: GenerationConfig
    stream: bool
    include_usage: bool


def parse_chat_request(
    body: Any, system_generation: dict[str, GenerationConfig], settings: ServeSettings
) -> ChatRequest:
    """Validate a request body; raise `ServeError` (400/404) naming the bad field."""
    if not isinstance(body, dict):
        raise ServeError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ServeError(400, "'model' is required", param="model")
    if model not in system_generation:
        known = ", ".join(sorted(system_generation))
        raise ServeError(
            404,
            f"the model {model!r} does not exist; served models: {known}",
            code="model_not_found",
            param="model",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ServeError(400, "'messages' must be a non-empty list", param="messages")
    text = None
    for message in reversed(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise ServeError(400, "each message needs a 'role'", param="messages")
        if message["role"] == "user":
            text = _text_of(message.get("content"))
            break
    if text is None or not text.strip():
        raise ServeError(400, "no user message with text in 'messages'", param="messages")
    if len(text) > settings.max_input_chars:
        raise ServeError(
            400,
            f"the user message has {len(text)} characters; the limit is {settings.max_input_chars}",
            param="messages",
            code="input_too_long",
        )
    n = body.get("n", 1)
    if n not in (1, None):
        raise ServeError(400, "only n=1 is supported", param="n")

    base = system_generation[model]
    updates: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ServeError(400, "'max_tokens' must be a positive integer", param="max_tokens")
        if max_tokens > settings.max_tokens_limit:
            raise ServeError(
                400,
                f"'max_tokens' is {max_tokens}; this server allows at most "
                f"{settings.max_tokens_limit}",
                param="max_tokens",
                code="max_tokens_too_large",
            )
        updates["max_new_tokens"] = max_tokens
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = body.get(name)
        if value is None:
            continue
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not (low <= value <= high)
        ):
            raise ServeError(400, f"'{name}' must be a number in [{low}, {high}]", param=name)
        updates[name] = float(value)
    seed = body.get("seed")
    if seed is not None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ServeError(400, "'seed' must be an integer", param="seed")
        if not 0 <= seed < 2**32:
            raise ServeError(400, "'seed' must be in [0, 2**32)", param="seed")
        updates["seed"] = seed
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise ServeError(
                400, "'stop' must be a non-empty string or a list of them", param="stop"
            )
        if len(stops) > 4:
            raise ServeError(400, "at most 4 stop sequences", param="stop")
        updates["stop"] = tuple(stops)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ServeError(400, "'stream' must be a boolean", param="stream")
    options = body.get("stream_options") or {}
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    return ChatRequest(model, text, replace(base, **updates), stream, include_usage)


def answer_extra(system: CompoundSystem, answer: Answer) -> dict[str, Any]:
    extra: dict[str, Any] = {"lane": system.lane, "output": answer.output}
    for key in ("citations", "retrieved_ids", "abstained", "abstain_reason", "votes"):
        if key in answer.extra:
            extra[key] = answer.extra[key]
    return extra


# -- the app ----------------------------------------------------------------------------------


def create_app(systems: dict[str, CompoundSystem], settings: ServeSettings | None = None) -> Any:
    """A FastAPI app serving `systems` (model name → system).

    >>> app = create_app({"banking77": CompoundSystem.load("out/system")})  # doctest: +SKIP
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, StreamingResponse
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UserInputError(
            "serving needs FastAPI and uvicorn", hint="pip install 'compoundai[serve]'"
        ) from exc

    settings = settings or ServeSettings()
    if not systems:
        raise UserInputError("nothing to serve", hint="give at least one system directory")
    for system in systems.values():
        system.ctx.progress = False
    batchers: dict[str, Batcher] = {}
    generation = {name: s.generation for name, s in systems.items()}
    created = int(time.time())

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        for name, system in systems.items():
            batchers[name] = Batcher(system, settings)
        try:
            yield
        finally:
            for batcher in batchers.values():
                batcher.close()

    app = FastAPI(title="compoundai", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batchers = batchers

    def error(exc: ServeError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return error(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error(ServeError(500, "internal server error", type="server_error"))

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        return error(ServeError(exc.status_code, str(exc.detail), code=code))

    def check_key(request: Request) -> None:
        if settings.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), settings.api_key.encode()
        ):
            raise ServeError(
                401,
                "missing or invalid API key: send 'Authorization: Bearer KEY'",
                code="invalid_api_key",
            )

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise ServeError(
                413,
                f"request body is {declared} bytes; the limit is {settings.max_body_bytes}",
                code="request_too_large",
            )
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > settings.max_body_bytes:
                raise ServeError(
                    413,
                    f"request body exceeds the limit of {settings.max_body_bytes} bytes",
                    code="request_too_large",
                )
        try:
            return json.loads(bytes(data))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ServeError(400, f"the request body is not valid JSON: {exc}") from None

    @app.get("/health")
    async def health() -> Any:
        down = sorted(n for n, b in batchers.items() if not b.alive)
        if down:
            return JSONResponse({"status": "down", "down": down}, status_code=503)
        return {
            "status": "ok",
            "models": sorted(systems),
            "queued": {n: b.queue.qsize() for n, b in batchers.items()},
        }

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        check_key(request)
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "compoundai",
                    "lane": system.lane,
                }
                for name, system in sorted(systems.items())
            ],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Any:
        check_key(request)
        body = await read_json(request)
        req = parse_chat_request(body, generation, settings)
        system = systems[req.model]
        future = batchers[req.model].submit(req.text, req.config)
        try:
            answer = await asyncio.wait_for(
                asyncio.wrap_future(future), timeout=settings.request_timeout_s
            )
        except asyncio.TimeoutError:
            future.cancel()
            raise ServeError(
                504, "the system did not answer in time", type="server_error", code="timeout"
            ) from None
        except Exception:  # logged by the worker; its message may hold internals
            raise ServeError(
                500,
                "the system failed to answer this request (details are in the server log)",
                type="server_error",
            ) from None
        response_id = f"chatcmpl-{uuid.uuid4().hex}"
        content = answer_content(answer)
        finish = "length" if answer.completion_tokens >= req.config.max_new_tokens else "stop"
        if system.contract.type == "labels":
            finish = "stop"
        usage = {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        }
        extra = answer_extra(system, answer)
        now = int(time.time())
        if not req.stream:
            return {
                "id": response_id,
                "object": "chat.completion",
                "created": now,
                "model": req.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": finish,
                        "logprobs": None,
                    }
                ],
                "usage": usage,
                "compoundai": extra,
            }

        def events() -> Iterator[str]:
            def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
                payload: dict[str, Any] = {
                    "id": response_id,
                    "object": "chat.completion.chunk",
                    "created": now,
                    "model": req.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                }
                if finish_reason is not None:
                    payload["compoundai"] = extra
                return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

            yield chunk({"role": "assistant", "content": ""})
            for piece in text_chunks(content):
                yield chunk({"content": piece})
            yield chunk({}, finish)
            if req.include_usage:
                tail = {
                    "id": response_id,
                    "object": "chat.completion.chunk",
                    "created": now,
                    "model": req.model,
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(tail)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


# -- loading and running ----------------------------------------------------------------------


def load_systems(
    specs: Sequence[str], ctx: Any = None, *, generator: Any = None
) -> dict[str, CompoundSystem]:
    """`DIR` or `NAME=DIR` → {model name: loaded system}. The name defaults to the system's."""
    systems: dict[str, CompoundSystem] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep:
            name, folder = "", spec
        system = CompoundSystem.load(Path(folder), ctx, generator=generator)
        name = name or system.name
        if name in systems:
            raise UserInputError(
                f"two systems are named {name!r}",
                hint="name them apart with NAME=DIR, e.g. banking-ft=out/ft",
            )
        systems[name] = system
    return systems


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Run `app` with uvicorn in a background thread; yield its base URL (…/v1); stop it after.

    For tests and benchmarks:

    >>> with serve_in_thread(create_app(systems)) as base_url:        # doctest: +SKIP
    ...     OpenAI(base_url=base_url, api_key=key).models.list()
    """
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test server did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
