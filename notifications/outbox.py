"""The outbox: claiming due rows with a lease, and recording what happened to them.

Every email is a row before it is sent. A dispatcher claims due rows
atomically (PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite: the claim runs in a
``BEGIN IMMEDIATE`` transaction, so one writer at a time), marks them
``sending`` with a lease, sends, then marks them ``sent`` with the server's
reply. A crash leaves rows ``sending`` with a lease that expires; expired
leases return to ``pending``. So a message is re-sent only if it was in flight
at the moment of the crash.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from notifications.planning import PLANNED_KINDS
from scheduler.database import engine_of, transaction
from scheduler.models import OutboxRow

DEFAULT_LEASE = timedelta(minutes=5)
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)


@dataclass(frozen=True)
class Claimed:
    """A claimed row, detached from the session (the dispatcher sends without a transaction)."""

    id: int
    idempotency_key: str
    kind: str
    unit: str | None
    occurrence_uids: tuple[str, ...]
    offset: str | None
    fire_at: datetime
    attempts: int
    payload: dict[str, object]


def claim_due(factory: sessionmaker[Session], *, now: datetime, owner: str,
              lease: timedelta = DEFAULT_LEASE, limit: int = 500) -> list[Claimed]:
    """Claim up to ``limit`` due pending rows for ``owner`` until ``now + lease``."""
    with transaction(factory) as session:
        query = (select(OutboxRow)
                 .where(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now)
                 .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
                 .limit(limit))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query))
        for row in rows:
            row.state = "sending"
            row.lease_until = now + lease
            row.lease_owner = owner
            row.attempts += 1
        return [Claimed(r.id, r.idempotency_key, r.kind, r.unit, tuple(r.occurrence_uids),
                        r.offset, r.fire_at, r.attempts, dict(r.payload)) for r in rows]


@dataclass(frozen=True)
class Sent:
    """Delivered: the server's reply; ``reports`` (recipients refused while others
    accepted) are queued for mail.admin in the same transaction."""

    ids: tuple[int, ...]
    reply: str
    message_id: str
    reports: tuple[dict[str, object], ...] = ()


@dataclass(frozen=True)
class Retry:
    """A transient failure: back to ``pending`` after a backoff, or ``failed`` once
    ``attempts`` reached ``max_attempts`` (then ``report``, if any, is queued)."""

    ids: tuple[int, ...]
    error: str
    attempts: int
    max_attempts: int
    report: dict[str, object] | None = None


@dataclass(frozen=True)
class Failed:
    """A permanent failure: ``failed`` at once, ``report`` (if any) queued."""

    ids: tuple[int, ...]
    error: str
    report: dict[str, object] | None = None


Outcome = Sent | Retry | Failed


# Sent rows, by primary key in one executemany (Core: a third of the ORM's CPU per call).
_MARK_SENT = (update(OutboxRow).where(OutboxRow.id == bindparam("b_id"))
              .values(state="sent", sent_at=bindparam("b_at"), smtp_reply=bindparam("b_reply"),
                      message_id=bindparam("b_mid"), lease_until=None, lease_owner=None,
                      last_error=None))


def record(factory: sessionmaker[Session], outcomes: Sequence[Outcome], *,
           now: datetime) -> list[str]:
    """Record what happened to sent messages, all in one transaction; returns each
    outcome's new state.

    One transaction for many outcomes is what lets the dispatcher keep up with the SMTP
    server (a commit per message cost more CPU than sending it); a failure and its report
    are in the same transaction, so a crash cannot lose the report. Core statements on a
    connection, not the ORM: this runs once per email.
    """
    states: list[str] = []
    sent: list[dict[str, object]] = []
    with engine_of(factory).begin() as connection:
        for outcome in outcomes:
            if isinstance(outcome, Sent):
                sent.extend({"b_id": i, "b_at": now, "b_reply": outcome.reply,
                             "b_mid": outcome.message_id} for i in outcome.ids)
                for i, report in enumerate(outcome.reports):
                    _queue_report(connection, f"refused:{min(outcome.ids)}:{i}", now, report)
                states.append("sent")
                continue
            if isinstance(outcome, Retry):
                state = "failed" if outcome.attempts >= outcome.max_attempts else "pending"
                values: dict[str, object] = {"next_attempt_at": now + backoff(outcome.attempts)}
            else:
                state, values = "failed", {}
            connection.execute(update(OutboxRow).where(OutboxRow.id.in_(outcome.ids)).values(
                state=state, last_error=outcome.error, lease_until=None, lease_owner=None,
                **values))
            if state == "failed" and outcome.report is not None:
                _queue_report(connection, f"failure:{min(outcome.ids)}", now, outcome.report)
            states.append(state)
        if sent:
            connection.execute(_MARK_SENT, sent)
    return states


def mark_sent(factory: sessionmaker[Session], ids: Sequence[int], *, now: datetime,
              reply: str, message_id: str,
              reports: Sequence[dict[str, object]] = ()) -> None:
    """:func:`record` of one :class:`Sent`."""
    record(factory, [Sent(tuple(ids), reply, message_id, tuple(reports))], now=now)


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter: ½–1 × 1, 2, 4 … minutes, capped at 6 hours.

    The jitter spreads retries of many rows that failed together (an SMTP outage)
    so that they do not hit the recovering server all at once.
    """
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (1 << min(max(attempts - 1, 0), 20)))
    factor: float = (rng or random.Random()).uniform(0.5, 1.0)
    return ceiling * factor


def mark_retry(factory: sessionmaker[Session], ids: Sequence[int], *, now: datetime,
               error: str, attempts: int, max_attempts: int,
               report: dict[str, object] | None = None) -> str:
    """:func:`record` of one :class:`Retry`; returns the new state."""
    return record(factory, [Retry(tuple(ids), error, attempts, max_attempts, report)],
                  now=now)[0]


def new_row(key: str, kind: str, *, fire_at: datetime, created_at: datetime,
            unit: str | None = None, uids: Sequence[str] = (), offset: str | None = None,
            payload: dict[str, object] | None = None) -> dict[str, object]:
    """The values of a new, pending outbox row (for :func:`insert_new`)."""
    return {"idempotency_key": key, "kind": kind, "unit": unit, "occurrence_uids": list(uids),
            "offset": offset, "fire_at": fire_at, "state": "pending", "attempts": 0,
            "next_attempt_at": fire_at, "payload": payload or {}, "created_at": created_at}


def insert_new(session: Session | Connection, rows: Sequence[dict[str, object]]) -> int:
    """Insert rows whose idempotency key is new; existing keys are left alone.

    ``INSERT … ON CONFLICT (idempotency_key) DO NOTHING`` on SQLite and PostgreSQL:
    the unique key, not a prior read, is what keeps every message single.
    Returns how many rows were inserted.
    """
    dialect = (session.get_bind() if isinstance(session, Session) else session).dialect.name
    insert_into = postgresql_insert if dialect == "postgresql" else sqlite_insert
    added = 0
    for start in range(0, len(rows), 2000):  # under both databases' parameter limits
        statement = insert_into(OutboxRow).values(list(rows[start:start + 2000]))
        result = session.execute(statement.on_conflict_do_nothing(
            index_elements=["idempotency_key"]).returning(OutboxRow.id))
        added += len(result.all())  # rowcount is -1 for this statement on psycopg
    return added


def _queue_report(session: Session | Connection, key: str, now: datetime,
                  report: dict[str, object]) -> None:
    """A ``delivery_failure`` row; the dispatcher sends all due ones as one email."""
    insert_new(session, [new_row(key, "delivery_failure", fire_at=now, created_at=now,
                                 payload={"failures": [report]})])


def release_expired(factory: sessionmaker[Session], *, now: datetime) -> int:
    """Rows whose sender died mid-flight go back to ``pending`` (crash recovery)."""
    with transaction(factory) as session:
        result = session.execute(
            update(OutboxRow)
            .where(OutboxRow.state == "sending", OutboxRow.lease_until < now)
            .values(state="pending", lease_until=None, lease_owner=None))
        return int(getattr(result, "rowcount", 0) or 0)


def release_owned(factory: sessionmaker[Session], *, owner: str) -> int:
    """On a clean stop: give back what this instance claimed but did not send."""
    with transaction(factory) as session:
        result = session.execute(
            update(OutboxRow)
            .where(OutboxRow.state == "sending", OutboxRow.lease_owner == owner)
            .values(state="pending", lease_until=None, lease_owner=None,
                    attempts=OutboxRow.attempts - 1))
        return int(getattr(result, "rowcount", 0) or 0)


def skip_missed(factory: sessionmaker[Session], *, now: datetime, catch_up: timedelta) -> int:
    """Reminders and overdue notices missed by more than ``catch_up`` (the daemon was down)
    become ``skipped``."""
    with transaction(factory) as session:
        result = session.execute(
            update(OutboxRow)
            .where(OutboxRow.state == "pending", OutboxRow.kind.in_(PLANNED_KINDS),
                   OutboxRow.attempts == 0, OutboxRow.fire_at < now - catch_up)
            .values(state="skipped",
                    last_error=f"missed by more than {catch_up} (the daemon was not running)"))
        return int(getattr(result, "rowcount", 0) or 0)


def next_due(factory: sessionmaker[Session]) -> datetime | None:
    """When the next pending row is due (to arm the clock), or None."""
    with factory() as session:
        return session.scalar(
            select(func.min(OutboxRow.next_attempt_at)).where(OutboxRow.state == "pending"))


def counts(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        return {state: n for state, n in session.execute(
            select(OutboxRow.state, func.count()).group_by(OutboxRow.state))}
