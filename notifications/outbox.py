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
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

from sqlalchemy import ColumnElement, Connection, bindparam, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from notifications.planning import PLANNED_KINDS
from scheduler.database import engine_of, transaction
from scheduler.models import ConfigRevision, OutboxRow, StoreMark

BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)
MISSED = "missed by more than reminders.catch_up"  # last_error of rows skipped for good
# last_error of rows held back after a gap in dispatching longer than catch_up: a downtime
# (they were missed for good) or a clock that jumped forward (they are not due at all yet).
# A clock seen to go back afterwards returns them to pending.
HELD = ("held: more than reminders.catch_up late after a gap in dispatching (the daemon "
        "was stopped, or the clock jumped forward); sent if the clock goes back")
CLOCK_TOLERANCE = timedelta(minutes=2)  # instances' clocks may differ this much


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


def _due(now: datetime) -> list[ColumnElement[bool]]:
    return [OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now]


def claim_due(factory: sessionmaker[Session], *, now: datetime, owner: str,
              lease: timedelta, limit: int) -> list[Claimed]:
    """Claim up to ``limit`` due pending rows (the longest due first) for ``owner`` until
    ``now + lease``, plus the other due rows of the same email: the reminders (and the
    overdue notices) of one unit that fire at the same moment are one email, so a claim
    never splits them (it may exceed ``limit`` by those)."""
    with transaction(factory) as session:
        locking = session.get_bind().dialect.name == "postgresql"
        query = select(OutboxRow).where(*_due(now)).order_by(
            OutboxRow.next_attempt_at, OutboxRow.id).limit(limit)
        if locking:
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query))
        ids = {r.id for r in rows}
        emails = list({(r.unit, r.kind, r.fire_at) for r in rows
                       if r.kind in PLANNED_KINDS and r.unit})
        for start in range(0, len(emails), 300):
            more = select(OutboxRow).where(
                *_due(now), tuple_(OutboxRow.unit, OutboxRow.kind, OutboxRow.fire_at).in_(
                    emails[start:start + 300]))
            if locking:
                more = more.with_for_update(skip_locked=True)
            rows.extend(r for r in session.scalars(more) if r.id not in ids)
            ids = {r.id for r in rows}
        for row in rows:
            row.state = "sending"
            row.lease_until = now + lease
            row.lease_owner = owner
            row.attempts += 1
        return [Claimed(r.id, r.idempotency_key, r.kind, r.unit, tuple(r.occurrence_uids),
                        r.offset, r.fire_at, r.attempts, dict(r.payload)) for r in rows]


def renew(factory: sessionmaker[Session], ids: Sequence[int], *, owner: str, now: datetime,
          lease: timedelta) -> set[int]:
    """Extend ``owner``'s leases of ``ids`` to ``now + lease``; returns the ids that are still
    its own (a row missing from the answer was taken back: it must not be sent)."""
    kept: set[int] = set()
    with engine_of(factory).begin() as connection:
        for start in range(0, len(ids), 500):
            result = connection.execute(
                update(OutboxRow).where(OutboxRow.id.in_(ids[start:start + 500]),
                                        OutboxRow.state == "sending",
                                        OutboxRow.lease_owner == owner)
                .values(lease_until=now + lease).returning(OutboxRow.id))
            kept.update(i for (i,) in result)
    return kept


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


@dataclass(frozen=True)
class Dropped:
    """Not sent because it no longer applies (e.g. a change notice of an item cancelled
    since): ``cancelled``, with the reason."""

    ids: tuple[int, ...]
    reason: str


Outcome = Sent | Retry | Failed | Dropped


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
            values: dict[str, object] = {}
            if isinstance(outcome, Dropped):
                state, error = "cancelled", outcome.reason
            elif isinstance(outcome, Retry):
                state = "failed" if outcome.attempts >= outcome.max_attempts else "pending"
                values = {"next_attempt_at": now + backoff(outcome.attempts)}
                error = outcome.error
            else:
                state, error = "failed", outcome.error
            connection.execute(update(OutboxRow).where(OutboxRow.id.in_(outcome.ids)).values(
                state=state, last_error=error, lease_until=None, lease_owner=None, **values))
            if state == "failed" and not isinstance(outcome, Dropped) and outcome.report:
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
    """Rows whose sender died mid-flight go back to ``pending`` once their lease is over
    (crash recovery when nothing proves the owner dead sooner)."""
    with transaction(factory) as session:
        result = session.execute(
            update(OutboxRow)
            .where(OutboxRow.state == "sending", OutboxRow.lease_until < now)
            .values(state="pending", lease_until=None, lease_owner=None))
        return int(getattr(result, "rowcount", 0) or 0)


def sending_owners(factory: sessionmaker[Session]) -> set[str]:
    """The owners of rows that are being sent (claimed and not yet recorded)."""
    with factory() as session:
        return {owner for owner in session.scalars(
            select(OutboxRow.lease_owner).distinct().where(OutboxRow.state == "sending"))
            if owner}


def release_owners(factory: sessionmaker[Session], owners: Sequence[str]) -> int:
    """Rows claimed by instances that are provably dead go back to ``pending`` at once,
    without waiting for their leases to run out."""
    if not owners:
        return 0
    with transaction(factory) as session:
        result = session.execute(
            update(OutboxRow)
            .where(OutboxRow.state == "sending", OutboxRow.lease_owner.in_(list(owners)))
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


@dataclass(frozen=True)
class ClockReading:
    """What :func:`note_dispatch` found: the store's previous dispatch mark, and what was
    done about reminders that are more than ``catch_up`` late."""

    previous: datetime | None
    jump: Literal["none", "forward", "backward"]
    skipped: int = 0  # missed for good (the clock agrees with the store)
    held: int = 0  # held back after a gap longer than catch_up (see HELD)
    revived: int = 0  # held rows returned to pending because the clock went back


def _late(now: datetime, catch_up: timedelta) -> list[ColumnElement[bool]]:
    """Reminders and overdue notices never tried and due for longer than ``catch_up``."""
    return [OutboxRow.state == "pending", OutboxRow.kind.in_(PLANNED_KINDS),
            OutboxRow.attempts == 0, OutboxRow.next_attempt_at < now - catch_up]


def note_dispatch(factory: sessionmaker[Session], *, now: datetime, owner: str,
                  catch_up: timedelta) -> ClockReading:
    """Record a dispatch round at ``now`` and deal with reminders more than ``catch_up`` late.

    Only a downtime the store can prove skips a reminder for good. The store keeps the
    time of the last dispatch round (``store_marks.dispatched``, written every round, at
    least once a minute while a daemon runs; before the first round, the newest sent
    email or applied config):

    - the clock agrees with it (``now`` is at most ``catch_up`` after it, and not before
      it): rows more than ``catch_up`` late are ``skipped`` for good;
    - the store has seen nothing happen yet: nothing is proven, nothing skipped;
    - ``now`` is more than ``catch_up`` after it — the daemon was stopped that long, or the
      clock jumped forward: those rows are held back (``skipped`` with :data:`HELD`),
      not sent, and kept;
    - ``now`` is before it (the clock went back, e.g. after being fixed): nothing is
      skipped, and held rows that are not more than ``catch_up`` late by this clock are
      pending again.
    """
    with transaction(factory) as session:
        mark = session.get(StoreMark, "dispatched", with_for_update=True)
        previous = mark.at if mark is not None else None
        if mark is None:  # the first round of this store (or of two instances at once)
            previous = _last_activity(session)
            insert_into = (postgresql_insert if session.get_bind().dialect.name == "postgresql"
                           else sqlite_insert)
            session.execute(insert_into(StoreMark).values(
                name="dispatched", at=now, owner=owner).on_conflict_do_nothing())
            mark = session.get(StoreMark, "dispatched", with_for_update=True,
                               populate_existing=True)
            assert mark is not None
        mark.at, mark.owner = now, owner
        if previous is None:  # a store that never dispatched proves nothing
            return ClockReading(None, "none")
        if now < previous - CLOCK_TOLERANCE:
            revived = session.execute(
                update(OutboxRow).where(OutboxRow.state == "skipped", OutboxRow.last_error == HELD,
                                        OutboxRow.fire_at >= now - catch_up)
                .values(state="pending", last_error=None, next_attempt_at=OutboxRow.fire_at))
            return ClockReading(previous, "backward", revived=_count(revived))
        if now - previous > catch_up:
            held = session.execute(update(OutboxRow).where(*_late(now, catch_up))
                                   .values(state="skipped", last_error=HELD))
            return ClockReading(previous, "forward", held=_count(held))
        skipped = session.execute(update(OutboxRow).where(*_late(now, catch_up))
                                  .values(state="skipped", last_error=MISSED))
        return ClockReading(previous, "none", skipped=_count(skipped))


def _last_activity(session: Session) -> datetime | None:
    """Before the first mark (a new store, or one from before marks existed): the last
    thing the store saw happen, a sent email or an applied config."""
    moments = [session.scalar(select(func.max(OutboxRow.sent_at))),
               session.scalar(select(func.max(ConfigRevision.applied_at)))]
    return max((m for m in moments if m is not None), default=None)


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def retry_failed(factory: sessionmaker[Session], *, now: datetime, unit: str | None = None,
                 since: date | None = None, tz: tzinfo | None = None) -> int:
    """``mocd outbox retry``: failed rows (of ``unit``, due on or after the local day
    ``since``) are pending again with a fresh set of attempts, due ``now``. Only ``failed``
    rows: sent ones are never sent again, skipped and cancelled ones had their reasons."""
    where: list[ColumnElement[bool]] = [OutboxRow.state == "failed"]
    if unit is not None:
        where.append(OutboxRow.unit == unit)
    if since is not None:
        where.append(OutboxRow.fire_at >= datetime.combine(since, time(0), tzinfo=tz or UTC))
    with transaction(factory) as session:
        return _count(session.execute(update(OutboxRow).where(*where).values(
            state="pending", attempts=0, next_attempt_at=now, lease_until=None,
            lease_owner=None)))


def next_due(factory: sessionmaker[Session]) -> datetime | None:
    """When the next pending row is due (to arm the clock), or None."""
    with factory() as session:
        return session.scalar(
            select(func.min(OutboxRow.next_attempt_at)).where(OutboxRow.state == "pending"))


def counts(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        return {state: n for state, n in session.execute(
            select(OutboxRow.state, func.count()).group_by(OutboxRow.state))}
