"""Confirmations: a unit has done what an occurrence asks (the signed link in its emails).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "confirmations",
        sa.Column("occurrence_uid", sa.String(500), primary_key=True),
        sa.Column("unit", sa.String(200), primary_key=True),
        sa.Column("confirmed_at", UTCDateTime, nullable=False),
        sa.Column("confirmed_by", sa.Text),
        sa.Column("address", sa.String(100)),
        sa.Column("undone_at", UTCDateTime),
    )


def downgrade() -> None:
    op.drop_table("confirmations")
