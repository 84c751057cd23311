"""Fills ordered by the exchange's own sequence; funding payments keyed on the interval they
settle.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

``fills.sequence``: two fills of one millisecond were ordered by their exchange fill id as text,
so fill "10" came before fill "9" and an increase and a reduction in one instant realised the
wrong PnL. An exchange's own sequence number, where it gives one, now orders them (else integer
ids compare as integers). ``funding_payments.reported_time``: one payment is stamped 16:00:00
by the REST income history and 16:00:00.001 by the websocket; keyed on that millisecond it was
stored once per stamp. Its ``funding_time`` is now the funding boundary it settles, and the time
the exchange reported, when it differs, is kept here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from iftb.data.storage.types import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("fills", sa.Column("sequence", sa.BigInteger(), nullable=True))
    op.add_column("funding_payments", sa.Column("reported_time", UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("funding_payments", "reported_time")  # SQLite >= 3.35 drops in place
    op.drop_column("fills", "sequence")
