"""`compoundai ui [DIR...]`: the local web UI over runs and systems (see `compoundai.ui`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from compoundai.cli_common import _ctx, _errors_to_exit_codes

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@click.command()
@click.argument("dirs", nargs=-1, type=click.Path(path_type=Path), metavar="[DIR...]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, default=8765, show_default=True)
@click.option(
    "--api-key",
    envvar="COMPOUNDAI_API_KEY",
    default=None,
    help="Key the browser must give once (/?key=KEY) [env: COMPOUNDAI_API_KEY]. "
    "Required off loopback.",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where runs started from the page go [default: the first DIR].",
)
@click.pass_obj
@_errors_to_exit_codes
def ui(
    obj: dict[str, Any],
    dirs: tuple[Path, ...],
    host: str,
    port: int,
    api_key: str | None,
    runs_dir: Path | None,
) -> None:
    """Browse runs, compare lanes case by case, start runs and try systems in a browser.

    Shows every run (a folder with report.json) and built system (system.json) under each DIR
    [default: ./out], at http://HOST:PORT/. Everything the page needs is served from here.
    """
    import uvicorn

    from compoundai.errors import UserInputError
    from compoundai.serve import is_loopback
    from compoundai.ui.app import UISettings, create_ui_app

    api_key = api_key or None
    if not is_loopback(host) and not api_key:
        raise UserInputError(
            f"refusing to serve the UI on {host} without an API key",
            hint="pass --api-key (or set COMPOUNDAI_API_KEY), or bind 127.0.0.1",
        )
    roots = list(dirs) or [Path("out")]
    # Bound to loopback, answer only for loopback names (no DNS rebinding from a web page).
    hosts = [*LOOPBACK_NAMES, host] if is_loopback(host) else None
    settings = UISettings(api_key=api_key, allowed_hosts=hosts, runs_dir=runs_dir)
    app = create_ui_app(roots, settings, _ctx(obj))
    click.echo(
        f"compoundai ui on http://{host}:{port}/ over {', '.join(map(str, roots))}", err=True
    )
    if api_key:
        click.echo("open it once with ?key=KEY (or the key form); a cookie keeps it", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
