"""The dispatcher: claim due outbox rows, send them, record the outcome.

APScheduler only wakes it (see :mod:`scheduler.daemon`); everything it knows
comes from the outbox. Reminders of one unit that fire at the same moment are
one email. Database calls are synchronous SQLAlchemy, run in a worker thread
so the event loop (HTTP, signals, the watchdog) never blocks on them.

One bad message never stops the others: anything that goes wrong while building
or sending it (a template override that does not render, an address the email
package refuses, a bug in a transport) fails that message — recorded, and
reported to ``mail.admin`` — and the round goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from notifications.confirmations import confirm_token, confirmed
from notifications.eml_files import EmlFileTransport
from notifications.messages import FailureLine, MessageFactory, Recipient, ReminderItem
from notifications.mime import OutgoingMessage
from notifications.outbox import (
    Claimed,
    ClockReading,
    Dropped,
    Failed,
    Outcome,
    Retry,
    Sent,
    claim_due,
    note_dispatch,
    record,
    release_expired,
    release_owners,
    renew,
    sending_owners,
)
from notifications.planning import PLANNED_KINDS
from notifications.transport import PermanentError, TransientError, Transport, TransportError
from scheduler.clock import Clock
from scheduler.database import store_trouble
from scheduler.dates import Span, format_duration
from scheduler.models import StoredOccurrence, Unit
from scheduler.occurrences import Occurrence, as_before, from_record
from scheduler.ownership import OwnerLock

log = logging.getLogger("mocd.dispatch")
ADMIN_KINDS = ("delivery_failure", "config_error")  # rows whose email goes to mail.admin
MAX_CLAIM = 500  # rows in one claim, however fast the server
RECORD_PATIENCE = 600.0  # seconds the outcomes of sent emails wait for a busy database
CLAIM_AHEAD = 2.0  # seconds of sending, at the measured rate, that one claim may hold


class Obsolete(Exception):
    """The row's message no longer applies (a change notice for an item cancelled since, a
    cancellation of an item restored since): it is dropped, not sent."""


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
    sequences: dict[str, int]  # uid → SEQUENCE, the feed's: emails and feeds agree
    live: set[str]  # uids neither removed nor cancelled

    def sequence_of(self, occurrences: Iterable[Occurrence]) -> dict[str, int]:
        """The SEQUENCEs of one message's occurrences (its attachment is cached by them)."""
        return {o.uid: self.sequences[o.uid] for o in occurrences if o.uid in self.sequences}


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
        """The outcome's new state, once it is committed.

        A database that is busy (SQLite locked by another program) or away is waited for,
        for up to :data:`RECORD_PATIENCE`: the email was sent, and forgetting that would
        send it again."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)
        self._pending.append((outcome, future))
        if not self._writing:
            self._writing = True
            try:
                while self._pending:
                    batch, self._pending = self._pending, []
                    try:
                        states = await self._write([o for o, _ in batch])
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

    async def _write(self, outcomes: list[Outcome]) -> list[str]:
        waited = 0.0
        delay = 0.5
        while True:
            try:
                return await asyncio.to_thread(record, self.factory, outcomes, now=self.now())
            except Exception as exc:
                if store_trouble(exc) not in ("busy", "away") or waited >= RECORD_PATIENCE:
                    raise
                log.warning("cannot record %d outcomes yet (%s); retrying in %.0f s",
                            len(outcomes), str(exc).splitlines()[0], delay)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 30.0)


def _retrieved(future: asyncio.Future[str]) -> None:
    """Mark a recorder future's exception as seen: its waiter may have been cancelled (a
    stop), and asyncio would print "Future exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


@dataclass
class _Leases:
    """The rows this dispatcher holds, and until when the store has confirmed each lease.

    A row is sent only while its lease is known to be live: confirmed (by the claim or the
    last renewal) until at least half a lease from now. A row the store no longer gives us
    (another instance released it after our lease ran out) is ``lost`` and never sent.
    Rows being recorded are left out of the loss check: their state changes under the
    renewal."""

    until: dict[int, datetime] = field(default_factory=dict)
    lost: set[int] = field(default_factory=set)
    recording: set[int] = field(default_factory=set)

    def hold(self, ids: Sequence[int], until: datetime) -> None:
        for i in ids:
            self.until[i] = until
            self.lost.discard(i)

    def held(self) -> list[int]:
        return [i for i in self.until if i not in self.recording]

    def renewed(self, asked: Sequence[int], kept: set[int], until: datetime) -> list[int]:
        """Record a renewal's answer; returns the ids it lost."""
        lost = []
        for i in asked:
            if i in kept:
                if i in self.until:
                    self.until[i] = until
            elif i in self.until and i not in self.recording:
                lost.append(i)
                self.lost.add(i)
        return lost

    def live(self, ids: Sequence[int], at: datetime) -> bool:
        return all(i not in self.lost and self.until.get(i, at) > at for i in ids)

    def release(self, ids: Sequence[int]) -> None:
        for i in ids:
            self.until.pop(i, None)
            self.lost.discard(i)
            self.recording.discard(i)


class Dispatcher:
    """Sends what is due: claims a few emails' rows at a time, keeps the slots of
    ``mail.concurrency`` busy, renews its leases while rows wait, and sends a row only
    under a live lease of its own (see :class:`_Leases`)."""

    def __init__(self, factory: sessionmaker[Session], transport: Transport,
                 messages: MessageFactory, settings: Settings, clock: Clock, owner: str,
                 *, confirm_key: bytes | None = None, owner_lock: OwnerLock | None = None,
                 admin_spool: Path | None = None) -> None:
        self.factory = factory
        self.transport = transport
        self.messages = messages
        self.settings = settings
        self.clock = clock
        self.owner = owner
        self.lease = settings.mail.lease
        self.confirm_key = confirm_key  # signs the confirmation links; None: no links
        self.owner_lock = owner_lock  # proves other owners dead (scheduler.ownership)
        self.admin_spool = admin_spool  # where reports to mail.admin go when they fail
        self.claiming = True  # cleared on SIGTERM: finish in-flight sends, claim nothing new
        self.recorder = _Recorder(factory, self.now)
        self.leases = _Leases()
        self._rate = 0.0  # emails recorded per second, measured (sizes the claims)
        self._warned: dict[str, float] = {}
        self._builders: dict[str, Callable[[_Group, _Context], OutgoingMessage]] = {
            "reminder": self._build_reminder, "overdue": self._build_reminder,
            "digest": self._build_digest, "change": self._build_change,
            "cancellation": self._build_cancellation,
            "delivery_failure": self._build_failure_report,
            "config_error": self._build_config_error,
        }

    def now(self) -> datetime:
        return self.clock.now(self.settings.tz).astimezone(UTC)

    # -- one round ---------------------------------------------------------------------

    async def run_once(self) -> DispatchReport:
        """Send everything due now, and return what happened.

        Claims are small — four times ``mail.concurrency``, or what the slots send in
        :data:`CLAIM_AHEAD` seconds at the rate measured so far when that is more (a fast
        server), never more than ``mail.rate_per_minute`` allows within half a lease —
        and the next claim is made when the slots are about to run dry. So a crash
        strands few rows, and rows never wait long under a lease.
        """
        report = DispatchReport()
        await asyncio.to_thread(self._recover)
        slots = asyncio.Semaphore(self.settings.mail.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        renewer = asyncio.create_task(self._renew_leases())
        started, done_before = self.clock_seconds(), report.messages
        try:
            while self.claiming:
                limit = self._claim_size()
                now = self.now()
                claimed = await asyncio.to_thread(
                    claim_due, self.factory, now=now, owner=self.owner, lease=self.lease,
                    limit=limit)
                if not claimed:
                    break
                self.leases.hold([c.id for c in claimed], now + self.lease)
                report.claimed += len(claimed)
                context = await asyncio.to_thread(self._context, claimed)
                for group in group_rows_for_admin(group_rows(claimed)):
                    tasks.add(asyncio.create_task(self._send_group(group, context, report,
                                                                   slots)))
                while len(tasks) > self.settings.mail.concurrency:
                    tasks = await _reap(tasks)
                elapsed = self.clock_seconds() - started
                if elapsed > 0:
                    self._rate = (report.messages - done_before) / elapsed
                if len(claimed) < limit:
                    break
            while tasks:
                tasks = await _reap(tasks)
        finally:
            for task in tasks:  # cancelled (a stop past its grace): the rows stay claimed
                task.cancel()
            renewer.cancel()
            with suppress(asyncio.CancelledError):
                await renewer
        return report

    @staticmethod
    def clock_seconds() -> float:
        return asyncio.get_running_loop().time()

    def _claim_size(self) -> int:
        mail = self.settings.mail
        lease = self.lease.total_seconds()
        size = max(4 * mail.concurrency, min(MAX_CLAIM, int(self._rate * CLAIM_AHEAD)))
        if mail.rate_per_minute:
            size = min(size, max(1, int(mail.rate_per_minute * lease / 60 / 2)))
        return size

    def _recover(self) -> None:
        """Before a round: note it in the store (and what the clock says about reminders
        more than catch-up late), free expired leases, and free the rows of owners that
        are provably dead."""
        now = self.now()
        reading = note_dispatch(self.factory, now=now, owner=self.owner,
                                catch_up=self.settings.reminders.catch_up)
        self._log_clock(reading, now)
        release_expired(self.factory, now=now)
        if self.owner_lock is not None:
            owners = sending_owners(self.factory) - {self.owner}
            dead = self.owner_lock.dead(owners) if owners else []
            released = release_owners(self.factory, dead)
            if released:
                log.info("released %d rows claimed by %s (no longer running)", released,
                         ", ".join(dead))

    def _log_clock(self, reading: ClockReading, now: datetime) -> None:
        catch_up = format_duration(self.settings.reminders.catch_up)
        if reading.jump == "forward" and self._may_warn("forward"):
            assert reading.previous is not None
            level = logging.WARNING if reading.held else logging.INFO
            log.log(level, "the store's last dispatch was %s ago (%s): the daemon was "
                    "stopped that long or the clock jumped forward; %d reminders more than "
                    "reminders.catch_up (%s) late are held back, not sent (they are sent if "
                    "the clock goes back)", _ago(now - reading.previous),
                    reading.previous.isoformat(timespec="seconds"), reading.held, catch_up)
        elif reading.jump == "backward" and self._may_warn("backward"):
            assert reading.previous is not None
            log.warning("the clock is %s behind the store's last dispatch (%s): it went "
                        "back; nothing is skipped, %d held reminders are pending again",
                        _ago(reading.previous - now),
                        reading.previous.isoformat(timespec="seconds"), reading.revived)
        elif reading.skipped:
            log.warning("%d reminders more than reminders.catch_up (%s) late are skipped",
                        reading.skipped, catch_up)

    def _may_warn(self, what: str) -> bool:
        """At most one warning of a kind per 10 minutes (two instances whose clocks
        disagree would otherwise warn every round)."""
        moment = self.now().timestamp()
        if moment - self._warned.get(what, float("-inf")) < 600:
            return False
        self._warned[what] = moment
        return True

    async def _renew_leases(self) -> None:
        """Every quarter lease: extend the leases of the rows still waiting or in flight."""
        interval = max(self.lease.total_seconds() / 4, 0.5)
        while True:
            await asyncio.sleep(interval)
            await self._renew(self.leases.held())

    async def _renew(self, ids: list[int]) -> None:
        if not ids:
            return
        now = self.now()
        try:
            kept = await asyncio.to_thread(renew, self.factory, ids, owner=self.owner, now=now,
                                           lease=self.lease)
        except Exception as exc:  # the database is away: the leases age, sends pause
            log.warning("could not renew %d leases: %s", len(ids), str(exc).splitlines()[0])
            return
        lost = self.leases.renewed(ids, kept, now + self.lease)
        if lost:
            log.warning("%d claimed rows were taken back (their lease ran out); another "
                        "instance sends them", len(lost))

    async def _owned(self, group: _Group) -> bool:
        """Whether this instance may send the group now: its leases are live for at least
        half a lease more (renewed now if they are not)."""
        ids = group.ids
        margin = self.now() + self.lease / 2
        if not self.leases.live(ids, margin):
            await self._renew([i for i in ids if i not in self.leases.lost])
        return self.leases.live(ids, self.now() + self.lease / 2)

    # -- building ------------------------------------------------------------------------

    def _context(self, claimed: Sequence[Claimed]) -> _Context:
        uids = {uid for row in claimed for uid in row.occurrence_uids}
        with self.factory() as session:
            stored = list(session.scalars(select(StoredOccurrence).where(
                StoredOccurrence.uid.in_(uids))))
            occurrences = {o.uid: from_record(o.data) for o in stored}
            sequences = {o.uid: o.sequence for o in stored}
            live = {o.uid for o in stored if o.removed_at is None and not o.cancelled}
            unit_ids = {row.unit for row in claimed if row.unit}
            unit_ids |= {o.lead for o in occurrences.values() if o.lead}  # Cc of overdue
            units = {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(unit_ids)))}
            done = confirmed(session, [u for u, o in occurrences.items() if o.kind == "deadline"])
        return _Context(occurrences, units, done, sequences, live)

    def _item(self, row: Claimed, occurrence: Occurrence, context: _Context,
              today: date) -> ReminderItem:
        """One occurrence in a reminder or overdue notice to ``row.unit``: the days left
        from today (a reminder sent late says how long is really left), the signed
        confirmation link for the units that must do a deadline, and for the lead the
        units still pending."""
        unit = row.unit or ""
        days_left = (occurrence.day - today).days
        if occurrence.kind != "deadline":
            return ReminderItem(occurrence, row.offset or "", days_left)
        done = context.confirmed.get(occurrence.uid, {})
        pending: tuple[str, ...] = ()
        tally = None
        workers = occurrence.workers
        if occurrence.lead == unit and unit not in workers:
            pending = tuple(u for u in workers if u not in done)
            tally = (len(workers) - len(pending), len(workers))
        url = self._confirm_url(occurrence.uid, unit) if unit in workers else None
        return ReminderItem(occurrence, row.offset or "", days_left, confirm_url=url,
                            pending=pending, tally=tally)

    def _confirm_url(self, uid: str, unit: str) -> str | None:
        if self.confirm_key is None or not unit:
            return None
        return f"/confirm/{confirm_token(self.confirm_key, uid, unit)}"

    def _recipient(self, unit: Unit) -> Recipient:
        language = unit.language or self.settings.language
        return Recipient(unit.id, unit.name, tuple(unit.emails),
                         "en" if language == "en" else "vi")

    def _unit(self, group: _Group, context: _Context) -> Recipient:
        unit = context.units.get(group.rows[0].unit or "")
        if unit is None or not unit.emails:
            raise PermanentError(f"unit '{group.rows[0].unit}' has no email address any more")
        return self._recipient(unit)

    def _build(self, group: _Group, context: _Context) -> OutgoingMessage:
        builder = self._builders.get(group.rows[0].kind)
        if builder is None:
            raise PermanentError(f"cannot send outbox rows of kind '{group.rows[0].kind}'")
        return builder(group, context)

    def _build_failure_report(self, group: _Group, context: _Context) -> OutgoingMessage:
        lines: list[FailureLine] = []
        for row in group.rows:
            raw = row.payload.get("failures")
            if isinstance(raw, list):
                lines.extend(_failure_from(item) for item in raw if isinstance(item, dict))
        return self.messages.delivery_failure_report(self.settings.mail.admin, lines,
                                                     key=group.key, now=self.now())

    def _build_config_error(self, group: _Group, context: _Context) -> OutgoingMessage:
        first = group.rows[0]
        raw_errors = first.payload.get("errors")
        errors = [str(e) for e in raw_errors] if isinstance(raw_errors, list) else []
        return self.messages.config_error_report(
            self.settings.mail.admin, errors, config_dir=str(first.payload.get("config_dir")),
            key=group.key, now=self.now())

    def _build_reminder(self, group: _Group, context: _Context) -> OutgoingMessage:
        recipient = self._unit(group, context)
        today = self.now().astimezone(self.settings.tz).date()
        items = [self._item(row, occurrence, context, today) for row in group.rows
                 if (occurrence := context.occurrences.get(row.occurrence_uids[0])) is not None]
        if not items:
            raise PermanentError("the occurrence no longer exists")
        if group.rows[0].kind == "overdue":  # the leads follow up: Cc
            leads = dict.fromkeys(i.occurrence.lead for i in items if i.occurrence.lead)
            recipient = replace(recipient, cc=tuple(
                f"{lead.name} <{address}>" for lead_id in leads
                if lead_id != recipient.unit_id
                and (lead := context.units.get(lead_id or "")) is not None
                for address in lead.emails))
        return self.messages.reminder(recipient, items, key=group.key, now=self.now(),
                                      sequence=context.sequence_of(i.occurrence for i in items))

    def _build_digest(self, group: _Group, context: _Context) -> OutgoingMessage:
        recipient = self._unit(group, context)
        first = group.rows[0]
        horizon = first.payload.get("horizon_days")
        found = [context.occurrences[uid] for uid in first.occurrence_uids
                 if uid in context.occurrences]
        done = {uid: at.astimezone(self.settings.tz).date()
                for uid, by_unit in context.confirmed.items()
                if (at := by_unit.get(recipient.unit_id)) is not None}
        urls = {o.uid: url for o in found
                if o.kind == "deadline" and o.is_worker(recipient.unit_id)
                if (url := self._confirm_url(o.uid, recipient.unit_id)) is not None}
        return self.messages.digest(recipient, found,
                                    horizon_days=horizon if isinstance(horizon, int) else 14,
                                    key=group.key, now=self.now(), confirm_urls=urls,
                                    confirmed_on=done, sequence=context.sequence_of(found))

    def _build_change(self, group: _Group, context: _Context) -> OutgoingMessage:
        recipient = self._unit(group, context)
        first = group.rows[0]
        uid = first.occurrence_uids[0]
        occurrence = context.occurrences.get(uid)
        if occurrence is None:
            raise PermanentError("the occurrence no longer exists")
        if uid not in context.live:
            raise Obsolete("the item was cancelled or removed since: its cancellation "
                           "notice says so")
        before = first.payload.get("before")
        if isinstance(before, dict):
            was = as_before(occurrence, before)
        else:  # a notice queued by an older mocd: only the old first and due days
            old_first = date.fromisoformat(str(first.payload["old_first"]))
            old_day = date.fromisoformat(str(first.payload["old_day"]))
            was = replace(occurrence, span=Span(old_first, old_first + (
                occurrence.last - occurrence.first)), due=old_day if occurrence.due else None)
        return self.messages.change_notice(recipient, occurrence, was, key=group.key,
                                           now=self.now(), sequence=context.sequences.get(uid))

    def _build_cancellation(self, group: _Group, context: _Context) -> OutgoingMessage:
        recipient = self._unit(group, context)
        first = group.rows[0]
        uid = first.occurrence_uids[0]
        if uid in context.live:
            raise Obsolete("the item was restored since")
        record = first.payload.get("occurrence")
        stored = context.occurrences.get(uid)
        occurrence = from_record(record) if isinstance(record, dict) else stored
        if occurrence is None:
            raise PermanentError("the cancelled occurrence is unknown")
        return self.messages.cancellation_notice(recipient, occurrence, key=group.key,
                                                 now=self.now(),
                                                 sequence=context.sequences.get(uid))

    # -- sending -------------------------------------------------------------------------

    async def _send_group(self, group: _Group, context: _Context, report: DispatchReport,
                          limit: asyncio.Semaphore) -> None:
        """Build, send and record inside a concurrency slot: at any moment at most
        ``mail.concurrency`` messages are sent but not yet recorded, which bounds the
        duplicates a crash can cause. Outcomes are written in groups (see :class:`_Recorder`),
        so a slot waits for a shared commit, not for one of its own."""
        async with limit:
            if not self.claiming:  # stopping: leave it claimed; the stop releases it
                return
            if not await self._owned(group):
                log.warning("not sending %s: this instance no longer holds its lease",
                            group.key)
                self.leases.release(group.ids)
                return
            try:
                await self._send_and_record(group, context, report)
            finally:
                self.leases.release(group.ids)

    async def _send_and_record(self, group: _Group, context: _Context,
                               report: DispatchReport) -> None:
        unit = context.units.get(group.rows[0].unit or "")
        to = ", ".join(unit.emails) if unit else self.settings.mail.admin
        subject = ""
        message: OutgoingMessage | None = None
        try:
            try:
                message = self._build(group, context)
            except (TransportError, Obsolete):
                raise
            except Exception as exc:  # a template that fails, a bad address: this one only
                raise PermanentError(f"cannot build the message: {_describe(exc)}") from None
            subject = message.subject
            try:
                delivery = await self.transport.send(message)
            except TransportError:
                raise
            except Exception as exc:  # a transport bug must not stop the other messages
                log.exception("sending %s failed unexpectedly", group.key)
                raise TransientError(f"unexpected error: {_describe(exc)}") from None
        except Obsolete as stale:
            self.leases.recording.update(group.ids)
            await self.recorder.record(Dropped(tuple(group.ids), str(stale)))
            log.info("not sending %s: %s", group.key, stale)
            return
        except (TransientError, PermanentError) as failure:
            await self._failed(group, failure, to, subject, message, report)
            return
        refused = [FailureLine(address, subject, reply, 1, True, group.rows[0].unit, self.now())
                   for address, reply in delivery.refused.items()]
        self.leases.recording.update(group.ids)
        await self.recorder.record(Sent(
            tuple(group.ids), delivery.reply, message.message_id,
            tuple(r for line in refused if (r := self._report(group, line)) is not None)))
        report.sent += len(group.rows)
        report.messages += 1
        report.failures.extend(refused)
        log.info("sent %s to %s: %s", group.key, group.rows[0].unit, delivery.reply)

    async def _failed(self, group: _Group, failure: TransportError, to: str, subject: str,
                      message: OutgoingMessage | None, report: DispatchReport) -> None:
        attempts = max(r.attempts for r in group.rows)
        permanent = isinstance(failure, PermanentError)
        line = FailureLine(to, subject, failure.reply, attempts, permanent,
                           group.rows[0].unit, self.now())
        ids = tuple(group.ids)
        outcome: Outcome = (
            Failed(ids, failure.reply, self._report(group, line)) if permanent
            else Retry(ids, failure.reply, attempts, self.settings.mail.max_attempts,
                       self._report(group, line)))
        self.leases.recording.update(group.ids)
        state = await self.recorder.record(outcome)
        if state == "failed":
            report.failed += len(group.rows)
            report.failures.append(line)
            if group.rows[0].kind in ADMIN_KINDS:
                await self._spool(group, message, failure)
        else:
            report.retried += len(group.rows)
        if permanent:
            log.error("permanent failure for %s: %s", group.rows[0].unit or "mail.admin",
                      failure.reply)
        else:
            log.warning("transient failure for %s: %s (%s)", group.rows[0].unit or "mail.admin",
                        failure.reply, state)

    async def _spool(self, group: _Group, message: OutgoingMessage | None,
                     failure: TransportError) -> None:
        """A report to ``mail.admin`` that could not be sent either (the same server refuses
        everything) is kept as an ``.eml`` file in ``{state_dir}/outbox/`` and logged at
        ERROR: an admin looking at the server finds it; it is never silently dropped."""
        if message is None or self.admin_spool is None:
            log.error("a report to mail.admin was not delivered (%s) and cannot be kept as "
                      "a file: %s", failure.reply, group.key)
            return
        try:
            delivery = await EmlFileTransport(self.admin_spool).send(message)
        except TransportError as exc:
            log.error("a report to mail.admin was not delivered (%s) and not written: %s",
                      failure.reply, exc.reply)
            return
        log.error("a report to mail.admin was not delivered (%s); it is kept in %s",
                  failure.reply, delivery.reply)

    def _report(self, group: _Group, line: FailureLine) -> dict[str, object] | None:
        """The failure as a report row's payload line; None when there is nobody to tell
        (no mail.admin) or when the failed message was itself a report."""
        if not self.settings.mail.admin or group.rows[0].kind in ADMIN_KINDS:
            return None
        return _failure_record(line)


async def _reap(tasks: set[asyncio.Task[None]]) -> set[asyncio.Task[None]]:
    """Wait for at least one task to end; its exception (a database that failed while
    recording) ends the round."""
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        task.result()
    return pending


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if text.startswith("template ") else f"{type(exc).__name__}: {text}"


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"


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
