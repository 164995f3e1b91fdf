"""The date engine on small configs: every expression form, moves, recipients and UIDs."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from config.errors import ConfigError
from scheduler.expand import Window, expand
from tests.engine import UNITS, load, occurrences


def milestones(*lines: str) -> str:
    return UNITS + "milestones:\n" + "\n".join(f"  - {line}" for line in lines) + "\n"


def due(uid_part: str, *lines: str) -> date | None:
    return occurrences(milestones(*lines))[f"milestone.{uid_part}"].due


@pytest.mark.parametrize(
    ("when", "first", "last"),
    [
        ("2024-06-20", date(2024, 6, 20), date(2024, 6, 20)),
        ("2024-06", date(2024, 6, 1), date(2024, 6, 30)),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2024-Q3", date(2024, 7, 1), date(2024, 9, 30)),  # Quý III
        ("2024-H1", date(2024, 1, 1), date(2024, 6, 30)),  # 6 tháng đầu năm
        ("'2024'", date(2024, 1, 1), date(2024, 12, 31)),
        ("{start: 2024-03, end: 2024-Q3}", date(2024, 3, 1), date(2024, 9, 30)),
    ],
)
def test_written_forms_as_events_keep_their_span(when: str, first: date, last: date) -> None:
    o = occurrences(milestones(f"{{id: x, title: X, kind: event, units: [all], when: {when}}}"))
    assert (o["milestone.x"].first, o["milestone.x"].last) == (first, last)


def test_a_local_time_has_a_default_duration_of_one_hour() -> None:
    o = occurrences(milestones("{id: x, title: X, kind: event, units: [all], "
                               "when: 2024-06-20T08:00}"))["milestone.x"]
    assert (o.span.start_at, o.span.end_at) == (datetime(2024, 6, 20, 8), datetime(2024, 6, 20, 9))
    assert not o.all_day


def test_relative_dates_count_calendar_units_from_the_reference() -> None:
    found = occurrences(milestones(
        "{id: base, title: B, kind: event, units: [all], "
        "when: {start: 2024-01-31, end: 2024-02-02}}",
        "{id: days, title: D, kind: event, units: [all], when: {before: base, days: 10}}",
        "{id: weeks, title: W, kind: event, units: [all], when: {after: base, weeks: 2}}",
        "{id: months, title: M, kind: event, units: [all], when: {before: base, months: 1}}",
        "{id: eom, title: E, kind: event, units: [all], when: {after: months, months: 1}}",
        "{id: years, title: Y, kind: event, units: [all], when: {after: base, years: 1}}",
    ))
    # `before` counts back from the first day (31/1), `after` on from the last (2/2).
    assert found["milestone.days"].first == date(2024, 1, 21)
    assert found["milestone.weeks"].first == date(2024, 2, 16)
    assert found["milestone.months"].first == date(2023, 12, 31)
    assert found["milestone.eom"].first == date(2024, 1, 31)
    assert found["milestone.years"].first == date(2025, 2, 2)


def test_a_deadline_on_a_holiday_moves_to_the_next_working_day() -> None:
    # 30/4 and 1/5/2025 are holidays, Fri 2/5 was swapped off, 3–4/5 weekend → Mon 5/5.
    assert due("x", "{id: x, title: X, units: [all], when: 2025-04-30}") == date(2025, 5, 5)
    # Tết Ất Tỵ: civil servants off 25/1–2/2/2025 → Mon 3/2.
    assert due("x", "{id: x, title: X, units: [all], when: 2025-01-28}") == date(2025, 2, 3)


def test_official_make_up_saturdays_are_working_days() -> None:
    # Sat 26/4/2025 was worked in exchange for Fri 2/5 (the holidays package lacks it).
    assert due("x", "{id: x, title: X, units: [all], when: 2025-04-26}") == date(2025, 4, 26)
    assert due("x", "{id: x, title: X, units: [all], when: 2024-05-04}") == date(2024, 5, 4)


def test_on_non_working_day_previous_and_keep() -> None:
    sunday = "2024-06-16"
    assert due("x", f"{{id: x, title: X, units: [all], when: {sunday}, "
               "on_non_working_day: previous}") == date(2024, 6, 14)
    assert due("x", f"{{id: x, title: X, units: [all], when: {sunday}, "
               "on_non_working_day: keep}") == date(2024, 6, 16)


def test_an_event_moved_off_a_weekend_keeps_its_length_and_time() -> None:
    o = occurrences(milestones("{id: x, title: X, kind: event, units: [all], "
                               "when: 2024-06-16 08:00, duration: 2h, "
                               "on_non_working_day: next}"))["milestone.x"]
    assert (o.span.start_at, o.span.end_at) == (datetime(2024, 6, 17, 8), datetime(2024, 6, 17, 10))


def test_calendar_extra_holidays_and_working_days() -> None:
    calendar = """
calendar:
  weekend: [sun]
  extra_holidays: [2024-06-17, {from: 2024-06-18, to: 2024-06-19, name: Nghỉ bù}]
  working_days: [2024-06-23]
"""
    found = occurrences(calendar + milestones(
        "{id: sat, title: S, units: [all], when: 2024-06-15}",
        "{id: mon, title: M, units: [all], when: 2024-06-17}",
        "{id: sun, title: U, units: [all], when: 2024-06-23}",
    ))
    assert found["milestone.sat"].due == date(2024, 6, 15)  # only Sunday is weekend here
    assert found["milestone.mon"].due == date(2024, 6, 20)  # 17, 18, 19 are holidays
    assert found["milestone.sun"].due == date(2024, 6, 23)  # an admin's make-up Sunday


def test_monthly_31_lands_on_the_last_day_of_short_months() -> None:
    found = occurrences(milestones(
        "{id: r, title: R, kind: event, units: [all], "
        "when: {monthly: 31, from: 2024-01, until: 2024-04}}"))
    assert {uid: o.first for uid, o in found.items()} == {
        "milestone.r.2024-01": date(2024, 1, 31),
        "milestone.r.2024-02": date(2024, 2, 29),
        "milestone.r.2024-03": date(2024, 3, 31),
        "milestone.r.2024-04": date(2024, 4, 30),
    }


def test_quarterly_end_and_start() -> None:
    found = occurrences(milestones(
        "{id: e, title: E, kind: event, units: [all], "
        "when: {quarterly: end, from: 2024-Q4, until: 2025-Q1}}",
        "{id: s, title: S, kind: event, units: [all], "
        "when: {quarterly: start, from: 2024-Q4, until: 2024-Q4}}"))
    assert found["milestone.e.2024-Q4"].first == date(2024, 12, 31)
    assert found["milestone.e.2025-Q1"].first == date(2025, 3, 31)
    assert found["milestone.s.2024-Q4"].first == date(2024, 10, 1)


def test_lunar_yearly_uses_the_vietnamese_calendar() -> None:
    # Giỗ Tổ Hùng Vương, 10/3 âm lịch: 18/4/2024, 7/4/2025, 26/4/2026.
    found = occurrences(milestones(
        "{id: gio-to, title: Giỗ Tổ Hùng Vương, kind: event, units: [all], "
        "when: {lunar: '03-10', from: 2024, until: 2026}}",
        "{id: tet, title: Tết, kind: event, units: [all], "
        "when: {lunar: '01-01', from: 2030, until: 2030}}"))
    assert [found[f"milestone.gio-to.{y}"].first for y in (2024, 2025, 2026)] == [
        date(2024, 4, 18), date(2025, 4, 7), date(2026, 4, 26)]
    assert found["milestone.tet.2030"].first == date(2030, 2, 2)  # China: 3 Feb


def test_lunar_day_30_falls_back_to_the_29th_in_short_months() -> None:
    # Month 1 of lunar 2023 has 29 days: 30/1 âm lịch becomes 29/1 (= 19/2/2023).
    found = occurrences(milestones(
        "{id: x, title: X, kind: event, units: [all], when: {lunar: '01-30', from: 2023, "
        "until: 2023}}"))
    assert found["milestone.x.2023"].first == date(2023, 2, 19)


def test_a_lunar_anniversary_recurs_on_its_lunar_date() -> None:
    found = occurrences(UNITS + """
anniversaries:
  - {id: ngay-sinh, title: Ngày sinh, origin: {lunar: "1930-01-10"}, every: 1, units: [all]}
""", window=Window(date(2024, 1, 1), date(2025, 12, 31)))
    # 10/1 âm lịch: 19/2/2024 (Giáp Thìn), 7/2/2025 (Ất Tỵ).
    assert found["anniversary.ngay-sinh.94"].first == date(2024, 2, 19)
    assert found["anniversary.ngay-sinh.95"].first == date(2025, 2, 7)


def test_anniversaries_29_february_fall_on_28_february_in_common_years() -> None:
    found = occurrences(UNITS + """
anniversaries:
  - {id: leap, title: L, origin: 2000-02-29, every: 1, units: [all]}
""", window=Window(date(2023, 1, 1), date(2024, 12, 31)))
    assert found["anniversary.leap.23"].first == date(2023, 2, 28)
    assert found["anniversary.leap.24"].first == date(2024, 2, 29)


def test_references_across_campaigns_and_to_periods() -> None:
    found = occurrences(UNITS + """
campaigns:
  - id: a
    title: A
    units: [all]
    period: {start: 2024-03-01, end: 2024-03-31}
    milestones:
      - {id: kickoff, title: K, kind: event, when: {after: period.start, days: 0}}
  - id: b
    title: B
    units: [all]
    milestones:
      - {id: report, title: R, when: {after: a/period.end, days: 5, working_days: true}}
      - {id: follow, title: F, kind: event, when: {after: a/kickoff, weeks: 1}}
""")
    assert found["a.kickoff"].first == date(2024, 3, 1)
    # 5 working days after Sun 31/3/2024: 1,2,3,4,5 April → Fri 5/4.
    assert found["b.report"].due == date(2024, 4, 5)
    assert found["b.follow"].first == date(2024, 3, 8)


def test_a_relative_milestone_recurs_with_its_reference() -> None:
    found = occurrences(milestones(
        "{id: bao-cao, title: Báo cáo quý, units: [all], "
        "when: {quarterly: end, from: 2024-Q1, until: 2024-Q2}}",
        "{id: nhac, title: Chuẩn bị, kind: event, units: [all], "
        "when: {before: bao-cao, days: 5, working_days: true}}"))
    # Quý I ends Sun 31/3/2024 → due Mon 1/4; 5 working days before: 25/3 (Mon).
    assert found["milestone.bao-cao.2024-Q1"].due == date(2024, 4, 1)
    assert found["milestone.nhac.2024-Q1"].first == date(2024, 3, 25)
    # Quý II ends Sun 30/6 → due Mon 1/7; back 28, 27, 26, 25, 24/6 → Mon 24/6.
    assert found["milestone.nhac.2024-Q2"].first == date(2024, 6, 24)


def test_unit_succession_hands_later_occurrences_to_the_successor() -> None:
    config = """
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ, email: nv@x.example.vn, until: 2025-06-30,
     successor: ubnd-xa}
  - {id: ubnd-xa, name: UBND xã, email: xa@x.example.vn}
milestones:
  - {id: before, title: B, when: 2025-06-30, units: [phong-noi-vu]}
  - {id: after, title: A, when: 2025-07-01, units: [phong-noi-vu], lead: phong-noi-vu}
"""
    found = occurrences(config)
    assert found["milestone.before"].units == ("phong-noi-vu",)
    assert found["milestone.after"].units == ("ubnd-xa",)
    assert found["milestone.after"].lead == "ubnd-xa"


def test_cc_units_are_not_recipients() -> None:
    o = occurrences(milestones(
        "{id: x, title: X, when: 2024-06-20, units: [ubnd-cac-xa], cc: [phong-chuyen-mon, "
        "ubnd-xa-a]}"))["milestone.x"]
    assert o.units == ("ubnd-xa-a", "ubnd-xa-b")
    assert o.cc == ("phong-dan-toc", "phong-noi-vu")  # a recipient is not also cc


def test_uids_follow_spec_4_3() -> None:
    found = occurrences(UNITS + """
anniversaries:
  - {id: giai-phong, title: G, origin: 1975-03-25, every: 10, units: [all]}
campaigns:
  - id: camp
    title: C
    units: [all]
    period: {start: 2024-01-01, end: 2024-12-31}
    milestones:
      - {id: m, title: M, when: 2024-05-10}
      - {id: r, title: R, when: {yearly: "03-01", from: 2024, until: 2024}}
milestones:
  - {id: s, title: S, when: 2024-05-10, units: [all]}
""", window=Window(date(2024, 1, 1), date(2025, 12, 31)))
    assert sorted(found) == ["anniversary.giai-phong.50", "camp.m", "camp.period", "camp.r.2024",
                             "milestone.s"]


def test_cancelled_milestones_stay_with_a_flag() -> None:
    o = occurrences(milestones("{id: x, title: X, when: 2024-06-20, units: [all], "
                               "cancelled: true}"))["milestone.x"]
    assert o.cancelled


def test_a_reference_cycle_is_an_error_naming_the_cycle() -> None:
    config = load(milestones(
        "{id: a, title: A, units: [all], when: {after: b, days: 1}}",
        "{id: b, title: B, units: [all], when: {after: a, days: 1}}"))
    with pytest.raises(ConfigError) as info:
        expand(config, Window(date(2024, 1, 1), date(2024, 12, 31)))
    assert "reference cycle: a → b → a" in str(info.value)


def test_english_titles_of_milestones_and_campaign_periods() -> None:
    found = occurrences(UNITS + """
campaigns:
  - id: thi-dua
    title: Phong trào thi đua
    title_en: Emulation campaign
    units: [phong-noi-vu]
    period: {start: 2024-01-01, end: 2024-12-31}
    milestones:
      - {id: ho-so, title: Gửi hồ sơ, title_en: Send the files, when: 2024-05-30}
      - {id: bao-cao, title: Báo cáo, when: 2024-06-28}
""")
    assert found["thi-dua.ho-so"].title_in("en") == "Send the files"
    assert found["thi-dua.ho-so"].title_in("vi") == "Gửi hồ sơ"
    assert found["thi-dua.bao-cao"].title_in("en") == "Báo cáo"  # no English: as written
    assert found["thi-dua.period"].title_in("en") == "Emulation campaign"
