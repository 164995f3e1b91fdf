"""Reminder planning (SPEC §5): when each unit is reminded, worked out by hand."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from config.settings import ReminderSettings
from notifications.planning import PlannedReminder, plan_reminders
from scheduler.expand import expand, working_calendar
from tests.engine import UNITS, WIDE, load

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def plan(text: str, settings: ReminderSettings | None = None) -> list[PlannedReminder]:
    config = load(UNITS + text)
    return plan_reminders(expand(config, WIDE), config.units, working_calendar(config),
                          settings or ReminderSettings(), VN)


def fires(reminders: list[PlannedReminder], unit: str) -> list[tuple[str, str]]:
    return [(r.offset.text, r.fire_at.isoformat()) for r in reminders if r.unit == unit]


def test_offsets_count_back_from_the_due_day_at_the_time_of_day() -> None:
    # Due Thu 30/5/2024. 7d → Thu 23/5; 2d → Tue 28/5; 0d → the day itself; 07:30 local.
    reminders = plan("""
milestones:
  - {id: x, title: X, when: 2024-05-30, units: [phong-noi-vu], reminders: [7d, 2d, 0d]}
""")
    assert fires(reminders, "phong-noi-vu") == [
        ("7d", "2024-05-23T07:30:00+07:00"),
        ("2d", "2024-05-28T07:30:00+07:00"),
        ("0d", "2024-05-30T07:30:00+07:00"),
    ]


def test_a_reminder_day_off_work_moves_to_the_previous_working_day() -> None:
    # Due Mon 3/6/2024: 2d is Sat 1/6 → Fri 31/5; 1w is Mon 27/5.
    reminders = plan("""
milestones:
  - {id: x, title: X, when: 2024-06-03, units: [phong-noi-vu], reminders: [1w, 2d]}
""")
    assert fires(reminders, "phong-noi-vu") == [
        ("1w", "2024-05-27T07:30:00+07:00"),
        ("2d", "2024-05-31T07:30:00+07:00"),
    ]


def test_working_day_offsets_and_hours_before_a_timed_event() -> None:
    # Event Thu 20/6/2024 08:00. 3wd: 17/6 (Mon). 2h: 06:00 the same day.
    reminders = plan("""
milestones:
  - {id: x, title: X, kind: event, when: 2024-06-20 08:00, units: [phong-noi-vu],
     reminders: [3wd, 2h]}
""")
    assert fires(reminders, "phong-noi-vu") == [
        ("3wd", "2024-06-17T07:30:00+07:00"),
        ("2h", "2024-06-20T06:00:00+07:00"),
    ]


def test_defaults_come_from_settings_per_kind_and_time_of_day_is_configurable() -> None:
    settings = ReminderSettings.model_validate({"time_of_day": "08:15", "deadline": ["1d"]})
    reminders = plan("""
milestones:
  - {id: x, title: X, when: 2024-05-30, units: [phong-noi-vu]}
""", settings)
    assert fires(reminders, "phong-noi-vu") == [("1d", "2024-05-29T08:15:00+07:00")]


def test_units_without_email_get_no_reminders_and_cancelled_occurrences_none() -> None:
    reminders = plan("""
milestones:
  - {id: x, title: X, when: 2024-05-30, units: [ubnd-cac-xa], reminders: [0d]}
  - {id: y, title: Y, when: 2024-05-30, units: [ubnd-cac-xa], reminders: [0d], cancelled: true}
""")
    assert [(r.uid, r.unit) for r in reminders] == [("milestone.x@mocd.local", "ubnd-xa-a")]


def test_two_offsets_landing_on_the_same_moment_are_one_reminder() -> None:
    # Due Mon 3/6/2024: 3d (Fri 31/5) and 2d (Sat 1/6 → Fri 31/5) coincide; the first wins.
    reminders = plan("""
milestones:
  - {id: x, title: X, when: 2024-06-03, units: [phong-noi-vu], reminders: [3d, 2d]}
""")
    assert fires(reminders, "phong-noi-vu") == [("3d", "2024-05-31T07:30:00+07:00")]


def test_reminders_are_sorted_by_fire_time_then_uid_then_unit() -> None:
    reminders = plan("""
milestones:
  - {id: b, title: B, when: 2024-05-30, units: [all], reminders: [0d]}
  - {id: a, title: A, when: 2024-05-30, units: [all], reminders: [0d, 1d]}
""")
    keys = [(r.fire_at, r.uid, r.unit) for r in reminders]
    assert keys == sorted(keys)
    assert keys[0][0] == datetime(2024, 5, 29, 7, 30, tzinfo=VN)
