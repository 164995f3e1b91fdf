"""The working-day calendar of a Vietnamese public office.

A day is a *working day* of the office unless it is a ``weekend`` day or a holiday, where

* the holidays are the official public holidays of Vietnam (from the ``holidays`` package:
  Tết Dương lịch, lunar Tết, the Hùng Kings' day, 30/4, 1/5, 2/9, their compensatory days
  off and the days off the government swapped for a working Saturday), unless
  ``official_holidays=False``, plus the ``extra_holidays`` the administrator adds;
* except for the *make-up working days* (ngày làm bù), which are working days even when they
  fall on a weekend: the official ones (:data:`OFFICIAL_MAKE_UP_WORKING_DAYS`, which the
  ``holidays`` package does not mark) go with ``official_holidays``, and the administrator may
  add more with ``working_days``.

When the sources disagree about a day, the most specific one wins, in this order:

1. an administrator's ``working_days`` entry: working day;
2. an administrator's ``extra_holidays`` entry: day off;
3. an official holiday: day off (the official holidays never fall on an official make-up day);
4. an official make-up working day: working day;
5. a ``weekend`` day: day off;
6. any other day: working day.

The ``holidays`` package is slow per call, so the official holidays are computed once per year
(the first time a date of that year is asked about) and shared by all calendars; each calendar
then keeps one frozenset of its days off per year, so :meth:`WorkingCalendar.is_working_day` is
a dictionary look-up plus a set membership test.

The ``holidays`` package only knows Vietnam for the years 1901–2100; outside that range the
calendar has no official holidays at all (only weekends and the administrator's entries).
"""

from __future__ import annotations

import functools
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import holidays

__all__ = [
    "OFFICIAL_MAKE_UP_WORKING_DAYS",
    "OFFICIAL_SWAPPED_DAYS_OFF",
    "WEEKDAY_NAMES",
    "WorkingCalendar",
]

WEEKDAY_NAMES: Final[Mapping[str, int]] = MappingProxyType(
    {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
)
"""Configuration names of the days of the week, as numbered by :meth:`datetime.date.weekday`."""

# The official make-up working days (ngày làm bù) of cán bộ, công chức, viên chức: each is a
# weekend day worked in exchange for a working day taken off to join a holiday into a long
# break. Only offices with the fixed Saturday + Sunday weekend swap days; everyone else follows
# the holidays alone.
#
# Source: the `holidays` package (0.109), holidays/countries/vietnam.py,
# VietnamStaticHolidays.special_public_holidays, whose entries (month, day, from_month,
# from_day[, from_year]) read "day off substituted from <working day>": the "from" date is the
# make-up working day below (documents cited there: Công văn 6519/VPCP-KGVX of 2018 for 2019,
# Công văn 2450/VPCP-KGVX for 2024, Thông báo 6150/TB-BLĐTBXH for 2025). Added because the
# package misses it: 10/01/2026, Công văn 12729/VPCP-KGVX of 25/12/2025 (Phó Thủ tướng Phạm Thị
# Thanh Trà agreed to the Bộ Nội vụ plan: off Thursday 1/1 to Sunday 4/1/2026, Friday 2/1/2026
# swapped to Saturday 10/1/2026), see also OFFICIAL_SWAPPED_DAYS_OFF.
#
# Complete for 2019–2026: the holiday schedules of those years were checked against the
# government's announcements (no swap at all in 2020, 2021, 2022 and 2023; in 2023 the five
# days 29/4–3/5 came from compensatory days off, not from a swap). The entries before 2019 are
# the package's and are kept so that each day off it swaps has its make-up day, but those years
# are NOT complete (the package misses e.g. 11/9/2010, 29–30/1/2011, 9/4/2011, 25/1/2014 and
# 8/2/2014, and its Tết of 2011 and 2014 differs from the civil-service schedule of the time).
# tests/test_working_days.py fails, listing the dates, when a newer `holidays` knows a swap
# that is missing here.
OFFICIAL_MAKE_UP_WORKING_DAYS: Final[Mapping[date, str]] = MappingProxyType(
    {
        date(2010, 2, 27): "Làm bù cho thứ Sáu 19/02/2010 (Tết Nguyên đán Canh Dần)",
        date(2012, 2, 4): "Làm bù cho thứ Sáu 27/01/2012 (Tết Nguyên đán Nhâm Thìn)",
        date(2013, 5, 4): "Làm bù cho thứ Hai 29/04/2013 (nghỉ lễ 30/4–1/5)",
        date(2014, 4, 26): "Làm bù cho thứ Sáu 02/05/2014 (nghỉ lễ 30/4–1/5)",
        date(2014, 9, 6): "Làm bù cho thứ Hai 01/09/2014 (nghỉ lễ Quốc khánh 2/9)",
        date(2014, 12, 27): "Làm bù cho thứ Sáu 02/01/2015 (nghỉ Tết Dương lịch 2015)",
        date(2015, 2, 14): "Làm bù cho thứ Hai 16/02/2015 (Tết Nguyên đán Ất Mùi)",
        date(2015, 4, 25): "Làm bù cho thứ Tư 29/04/2015 (nghỉ lễ 30/4–1/5)",
        date(2019, 1, 5): "Làm bù cho thứ Hai 31/12/2018 (nghỉ Tết Dương lịch 2019)",
        date(2019, 5, 4): "Làm bù cho thứ Hai 29/04/2019 (nghỉ lễ 30/4–1/5)",
        date(2024, 5, 4): "Làm bù cho thứ Hai 29/04/2024 (nghỉ lễ 30/4–1/5)",
        date(2025, 4, 26): "Làm bù cho thứ Sáu 02/05/2025 (nghỉ lễ 30/4–1/5)",
        date(2026, 1, 10): "Làm bù cho thứ Sáu 02/01/2026 (nghỉ Tết Dương lịch 2026)",
        date(2026, 8, 22): "Làm bù cho thứ Hai 31/08/2026 (nghỉ lễ Quốc khánh 2/9)",
    }
)
"""Official make-up working days (ngày làm bù) → why; see the comment above for the sources."""

# The other half of the swaps the `holidays` package misses: the working day taken off. Named
# like the package names its own swapped days off. Source: as for 10/01/2026 above.
OFFICIAL_SWAPPED_DAYS_OFF: Final[Mapping[date, str]] = MappingProxyType(
    {
        date(2026, 1, 2): "Ngày nghỉ (thay cho ngày 10/01/2026)",
    }
)
"""Official days off swapped for a make-up working day, missing from the ``holidays`` package."""

_DEFAULT_EXTRA_HOLIDAY_NAME: Final = "Ngày nghỉ do cơ quan quy định"
_ONE_DAY: Final = timedelta(days=1)

_MAKE_UP_BY_YEAR: Final[Mapping[int, frozenset[date]]] = MappingProxyType(
    {
        year: frozenset(d for d in OFFICIAL_MAKE_UP_WORKING_DAYS if d.year == year)
        for year in {d.year for d in OFFICIAL_MAKE_UP_WORKING_DAYS}
    }
)


@functools.cache
def _official_holidays(year: int) -> Mapping[date, str]:
    """The official holidays of ``year`` → their Vietnamese names (computed once per year)."""
    # The language is explicit: by default `holidays` picks it from the LANG/LC_* environment.
    package_holidays: Any = holidays.country_holidays("VN", years=year, language="vi")
    names: dict[date, str] = {
        day: str(name) for day, name in package_holidays.items() if day.year == year
    }
    for day, name in OFFICIAL_SWAPPED_DAYS_OFF.items():
        if day.year == year:
            names.setdefault(day, name)
    return MappingProxyType(names)


def _check_date(value: object, what: str) -> date:
    # A datetime is a date to Python, but it never equals a date: refuse it rather than
    # silently answer for the wrong calendar day.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime.date, got {value!r}")
    return value


def _check_weekday(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"weekend days must be ints 0 (Monday) to 6 (Sunday), got {value!r}")
    if not 0 <= value <= 6:
        raise ValueError(f"weekend days must be 0 (Monday) to 6 (Sunday), got {value}")
    return value


def _extra_holiday_names(extra: Mapping[date, str] | Iterable[date]) -> dict[date, str]:
    if isinstance(extra, Mapping):
        names: dict[date, str] = {}
        for day, name in extra.items():
            if not isinstance(name, str):
                raise TypeError(f"the name of extra holiday {day!r} must be a str, got {name!r}")
            names[_check_date(day, "extra_holidays")] = name.strip() or _DEFAULT_EXTRA_HOLIDAY_NAME
        return names
    return {_check_date(day, "extra_holidays"): _DEFAULT_EXTRA_HOLIDAY_NAME for day in extra}


def _by_year(days: Iterable[date]) -> dict[int, frozenset[date]]:
    grouped: dict[int, set[date]] = {}
    for day in days:
        grouped.setdefault(day.year, set()).add(day)
    return {year: frozenset(group) for year, group in grouped.items()}


class WorkingCalendar:
    """Which days a Vietnamese public office works (see the module documentation for the rules).

    >>> calendar = WorkingCalendar()
    >>> calendar.is_working_day(date(2025, 4, 26))  # Saturday, làm bù for Friday 2/5/2025
    True
    >>> calendar.holiday_name(date(2025, 5, 2))
    'Ngày nghỉ (thay cho ngày 26/04/2025)'
    >>> calendar.add_working_days(date(2024, 6, 20), -15)
    datetime.date(2024, 5, 30)

    Args:
        weekend: the weekly days off, 0 (Monday) to 6 (Sunday); see :data:`WEEKDAY_NAMES`.
        official_holidays: whether the official Vietnamese holidays and make-up working days
            apply.
        extra_holidays: the administrator's additional days off, as date → name or plain dates.
        working_days: the administrator's additional working days; they win over everything.

    Raises:
        ValueError: when the weekend is all seven days and no ``working_days`` are given, or a
            weekday is not 0 to 6.
        TypeError: when an entry is not a ``datetime.date`` (a ``datetime`` is refused).
    """

    __slots__ = (
        "_closed",
        "_extra",
        "_extra_by_year",
        "_official",
        "_only_working_days",
        "_weekend",
        "_working",
        "_working_by_year",
    )

    def __init__(
        self,
        *,
        weekend: Iterable[int] = (5, 6),
        official_holidays: bool = True,
        extra_holidays: Mapping[date, str] | Iterable[date] = (),
        working_days: Iterable[date] = (),
    ) -> None:
        self._weekend = frozenset(_check_weekday(day) for day in weekend)
        self._official = bool(official_holidays)
        self._extra = _extra_holiday_names(extra_holidays)
        self._working = frozenset(_check_date(day, "working_days") for day in working_days)
        if len(self._weekend) == 7 and not self._working:
            raise ValueError(
                "the weekend covers all seven days of the week and no working_days are given: "
                "such a calendar has no working day at all"
            )
        self._extra_by_year = _by_year(self._extra)
        self._working_by_year = _by_year(self._working)
        # With a seven-day weekend the working days are exactly `working_days`: a finite set,
        # searched by bisection (stepping day by day would never find one past the last).
        self._only_working_days: tuple[date, ...] | None = (
            tuple(sorted(self._working)) if len(self._weekend) == 7 else None
        )
        self._closed: dict[int, frozenset[date]] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(weekend={tuple(sorted(self._weekend))}, "
            f"official_holidays={self._official}, "
            f"extra_holidays=<{len(self._extra)} dates>, working_days=<{len(self._working)} dates>)"
        )

    def is_working_day(self, d: date) -> bool:
        """Whether the office works on ``d``."""
        if isinstance(d, datetime):
            _check_date(d, "d")
        closed = self._closed.get(d.year)
        if closed is None:
            closed = self._days_off(_check_date(d, "d").year)
        return d not in closed

    def holiday_name(self, d: date) -> str | None:
        """The name of the holiday that closes the office on ``d``, or None.

        None also for a plain weekend day and for a holiday that ``working_days`` cancels.
        Official names are in Vietnamese, as the ``holidays`` package gives them (several
        holidays on one day are joined by "; ").
        """
        if self.is_working_day(d):
            return None
        name = self._extra.get(d)
        if name is None and self._official:
            name = _official_holidays(d.year).get(d)
        return name

    def next_working_day(self, d: date) -> date:
        """``d`` if it is a working day, else the first working day after it."""
        return d if self.is_working_day(d) else self._shift(d, 1)

    def previous_working_day(self, d: date) -> date:
        """``d`` if it is a working day, else the last working day before it."""
        return d if self.is_working_day(d) else self._shift(d, -1)

    def add_working_days(self, d: date, n: int) -> date:
        """The ``n``-th working day after ``d`` (``n`` > 0) or ``|n|``-th before it (``n`` < 0).

        ``d`` itself is not counted, whether or not it is a working day; ``n == 0`` gives ``d``.
        "15 working days before Thursday 2024-06-20" is Thursday 2024-05-30.

        Raises:
            ValueError: when a calendar whose weekend is all seven days runs out of
                ``working_days``.
            OverflowError: when the count runs past ``date.min`` or ``date.max``.
        """
        n = operator.index(n)
        _check_date(d, "d")
        return d if n == 0 else self._shift(d, n)

    def _shift(self, d: date, n: int) -> date:
        """The ``n``-th working day after (n > 0) or before (n < 0) ``d``; ``n`` != 0."""
        if self._only_working_days is not None:
            return self._shift_within(self._only_working_days, d, n)
        step = _ONE_DAY if n > 0 else -_ONE_DAY
        remaining = abs(n)
        day = d
        while remaining:
            day += step
            if self.is_working_day(day):
                remaining -= 1
        return day

    @staticmethod
    def _shift_within(working: tuple[date, ...], d: date, n: int) -> date:
        index = bisect_right(working, d) + n - 1 if n > 0 else bisect_left(working, d) + n
        if not 0 <= index < len(working):
            side = "after" if n > 0 else "before"
            raise ValueError(
                f"there are not {abs(n)} working days {side} {d.isoformat()}: the weekend is all "
                f"seven days, so the only working days are the {len(working)} working_days given "
                f"({working[0].isoformat()} to {working[-1].isoformat()})"
            )
        return working[index]

    def _days_off(self, year: int) -> frozenset[date]:
        """Compute, cache and return the days off of ``year``."""
        first = date(year, 1, 1)
        length = (date(year, 12, 31) - first).days + 1
        closed = {
            day
            for day in (first + timedelta(days=offset) for offset in range(length))
            if day.weekday() in self._weekend
        }
        if self._official:
            closed.update(_official_holidays(year))
            closed.difference_update(_MAKE_UP_BY_YEAR.get(year, ()))
        closed.update(self._extra_by_year.get(year, ()))
        closed.difference_update(self._working_by_year.get(year, ()))
        days_off = frozenset(closed)
        self._closed[year] = days_off
        return days_off
