"""`compoundai serve SYSTEM_DIR...`: built systems behind an OpenAI-compatible API."""

from __future__ import annotations

from typing import Any

import click

from compoundai.cli_common import _ctx, _errors_to_exit_codes


@click.command()
@click.argument("systems", nargs=-1, required=True, metavar="[NAME=]SYSTEM_DIR...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--api-key",
    envvar="COMPOUNDAI_API_KEY",
    default=None,
    help="Bearer key clients must send [env: COMPOUNDAI_API_KEY]. Required off loopback.",
)
@click.option("--max-batch", type=int, default=16, show_default=True, help="Requests per batch.")
@click.option(
    "--max-body-bytes", type=int, default=1_000_000, show_default=True, help="Larger → 413."
)
@click.option(
    "--max-tokens-limit", type=int, default=1024, show_default=True, help="Larger max_tokens → 400."
)
@click.option(
    "--max-input-chars",
    type=int,
    default=20_000,
    show_default=True,
    help="Longer user messages → 400.",
)
@click.option(
    "--max-queue", type=int, default=256, show_default=True, help="Waiting requests before 503."
)
@click.option(
    "--allow-remote",
    "allow_remote",
    multiple=True,
    metavar="URL",
    help="A server base URL a system may send its inputs (and OPENAI_API_KEY) to; repeatable "
    "[env: COMPOUNDAI_ALLOW_REMOTE, comma-separated]. Others are refused.",
)
@click.pass_obj
@_errors_to_exit_codes
def serve(
    obj: dict[str, Any],
    systems: tuple[str, ...],
    host: str,
    port: int,
    api_key: str | None,
    max_batch: int,
    max_body_bytes: int,
    max_tokens_limit: int,
    max_input_chars: int,
    max_queue: int,
    allow_remote: tuple[str, ...],
) -> None:
    """Serve built systems at http://HOST:PORT/v1 (chat completions, models, health).

    Each SYSTEM_DIR is a directory written by `compoundai build`; clients select it with
    `model` = its name (or NAME, given as NAME=SYSTEM_DIR). The last user message is the
    system's input; the answer is its parsed output, with citations in the extra
    `compoundai` field.
    """
    import uvicorn

    from compoundai.errors import UserInputError
    from compoundai.serve import ServeSettings, create_app, is_loopback, load_systems
    from compoundai.serve.hosting import uvicorn_options

    api_key = api_key or None  # an empty COMPOUNDAI_API_KEY is no key, not the key ""
    if not is_loopback(host) and not api_key:
        raise UserInputError(
            f"refusing to serve on {host} without an API key",
            hint="pass --api-key (or set COMPOUNDAI_API_KEY), or bind 127.0.0.1",
        )
    if min(max_batch, max_body_bytes, max_tokens_limit, max_input_chars, max_queue) < 1:
        raise UserInputError("the --max-* options must be at least 1")
    ctx = _ctx(obj)
    ctx.progress = False
    loaded = load_systems(systems, ctx, allow_remote=allow_remote)
    settings = ServeSettings(
        api_key=api_key,
        host=host,
        max_body_bytes=max_body_bytes,
        max_tokens_limit=max_tokens_limit,
        max_input_chars=max_input_chars,
        max_batch=max_batch,
        max_queue=max_queue,
    )
    app = create_app(loaded, settings)
    for name, system in loaded.items():
        click.echo(f"serving {name} ({system.lane}) at http://{host}:{port}/v1", err=True)
    if not api_key:
        click.echo("no API key set: any local client may call this server", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info", **uvicorn_options(settings))
