"""The wire protocol of `compoundai serve`: settings, OpenAI-shaped errors, request parsing.

Everything a request is checked against before it reaches a system: the body's fields, the
limits (`ServeSettings`), and the error body OpenAI clients expect (`ServeError`: status,
message, type, param, code; never a traceback).
"""

from dataclasses import dataclass, replace
from typing import Any

from compoundai.contract import Answer
from compoundai.generators.base import GenerationConfig
from compoundai.system import CompoundSystem

API_KEY_ENV = "COMPOUNDAI_API_KEY"


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeSettings:
    """Limits and batching for one server. The defaults suit a CPU and small models.

    `host` is the address the server binds; on a loopback address only requests whose `Host`
    header names a loopback address are answered (a page on another site that rebinds its DNS
    name to 127.0.0.1 sends its own name), unless `allowed_hosts` lists others. The timeouts
    bound what a slow client holds: `header_timeout_s` for a connection's request line and
    headers, `body_timeout_s` for its body.
    """

    api_key: str | None = None
    max_body_bytes: int = 1_000_000
    max_input_chars: int = 20_000
    max_tokens_limit: int = 1024
    max_batch: int = 16
    batch_wait_ms: float = 10.0
    max_queue: int = 256
    request_timeout_s: float = 300.0
    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: int = 5
    max_connections: int = 512

    def host_allowed(self, header: str | None) -> bool:
        """Is the request's `Host` header (name[:port]) one this server answers to?"""
        if self.allowed_hosts == ("*",):
            return True
        name = _host_name(header or "")
        if name in {h.lower() for h in self.allowed_hosts}:
            return True
        if is_loopback(self.host):
            return name in LOOPBACK_NAMES or is_loopback(name)
        return not self.allowed_hosts  # a public bind (with its key) answers any name


def _host_name(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8000
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback IP address."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def _utf8(text: str, param: str) -> str:
    """`text` if it can be encoded as UTF-8; JSON's `\\ud800` escapes give lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ServeError(
            400, f"'{param}' holds a lone UTF-16 surrogate: not valid Unicode text", param=param
        ) from None
    return text


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return _utf8(content, "messages")
    if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}]
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(_utf8(str(part.get("text", "")), "messages"))
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
        for one in stops:
            _utf8(one, "stop")
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
