"""Occurrences: the dated things expansion produces, each with a stable UID."""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from scheduler.anniversaries import AnniversaryClass, decree_111_note
from scheduler.dates import Span
from scheduler.offsets import Offset, parse_offset

OccurrenceKind = Literal["deadline", "event", "period", "anniversary"]


@dataclass(frozen=True, slots=True)
class AnniversaryInfo:
    id: str
    n: int
    cls: AnniversaryClass
    origin: date
    founding: bool


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One dated item. ``span`` is final: working-day moves are already applied.

    A deadline's span is its due day (``due``), the written span kept as
    ``window``. ``units`` are the recipients (reminded when they have email),
    resolved from groups and unit succession and sorted; ``cc`` see it in
    their feeds only.
    """

    uid: str
    title: str
    kind: OccurrenceKind
    span: Span
    units: tuple[str, ...]
    due: date | None = None
    window: tuple[date, date] | None = None
    campaign: str | None = None
    milestone: str | None = None
    key: str | None = None  # the period key of a recurring milestone ("2024", "2024-03", …)
    lead: str | None = None
    cc: tuple[str, ...] = ()
    submit_to: str | None = None
    anniversary: AnniversaryInfo | None = None
    title_en: str | None = None
    reminders: tuple[Offset, ...] | None = None  # None: the kind's defaults from settings
    description: str = ""
    location: str = ""
    url: str = ""
    document: str = ""
    celebrates: str | None = None  # the anniversary the occurrence's campaign celebrates
    cancelled: bool = False

    @property
    def first(self) -> date:
        return self.span.first

    @property
    def last(self) -> date:
        return self.span.last

    @property
    def all_day(self) -> bool:
        return self.span.start_at is None

    @property
    def day(self) -> date:
        """The day reminders count back from: the due day, or the first day."""
        return self.due if self.due is not None else self.span.first

    @property
    def workers(self) -> tuple[str, ...]:
        """The units that must do a deadline and confirm it: every recipient but the lead,
        who follows up (the pending list and tally in its reminders, Cc on overdue
        notices); the lead alone when it is the only recipient. Workers get the
        confirmation link and overdue notices, and are the units ``mocd status`` counts."""
        others = tuple(u for u in self.units if u != self.lead)
        return others or self.units

    def is_worker(self, unit: str) -> bool:
        """``unit in self.workers`` without building it: a feed asks this for every
        deadline of every unit (an item sent to 5,000 units would make it quadratic).
        ``units`` is sorted, so membership is a binary search."""
        units = self.units
        at = bisect_left(units, unit)
        if at == len(units) or units[at] != unit:
            return False
        return unit != self.lead or len(units) == 1

    def title_in(self, language: str) -> str:
        return self.title_en if language == "en" and self.title_en else self.title

    def note(self, language: str) -> str | None:
        if self.anniversary is not None and self.anniversary.founding:
            return decree_111_note(self.anniversary.cls, language)
        return None

    def start_value(self, tz: ZoneInfo) -> date | datetime:
        if self.span.start_at is None:
            return self.span.first
        return self.span.start_at.replace(tzinfo=tz)

    def end_value(self, tz: ZoneInfo) -> date | datetime:
        if self.span.end_at is None:
            return self.span.last
        return self.span.end_at.replace(tzinfo=tz)

    def overlaps(self, first: date, last: date) -> bool:
        return self.span.first <= last and self.span.last >= first

    def sort_key(self) -> tuple[date, int, datetime, str]:
        """Start, then UID (SPEC §8): all-day items before timed ones of the same day."""
        start = self.span.start_at
        return (self.span.first, 0 if start is None else 1, start or datetime.min, self.uid)


def to_record(o: Occurrence) -> dict[str, Any]:
    """The occurrence as JSON-able data (stored in the database, compared by fingerprint)."""
    span = o.span
    return {
        "uid": o.uid, "title": o.title, "title_en": o.title_en, "kind": o.kind,
        "first": span.first.isoformat(), "last": span.last.isoformat(),
        "start_at": span.start_at.isoformat() if span.start_at else None,
        "end_at": span.end_at.isoformat() if span.end_at else None,
        "units": list(o.units), "due": o.due.isoformat() if o.due else None,
        "window": [o.window[0].isoformat(), o.window[1].isoformat()] if o.window else None,
        "campaign": o.campaign, "milestone": o.milestone, "key": o.key, "lead": o.lead,
        "cc": list(o.cc), "submit_to": o.submit_to,
        "anniversary": None if o.anniversary is None else {
            "id": o.anniversary.id, "n": o.anniversary.n, "cls": o.anniversary.cls,
            "origin": o.anniversary.origin.isoformat(), "founding": o.anniversary.founding},
        "reminders": None if o.reminders is None else [r.text for r in o.reminders],
        "description": o.description, "location": o.location, "url": o.url,
        "document": o.document, "celebrates": o.celebrates, "cancelled": o.cancelled,
    }


def from_record(data: dict[str, Any]) -> Occurrence:
    """The inverse of :func:`to_record`."""
    day = date.fromisoformat
    moment = datetime.fromisoformat
    a = data["anniversary"]
    return Occurrence(
        uid=data["uid"], title=data["title"], title_en=data["title_en"], kind=data["kind"],
        span=Span(day(data["first"]), day(data["last"]),
                  moment(data["start_at"]) if data["start_at"] else None,
                  moment(data["end_at"]) if data["end_at"] else None),
        units=tuple(data["units"]), due=day(data["due"]) if data["due"] else None,
        window=(day(data["window"][0]), day(data["window"][1])) if data["window"] else None,
        campaign=data["campaign"], milestone=data["milestone"], key=data["key"],
        lead=data["lead"], cc=tuple(data["cc"]), submit_to=data["submit_to"],
        anniversary=None if a is None else AnniversaryInfo(
            a["id"], a["n"], a["cls"], day(a["origin"]), a["founding"]),
        reminders=None if data["reminders"] is None else tuple(
            parse_offset(t) for t in data["reminders"]),
        description=data["description"], location=data["location"], url=data["url"],
        document=data["document"], celebrates=data["celebrates"], cancelled=data["cancelled"],
    )


# What a unit acts on: when the item starts and ends (days and times), its due day and
# where it is. A change to any of them sends a change notice; other edits (a title, a
# description) reach units through the feed and the next emails.
ACTED_ON = ("first", "last", "start_at", "end_at", "due", "location")


def acted_on(record: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`ACTED_ON` fields of a record (:func:`to_record`)."""
    return {name: record.get(name) for name in ACTED_ON}


def as_before(o: Occurrence, before: Mapping[str, Any]) -> Occurrence:
    """``o`` with the start, end, due day and location it had (``acted_on`` of its older
    record): what a change notice shows as "was"."""
    day = date.fromisoformat
    moment = datetime.fromisoformat
    start, end = before.get("start_at"), before.get("end_at")
    return replace(
        o, span=type(o.span)(day(str(before["first"])), day(str(before["last"])),
                             moment(str(start)) if start else None,
                             moment(str(end)) if end else None),
        due=day(str(before["due"])) if before.get("due") else None,
        location=str(before.get("location") or ""))


def fingerprint(record: dict[str, Any]) -> str:
    """A stable hash of a record: equal records, equal fingerprints (sequence bumps on change)."""
    text = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
