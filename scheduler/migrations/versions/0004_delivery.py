"""Delivery: the store's marks (the last dispatch round), and outbox keys that name the day.

Reminder and overdue keys were ``{kind}:{uid}:{unit}:{offset}``; they become
``{kind}:{uid}:{unit}:{offset}:{day}`` (the occurrence's due or first day as last
applied), so that an item moved to another day is reminded again for its new day. Rows
of an occurrence the store does not know keep their key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_marks",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("owner", sa.String(100)),
    )
    if op.get_bind().dialect.name == "postgresql":
        first_uid, day = "outbox.occurrence_uids->>0", "COALESCE(o.due, o.first_day)::text"
    else:
        first_uid, day = "json_extract(outbox.occurrence_uids, '$[0]')", \
            "COALESCE(o.due, o.first_day)"
    op.execute(
        "UPDATE outbox SET idempotency_key = idempotency_key || ':' || "
        f"(SELECT {day} FROM occurrences o WHERE o.uid = {first_uid}) "
        "WHERE kind IN ('reminder', 'overdue') AND EXISTS "
        f"(SELECT 1 FROM occurrences o WHERE o.uid = {first_uid})")


def downgrade() -> None:
    op.execute(
        "UPDATE outbox SET idempotency_key = "
        "substr(idempotency_key, 1, length(idempotency_key) - 11) "
        "WHERE kind IN ('reminder', 'overdue') AND idempotency_key LIKE '%:____-__-__'")
    op.drop_table("store_marks")
