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

Modules: `protocol` (settings, errors, request parsing), `batching` (the worker per system),
`app` (the FastAPI routes), `hosting` (loading systems, uvicorn in a thread for tests).

Concurrency: each system has one worker thread and a bounded queue. The worker takes every
waiting request with the same decoding settings (up to `max_batch`) and answers them in one
`system.batch` call, so concurrent clients share a forward pass instead of queueing for it.
A full queue answers 503, which the `openai` client retries with backoff.

Streaming sends the answer in chunks once it is complete: the output contract needs the whole
text first (a label is chosen by likelihood, JSON is validated, citations are stripped), so
tokens are not forwarded while they are generated.
"""

from compoundai.serve.app import create_app
from compoundai.serve.batching import Batcher
from compoundai.serve.hosting import free_port, is_loopback, load_systems, serve_in_thread
from compoundai.serve.protocol import (
    API_KEY_ENV,
    ChatRequest,
    ServeError,
    ServeSettings,
    answer_extra,
    parse_chat_request,
)

__all__ = [
    "API_KEY_ENV",
    "Batcher",
    "ChatRequest",
    "ServeError",
    "ServeSettings",
    "answer_extra",
    "create_app",
    "free_port",
    "is_loopback",
    "load_systems",
    "parse_chat_request",
    "serve_in_thread",
]
