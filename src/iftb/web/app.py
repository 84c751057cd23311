"""``create_app``: the API routers under ``/api/`` (token required), the page at ``/`` and its
assets at ``/static/`` (no token: they hold no data)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import SecretStr

from iftb.data.storage import DatabaseManager, TradeStatistics
from iftb.web.api import ROUTERS
from iftb.web.auth import MIN_TOKEN_LENGTH, require_token
from iftb.web.deps import KnownScopes
from iftb.web.errors import install_error_handlers
from iftb.web.statistics_cache import RevisionCache

STATIC = Path(__file__).parent / "static"


def create_app(database: DatabaseManager, *, token: str | SecretStr) -> FastAPI:
    """The dashboard's ASGI app over ``database``: read-only units of work only.

    The app connects the manager at start-up and disconnects it at shutdown (under a server);
    a caller driving it directly (tests) connects it first.
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
    )
    app.state.database = database
    app.state.token = secret
    app.state.known_scopes = KnownScopes()
    app.state.statistics = RevisionCache[TradeStatistics]()
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router, prefix="/api", dependencies=[Depends(require_token)])
    app.middleware("http")(_no_store)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    return app


async def _no_store(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """API answers are live figures: never cached by the browser or a proxy."""
    response = await call_next(request)
    if request.url.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
