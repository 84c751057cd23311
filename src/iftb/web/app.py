"""``create_app``: the API routers under ``/api/`` (token required), the page at ``/`` and its
assets at ``/static/`` (no token: they hold no data)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import SecretStr

from iftb.data.storage import DatabaseManager, TradeStatistics
from iftb.web.api import ROUTERS
from iftb.web.auth import MIN_TOKEN_LENGTH, require_token
from iftb.web.deps import KnownScopes
from iftb.web.errors import install_error_handlers
from iftb.web.statistics_cache import RevisionCache

STATIC = Path(__file__).parent / "static"


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Everything from the dashboard's own origin, nothing from outside, never framed."""


def create_app(
    database: DatabaseManager,
    *,
    token: str | SecretStr,
    hosts: Sequence[str] = LOOPBACK_HOSTS,
) -> FastAPI:
    """The dashboard's ASGI app over ``database``: read-only units of work only.

    The app connects the manager at start-up and disconnects it at shutdown (under a server);
    a caller driving it directly (tests) connects it first. A request whose Host header names
    none of ``hosts`` (the address served) is refused: a page of another site that resolves its
    own name to this address (DNS rebinding) cannot read the API. No page loads anything from
    outside: the interactive API docs, which load their scripts from a CDN, are not served (the
    schema is at ``/openapi.json``).
    """
    secret = token.get_secret_value() if isinstance(token, SecretStr) else token
    if len(secret) < MIN_TOKEN_LENGTH:
        raise ValueError(f"token: at least {MIN_TOKEN_LENGTH} characters")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await database.connect()
        try:
            yield
        finally:
            await database.disconnect()

    app = FastAPI(
        title="iftb dashboard API",
        summary="Read-only views of the trading journal and the stored market data.",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.database = database
    app.state.token = secret
    app.state.known_scopes = KnownScopes()
    app.state.statistics = RevisionCache[TradeStatistics]()
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router, prefix="/api", dependencies=[Depends(require_token)])
    app.middleware("http")(_no_store)
    app.middleware("http")(_known_host(hosts))

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    return app


def _known_host(
    hosts: Sequence[str],
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """A middleware refusing (400) a request whose Host header names none of ``hosts``."""
    allowed = {name.strip("[]").lower() for name in hosts}

    async def check(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            name = urlsplit(f"//{request.headers.get('host', '')}").hostname
        except ValueError:
            name = None
        if name not in allowed:
            return JSONResponse({"detail": "unknown Host header: not the address served"}, 400)
        return await call_next(request)

    return check


async def _no_store(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """API answers are live figures: never cached by the browser or a proxy."""
    response = await call_next(request)
    if request.url.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
