"""Every refusal is JSON ``{"detail": "<one clear sentence>"}``, never a traceback.

A malformed parameter is a 422 naming it, a storage rule a 422 with the library's message (which
never holds a secret), a missing row a 404, an unreachable or slow database a 503, and anything
unexpected a bare 500 whose details go to the server's log only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from iftb.data.storage import NotFoundError, StorageError, ValidationError
from iftb.utils import get_logger

log = get_logger(__name__)
_MESSAGES = {"string_pattern_mismatch": "only letters, digits and _ . : / - are allowed"}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _malformed)
    app.add_exception_handler(ValidationError, _refused)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(StorageError, _unavailable)
    app.add_exception_handler(Exception, _unexpected)


def describe(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors as one line: ``limit: Input should be ... (got '5000')``."""
    parts = []
    for error in errors:
        name = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
        given = error.get("input")
        shown = "" if given is None or isinstance(given, dict) else f" (got {str(given)[:40]!r})"
        message = _MESSAGES.get(error.get("type", ""), error.get("msg", "invalid"))
        parts.append(f"{name}: {message}{shown}")
    return "; ".join(parts)


def _detail(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code)


async def _malformed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _detail(status.HTTP_422_UNPROCESSABLE_CONTENT, describe(exc.errors()))


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    return _detail(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return _detail(status.HTTP_404_NOT_FOUND, str(exc))


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("storage error", path=request.url.path, error=str(exc))
    return _detail(status.HTTP_503_SERVICE_UNAVAILABLE, f"database unavailable: {exc}")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error", path=request.url.path, error_type=type(exc).__name__)
    return _detail(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal error (see the server's log)")
