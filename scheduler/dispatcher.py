"""The dispatcher: claim due outbox rows, send them, record the outcome.

APScheduler only wakes it (see :mod:`scheduler.daemon`); everything it knows
comes from the outbox. Reminders of one unit that fire at the same moment are
one email. Database calls are synchronous SQLAlchemy, run in a worker thread
so the event loop (HTTP, signals, the watchdog) never blocks on them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from notifications.confirmations import confirm_token, confirmed
from notifications.messages import FailureLine, MessageFactory, Recipient, ReminderItem
from notifications.mime import OutgoingMessage
from notifications.outbox import (
    Claimed,
    Failed,
    Outcome,
    Retry,
    Sent,
    claim_due,
    record,
    release_expired,
)
from notifications.planning import PLANNED_KINDS
from notifications.transport import PermanentError, TransientError, Transport
from scheduler.clock import Clock
from scheduler.models import StoredOccurrence, Unit
from scheduler.occurrences import Occurrence, from_record

log = logging.getLogger("mocd.dispatch")


@dataclass
class DispatchReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    messages: int = 0
    failures: list[FailureLine] = field(default_factory=list)


@dataclass(frozen=True)
class _Context:
    """What a batch of claimed rows needs from the store, loaded once per batch."""

    occurrences: dict[str, Occurrence]
    units: dict[str, Unit]  # the rows' units and the leads of their occurrences
    confirmed: dict[str, dict[str, datetime]]  # deadline uid → unit → when it confirmed


@dataclass(frozen=True)
class _Group:
    rows: tuple[Claimed, ...]

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.rows]

    @property
    def key(self) -> str:
        """Stable for the same rows: the Message-ID of a re-send after a crash is the same."""
        if len(self.rows) == 1:
            return self.rows[0].idempotency_key
        joined = "\n".join(sorted(r.idempotency_key for r in self.rows))
        return "group:" + hashlib.sha256(joined.encode()).hexdigest()


def group_rows(rows: Sequence[Claimed]) -> list[_Group]:
    """One email per unit for all its reminders firing at the same moment (and one for its
    overdue notices); others alone."""
    reminders: dict[tuple[str, str | None, datetime], list[Claimed]] = defaultdict(list)
    groups: list[_Group] = []
    for row in rows:
        if row.kind in PLANNED_KINDS:
            reminders[(row.kind, row.unit, row.fire_at)].append(row)
        else:
            groups.append(_Group((row,)))
    groups.extend(_Group(tuple(items)) for items in reminders.values())
    return groups


def group_rows_for_admin(groups: list[_Group]) -> list[_Group]:
    """All delivery-failure reports due together go to mail.admin as one email."""
    reports = [g.rows[0] for g in groups if g.rows[0].kind == "delivery_failure"]
    others = [g for g in groups if g.rows[0].kind != "delivery_failure"]
    return [*others, _Group(tuple(reports))] if reports else others


class _Recorder:
    """Group commit of outcomes: those that arrive while a write is running go together in
    the next one. The first caller that finds no write running writes (in a worker thread)
    until nothing is left; the others wait for their own outcome to be durable."""

    def __init__(self, factory: sessionmaker[Session], now: Callable[[], datetime]) -> None:
        self.factory = factory
        self.now = now
        self._pending: list[tuple[Outcome, asyncio.Future[str]]] = []
        self._writing = False
        self.writes = 0

    async def record(self, outcome: Outcome) -> str:
        """The outcome's new state, once it is committed."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, future))
        if not self._writing:
            self._writing = True
            try:
                while self._pending:
                    batch, self._pending = self._pending, []
                    try:
                        states = await asyncio.to_thread(
                            record, self.factory, [o for o, _ in batch], now=self.now())
                    except BaseException as exc:  # the database failed, or we are cancelled
                        for _, waiting in batch:
                            if not waiting.done():
                                waiting.set_exception(exc)
                        raise
                    for (_, waiting), state in zip(batch, states, strict=True):
                        waiting.set_result(state)
                    self.writes += 1
            finally:
                self._writing = False
                for _, waiting in self._pending:  # only left when the writer failed
                    if not waiting.done():
                        waiting.set_exception(RuntimeError("the outcome writer stopped"))
                self._pending = []
        return await future


class Dispatcher:
    def __init__(self, factory: sessionmaker[Session], transport: Transport,
                 messages: MessageFactory, settings: Settings, clock: Clock, owner: str,
                 *, batch: int = 500, lease: timedelta = timedelta(minutes=5),
                 confirm_key: bytes | None = None) -> None:
        self.factory = factory
        self.transport = transport
        self.messages = messages
        self.settings = settings
        self.clock = clock
        self.owner = owner
        self.batch = batch
        self.lease = lease
        self.confirm_key = confirm_key  # signs the confirmation links; None: no links
        self.claiming = True  # cleared on SIGTERM: finish in-flight sends, claim nothing new
        self.recorder = _Recorder(factory, self.now)

    def now(self) -> datetime:
        return self.clock.now(self.settings.tz).astimezone(UTC)

    async def run_once(self) -> DispatchReport:
        """Send everything due now (in batches), and return what happened."""
        report = DispatchReport()
        await asyncio.to_thread(release_expired, self.factory, now=self.now())
        while self.claiming:
            claimed = await asyncio.to_thread(
                claim_due, self.factory, now=self.now(), owner=self.owner, lease=self.lease,
                limit=self.batch)
            if not claimed:
                break
            report.claimed += len(claimed)
            await self._send_batch(claimed, report)
            if len(claimed) < self.batch:
                break
        return report

    async def _send_batch(self, claimed: list[Claimed], report: DispatchReport) -> None:
        context = await asyncio.to_thread(self._context, claimed)
        limit = asyncio.Semaphore(self.settings.mail.concurrency)

        async def one(group: _Group) -> None:
            await self._send_group(group, context, report, limit)

        await asyncio.gather(*(one(g) for g in group_rows_for_admin(group_rows(claimed))))

    def _context(self, claimed: Sequence[Claimed]) -> _Context:
        uids = {uid for row in claimed for uid in row.occurrence_uids}
        with self.factory() as session:
            stored = session.scalars(select(StoredOccurrence).where(
                StoredOccurrence.uid.in_(uids)))
            occurrences = {o.uid: from_record(o.data) for o in stored}
            unit_ids = {row.unit for row in claimed if row.unit}
            unit_ids |= {o.lead for o in occurrences.values() if o.lead}  # Cc of overdue
            units = {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(unit_ids)))}
            done = confirmed(session, [u for u, o in occurrences.items() if o.kind == "deadline"])
        return _Context(occurrences, units, done)

    def _item(self, row: Claimed, occurrence: Occurrence, context: _Context) -> ReminderItem:
        """One occurrence in a reminder or overdue notice to ``row.unit``: with the signed
        confirmation link (deadlines), and for the lead the units still pending."""
        fire_day = row.fire_at.astimezone(self.settings.tz).date()
        unit = row.unit or ""
        if occurrence.kind != "deadline":
            return ReminderItem(occurrence, row.offset or "", (occurrence.day - fire_day).days)
        done = context.confirmed.get(occurrence.uid, {})
        pending: tuple[str, ...] = ()
        tally = None
        if occurrence.lead == unit:
            others = [u for u in occurrence.units if u != unit]
            pending = tuple(u for u in others if u not in done)
            tally = (len(others) - len(pending), len(others)) if others else None
        return ReminderItem(occurrence, row.offset or "", (occurrence.day - fire_day).days,
                            confirm_url=self._confirm_url(occurrence.uid, unit),
                            pending=pending, tally=tally)

    def _confirm_url(self, uid: str, unit: str) -> str | None:
        if self.confirm_key is None or not unit:
            return None
        return f"/confirm/{confirm_token(self.confirm_key, uid, unit)}"

    def _recipient(self, unit: Unit) -> Recipient:
        language = unit.language or self.settings.language
        return Recipient(unit.id, unit.name, tuple(unit.emails),
                         "en" if language == "en" else "vi")

    def _build(self, group: _Group, context: _Context) -> OutgoingMessage:
        first = group.rows[0]
        occurrences, units = context.occurrences, context.units
        now = self.now()
        if first.kind == "delivery_failure":
            lines: list[FailureLine] = []
            for row in group.rows:
                raw = row.payload.get("failures")
                if isinstance(raw, list):
                    lines.extend(_failure_from(item) for item in raw if isinstance(item, dict))
            return self.messages.delivery_failure_report(self.settings.mail.admin, lines,
                                                         key=group.key, now=now)
        if first.kind == "config_error":
            raw_errors = first.payload.get("errors")
            errors = [str(e) for e in raw_errors] if isinstance(raw_errors, list) else []
            return self.messages.config_error_report(
                self.settings.mail.admin, errors, config_dir=str(first.payload.get("config_dir")),
                key=group.key, now=now)
        unit = units.get(first.unit or "")
        if unit is None or not unit.emails:
            raise PermanentError(f"unit '{first.unit}' has no email address any more")
        recipient = self._recipient(unit)
        if first.kind in PLANNED_KINDS:
            items = [self._item(row, occurrence, context) for row in group.rows
                     if (occurrence := occurrences.get(row.occurrence_uids[0])) is not None]
            if not items:
                raise PermanentError("the occurrence no longer exists")
            if first.kind == "overdue":  # the leads follow up: Cc
                leads = dict.fromkeys(i.occurrence.lead for i in items if i.occurrence.lead)
                recipient = replace(recipient, cc=tuple(
                    f"{lead.name} <{address}>" for lead_id in leads
                    if lead_id != unit.id and (lead := units.get(lead_id or "")) is not None
                    for address in lead.emails))
            return self.messages.reminder(recipient, items, key=group.key, now=now)
        if first.kind == "digest":
            horizon = first.payload.get("horizon_days")
            found = [occurrences[uid] for uid in first.occurrence_uids if uid in occurrences]
            done = {uid: at.astimezone(self.settings.tz).date()
                    for uid, by_unit in context.confirmed.items()
                    if (at := by_unit.get(unit.id)) is not None}
            urls = {o.uid: url for o in found if o.kind == "deadline"
                    if (url := self._confirm_url(o.uid, unit.id)) is not None}
            return self.messages.digest(recipient, found,
                                        horizon_days=horizon if isinstance(horizon, int) else 14,
                                        key=group.key, now=now, confirm_urls=urls,
                                        confirmed_on=done)
        if first.kind == "change":
            occurrence = occurrences.get(first.occurrence_uids[0])
            if occurrence is None:
                raise PermanentError("the occurrence no longer exists")
            old_first = date.fromisoformat(str(first.payload["old_first"]))
            old_day = date.fromisoformat(str(first.payload["old_day"]))
            sequence = first.payload.get("sequence")
            return self.messages.change_notice(
                recipient, occurrence, old_first, old_day if occurrence.due else None,
                key=group.key, now=now, sequence=sequence if isinstance(sequence, int) else None)
        if first.kind == "cancellation":
            record = first.payload.get("occurrence")
            stored = occurrences.get(first.occurrence_uids[0])
            occurrence = from_record(record) if isinstance(record, dict) else stored
            if occurrence is None:
                raise PermanentError("the cancelled occurrence is unknown")
            return self.messages.cancellation_notice(recipient, occurrence, key=group.key,
                                                     now=now)
        raise PermanentError(f"cannot send outbox rows of kind '{first.kind}' yet")

    async def _send_group(self, group: _Group, context: _Context, report: DispatchReport,
                          limit: asyncio.Semaphore) -> None:
        """Build, send and record inside a concurrency slot: at any moment at most
        ``mail.concurrency`` messages are sent but not yet recorded, which bounds the
        duplicates a crash can cause. Outcomes are written in groups (see :class:`_Recorder`),
        so a slot waits for a shared commit, not for one of its own."""
        async with limit:
            if not self.claiming:  # stopping: leave it claimed; the stop releases it
                return
            await self._send_and_record(group, context, report)

    async def _send_and_record(self, group: _Group, context: _Context,
                               report: DispatchReport) -> None:
        unit = context.units.get(group.rows[0].unit or "")
        to = ", ".join(unit.emails) if unit else self.settings.mail.admin
        subject = ""
        try:
            try:
                message = self._build(group, context)
            except ValueError as exc:  # e.g. an address the email package rejects
                raise PermanentError(f"cannot build the message: {exc}") from None
            subject = message.subject
            delivery = await self.transport.send(message)
        except (TransientError, PermanentError) as failure:
            attempts = max(r.attempts for r in group.rows)
            permanent = isinstance(failure, PermanentError)
            line = FailureLine(to, subject, failure.reply, attempts, permanent,
                               group.rows[0].unit, self.now())
            ids = tuple(group.ids)
            outcome: Outcome = (
                Failed(ids, failure.reply, self._report(group, line)) if permanent
                else Retry(ids, failure.reply, attempts, self.settings.mail.max_attempts,
                           self._report(group, line)))
            state = await self.recorder.record(outcome)
            if state == "failed":
                report.failed += len(group.rows)
                report.failures.append(line)
            else:
                report.retried += len(group.rows)
            if permanent:
                log.error("permanent failure for %s: %s", group.rows[0].unit, failure.reply)
            else:
                log.warning("transient failure for %s: %s (%s)", group.rows[0].unit,
                            failure.reply, state)
            return
        refused = [FailureLine(address, subject, reply, 1, True, group.rows[0].unit, self.now())
                   for address, reply in delivery.refused.items()]
        await self.recorder.record(Sent(
            tuple(group.ids), delivery.reply, message.message_id,
            tuple(r for line in refused if (r := self._report(group, line)) is not None)))
        report.sent += len(group.rows)
        report.messages += 1
        report.failures.extend(refused)
        log.info("sent %s to %s: %s", group.key, group.rows[0].unit, delivery.reply)

    def _report(self, group: _Group, line: FailureLine) -> dict[str, object] | None:
        """The failure as a report row's payload line; None when there is nobody to tell
        (no mail.admin) or when the failed message was itself a report."""
        if not self.settings.mail.admin or group.rows[0].kind == "delivery_failure":
            return None
        return _failure_record(line)


def _failure_record(line: FailureLine) -> dict[str, object]:
    return {"to": line.to, "subject": line.subject, "reply": line.reply,
            "attempts": line.attempts, "permanent": line.permanent, "unit": line.unit,
            "at": line.at.isoformat() if line.at else None}


def _failure_from(data: dict[str, object]) -> FailureLine:
    at = data.get("at")
    attempts = data.get("attempts")
    return FailureLine(str(data.get("to", "")), str(data.get("subject", "")),
                       str(data.get("reply", "")),
                       attempts if isinstance(attempts, int) else 1,
                       bool(data.get("permanent", True)),
                       str(data["unit"]) if data.get("unit") else None,
                       datetime.fromisoformat(at) if isinstance(at, str) else None)
