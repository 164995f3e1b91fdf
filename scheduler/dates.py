"""Local dates, spans and the small text forms admins write (dates, times, durations).

Every parser raises :class:`DateTextError` with a message that says what was
expected, because these messages end up verbatim in ``mocd check`` output.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from scheduler.vietnamese import english_month


class DateTextError(ValueError):
    """A date, time or duration written wrongly; the message is shown to the admin."""


_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_DATETIME = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?")
_DURATION_PART = re.compile(r"(\d+)\s*(w|d|h|m|min)")


def days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def make_date(year: int, month: int, day: int, text: str) -> date:
    """A date, or an error that says why it is impossible (``2023-02-30``)."""
    if not 1 <= year <= 9999:
        raise DateTextError(f"'{text}': year {year} is out of range")
    if not 1 <= month <= 12:
        raise DateTextError(f"'{text}' is not a date: there is no month {month}")
    last = days_in_month(year, month)
    if not 1 <= day <= last:
        raise DateTextError(
            f"'{text}' is not a date: {english_month(month)} {year} has {last} days"
        )
    return date(year, month, day)


def parse_date(text: str) -> date:
    """``YYYY-MM-DD`` (the only date form in the config; no locale guessing)."""
    m = _DATE.fullmatch(text.strip())
    if not m:
        raise DateTextError(f"expected a date like 2024-06-20, got '{text}'")
    return make_date(int(m[1]), int(m[2]), int(m[3]), text.strip())


def parse_datetime(text: str) -> datetime | None:
    """``YYYY-MM-DD HH:MM`` (or ``T``) as a naive local datetime, None if not that form."""
    m = _DATETIME.fullmatch(text.strip())
    if not m:
        return None
    day = make_date(int(m[1]), int(m[2]), int(m[3]), text.strip())
    hour, minute, second = int(m[4]), int(m[5]), int(m[6] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise DateTextError(f"'{text}': {hour:02d}:{minute:02d} is not a time of day")
    return datetime.combine(day, time(hour, minute, second))


def parse_time_of_day(text: str) -> time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise DateTextError(f"expected a time of day like 07:30, got '{text}'")
    return time(int(m[1]), int(m[2]))


def parse_duration(text: str) -> timedelta:
    """``4h``, ``90m``, ``1h30m``, ``2d``, ``1w``: an event's length or a window."""
    compact = text.strip().lower().replace(" ", "")
    pos = 0
    total = timedelta()
    units = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1)}
    for m in _DURATION_PART.finditer(compact):
        if m.start() != pos:
            break
        unit = units.get(m[2], timedelta(minutes=1))
        total += int(m[1]) * unit
        pos = m.end()
    if pos != len(compact) or not compact:
        raise DateTextError(f"expected a duration like 4h, 90m, 1h30m or 2d, got '{text}'")
    return total


def shorten(text: str, limit: int = 60) -> str:
    """``text``, or its start and an ellipsis with the length when it is longer (error
    messages quote what the user wrote; a 100,000-character value must not be one line)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit - 20]}… ({len(text):,} characters)"


def format_duration(value: timedelta) -> str:
    """A duration as the settings write it: ``2d``, ``1h30m``, ``45s`` (logs, messages)."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def add_months(d: date, months: int) -> date:
    """Calendar months, clamping to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(d.day, days_in_month(year, month)))


def anniversary_date(origin: date, years: int) -> date:
    """Same month/day ``years`` later; 29 Feb → 28 Feb in common years."""
    year = origin.year + years
    return date(year, origin.month, min(origin.day, days_in_month(year, origin.month)))


@dataclass(frozen=True, slots=True)
class Span:
    """An inclusive range of local days, optionally with a local start/end time.

    All-day spans have ``start_at is None``; timed ones carry naive local
    datetimes (the zone is the deployment's, applied at the edges).
    """

    first: date
    last: date
    start_at: datetime | None = None
    end_at: datetime | None = None

    @classmethod
    def day(cls, d: date) -> Span:
        return cls(d, d)

    @classmethod
    def timed(cls, start: datetime, length: timedelta) -> Span:
        end = start + length
        last = (end - timedelta(microseconds=1)).date() if end > start else start.date()
        return cls(start.date(), last, start, end)

    @property
    def timed_span(self) -> bool:
        return self.start_at is not None

    def shifted(self, days: int) -> Span:
        delta = timedelta(days=days)
        return Span(
            self.first + delta,
            self.last + delta,
            None if self.start_at is None else self.start_at + delta,
            None if self.end_at is None else self.end_at + delta,
        )
