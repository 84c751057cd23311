"""The JSON API, one small router per area; ``iftb.web.app`` mounts them under ``/api``."""

from iftb.web.api import audit, journal, market, scopes, trades

ROUTERS = (scopes.router, journal.router, trades.router, audit.router, market.router)

__all__ = ["ROUTERS"]
