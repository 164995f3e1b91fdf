"""Feeds: the served state of each feed (ETag, monotonic Last-Modified) and token generations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scheduler.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_state",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("etag", sa.String(100), nullable=False),
        sa.Column("last_modified", UTCDateTime, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "feed_tokens",
        sa.Column("scope", sa.String(20), primary_key=True),
        sa.Column("subject", sa.String(200), primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("rotated_at", UTCDateTime),
    )


def downgrade() -> None:
    op.drop_table("feed_tokens")
    op.drop_table("feed_state")
