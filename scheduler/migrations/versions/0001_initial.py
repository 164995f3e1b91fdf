"""The initial store: units, occurrences, config revisions, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("emails", sa.JSON, nullable=False),
        sa.Column("language", sa.String(8)),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "occurrences",
        sa.Column("uid", sa.String(500), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("campaign", sa.String(200)),
        sa.Column("first_day", sa.Date, nullable=False),
        sa.Column("last_day", sa.Date, nullable=False),
        sa.Column("due", sa.Date),
        sa.Column("cancelled", sa.Boolean, nullable=False),
        sa.Column("removed_at", UTCDateTime),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_occurrences_campaign", "occurrences", ["campaign"])
    op.create_index("ix_occurrences_first_day", "occurrences", ["first_day"])
    op.create_table(
        "config_revisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("applied_at", UTCDateTime, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("errors", sa.Text),
        sa.Column("summary", sa.JSON, nullable=False),
    )
    op.create_index("ix_config_revisions_content_hash", "config_revisions", ["content_hash"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(700), nullable=False, unique=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("unit", sa.String(200)),
        sa.Column("occurrence_uids", sa.JSON, nullable=False),
        sa.Column("offset", sa.String(20)),
        sa.Column("fire_at", UTCDateTime, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("lease_until", UTCDateTime),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("last_error", sa.Text),
        sa.Column("smtp_reply", sa.Text),
        sa.Column("message_id", sa.String(300)),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at"])
    op.create_index("ix_outbox_occurrence_unit", "outbox", ["unit", "kind"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("config_revisions")
    op.drop_table("occurrences")
    op.drop_table("units")
