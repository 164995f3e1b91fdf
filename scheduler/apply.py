"""Applying a config revision to the store.

validate → expand → diff against the stored occurrences by UID → upsert
(``sequence`` and ``changed_at`` move only on real changes) → re-plan the
outbox: new rows for new (occurrence, unit, offset, day), pending rows that no
longer apply cancelled, ``sent`` rows never touched (see :meth:`_Apply.reminders`
for catch-up). A change to what a unit acts on (start, end, due day, location:
:data:`~scheduler.occurrences.ACTED_ON`) whose old or new day is within
:data:`NOTICE_HORIZON` becomes a change notice; a removal or cancellation of an
item not yet past, a cancellation notice; never on the first load of an empty
database. Several instances may race to apply: a PostgreSQL advisory lock
(SQLite: the single writer) serialises them and the content hash makes the
second a no-op.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    MetaData,
    String,
    Table,
    and_,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from config.loader import MilestoneConfig
from config.settings import Settings
from notifications.outbox import insert_new, new_row
from notifications.planning import PLANNED_KINDS, PlannedReminder
from scheduler.database import transaction
from scheduler.models import (
    ConfigRevision,
    Confirmation,
    OutboxRow,
    StoredOccurrence,
    Unit,
    UTCDateTime,
)
from scheduler.occurrences import Occurrence, acted_on, fingerprint, to_record

NOTICE_HORIZON = timedelta(days=90)
_ADVISORY_LOCK_KEY = 0x6D6F6364  # "mocd"
_OPEN_STATES = ("pending", "failed")  # reminder rows a reload may still change
NOT_PLANNED = "no longer planned by the config"  # last_error of rows re-planning cancelled
# The reminders a revision plans, for set-based re-planning (per connection, dropped after).
_PLANNED = Table("mocd_planned", MetaData(),
                 Column("key", String(700), primary_key=True),
                 Column("kind", String(20), nullable=False),
                 Column("unit", String(200), nullable=False),
                 Column("uid", String(500), nullable=False),
                 Column("offset", String(20), nullable=False),
                 Column("fire_at", UTCDateTime, nullable=False),
                 Column("over_at", UTCDateTime, nullable=True),
                 Column("fresh", Boolean, nullable=False),  # its item is new or changed
                 Index("mocd_planned_item", "uid", "unit", "kind", "fire_at"),
                 prefixes=["TEMPORARY"])
LATE = "fired before its item was added or moved, longer ago than reminders.catch_up"
# Reminders are put in the outbox at most this long before they fire; the daily apply
# (housekeeping) adds the next ones as days pass. Ten years of recurrences for thousands
# of units would otherwise be millions of rows planned at once.
PLANNING_HORIZON = timedelta(days=400)
# ``changed_at`` of the occurrences the first load stores (DTSTAMP/LAST-MODIFIED in feeds).
# Fixed rather than the moment of that load, so that a freshly applied database and the
# config alone (``mocd feed`` without a database) give byte-identical feeds. Later inserts
# and every change record the real time.
FIRST_LOAD_CHANGED_AT = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class ApplyResult:
    applied: bool  # False: this exact revision was already applied (by us or another instance)
    revision_id: int | None = None
    inserted: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    reminders_added: int = 0
    reminders_moved: int = 0
    reminders_cancelled: int = 0
    reminders_late: int = 0  # came due before their item was added or moved: sent at once
    reminders_too_late: int = 0  # ... longer ago than catch_up, or their item is over
    notices: int = 0
    first_load: bool = False
    summary: dict[str, int] = field(default_factory=dict)


def content_hash(config: MilestoneConfig, settings: Settings, window: str = "") -> str:
    """What a revision is: the files' bytes, the settings that change expansion/planning,
    and the expansion window (anniversaries enter it as the days pass)."""
    digest = hashlib.sha256(window.encode())
    for name in sorted(config.files):
        digest.update(name.encode() + b"\0" + config.files[name] + b"\0")
    digest.update(settings.uid_domain.encode() + b"\0" + settings.timezone.encode())
    digest.update(settings.reminders.model_dump_json().encode())
    return digest.hexdigest()


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    # SQLite: the transaction began with BEGIN IMMEDIATE (scheduler.database): one writer.


class _Apply:
    def __init__(self, session: Session, config: MilestoneConfig, now: datetime,
                 tz: ZoneInfo, catch_up: timedelta) -> None:
        self.session = session
        self.config = config
        self.now = now
        self.today = now.astimezone(tz).date()
        self.catch_up = catch_up
        self.fresh: set[str] = set()  # uids inserted or changed by this apply
        self.result = ApplyResult(applied=True)

    def emails(self, unit: str) -> bool:
        spec = self.config.units.get(unit)
        return spec is not None and bool(spec.email)

    def notice(self, kind: str, key: str, unit: str, uid: str, payload: dict[str, object]) -> None:
        self.result.notices += insert_new(self.session, [new_row(
            key, kind, fire_at=self.now, created_at=self.now, unit=unit, uids=[uid],
            payload=payload)])

    def near(self, *days: date | None) -> bool:
        return any(d is not None and self.today <= d <= self.today + NOTICE_HORIZON
                   for d in days)

    def units(self) -> None:
        stored = {u.id: u for u in self.session.scalars(select(Unit))}
        for uid, spec in self.config.units.items():
            emails = list(spec.email)
            row = stored.get(uid)
            if row is None:
                self.session.add(Unit(id=uid, name=spec.name, emails=emails,
                                      language=spec.language, updated_at=self.now))
            elif (row.name, row.emails, row.language) != (spec.name, emails, spec.language):
                row.name, row.emails, row.language = spec.name, emails, spec.language
                row.updated_at = self.now

    def occurrences(self, occurrences: Sequence[Occurrence], first_load: bool) -> None:
        stored = {o.uid: o for o in self.session.scalars(select(StoredOccurrence))}
        seen: set[str] = set()
        for occurrence in occurrences:
            seen.add(occurrence.uid)
            record = to_record(occurrence)
            mark = fingerprint(record)
            row = stored.get(occurrence.uid)
            if row is None:
                self.session.add(StoredOccurrence(
                    uid=occurrence.uid, kind=occurrence.kind, campaign=occurrence.campaign,
                    first_day=occurrence.first, last_day=occurrence.last, due=occurrence.due,
                    cancelled=occurrence.cancelled, removed_at=None, fingerprint=mark,
                    data=record, sequence=0,
                    changed_at=FIRST_LOAD_CHANGED_AT if first_load else self.now))
                self.result.inserted += 1
                self.fresh.add(occurrence.uid)
                continue
            if row.fingerprint == mark and row.removed_at is None:
                self.result.unchanged += 1
                continue
            old_day = row.due or row.first_day
            before = acted_on(row.data)
            row.sequence += 1
            row.changed_at = self.now
            newly_cancelled = occurrence.cancelled and not row.cancelled
            changed = before != acted_on(record)
            row.kind, row.campaign = occurrence.kind, occurrence.campaign
            row.first_day, row.last_day, row.due = occurrence.first, occurrence.last, occurrence.due
            row.cancelled, row.removed_at = occurrence.cancelled, None
            row.fingerprint, row.data = mark, record
            self.result.updated += 1
            self.fresh.add(occurrence.uid)
            if first_load:
                continue
            if newly_cancelled and old_day >= self.today:
                self.cancellation(occurrence.uid, occurrence.units, record, row.sequence)
            elif changed and not occurrence.cancelled and self.near(old_day, occurrence.day):
                payload = {"before": before, "sequence": row.sequence}
                for unit in occurrence.units:
                    if self.emails(unit):
                        self.notice("change", f"change:{occurrence.uid}:{unit}:{row.sequence}",
                                    unit, occurrence.uid, payload)
        for uid, row in stored.items():
            if uid in seen or row.removed_at is not None:
                continue
            row.removed_at = self.now
            row.sequence += 1
            row.changed_at = self.now
            self.result.removed += 1
            if not first_load and not row.cancelled and (row.due or row.first_day) >= self.today:
                self.cancellation(uid, row.data.get("units", []), row.data, row.sequence)

    def cancellation(self, uid: str, units: Iterable[str], record: dict[str, object],
                     sequence: int) -> None:
        """A notice per unit with email; the key names the sequence, so an item cancelled,
        restored and cancelled again is announced each time."""
        for unit in units:
            if self.emails(unit):
                self.notice("cancellation", f"cancel:{uid}:{unit}:{sequence}", unit, uid,
                            {"occurrence": record, "sequence": sequence})

    def reminders(self, planned: Iterable[PlannedReminder]) -> None:
        """Re-plan the outbox with set-based statements against a temporary table of the
        planned reminders: the outbox (a million rows after a few years) is never loaded,
        and the plan is streamed into the table in batches, never held whole.

        ``planned`` holds reminders and overdue notices (:attr:`PlannedReminder.kind`);
        those firing after :data:`PLANNING_HORIZON` are left for a later (daily) apply.

        - New keys are inserted (``INSERT … SELECT … ON CONFLICT DO NOTHING``: sent and
          other final rows are protected by the unique key) when they fire in the future,
          or — **catch-up** — when they fired less than ``reminders.catch_up`` ago, their
          occurrence is not over and no later reminder of the same item and unit has
          fired too: an item added (or first applied) at 10:00 with a reminder due at
          07:30 is reminded at once, once. Older ones are not created; those of items this
          apply added or changed are counted for the one log line.
        - Open rows whose time moved are re-armed, under the same catch-up rule (a row
          moved into the far past is ``skipped``); rows this re-planning cancelled earlier
          that are planned again come back (never rows cancelled because the unit
          confirmed, and no new row is made for a unit that confirmed the occurrence).
        - Open rows no longer planned are cancelled.
        """
        session = self.session
        connection = session.connection()
        dialect = connection.dialect.name
        connection.execute(text(f"DROP TABLE IF EXISTS {_PLANNED.name}"))
        _PLANNED.create(connection)
        insert_planned = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(
            _PLANNED).on_conflict_do_nothing()
        horizon = self.now + PLANNING_HORIZON
        batch: list[dict[str, object]] = []
        for reminder in planned:
            if reminder.fire_at > horizon:
                continue
            batch.append({"key": reminder.key, "kind": reminder.kind, "unit": reminder.unit,
                          "uid": reminder.uid, "offset": reminder.offset.text,
                          "fire_at": reminder.fire_at, "over_at": reminder.over_at,
                          "fresh": reminder.uid in self.fresh})
            if len(batch) >= 5000:
                connection.execute(insert_planned, batch)
                batch = []
        if batch:
            connection.execute(insert_planned, batch)
        p = _PLANNED.c
        now = literal(self.now, UTCDateTime())
        recent = and_(p.fire_at > literal(self.now - self.catch_up, UTCDateTime()),
                      or_(p.over_at.is_(None), p.over_at > now))
        same_key = and_(OutboxRow.idempotency_key == p.key, OutboxRow.kind.in_(PLANNED_KINDS))
        moved_open = and_(OutboxRow.state.in_(_OPEN_STATES), OutboxRow.fire_at != p.fire_at)
        moved = connection.execute(
            update(OutboxRow).where(
                same_key, recent,
                or_(moved_open, and_(OutboxRow.state == "cancelled",
                                     OutboxRow.last_error == NOT_PLANNED)))
            .values(fire_at=p.fire_at, next_attempt_at=p.fire_at, state="pending",
                    attempts=0, last_error=None))
        self.result.reminders_moved = moved.rowcount
        moved_late = connection.execute(
            update(OutboxRow).where(same_key, moved_open, ~recent)
            .values(fire_at=p.fire_at, next_attempt_at=p.fire_at, state="skipped",
                    last_error=LATE))
        self.result.reminders_too_late = moved_late.rowcount
        q = _PLANNED.alias("later")
        superseded = exists().where(q.c.uid == p.uid, q.c.unit == p.unit, q.c.kind == p.kind,
                                    q.c.fire_at > p.fire_at, q.c.fire_at <= now)
        confirmed = exists().where(Confirmation.occurrence_uid == p.uid,
                                   Confirmation.unit == p.unit, Confirmation.undone_at.is_(None))
        json_array = func.json_build_array if dialect == "postgresql" else func.json_array
        added = connection.execute(
            (postgresql_insert if dialect == "postgresql" else sqlite_insert)(OutboxRow)
            .from_select(
                ["idempotency_key", "kind", "unit", "occurrence_uids", "offset", "fire_at",
                 "state", "attempts", "next_attempt_at", "payload", "created_at"],
                select(p.key, p.kind, p.unit, json_array(p.uid), p.offset, p.fire_at,
                       literal_column("'pending'"), literal_column("0"), p.fire_at,
                       literal_column("'{}'"), now)
                .where(or_(p.fire_at > now, and_(recent, ~superseded)), ~confirmed))
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(OutboxRow.fire_at))
        fired = [at for (at,) in added]  # rowcount is -1 on psycopg
        self.result.reminders_added = len(fired)
        self.result.reminders_late = sum(1 for at in fired if at <= self.now)
        too_late = select(func.count()).select_from(_PLANNED).where(
            p.fresh, p.fire_at <= now, ~exists().where(OutboxRow.idempotency_key == p.key),
            ~confirmed)
        self.result.reminders_too_late += int(connection.scalar(too_late) or 0)
        cancelled = connection.execute(
            update(OutboxRow).where(
                OutboxRow.kind.in_(PLANNED_KINDS), OutboxRow.state.in_(_OPEN_STATES),
                ~exists().where(p.key == OutboxRow.idempotency_key))
            .values(state="cancelled", last_error=NOT_PLANNED))
        self.result.reminders_cancelled = cancelled.rowcount
        _PLANNED.drop(connection)


def apply_revision(
    factory: sessionmaker[Session],
    config: MilestoneConfig,
    occurrences: Sequence[Occurrence],
    reminders: Iterable[PlannedReminder],
    *,
    settings: Settings,
    now: datetime,
    window: str = "",
) -> ApplyResult:
    """Apply one valid revision in one transaction; a no-op if it is already the applied one.

    ``window`` names the expansion window (e.g. "2025-11-23..2036-11-20"), part of what
    the revision is.
    """
    revision = content_hash(config, settings, window)
    with transaction(factory) as session:
        _lock(session)
        latest = session.scalars(
            select(ConfigRevision).where(ConfigRevision.ok.is_(True))
            .order_by(ConfigRevision.id.desc()).limit(1)).first()
        if latest is not None and latest.content_hash == revision:
            return ApplyResult(applied=False, revision_id=latest.id)
        first_load = latest is None and not session.scalar(
            select(func.count()).select_from(StoredOccurrence))
        work = _Apply(session, config, now, settings.tz, settings.reminders.catch_up)
        work.result.first_load = first_load
        work.units()
        work.occurrences(occurrences, first_load)
        work.reminders(reminders)
        summary = {
            "inserted": work.result.inserted, "updated": work.result.updated,
            "removed": work.result.removed, "unchanged": work.result.unchanged,
            "reminders_added": work.result.reminders_added,
            "reminders_moved": work.result.reminders_moved,
            "reminders_cancelled": work.result.reminders_cancelled,
            "reminders_late": work.result.reminders_late,
            "reminders_too_late": work.result.reminders_too_late,
            "notices": work.result.notices,
        }
        row = ConfigRevision(content_hash=revision, applied_at=now, ok=True, errors=None,
                             summary=summary)
        session.add(row)
        session.flush()
        work.result.revision_id = row.id
        work.result.summary = summary
        return work.result


def record_rejected(factory: sessionmaker[Session], *, revision: str, errors: str,
                    now: datetime) -> None:
    """Remember a rejected revision (its errors), so status and reports can show it."""
    with transaction(factory) as session:
        session.add(ConfigRevision(content_hash=revision, applied_at=now, ok=False,
                                   errors=errors, summary={}))
