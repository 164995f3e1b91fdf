"""The store's tables (SQLAlchemy 2): units, occurrences, config revisions, the outbox.

The outbox is the truth of delivery: every email is a row before it is sent,
with a unique idempotency key, so restarts, reloads and several instances can
never send one (occurrence, unit, offset) twice. Times are stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

OUTBOX_STATES = ("pending", "sending", "sent", "failed", "skipped", "cancelled")
OUTBOX_KINDS = ("reminder", "change", "cancellation", "digest", "overdue", "delivery_failure",
                "config_error", "test")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive text) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str | None] = mapped_column(String(8))
    updated_at: Mapped[datetime]


class StoredOccurrence(Base):
    """An occurrence as last applied; ``sequence`` rises on every real change (iCalendar)."""

    __tablename__ = "occurrences"

    uid: Mapped[str] = mapped_column(String(500), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    campaign: Mapped[str | None] = mapped_column(String(200), index=True)
    first_day: Mapped[date] = mapped_column(Date, index=True)
    last_day: Mapped[date] = mapped_column(Date)
    due: Mapped[date | None] = mapped_column(Date)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    removed_at: Mapped[datetime | None]
    fingerprint: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime]


class ConfigRevision(Base):
    __tablename__ = "config_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    applied_at: Mapped[datetime]
    ok: Mapped[bool] = mapped_column(Boolean)
    errors: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OutboxRow(Base):
    """One email to send (or sent, failed, skipped, cancelled): the delivery truth."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(700), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    unit: Mapped[str | None] = mapped_column(String(200))
    occurrence_uids: Mapped[list[str]] = mapped_column(JSON, default=list)
    offset: Mapped[str | None] = mapped_column(String(20))
    fire_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # notice details
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_occurrence_unit", "unit", "kind"),
    )


class StoreMark(Base):
    """A named moment the store keeps about itself. ``dispatched``: the last time any
    instance ran a dispatch round (every minute at least, while one runs), which is what
    lets a start tell a downtime (reminders missed for good) from a clock that jumped."""

    __tablename__ = "store_marks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[datetime]
    owner: Mapped[str | None] = mapped_column(String(100))


class FeedState(Base):
    """What a feed last looked like when served: its ETag and a ``Last-Modified`` that only
    ever moves forward (Apple Calendar revalidates by date alone, so a date that went back
    would make it keep a stale copy). Keyed by :attr:`calendars.feed_types.FeedKey.name`."""

    __tablename__ = "feed_state"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    etag: Mapped[str] = mapped_column(String(100))
    last_modified: Mapped[datetime]
    size: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class FeedToken(Base):
    """A feed token's generation per (scope, subject); no token is stored.

    A token is derived as HMAC(secret, scope, subject, generation) with the secret kept in
    ``state_dir`` (or given by the ``secret_key`` setting when several instances share the
    database), so a copy of the database alone reveals no feed URL. Rotating a token bumps
    the generation, which invalidates the old one. Scopes: ``unit``, ``campaign``, ``admin``.
    """

    __tablename__ = "feed_tokens"

    scope: Mapped[str] = mapped_column(String(20), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]


class Confirmation(Base):
    """A unit said it has done what an occurrence asks (SPEC §5, the link in its emails).

    One row per (occurrence, unit): confirming again keeps the first time; undoing (within
    24 h) sets ``undone_at`` and a later confirmation replaces the row's times. ``address``
    is where the POST came from (the client address the server saw)."""

    __tablename__ = "confirmations"

    occurrence_uid: Mapped[str] = mapped_column(String(500), primary_key=True)
    unit: Mapped[str] = mapped_column(String(200), primary_key=True)
    confirmed_at: Mapped[datetime]
    confirmed_by: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(100))
    undone_at: Mapped[datetime | None]
