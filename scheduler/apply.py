"""Applying a config revision to the store (issue 3, SPEC §5 and §7).

validate → expand → diff against the stored occurrences by UID → upsert
(``sequence`` and ``changed_at`` move only on real changes) → re-plan the
outbox: new rows for new (occurrence, unit, offset), pending rows that no
longer apply cancelled, ``sent`` rows never touched. Date changes within 90
days and removals/cancellations become notices, except on the first load of
an empty database. Several instances may race to apply: a PostgreSQL advisory
lock (SQLite: the single writer) serialises them and the content hash makes
the second a no-op.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
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
from scheduler.models import ConfigRevision, OutboxRow, StoredOccurrence, Unit, UTCDateTime
from scheduler.occurrences import Occurrence, fingerprint, to_record

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
                 prefixes=["TEMPORARY"])
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
                 tz: ZoneInfo) -> None:
        self.session = session
        self.config = config
        self.now = now
        self.today = now.astimezone(tz).date()
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
                continue
            if row.fingerprint == mark and row.removed_at is None:
                self.result.unchanged += 1
                continue
            old_day = row.due or row.first_day
            old_first = row.first_day
            row.sequence += 1
            row.changed_at = self.now
            newly_cancelled = occurrence.cancelled and not row.cancelled
            moved = old_day != occurrence.day
            row.kind, row.campaign = occurrence.kind, occurrence.campaign
            row.first_day, row.last_day, row.due = occurrence.first, occurrence.last, occurrence.due
            row.cancelled, row.removed_at = occurrence.cancelled, None
            row.fingerprint, row.data = mark, record
            self.result.updated += 1
            if first_load:
                continue
            if newly_cancelled and old_day >= self.today:
                self.cancellation(occurrence.uid, occurrence.units, record)
            elif moved and not occurrence.cancelled and self.near(old_day, occurrence.day):
                payload = {"old_first": old_first.isoformat(), "old_day": old_day.isoformat(),
                           "new_day": occurrence.day.isoformat(), "sequence": row.sequence}
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
                self.cancellation(uid, row.data.get("units", []), row.data)

    def cancellation(self, uid: str, units: Iterable[str], record: dict[str, object]) -> None:
        for unit in units:
            if self.emails(unit):
                self.notice("cancellation", f"cancel:{uid}:{unit}", unit, uid,
                            {"occurrence": record})

    def reminders(self, planned: Iterable[PlannedReminder]) -> None:
        """Re-plan the outbox with set-based statements against a temporary table of the
        planned reminders: the outbox (a million rows after a few years) is never loaded,
        and the plan is streamed into the table in batches, never held whole.

        ``planned`` holds reminders and overdue notices (:attr:`PlannedReminder.kind`);
        those firing after :data:`PLANNING_HORIZON` are left for a later (daily) apply.
        New (kind, occurrence, unit, offset) keys are inserted (``INSERT … SELECT … ON
        CONFLICT DO NOTHING``: sent and other final rows are protected by the unique key);
        open rows whose time moved, and rows this re-planning cancelled earlier that are
        planned again, are re-armed (never rows cancelled because the unit confirmed);
        open rows no longer planned are cancelled.
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
                          "fire_at": reminder.fire_at})
            if len(batch) >= 5000:
                connection.execute(insert_planned, batch)
                batch = []
        if batch:
            connection.execute(insert_planned, batch)
        p = _PLANNED.c
        moved = connection.execute(
            update(OutboxRow).where(
                OutboxRow.idempotency_key == p.key, OutboxRow.kind.in_(PLANNED_KINDS),
                or_(and_(OutboxRow.state.in_(_OPEN_STATES), OutboxRow.fire_at != p.fire_at),
                    and_(OutboxRow.state == "cancelled", OutboxRow.last_error == NOT_PLANNED,
                         p.fire_at > self.now)))
            .values(fire_at=p.fire_at, next_attempt_at=p.fire_at, state="pending",
                    attempts=0, last_error=None))
        self.result.reminders_moved = moved.rowcount
        json_array = func.json_build_array if dialect == "postgresql" else func.json_array
        added = connection.execute(
            (postgresql_insert if dialect == "postgresql" else sqlite_insert)(OutboxRow)
            .from_select(
                ["idempotency_key", "kind", "unit", "occurrence_uids", "offset", "fire_at",
                 "state", "attempts", "next_attempt_at", "payload", "created_at"],
                select(p.key, p.kind, p.unit, json_array(p.uid), p.offset, p.fire_at,
                       literal_column("'pending'"), literal_column("0"), p.fire_at,
                       literal_column("'{}'"), literal(self.now, UTCDateTime()))
                .where(p.fire_at > self.now))  # past ones are never created
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(OutboxRow.id))
        self.result.reminders_added = sum(1 for _ in added)  # rowcount is -1 on psycopg
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
        work = _Apply(session, config, now, settings.tz)
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
