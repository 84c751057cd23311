"""The API's token: every ``/api/`` route wants ``Authorization: Bearer <token>``.

The page and its assets hold no data and need none. The token is compared in constant time, and
a refusal says why without echoing what was sent.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

MIN_TOKEN_LENGTH = 16
_bearer = HTTPBearer(auto_error=False, description="The token `iftb-db serve` printed or read")


def new_token() -> str:
    """A fresh token for a server started without ``IFTB_WEB_TOKEN``."""
    return secrets.token_urlsafe(32)


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse (401) a request without the server's token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _refused("missing token: send 'Authorization: Bearer <token>'")
    expected: str = request.app.state.token
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise _refused("wrong token")


def _refused(reason: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=reason, headers={"WWW-Authenticate": "Bearer"}
    )
