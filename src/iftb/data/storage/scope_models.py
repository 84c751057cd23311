"""The journal's scope registry (migration 0012): one row per scope that has ever held a journal
row, kept by the database's own triggers, so listing scopes reads O(scopes) rows and a reader can
tell, by one key lookup, whether a scope's trades changed since it last looked."""

from __future__ import annotations

from sqlalchemy import BigInteger, PrimaryKeyConstraint, String, text
from sqlalchemy.orm import Mapped, mapped_column

from iftb.data.storage.models import Base
from iftb.data.storage.scopes import BOT_NAME_LENGTH

NO_RUN = 0
"""``run_key`` of live and paper scopes (backtest run ids start at 1)."""


class JournalScopeModel(Base):
    """A scope (bot, mode, run) seen in any journal table, and its trades' revision: a counter
    every insert, update or delete of the scope's trades moves forward, in the writer's own
    transaction. Rows are never deleted, so a revision never repeats for a scope."""

    __tablename__ = "journal_scopes"
    __table_args__ = (PrimaryKeyConstraint("bot", "mode", "run_key"),)

    bot: Mapped[str] = mapped_column(String(BOT_NAME_LENGTH))
    mode: Mapped[str] = mapped_column(String(10))
    run_key: Mapped[int] = mapped_column(BigInteger)
    trades_revision: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
