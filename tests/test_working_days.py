"""The working-day calendar of a Vietnamese public office (scheduler.working_days).

Read top to bottom: the documented example, the official calendar year by year, what the
administrator can change, the guards, the built-in make-up days against the ``holidays``
package, and finally the properties that hold for every date.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from importlib.metadata import version
from typing import Any

import holidays
import pytest
from holidays.countries.vietnam import VietnamStaticHolidays
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler import working_days
from scheduler.working_days import (
    OFFICIAL_MAKE_UP_WORKING_DAYS,
    OFFICIAL_SWAPPED_DAYS_OFF,
    WEEKDAY_NAMES,
    WorkingCalendar,
)

OFFICE = WorkingCalendar()  # the default: Saturday + Sunday weekend, official holidays


def days(first: date, last: date) -> list[date]:
    """Every date from ``first`` to ``last``, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@pytest.fixture
def holidays_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The years for which the calendar asks the `holidays` package, from an empty cache."""
    calls: list[int] = []
    real = holidays.country_holidays

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["years"])
        return real(*args, **kwargs)

    monkeypatch.setattr(holidays, "country_holidays", spy)
    working_days._official_holidays.cache_clear()
    yield calls
    working_days._official_holidays.cache_clear()


# --- The documented example ----------------------------------------------------------------


def test_15_working_days_before_thursday_2024_06_20_is_thursday_2024_05_30() -> None:
    assert OFFICE.add_working_days(date(2024, 6, 20), -15) == date(2024, 5, 30)


def test_and_15_working_days_after_2024_05_30_is_back_to_2024_06_20() -> None:
    assert OFFICE.add_working_days(date(2024, 5, 30), 15) == date(2024, 6, 20)


# --- The official calendar -----------------------------------------------------------------


def test_an_ordinary_week_works_monday_to_friday() -> None:
    week = days(date(2024, 6, 17), date(2024, 6, 23))  # Monday to Sunday
    assert [OFFICE.is_working_day(d) for d in week] == [True] * 5 + [False] * 2
    assert OFFICE.holiday_name(date(2024, 6, 22)) is None  # a weekend day is not a holiday


def test_tet_2024_closes_the_office_from_thursday_8_2_to_wednesday_14_2() -> None:
    assert OFFICE.is_working_day(date(2024, 2, 7))
    assert not any(OFFICE.is_working_day(d) for d in days(date(2024, 2, 8), date(2024, 2, 14)))
    assert OFFICE.is_working_day(date(2024, 2, 15))
    assert OFFICE.holiday_name(date(2024, 2, 10)) == "Tết Nguyên Đán"
    assert OFFICE.holiday_name(date(2024, 2, 9)) == "Giao thừa Tết Nguyên Đán"


def test_one_working_day_after_tet_eve_eve_2024_is_the_day_after_tet() -> None:
    assert OFFICE.add_working_days(date(2024, 2, 7), 1) == date(2024, 2, 15)
    assert OFFICE.next_working_day(date(2024, 2, 10)) == date(2024, 2, 15)
    assert OFFICE.previous_working_day(date(2024, 2, 10)) == date(2024, 2, 7)


def test_30_4_and_1_5_2025_with_friday_2_5_swapped_for_saturday_26_4() -> None:
    assert OFFICE.is_working_day(date(2025, 4, 26))  # Saturday, ngày làm bù
    assert OFFICE.holiday_name(date(2025, 4, 26)) is None
    for day in days(date(2025, 4, 30), date(2025, 5, 4)):  # Wednesday to Sunday
        assert not OFFICE.is_working_day(day), day
    assert OFFICE.holiday_name(date(2025, 4, 30)) == "Ngày Chiến thắng"
    assert OFFICE.holiday_name(date(2025, 5, 1)) == "Ngày Quốc tế Lao động"
    assert OFFICE.holiday_name(date(2025, 5, 2)) == "Ngày nghỉ (thay cho ngày 26/04/2025)"
    assert OFFICE.next_working_day(date(2025, 4, 30)) == date(2025, 5, 5)


def test_30_4_and_1_5_2024_with_monday_29_4_swapped_for_saturday_4_5() -> None:
    assert not any(OFFICE.is_working_day(d) for d in days(date(2024, 4, 27), date(2024, 5, 1)))
    assert OFFICE.is_working_day(date(2024, 5, 4))  # Saturday, ngày làm bù
    assert not OFFICE.is_working_day(date(2024, 5, 5))  # the Sunday stays a day off
    assert OFFICE.add_working_days(date(2024, 5, 3), 1) == date(2024, 5, 4)


def test_national_day_2_9_and_the_day_next_to_it() -> None:
    # 2024: Monday 2/9 and Tuesday 3/9; 2025: Monday 1/9 and Tuesday 2/9.
    for day in (date(2024, 9, 2), date(2024, 9, 3), date(2025, 9, 1), date(2025, 9, 2)):
        assert not OFFICE.is_working_day(day), day
        assert OFFICE.holiday_name(day) == "Quốc khánh"
    assert OFFICE.is_working_day(date(2024, 9, 4))
    assert OFFICE.is_working_day(date(2025, 9, 3))


def test_national_day_2026_is_five_days_with_monday_31_8_swapped_for_saturday_22_8() -> None:
    assert OFFICE.is_working_day(date(2026, 8, 22))
    assert not any(OFFICE.is_working_day(d) for d in days(date(2026, 8, 29), date(2026, 9, 2)))
    assert OFFICE.is_working_day(date(2026, 9, 3))


def test_hung_kings_commemoration_day() -> None:
    # 10/3 of the lunar calendar: Thursday 18/4/2024; Monday 7/4/2025.
    for day in (date(2024, 4, 18), date(2025, 4, 7)):
        assert not OFFICE.is_working_day(day), day
        assert OFFICE.holiday_name(day) == "Ngày Giỗ Tổ Hùng Vương"
    # In 2026 it is a Sunday (26/4): the office takes Monday 27/4 off instead.
    assert OFFICE.holiday_name(date(2026, 4, 27)) == "Ngày Giỗ Tổ Hùng Vương (nghỉ bù)"
    assert OFFICE.is_working_day(date(2026, 4, 28))


def test_new_year_2026_is_four_days_with_friday_2_1_swapped_for_saturday_10_1() -> None:
    # Công văn 12729/VPCP-KGVX: a swap the `holidays` package does not know (yet).
    assert not any(OFFICE.is_working_day(d) for d in days(date(2026, 1, 1), date(2026, 1, 4)))
    assert OFFICE.holiday_name(date(2026, 1, 2)) == "Ngày nghỉ (thay cho ngày 10/01/2026)"
    assert OFFICE.is_working_day(date(2026, 1, 10))


def test_holiday_names_are_vietnamese_whatever_the_locale(
    monkeypatch: pytest.MonkeyPatch, holidays_calls: list[int]
) -> None:
    monkeypatch.setenv("LANGUAGE", "en_US")  # `holidays` would otherwise answer in English
    assert WorkingCalendar().holiday_name(date(2026, 9, 2)) == "Quốc khánh"


# --- What the administrator configures -----------------------------------------------------


def test_extra_holidays_with_their_names() -> None:
    calendar = WorkingCalendar(extra_holidays={date(2024, 6, 14): "Ngày thành lập ngành"})
    assert not calendar.is_working_day(date(2024, 6, 14))
    assert calendar.holiday_name(date(2024, 6, 14)) == "Ngày thành lập ngành"
    assert calendar.add_working_days(date(2024, 6, 13), 1) == date(2024, 6, 17)


def test_extra_holidays_as_plain_dates_get_a_generic_name() -> None:
    calendar = WorkingCalendar(extra_holidays=[date(2024, 6, 14)])
    assert calendar.holiday_name(date(2024, 6, 14)) == "Ngày nghỉ do cơ quan quy định"


def test_extra_holidays_also_close_an_official_make_up_day() -> None:
    calendar = WorkingCalendar(extra_holidays={date(2024, 5, 4): "Nghỉ theo lịch địa phương"})
    assert not calendar.is_working_day(date(2024, 5, 4))


def test_working_days_open_a_weekend_day() -> None:
    calendar = WorkingCalendar(working_days=[date(2024, 6, 22)])  # a Saturday
    assert calendar.is_working_day(date(2024, 6, 22))
    assert calendar.add_working_days(date(2024, 6, 21), 1) == date(2024, 6, 22)


def test_working_days_win_over_holidays_official_or_not() -> None:
    calendar = WorkingCalendar(
        extra_holidays=[date(2024, 6, 14)],
        working_days=[date(2024, 6, 14), date(2024, 9, 2)],
    )
    assert calendar.is_working_day(date(2024, 6, 14))
    assert calendar.is_working_day(date(2024, 9, 2))
    assert calendar.holiday_name(date(2024, 9, 2)) is None  # cancelled for this office


def test_a_sunday_only_weekend_works_on_saturdays() -> None:
    calendar = WorkingCalendar(weekend=[WEEKDAY_NAMES["sun"]])
    assert calendar.is_working_day(date(2024, 6, 22))  # Saturday
    assert not calendar.is_working_day(date(2024, 6, 23))  # Sunday
    assert not calendar.is_working_day(date(2024, 2, 10))  # Tết still closes it
    assert calendar.add_working_days(date(2024, 6, 21), 2) == date(2024, 6, 24)


def test_without_official_holidays_only_the_weekend_and_the_admins_days_count() -> None:
    calendar = WorkingCalendar(official_holidays=False, extra_holidays=[date(2024, 6, 14)])
    assert calendar.is_working_day(date(2024, 2, 12))  # a Monday of Tết 2024
    assert not calendar.is_working_day(date(2024, 5, 4))  # no make-up Saturday without swaps
    assert not calendar.is_working_day(date(2024, 6, 14))
    assert calendar.holiday_name(date(2024, 2, 10)) is None


def test_weekday_names() -> None:
    assert dict(WEEKDAY_NAMES) == {
        "mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
    }  # fmt: skip
    assert date(2024, 6, 22).weekday() == WEEKDAY_NAMES["sat"]


# --- Edges and guards ----------------------------------------------------------------------


def test_zero_working_days_from_any_day_is_that_day() -> None:
    assert OFFICE.add_working_days(date(2024, 2, 10), 0) == date(2024, 2, 10)  # even Tết


def test_the_day_you_start_from_is_never_counted() -> None:
    assert OFFICE.add_working_days(date(2024, 6, 17), 1) == date(2024, 6, 18)
    assert OFFICE.add_working_days(date(2024, 6, 22), 1) == date(2024, 6, 24)  # from Saturday
    assert OFFICE.add_working_days(date(2024, 6, 22), -1) == date(2024, 6, 21)


def test_a_week_without_working_days_is_refused() -> None:
    with pytest.raises(ValueError, match="no working day"):
        WorkingCalendar(weekend=range(7))


def test_a_week_without_working_days_but_explicit_working_days_counts_only_those() -> None:
    calendar = WorkingCalendar(weekend=range(7), working_days=[date(2024, 6, 3), date(2024, 6, 5)])
    assert calendar.next_working_day(date(2024, 1, 1)) == date(2024, 6, 3)
    assert calendar.add_working_days(date(2024, 6, 3), 1) == date(2024, 6, 5)
    assert calendar.previous_working_day(date(2024, 6, 4)) == date(2024, 6, 3)
    with pytest.raises(ValueError, match="not 1 working days after 2024-06-05"):
        calendar.add_working_days(date(2024, 6, 5), 1)
    with pytest.raises(ValueError, match="not 3 working days before"):
        calendar.add_working_days(date(2024, 7, 1), -3)


@pytest.mark.parametrize("weekend", [[7], [-1]])
def test_weekend_days_are_0_to_6(weekend: list[int]) -> None:
    with pytest.raises(ValueError, match="0 \\(Monday\\) to 6 \\(Sunday\\)"):
        WorkingCalendar(weekend=weekend)


def test_a_datetime_is_not_a_date() -> None:
    with pytest.raises(TypeError, match=r"datetime\.date"):
        OFFICE.is_working_day(datetime(2024, 6, 17, 9, 0))
    with pytest.raises(TypeError, match="working_days"):
        WorkingCalendar(working_days=[datetime(2024, 6, 22, 8, 0)])


def test_the_holidays_package_is_asked_once_per_year(holidays_calls: list[int]) -> None:
    calendar, other = WorkingCalendar(), WorkingCalendar(weekend=[6])
    for day in days(date(2024, 12, 1), date(2025, 1, 31)):
        calendar.is_working_day(day)
        other.is_working_day(day)
    calendar.add_working_days(date(2024, 12, 1), 30)
    assert holidays_calls == [2024, 2025]


# --- The built-in make-up working days against the `holidays` package -----------------------


def package_swaps() -> dict[date, date]:
    """The swaps the `holidays` package knows: make-up working day → day off.

    VietnamStaticHolidays.special_public_holidays maps a year to entries (month, day,
    from_month, from_day[, from_year]): "day off month/day, substituted from the working day
    from_month/from_day" (of from_year, default the same year).
    """
    special: Any = VietnamStaticHolidays.special_public_holidays
    swaps: dict[date, date] = {}
    for year, entries in special.items():
        for entry in (entries,) if isinstance(entries[0], int) else entries:
            if not all(isinstance(part, int) for part in entry):
                continue  # a one-off named holiday (month, day, name), not a swap
            month, day, from_month, from_day, *from_year = entry
            make_up = date(from_year[0] if from_year else year, from_month, from_day)
            swaps[make_up] = date(year, month, day)
    return swaps


def test_the_package_swaps_are_read_correctly() -> None:
    # A guard for the test below: a change in the package's format must not make it vacuous.
    swaps = package_swaps()
    assert swaps[date(2024, 5, 4)] == date(2024, 4, 29)
    assert swaps[date(2019, 1, 5)] == date(2018, 12, 31)


def test_every_make_up_day_the_holidays_package_knows_is_built_in() -> None:
    missing = sorted(set(package_swaps()) - set(OFFICIAL_MAKE_UP_WORKING_DAYS))
    assert not missing, (
        f"holidays {version('holidays')} knows make-up working days that "
        f"OFFICIAL_MAKE_UP_WORKING_DAYS lacks: {[d.isoformat() for d in missing]}"
    )


def test_the_built_in_make_up_days_beyond_the_package_are_the_documented_ones() -> None:
    # Each needs a source in the module's comment; the package may catch up (then this
    # set shrinks and the test still passes).
    beyond = set(OFFICIAL_MAKE_UP_WORKING_DAYS) - set(package_swaps())
    assert beyond <= {date(2026, 1, 10)}


def test_every_make_up_day_is_a_weekend_day_paired_with_an_official_day_off() -> None:
    for make_up, why in OFFICIAL_MAKE_UP_WORKING_DAYS.items():
        assert make_up.weekday() >= WEEKDAY_NAMES["sat"], make_up
        assert OFFICE.is_working_day(make_up), make_up
        found = re.search(r"(\d{2})/(\d{2})/(\d{4})", why)
        assert found, why
        day, month, year = map(int, found.groups())
        day_off = date(year, month, day)
        assert not OFFICE.is_working_day(day_off), (make_up, day_off)
        assert day_off.weekday() < WEEKDAY_NAMES["sat"], (make_up, day_off)
        assert package_swaps().get(make_up, day_off) == day_off, make_up


def test_every_built_in_day_off_is_paired_with_a_built_in_make_up_day() -> None:
    for day_off, name in OFFICIAL_SWAPPED_DAYS_OFF.items():
        day, month, year = map(int, re.findall(r"\d+", name))
        assert date(year, month, day) in OFFICIAL_MAKE_UP_WORKING_DAYS, day_off


@pytest.mark.parametrize(
    ("year", "count"),
    [
        # 2024: 366 days - 104 weekend days - 12 weekday holidays + Saturday 4/5 = 251.
        (2024, 251),
        # 2025: 365 days - 104 weekend days - 12 weekday holidays + Saturday 26/4 = 250.
        (2025, 250),
    ],
)
def test_working_days_in_a_year(year: int, count: int) -> None:
    year_days = days(date(year, 1, 1), date(year, 12, 31))
    assert sum(map(OFFICE.is_working_day, year_days)) == count


# --- Properties for every date -------------------------------------------------------------

CALENDARS = [
    OFFICE,
    WorkingCalendar(weekend=[WEEKDAY_NAMES["sun"]]),
    WorkingCalendar(official_holidays=False),
    WorkingCalendar(
        weekend=[WEEKDAY_NAMES["fri"], WEEKDAY_NAMES["sat"]],
        extra_holidays={date(2030, 6, 3): "Nghỉ", date(2030, 6, 4): "Nghỉ"},
        working_days=[date(2030, 6, 1), date(2024, 2, 10)],
    ),
]
calendars = st.sampled_from(CALENDARS)
dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 12, 31))
counts = st.integers(min_value=-60, max_value=60)
positive_counts = st.integers(min_value=1, max_value=60)


@settings(deadline=None, database=None)
@given(calendars, dates, counts.filter(bool))
def test_counting_working_days_always_lands_on_a_working_day(
    calendar: WorkingCalendar, d: date, n: int
) -> None:
    result = calendar.add_working_days(d, n)
    assert calendar.is_working_day(result)
    assert (result > d) if n > 0 else (result < d)


@settings(deadline=None, database=None)
@given(calendars, dates, counts)
def test_exactly_n_working_days_lie_between(calendar: WorkingCalendar, d: date, n: int) -> None:
    result = calendar.add_working_days(d, n)
    between = days(d + timedelta(days=1), result) if n >= 0 else days(result, d - timedelta(1))
    assert sum(map(calendar.is_working_day, between)) == abs(n)


@settings(deadline=None, database=None)
@given(calendars, dates, positive_counts)
def test_n_working_days_forward_then_back_returns_to_the_last_working_day(
    calendar: WorkingCalendar, d: date, n: int
) -> None:
    back = calendar.add_working_days(calendar.add_working_days(d, n), -n)
    assert back == calendar.previous_working_day(d)
    assert back <= d
    if calendar.is_working_day(d):
        assert back == d


@settings(deadline=None, database=None)
@given(calendars, dates)
def test_next_working_day_is_the_first_working_day_from_d(
    calendar: WorkingCalendar, d: date
) -> None:
    following = calendar.next_working_day(d)
    assert following >= d
    assert calendar.is_working_day(following)
    assert not any(calendar.is_working_day(day) for day in days(d, following)[:-1])


@settings(deadline=None, database=None)
@given(calendars, dates)
def test_previous_working_day_is_the_last_working_day_up_to_d(
    calendar: WorkingCalendar, d: date
) -> None:
    preceding = calendar.previous_working_day(d)
    assert preceding <= d
    assert calendar.is_working_day(preceding)
    assert not any(calendar.is_working_day(day) for day in days(preceding, d)[1:])


@settings(deadline=None, database=None)
@given(calendars, dates, dates, counts)
def test_counting_is_monotonic(calendar: WorkingCalendar, d1: date, d2: date, n: int) -> None:
    d1, d2 = min(d1, d2), max(d1, d2)
    assert calendar.add_working_days(d1, n) <= calendar.add_working_days(d2, n)


@settings(deadline=None, database=None)
@given(calendars, dates)
def test_a_day_off_with_a_name_is_a_holiday_and_a_working_day_has_none(
    calendar: WorkingCalendar, d: date
) -> None:
    if calendar.is_working_day(d):
        assert calendar.holiday_name(d) is None
    elif d.weekday() not in (5, 6) and calendar is OFFICE:
        assert calendar.holiday_name(d)  # a weekday off always says why
