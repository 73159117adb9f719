"""The FastAPI app: chat completions (plain and SSE), models and health, behind an optional key.

FastAPI reads the handlers' annotations at definition time, so this module does not use
`from __future__ import annotations` (`Request` is imported inside `create_app`).
"""

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from compoundai.contract import answer_content, text_chunks
from compoundai.errors import UserInputError
from compoundai.serve.batching import Batcher
from compoundai.serve.protocol import ServeError, ServeSettings, answer_extra, parse_chat_request
from compoundai.system import CompoundSystem

log = logging.getLogger("compoundai.serve")


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


def create_app(systems: dict[str, CompoundSystem], settings: ServeSettings | None = None) -> Any:
    """A FastAPI app serving `systems` (model name → system).

    >>> app = create_app({"banking77": load_system("out/system")})  # doctest: +SKIP
    """
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, Response, StreamingResponse
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

    # No /openapi.json (nor docs pages): the API is OpenAI's, and a schema route would be one
    # more thing answered without the key.
    app = FastAPI(
        title="compoundai", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.batchers = batchers
    app.state.settings = settings

    def error(exc: ServeError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return error(exc)

    @app.exception_handler(ClientGone)
    async def _client_gone(request: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)  # nobody is listening; uvicorn drops it

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error(ServeError(500, "internal server error", type="server_error"))

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        return error(ServeError(exc.status_code, str(exc.detail), code=code))

    def check_host(request: Request) -> None:
        """DNS rebinding: a page elsewhere whose name now resolves to 127.0.0.1 still sends its
        own name as `Host`; a loopback server answers only to loopback names."""
        if not settings.host_allowed(request.headers.get("host")):
            raise ServeError(
                400,
                f"this server does not answer to the Host {request.headers.get('host', '')!r}",
                code="invalid_host",
            )

    def check_key(request: Request) -> None:
        check_host(request)
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

        async def read_body() -> None:
            async for chunk in request.stream():
                data.extend(chunk)
                if len(data) > settings.max_body_bytes:
                    raise ServeError(
                        413,
                        f"request body exceeds the limit of {settings.max_body_bytes} bytes",
                        code="request_too_large",
                    )

        try:
            await asyncio.wait_for(read_body(), timeout=settings.body_timeout_s)
        except asyncio.TimeoutError:
            raise ServeError(
                408,
                f"the request body did not arrive within {settings.body_timeout_s:g} s",
                code="timeout",
            ) from None
        # Only JSON: a browser may send a cross-origin text/plain or form POST without asking
        # (no CORS preflight), never an application/json one.
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise ServeError(
                415,
                f"the request body must be application/json, not {media or 'unspecified'}",
                code="unsupported_media_type",
            )
        try:
            return json.loads(bytes(data))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ServeError(400, f"the request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ServeError(400, "the request body is nested too deeply") from None

    async def disconnected(request: Request) -> None:
        """Returns when the client goes away (the body has been read by then)."""
        while (await request.receive())["type"] != "http.disconnect":
            pass

    async def answer_of(request: Request, future: Any) -> Any:
        """The batcher's answer, unless the client leaves first or it takes too long: then the
        job is cancelled, so a request still waiting is never computed."""
        answer = asyncio.wrap_future(future)
        gone = asyncio.ensure_future(disconnected(request))
        try:
            done, _ = await asyncio.wait(
                {answer, gone},
                timeout=settings.request_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            gone.cancel()
        if answer in done:
            return answer.result()
        future.cancel()
        answer.cancel()
        if gone in done:
            log.info("a client went away before its answer; its request was cancelled")
            raise ClientGone
        raise ServeError(
            504, "the system did not answer in time", type="server_error", code="timeout"
        )

    @app.get("/health")
    async def health(request: Request) -> Any:
        check_host(request)
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
            answer = await answer_of(request, future)
        except (ServeError, ClientGone):
            raise
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
