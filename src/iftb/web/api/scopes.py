"""``/api/scopes``: every scope of the journal, with its counts."""

from __future__ import annotations

from fastapi import APIRouter, Request

from iftb.data.storage import ScopeRepository
from iftb.web.api.models import ScopeSummaryOut
from iftb.web.deps import Database

router = APIRouter(tags=["scopes"])


@router.get("/scopes", response_model=list[ScopeSummaryOut])
async def list_scopes(request: Request, manager: Database) -> list[ScopeSummaryOut]:
    """Each scope with rows in the journal (``ScopeRepository.list_scopes``)."""
    async with manager.get_session(read_only=True) as session:
        summaries = await ScopeRepository(session).list_scopes()
    request.app.state.known_scopes.remember(summary.scope for summary in summaries)
    return [
        ScopeSummaryOut(
            scope=summary.scope,  # type: ignore[arg-type]  # read by attribute
            name=str(summary.scope),
            trades=summary.trades,
            open_positions=summary.open_positions,
            last_exit=summary.last_exit,
        )
        for summary in summaries
    ]
