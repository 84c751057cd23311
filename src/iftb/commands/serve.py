"""``serve``: the read-only dashboard and its JSON API over the configured database.

Binds to 127.0.0.1 unless told otherwise. The token comes from ``IFTB_WEB_TOKEN`` or is
generated and printed once, in the URL's fragment (``#token=...``), which a browser never sends
to the server, so it appears in no request line and no access log. Needs the ``web`` extra.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from iftb.commands.common import DatabaseUrl, err_console, fail, run
from iftb.commands.read_only_database import check_read_only, read_only_manager
from iftb.config import ConfigError, get_settings
from iftb.data.storage import ValidationError

app = typer.Typer()
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = DEFAULT_PORT,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the read-only dashboard and its API (docs/dashboard.md); Ctrl-C stops it."""
    try:
        import uvicorn

        from iftb.web import create_app
        from iftb.web.auth import MIN_TOKEN_LENGTH, new_token
    except ImportError:
        fail("the dashboard needs the 'web' extra: pip install 'iftb[web]'")
    try:
        configured = get_settings().web.token
        manager = read_only_manager(database_url)
    except (ConfigError, ValidationError) as exc:
        fail(str(exc))
    run(lambda: check_read_only(manager))
    token = configured.get_secret_value() if configured is not None else new_token()
    if len(token) < MIN_TOKEN_LENGTH:
        fail(f"IFTB_WEB_TOKEN: at least {MIN_TOKEN_LENGTH} characters (secrets.token_urlsafe(32))")
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{port}/"
    if configured is None:
        typer.echo(f"dashboard: {address}#token={token}")
    else:
        typer.echo(f"dashboard: {address} (token from IFTB_WEB_TOKEN)")
    typer.echo(f"database: {manager.safe_url}")
    if not _is_loopback(host):
        err_console.print(
            f"warning: listening on {host}: anyone who can reach it may try the token; "
            "put TLS in front of it (docs/dashboard.md)",
            highlight=False,
        )
    uvicorn.run(
        create_app(manager, token=token, hosts=_served_names(host)),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,
    )


def _served_names(host: str) -> list[str]:
    """The Host headers a request to this server may carry: the address served, and on
    loopback its usual names; anything else (another site's name, DNS rebinding) is refused."""
    from iftb.web.app import LOOPBACK_HOSTS

    names = [host, f"[{host}]"] if ":" in host else [host]
    return [*names, *LOOPBACK_HOSTS] if _is_loopback(host) else names


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
