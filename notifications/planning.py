"""Reminder planning (SPEC §5, first bullet): when each unit is reminded of what.

Pure: occurrences and settings in, planned reminders out. The daemon turns
these into outbox rows; ``mocd reminders`` prints them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from config.schema import UnitSpec
from config.settings import ReminderSettings
from scheduler.occurrences import Occurrence
from scheduler.offsets import Offset
from scheduler.working_days import WorkingCalendar

PlannedKind = Literal["reminder", "overdue"]
PLANNED_KINDS: tuple[PlannedKind, ...] = ("reminder", "overdue")  # the outbox rows the plan owns


def key_prefix(kind: str, uid: str, unit: str | None = None) -> str:
    """The start of the outbox keys of ``kind`` for one occurrence (and one unit): the one
    place that knows how :attr:`PlannedReminder.key` is written."""
    return f"{kind}:{uid}:" if unit is None else f"{kind}:{uid}:{unit}:"


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    """One email the plan implies: a reminder before the day, or an overdue notice after a
    deadline's due day (``kind``); each becomes one outbox row, keyed by (kind, occurrence,
    unit, offset, the occurrence's ``day``).

    The day is part of the key so that an item moved to another day is reminded again for
    its new day (the reminders sent for the old day stay sent); a change within the day (a
    new time of day, a working-day move of the fire day) keeps the key and moves the row.
    ``over_at`` is when the occurrence is over (None for overdue notices, which come after
    it): a reminder that comes due late, because its item was added or moved after its
    fire time, is still sent while the occurrence is not over.
    """

    uid: str
    unit: str
    offset: Offset
    fire_at: datetime  # aware, in the deployment's zone
    kind: PlannedKind = "reminder"
    day: date | None = None
    over_at: datetime | None = None

    @property
    def key(self) -> str:
        """The outbox idempotency key: one email per (kind, occurrence, unit, offset, day)."""
        day = self.day.isoformat() if self.day is not None else ""
        return f"{key_prefix(self.kind, self.uid, self.unit)}{self.offset.text}:{day}"

    def sort_key(self) -> tuple[datetime, str, str]:
        return (self.fire_at, self.uid, self.unit)


def fire_time(occurrence: Occurrence, offset: Offset, calendar: WorkingCalendar,
              at: time, tz: ZoneInfo) -> datetime | None:
    """When a reminder fires; None for an hour offset on an all-day occurrence.

    ``Nh`` fires N hours before a timed start, at that time. Otherwise the
    reminder fires at ``at`` on the day minus the offset, moved back to the
    previous working day (``Nwd`` counts working days, so it is one already).
    """
    if offset.unit == "h":
        start = occurrence.span.start_at
        if start is None:
            return None
        return (start - timedelta(hours=offset.amount)).replace(tzinfo=tz)
    return _working_day_at(occurrence.day, -1, offset, calendar, at, tz)


def _working_day_at(day: date, sign: int, offset: Offset, calendar: WorkingCalendar,
                    at: time, tz: ZoneInfo) -> datetime:
    """``at`` on the working day ``offset`` before (``sign`` -1) or after (+1) ``day``:
    ``Nwd`` counts working days; otherwise a day off moves away from ``day``."""
    if offset.unit == "wd":
        return datetime.combine(calendar.add_working_days(day, sign * offset.amount), at,
                                tzinfo=tz)
    moved = day + sign * timedelta(days=offset.days)
    moved = calendar.previous_working_day(moved) if sign < 0 else calendar.next_working_day(moved)
    return datetime.combine(moved, at, tzinfo=tz)


def plan_reminders(
    occurrences: Iterable[Occurrence],
    units: Mapping[str, UnitSpec],
    calendar: WorkingCalendar,
    settings: ReminderSettings,
    tz: ZoneInfo,
) -> list[PlannedReminder]:
    """Every reminder the config implies, past ones included, sorted (fire_at, uid, unit).

    Units without email get none (their feed still shows everything); cancelled
    occurrences get none. Two offsets that land on the same moment for the same
    occurrence (``1d`` and ``3d`` before a Monday both fire on Friday) are one
    reminder: the first offset written wins.
    """
    return sorted(_reminders(occurrences, units, calendar, settings, tz),
                  key=PlannedReminder.sort_key)


def over_at(occurrence: Occurrence, tz: ZoneInfo) -> datetime:
    """When an occurrence is over: the end of a timed one (its start when it has no end: a
    deadline at 17:00), else the midnight after its last day."""
    end = occurrence.span.end_at or occurrence.span.start_at
    if end is not None:
        return end.replace(tzinfo=tz)
    return datetime.combine(occurrence.last + timedelta(days=1), time(0), tzinfo=tz)


def _reminders(occurrences: Iterable[Occurrence], units: Mapping[str, UnitSpec],
               calendar: WorkingCalendar, settings: ReminderSettings, tz: ZoneInfo
               ) -> Iterator[PlannedReminder]:
    for occurrence, recipients, fires in _plans(occurrences, units, calendar, settings, tz):
        if not fires:
            continue
        try:
            over = over_at(occurrence, tz)
        except OverflowError:  # on 9999-12-31
            over = None
        for offset, fire_at in fires:
            for unit in recipients:
                yield PlannedReminder(occurrence.uid, unit, offset, fire_at, "reminder",
                                      occurrence.day, over)


def planned_emails(occurrences: Iterable[Occurrence], units: Mapping[str, UnitSpec],
                   calendar: WorkingCalendar, settings: ReminderSettings, tz: ZoneInfo
                   ) -> Iterator[PlannedReminder]:
    """Every reminder and overdue notice, unsorted and streamed: what the daemon's apply
    puts into the outbox (millions for a province over ten years: never a list)."""
    yield from _reminders(occurrences, units, calendar, settings, tz)
    yield from _overdue(occurrences, units, calendar, settings, tz)


def overdue_time(occurrence: Occurrence, offset: Offset, calendar: WorkingCalendar,
                 at: time, tz: ZoneInfo) -> datetime | None:
    """When an overdue notice fires: ``at`` on the due day plus the offset, moved forward
    to the next working day (``Nwd`` counts working days); None for hour offsets."""
    if occurrence.due is None or offset.unit == "h":
        return None
    return _working_day_at(occurrence.due, 1, offset, calendar, at, tz)


def plan_overdue(
    occurrences: Iterable[Occurrence],
    units: Mapping[str, UnitSpec],
    calendar: WorkingCalendar,
    settings: ReminderSettings,
    tz: ZoneInfo,
) -> list[PlannedReminder]:
    """Overdue notices (``reminders.overdue``) of every deadline, past ones included: to
    each of its workers (:attr:`Occurrence.workers`) with email; the lead is Cc'd on them
    and follows up. A unit that confirms completion has its notices cancelled (see
    notifications.confirmations).
    """
    return sorted(_overdue(occurrences, units, calendar, settings, tz),
                  key=PlannedReminder.sort_key)


def _overdue(occurrences: Iterable[Occurrence], units: Mapping[str, UnitSpec],
             calendar: WorkingCalendar, settings: ReminderSettings, tz: ZoneInfo
             ) -> Iterator[PlannedReminder]:
    for occurrence in occurrences:
        if occurrence.cancelled or occurrence.kind != "deadline":
            continue
        recipients = [u for u in occurrence.workers if u in units and units[u].email]
        seen: set[datetime] = set()
        for offset in settings.overdue:
            try:
                fire_at = overdue_time(occurrence, offset, calendar, settings.time_of_day, tz)
            except OverflowError:  # after 9999-12-31: nobody will be late by then
                continue
            if fire_at is None or fire_at in seen:
                continue
            seen.add(fire_at)
            for unit in recipients:
                yield PlannedReminder(occurrence.uid, unit, offset, fire_at, "overdue",
                                      occurrence.day)


def count_reminders(
    occurrences: Iterable[Occurrence],
    units: Mapping[str, UnitSpec],
    calendar: WorkingCalendar,
    settings: ReminderSettings,
    tz: ZoneInfo,
    first: date,
    last: date,
) -> int:
    """How many reminders fire from ``first`` to ``last`` (no objects, no sorting)."""
    return sum(
        len(recipients)
        for _, recipients, fires in _plans(occurrences, units, calendar, settings, tz)
        for _, fire_at in fires
        if first <= fire_at.date() <= last
    )


def _plans(
    occurrences: Iterable[Occurrence],
    units: Mapping[str, UnitSpec],
    calendar: WorkingCalendar,
    settings: ReminderSettings,
    tz: ZoneInfo,
) -> Iterator[tuple[Occurrence, list[str], list[tuple[Offset, datetime]]]]:
    """Per occurrence: the recipients with email, and the distinct (offset, fire time)."""
    for occurrence in occurrences:
        if occurrence.cancelled:
            continue
        recipients = [u for u in occurrence.units if u in units and units[u].email]
        if not recipients:
            continue
        offsets = occurrence.reminders
        if offsets is None:
            offsets = settings.defaults_for(occurrence.kind)
        fires: list[tuple[Offset, datetime]] = []
        seen: set[datetime] = set()
        for offset in offsets:
            try:
                fire_at = fire_time(occurrence, offset, calendar, settings.time_of_day, tz)
            except OverflowError:  # before 0001-01-01: there is nobody to remind
                continue
            if fire_at is None or fire_at in seen:
                continue
            seen.add(fire_at)
            fires.append((offset, fire_at))
        yield occurrence, recipients, fires
