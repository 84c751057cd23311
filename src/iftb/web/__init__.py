"""The read-only dashboard and HTTP API over the journal and the market data (``iftb-db serve``).

A layer above the library: it reads through the repositories and nothing imports it back.
Needs the ``web`` extra (FastAPI, uvicorn); docs/dashboard.md.
"""

from iftb.web.app import create_app

__all__ = ["create_app"]
