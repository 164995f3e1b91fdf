"""Property-based tests of the date engine (hypothesis): invariants over many dates."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import ReminderSettings
from notifications.planning import plan_reminders
from scheduler.dates import days_in_month
from scheduler.expand import Window, expand, working_calendar
from scheduler.working_days import WorkingCalendar
from tests.engine import UNITS, WIDE, load, occurrences

DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2035, 12, 31))
CALENDAR = WorkingCalendar()


def one(when: str, *extra: str, kind: str = "deadline") -> str:
    fields = ", ".join(extra)
    return (UNITS + "milestones:\n"
            f"  - {{id: x, title: X, kind: {kind}, units: [all], when: {when}"
            + (f", {fields}" if fields else "") + "}\n")


@settings(deadline=None, max_examples=150)
@given(DAYS, st.sampled_from(["next", "previous", "keep"]))
def test_a_deadline_is_due_on_a_working_day_unless_keep(day: date, shift: str) -> None:
    o = occurrences(one(day.isoformat(), f"on_non_working_day: {shift}"))["milestone.x"]
    assert o.due is not None
    if shift == "keep":
        assert o.due == day
        return
    assert CALENDAR.is_working_day(o.due)
    assert (o.due >= day) if shift == "next" else (o.due <= day)
    # Nothing skipped: no working day between the written day and the due day.
    lo, hi = sorted((day, o.due))
    between = [lo + timedelta(days=i) for i in range(1, (hi - lo).days)]
    assert not any(CALENDAR.is_working_day(d) for d in between)


@settings(deadline=None, max_examples=100)
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2000, 12, 31)),
       st.integers(min_value=1, max_value=40))
def test_anniversary_n_of_d_is_in_year_d_plus_n(origin: date, n: int) -> None:
    text = UNITS + ("anniversaries:\n"
                    f"  - {{id: a, title: A, origin: {origin.isoformat()}, every: 1, "
                    "units: [all]}\n")
    target_year = origin.year + n
    window = Window(date(target_year, 1, 1), date(target_year, 12, 31))
    o = occurrences(text, window=window)[f"anniversary.a.{n}"]
    assert o.first.year == target_year
    assert o.first.month == origin.month
    assert o.first.day == min(origin.day, days_in_month(target_year, origin.month))
    assert o.anniversary is not None
    assert o.anniversary.cls == ("tron" if n % 10 == 0 else "le5" if n % 10 == 5 else "khac")


@settings(deadline=None, max_examples=60)
@given(st.integers(min_value=1, max_value=31), st.integers(min_value=2000, max_value=2035))
def test_monthly_day_is_clamped_to_the_months_last_day(day: int, year: int) -> None:
    found = occurrences(one(f"{{monthly: {day}, from: {year}-01, until: {year}-12}}",
                            kind="event"))
    assert len(found) == 12
    for month in range(1, 13):
        o = found[f"milestone.x.{year}-{month:02d}"]
        assert o.first == date(year, month, min(day, days_in_month(year, month)))


@settings(deadline=None, max_examples=80)
@given(DAYS, st.integers(min_value=1, max_value=30))
def test_n_working_days_after_then_before_returns_to_a_working_day_at_or_before(
        start: date, n: int) -> None:
    found = occurrences(UNITS + f"""
milestones:
  - {{id: s, title: S, kind: event, units: [all], when: {start.isoformat()}}}
  - {{id: a, title: A, kind: event, units: [all],
     when: {{after: s, days: {n}, working_days: true}}}}
  - {{id: b, title: B, kind: event, units: [all],
     when: {{before: a, days: {n}, working_days: true}}}}
""")
    back = found["milestone.b"].first
    assert CALENDAR.is_working_day(back)
    assert back <= start
    assert back == CALENDAR.previous_working_day(start)


@settings(deadline=None, max_examples=60)
@given(DAYS, st.integers(min_value=0, max_value=400))
def test_calendar_days_after_then_before_is_the_identity(start: date, n: int) -> None:
    found = occurrences(UNITS + f"""
milestones:
  - {{id: s, title: S, kind: event, units: [all], when: {start.isoformat()}}}
  - {{id: a, title: A, kind: event, units: [all], when: {{after: s, days: {n}}}}}
  - {{id: b, title: B, kind: event, units: [all], when: {{before: a, days: {n}}}}}
""")
    assert found["milestone.a"].first == start + timedelta(days=n)
    assert found["milestone.b"].first == start


MILESTONE_FORMS = st.one_of(
    DAYS.map(lambda d: d.isoformat()),
    DAYS.map(lambda d: f"'{d.isoformat()} 09:30'"),
    DAYS.map(lambda d: f"{d.year}-{d.month:02d}"),
    DAYS.map(lambda d: f"{d.year}-Q{(d.month - 1) // 3 + 1}"),
    st.integers(min_value=2000, max_value=2034).map(
        lambda y: f"{{quarterly: end, from: {y}-Q1, until: {y + 1}-Q2}}"),
    st.integers(min_value=2000, max_value=2034).map(
        lambda y: f"{{lunar: '08-15', from: {y}, until: {y + 1}}}"),
)


@settings(deadline=None, max_examples=40)
@given(st.lists(st.tuples(MILESTONE_FORMS, st.sampled_from(["deadline", "event", "period"])),
                min_size=1, max_size=8))
def test_expansion_is_sorted_unique_and_deterministic(forms: list[tuple[str, str]]) -> None:
    text = UNITS + "milestones:\n" + "".join(
        f"  - {{id: m{i}, title: M{i}, kind: {kind}, units: [all], when: {when}}}\n"
        for i, (when, kind) in enumerate(forms))
    config = load(text)
    first = expand(config, WIDE)
    again = expand(load(text), WIDE)
    assert first == again
    uids = [o.uid for o in first]
    assert len(uids) == len(set(uids))
    keys = [o.sort_key() for o in first]
    assert keys == sorted(keys)


@settings(deadline=None, max_examples=60)
@given(DAYS, st.lists(st.sampled_from(["0d", "1d", "3d", "2w", "5wd", "30d"]), min_size=1,
                      max_size=4, unique=True))
def test_reminders_fire_on_working_days_no_later_than_the_due_day(
        day: date, offsets: list[str]) -> None:
    config = load(one(day.isoformat(), f"reminders: [{', '.join(offsets)}]"))
    found = expand(config, WIDE)
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    for r in plan_reminders(found, config.units, working_calendar(config), ReminderSettings(), tz):
        fire_day = r.fire_at.date()
        assert CALENDAR.is_working_day(fire_day)
        assert fire_day <= found[0].day
        assert r.fire_at.utcoffset() == timedelta(hours=7)


@given(units=st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6).map(sorted),
       lead=st.none() | st.sampled_from("abcdefghz"), unit=st.sampled_from("abcdefghz"))
def test_is_worker_is_membership_of_workers(units: list[str], lead: str | None,
                                            unit: str) -> None:
    """The binary-search shortcut feeds use agrees with the rule the emails use."""
    from scheduler.dates import Span
    from scheduler.occurrences import Occurrence

    o = Occurrence(uid="x", title="x", kind="deadline", span=Span.day(date(2024, 5, 30)),
                   units=tuple(units), due=date(2024, 5, 30), lead=lead)
    assert o.is_worker(unit) == (unit in o.workers)
