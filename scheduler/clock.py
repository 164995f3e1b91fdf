"""The clock is injected: tests move time, production reads the system clock once per use."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self, tz: ZoneInfo) -> datetime: ...


class SystemClock:
    def now(self, tz: ZoneInfo) -> datetime:
        return datetime.now(tz)


class FixedClock:
    """A clock that says what the test wants; ``advance`` moves it."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.at = at

    def now(self, tz: ZoneInfo) -> datetime:
        return self.at.astimezone(tz)


def today(clock: Clock, tz: ZoneInfo) -> date:
    return clock.now(tz).date()
