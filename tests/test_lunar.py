"""Tests for scheduler.lunar, the Vietnamese lunar calendar.

The calendar must agree with what Vietnamese offices actually observe, which is the Hồ Ngọc Đức
algorithm computed for UTC+7. The tests therefore check it three ways: published dates
(Tết, Giỗ Tổ Hùng Vương), the independent tables of the ``holidays`` package, and structural
properties that any lunisolar calendar must have (round trips, consecutive days, month and
year lengths) over the whole supported range 1800–2199.
"""

import time
from collections.abc import Iterator
from datetime import date, timedelta

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler import lunar
from scheduler.lunar import (
    LunarDate,
    NonexistentLunarDate,
    leap_month,
    lunar_month_length,
    lunar_to_solar,
    solar_to_lunar,
)

FIRST_DAY = date(1800, 1, 1)
LAST_DAY = date(2199, 12, 31)

# The first example of a property test may pay for filling the per-year caches, so Hypothesis'
# per-example deadline would be flaky; and no example database, so that running the tests does
# not leave a .hypothesis directory in the source tree.
PROPERTY = settings(deadline=None, database=None)


def months_of(year: int) -> list[tuple[int, bool]]:
    """The (month, leap) pairs of a lunar year, in calendar order."""
    result = []
    for month in range(1, 13):
        result.append((month, False))
        if leap_month(year) == month:
            result.append((month, True))
    return result


def next_month(year: int, month: int, leap: bool) -> tuple[int, int, bool]:
    """The lunar month following (year, month, leap): the leap copy comes right after its month."""
    if not leap and leap_month(year) == month:
        return year, month, True
    if month == 12:
        return year + 1, 1, False
    return year, month + 1, False


@st.composite
def existing_lunar_dates(draw: st.DrawFn) -> LunarDate:
    """Any lunar date that exists in the lunar years 1800–2199, leap months included."""
    year = draw(st.integers(1800, 2199))
    month, leap = draw(st.sampled_from(months_of(year)))
    day = draw(st.integers(1, lunar_month_length(year, month, leap)))
    return LunarDate(year, month, day, leap)


# --- Known dates --------------------------------------------------------------------------


def test_tet_2030_is_one_day_before_the_chinese_new_year() -> None:
    """The new moon of 2030-02-02 16:07 UTC is 23:07 in Hanoi but 00:07 next day in Beijing.

    This is the canonical example of why a Chinese-calendar library cannot be used: Vietnam
    celebrates Tết on 2 February 2030, China the Spring Festival on 3 February.
    """
    assert lunar_to_solar(2030, 1, 1) == date(2030, 2, 2)
    assert solar_to_lunar(date(2030, 2, 2)) == LunarDate(2030, 1, 1)
    assert solar_to_lunar(date(2030, 2, 1)) == LunarDate(2029, 12, 29)  # Giao thừa


@pytest.mark.parametrize(
    ("year", "expected"),
    [(2024, date(2024, 4, 18)), (2025, date(2025, 4, 7)), (2026, date(2026, 4, 26))],
)
def test_hung_kings_commemoration_day(year: int, expected: date) -> None:
    """Giỗ Tổ Hùng Vương (10th day of the 3rd lunar month) is a public holiday in every plan."""
    assert lunar_to_solar(year, 3, 10) == expected
    assert solar_to_lunar(expected) == LunarDate(year, 3, 10)


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        # Vietnam's 1984 had no leap month while China's had a leap 10th month, so the
        # Vietnamese Tết came a whole lunation earlier (China: 1985-02-20); Vietnam then
        # caught up with a leap 2nd month in 1985 (see test_chinese_calendar_is_utc_plus_8).
        (1985, date(1985, 1, 21)),
        # The first Tết after North Vietnam adopted the UTC+7 calendar (China: 1968-01-30).
        (1968, date(1968, 1, 29)),
        (2023, date(2023, 1, 22)),
        (2024, date(2024, 2, 10)),
        (2025, date(2025, 1, 29)),
        (2026, date(2026, 2, 17)),
        (2030, date(2030, 2, 2)),
    ],
)
def test_tet(year: int, expected: date) -> None:
    """Tết (lunar 1/1) on dates published by Vietnamese calendars."""
    assert lunar_to_solar(year, 1, 1) == expected
    assert solar_to_lunar(expected) == LunarDate(year, 1, 1)
    assert solar_to_lunar(expected - timedelta(days=1)).year == year - 1


@pytest.mark.parametrize(
    ("year", "month", "first_day"),
    [
        (2020, 4, date(2020, 5, 23)),
        (2023, 2, date(2023, 3, 22)),
        (2025, 6, date(2025, 7, 25)),
        # The "2033 problem": the only leap 11th month of the century.
        (2033, 11, date(2033, 12, 22)),
    ],
)
def test_leap_months(year: int, month: int, first_day: date) -> None:
    """Leap months of recent years, and where they start: right after the ordinary month."""
    assert leap_month(year) == month
    assert lunar_to_solar(year, month, 1, leap=True) == first_day
    assert solar_to_lunar(first_day) == LunarDate(year, month, 1, leap=True)
    ordinary_length = lunar_month_length(year, month)
    assert lunar_to_solar(year, month, ordinary_length) == first_day - timedelta(days=1)


def test_years_without_leap_month() -> None:
    """2024 and 2026 are ordinary 12-month years."""
    assert leap_month(2024) is None
    assert leap_month(2026) is None


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(1877, 4, 13), LunarDate(1877, 2, 30)),
        (date(1885, 3, 16), LunarDate(1885, 1, 30)),
        (date(2054, 5, 7), LunarDate(2054, 3, 30)),
        (date(2062, 4, 9), LunarDate(2062, 2, 30)),
    ],
)
def test_day_before_a_new_moon_just_after_midnight(day: date, expected: LunarDate) -> None:
    """Regression: the reference convertSolar2Lunar answers "day 0" of the next month here.

    On each of these days the next new moon falls a few minutes after midnight in Hanoi, and
    the reference program's guess of the current month overshoots by one. The true answer is
    the 30th of the current month, which is what its own convertLunar2Solar round-trips to.
    """
    assert solar_to_lunar(day) == expected
    assert lunar_to_solar(expected.year, expected.month, expected.day) == day


# --- Independent sources ------------------------------------------------------------------


def test_tet_matches_holidays_package() -> None:
    """The ``holidays`` package (VIETNAMESE_CALENDAR tables) agrees on every Tết 1950–2099.

    In Vietnamese its first day of Tết is named exactly "Tết Nguyên Đán" (the eve is "Giao
    thừa Tết Nguyên Đán", later days "Mùng hai Tết Nguyên Đán", ...), so an exact lookup
    picks the first day only. Its tables were built independently (from the Chinese calendar
    plus a list of Vietnamese exceptions: 1965, 1968, 1969, 1985, 2007, 2030, 2053), so
    agreement here checks both the algorithm and the UTC+7 choice.
    """
    vietnam = holidays.country_holidays("VN", years=range(1950, 2100), language="vi")
    tet_by_year = {d.year: d for d in vietnam.get_named("Tết Nguyên Đán", lookup="exact")}
    # Guard against a silent pass if the package ever renames the holiday.
    assert len(tet_by_year) >= 100
    mismatches = {
        year: (tet, lunar_to_solar(year, 1, 1))
        for year, tet in tet_by_year.items()
        if tet != lunar_to_solar(year, 1, 1)
    }
    assert mismatches == {}


def test_hung_kings_day_matches_holidays_package() -> None:
    """``holidays`` lists Giỗ Tổ Hùng Vương (a public holiday since 2007) on the same days."""
    vietnam = holidays.country_holidays("VN", years=range(2007, 2100), language="vi")
    hung_kings = vietnam.get_named("Ngày Giỗ Tổ Hùng Vương", lookup="exact")
    assert len(hung_kings) >= 50
    assert all(d == lunar_to_solar(d.year, 3, 10) for d in hung_kings)


@pytest.fixture
def beijing_meridian(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Recompute the calendar for UTC+8, with clean caches before and after."""

    def clear_caches() -> None:
        for obj in vars(lunar).values():
            if hasattr(obj, "cache_clear"):
                obj.cache_clear()

    clear_caches()
    monkeypatch.setattr(lunar, "TIME_ZONE", 8.0)
    yield
    monkeypatch.undo()
    clear_caches()


@pytest.mark.usefixtures("beijing_meridian")
def test_chinese_calendar_is_utc_plus_8() -> None:
    """The same algorithm at UTC+8 gives the Chinese dates, so the time zone is the difference.

    This verifies the Vietnamese/Chinese discrepancies quoted above with the algorithm itself,
    and checks it against the Chinese New Year of ``holidays`` (country CN) for 1950–2099.
    """
    assert lunar_to_solar(1985, 1, 1) == date(1985, 2, 20)
    assert lunar_to_solar(1968, 1, 1) == date(1968, 1, 30)
    assert lunar_to_solar(2030, 1, 1) == date(2030, 2, 3)
    assert (leap_month(1984), leap_month(1985)) == (10, None)  # Vietnam: (None, 2)

    china = holidays.country_holidays("CN", years=range(1950, 2100), language="en_US")
    new_years = china.get_named("Chinese New Year (Spring Festival)", lookup="exact")
    first_days = {d.year: d for d in sorted(new_years, reverse=True)}  # earliest wins
    assert len(first_days) >= 100
    assert all(d == lunar_to_solar(y, 1, 1) for y, d in first_days.items())


def test_vietnamese_leap_months_differ_from_chinese_ones() -> None:
    """Counterpart of the UTC+8 test above, with the real (UTC+7) calendar."""
    assert (leap_month(1984), leap_month(1985)) == (None, 2)


# --- Invalid dates ------------------------------------------------------------------------


def test_day_30_of_a_29_day_month_is_refused_with_a_readable_message() -> None:
    """Plans are typed by people: say which month is short instead of rolling over silently."""
    assert lunar_month_length(2023, 1) == 29
    with pytest.raises(NonexistentLunarDate) as excinfo:
        lunar_to_solar(2023, 1, 30)
    assert str(excinfo.value) == "lunar 2023-01-30 does not exist: month 1 of 2023 has 29 days"


def test_missing_leap_month_is_refused() -> None:
    """A leap month exists only in its own year; the message names the real one, if any."""
    with pytest.raises(NonexistentLunarDate, match="lunar year 2024 has no leap month"):
        lunar_to_solar(2024, 4, 1, leap=True)
    with pytest.raises(NonexistentLunarDate, match="leap month of lunar year 2023 is 2, not 4"):
        lunar_to_solar(2023, 4, 1, leap=True)
    with pytest.raises(NonexistentLunarDate):
        lunar_month_length(2024, 4, leap=True)


@pytest.mark.parametrize(
    ("month", "day", "message"),
    [
        (0, 1, "month must be 1..12"),
        (13, 1, "month must be 1..12"),
        (1, 0, "day must be 1..30"),
        (1, 31, "day must be 1..30"),
    ],
)
def test_out_of_range_fields_are_refused(month: int, day: int, message: str) -> None:
    """Out-of-range fields get the same exception, which is also a ValueError."""
    with pytest.raises(NonexistentLunarDate, match=message):
        lunar_to_solar(2024, month, day)
    with pytest.raises(ValueError, match=message):
        lunar_to_solar(2024, month, day)


# --- Properties ---------------------------------------------------------------------------


@PROPERTY
@given(st.dates(FIRST_DAY, LAST_DAY))
def test_solar_round_trip(d: date) -> None:
    """Every civil day has exactly one lunar date, which converts back to it."""
    ld = solar_to_lunar(d)
    assert lunar_to_solar(ld.year, ld.month, ld.day, ld.leap) == d


@PROPERTY
@given(existing_lunar_dates())
def test_lunar_round_trip(ld: LunarDate) -> None:
    """Every existing lunar date, leap months included, names exactly one civil day."""
    assert solar_to_lunar(lunar_to_solar(ld.year, ld.month, ld.day, ld.leap)) == ld


@PROPERTY
@given(st.dates(FIRST_DAY, LAST_DAY - timedelta(days=1)))
def test_consecutive_days(d: date) -> None:
    """The day after is the next lunar day, or day 1 of the next month after the last day."""
    today, tomorrow = solar_to_lunar(d), solar_to_lunar(d + timedelta(days=1))
    if today.day == lunar_month_length(today.year, today.month, today.leap):
        year, month, leap = next_month(today.year, today.month, today.leap)
        assert tomorrow == LunarDate(year, month, 1, leap)
    else:
        assert tomorrow == LunarDate(today.year, today.month, today.day + 1, today.leap)


@PROPERTY
@given(existing_lunar_dates().map(lambda ld: (ld.year, ld.month, ld.leap)))
def test_nonexistent_day_30_raises(month_key: tuple[int, int, bool]) -> None:
    """Day 30 exists exactly in the 30-day months; elsewhere it raises NonexistentLunarDate."""
    year, month, leap = month_key
    length = lunar_month_length(year, month, leap)
    assert length in (29, 30)
    if length == 29:
        with pytest.raises(NonexistentLunarDate, match="has 29 days"):
            lunar_to_solar(year, month, 30, leap)
    else:
        day_30 = lunar_to_solar(year, month, 30, leap)
        year, month, leap = next_month(year, month, leap)
        assert day_30 + timedelta(days=1) == lunar_to_solar(year, month, 1, leap)


def test_year_structure_1800_2199() -> None:
    """Every lunar year has 12 or 13 months of 29 or 30 days, which exactly fill it.

    Checked for all 400 years rather than sampled: it is cheap and covers every leap month.
    """
    for year in range(1800, 2200):
        months = months_of(year)
        assert len(months) in (12, 13)
        lengths = [lunar_month_length(year, m, leap) for m, leap in months]
        assert set(lengths) <= {29, 30}, year
        days_in_year = (lunar_to_solar(year + 1, 1, 1) - lunar_to_solar(year, 1, 1)).days
        assert sum(lengths) == days_in_year, year
        assert days_in_year in ((353, 354, 355) if len(months) == 12 else (383, 384, 385))


def test_every_day_1800_2199() -> None:
    """Exhaustive sweep of the supported range: consecutive days and round trips, no gaps.

    The property tests above sample; this walks all 146,097 days, so that a rare edge case
    (like the "day 0" one) cannot hide between samples.
    """
    d = FIRST_DAY
    previous = solar_to_lunar(d - timedelta(days=1))
    while d <= LAST_DAY:
        current = solar_to_lunar(d)
        if current.day == 1:
            assert previous.day in (29, 30), d
            assert (current.year, current.month, current.leap) == next_month(
                previous.year, previous.month, previous.leap
            ), d
        else:
            assert current == LunarDate(
                previous.year, previous.month, previous.day + 1, previous.leap
            ), d
        assert lunar_to_solar(current.year, current.month, current.day, current.leap) == d
        previous = current
        d += timedelta(days=1)


def test_conversions_are_fast() -> None:
    """Per-year caching keeps bulk conversion cheap (about 0.1 s per 100k on a laptop).

    The bound is loose on purpose: it only catches losing the caches, which costs ~10x.
    """
    days = [FIRST_DAY + timedelta(days=(i * 7919) % 146_097) for i in range(100_000)]
    start = time.perf_counter()
    for d in days:
        solar_to_lunar(d)
    assert time.perf_counter() - start < 1.0
