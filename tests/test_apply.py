"""Applying config revisions to the store: diff by UID, sequences, notices, outbox re-planning.

Runs on a real SQLite file and on the real PostgreSQL (MOCD_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from notifications.planning import plan_reminders
from scheduler.apply import PLANNING_HORIZON, ApplyResult, apply_revision
from scheduler.expand import Window, expand, working_calendar
from scheduler.models import ConfigRevision, OutboxRow, StoredOccurrence
from tests.engine import UNITS, load

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2024, 5, 1, 9, 0, tzinfo=VN)
SETTINGS = Settings()


def config_text(hop_dong: str = "2024-05-30", extra: str = "") -> str:
    return UNITS + f"""
milestones:
  - {{id: ho-so, title: Gửi hồ sơ, when: {hop_dong}, units: [phong-chuyen-mon],
     reminders: [7d, 1d]}}
  - {{id: bao-cao, title: Báo cáo, when: 2024-06-28, units: [ubnd-cac-xa], reminders: [3d]}}
{extra}"""


def apply(factory: sessionmaker[Session], text: str, now: datetime = NOW) -> ApplyResult:
    config = load(text)
    occurrences = expand(config, Window(date(2023, 1, 1), date(2026, 12, 31)))
    reminders = plan_reminders(occurrences, config.units, working_calendar(config),
                               SETTINGS.reminders, VN)
    return apply_revision(factory, config, occurrences, reminders, settings=SETTINGS, now=now)


def outbox(factory: sessionmaker[Session], kind: str | None = None) -> list[OutboxRow]:
    with factory() as session:
        query = select(OutboxRow).order_by(OutboxRow.idempotency_key)
        if kind:
            query = query.where(OutboxRow.kind == kind)
        return list(session.scalars(query))


def occurrence(factory: sessionmaker[Session], uid: str) -> StoredOccurrence:
    with factory() as session:
        row = session.get(StoredOccurrence, uid)
        assert row is not None
        return row


def test_first_load_stores_occurrences_and_future_reminders_without_notices(factory) -> None:
    result = apply(factory, config_text())
    assert (result.applied, result.first_load, result.inserted, result.notices) == (
        True, True, 2, 0)
    # ho-so: 7d → 23/5, 1d → 29/5, to the two phòng with email; bao-cao: 3d → 25/6 to xã A
    # (xã B has no email). All after NOW.
    keys = [row.idempotency_key for row in outbox(factory)]
    assert keys == [
        "reminder:milestone.bao-cao@mocd.local:ubnd-xa-a:3d:2024-06-28",
        "reminder:milestone.ho-so@mocd.local:phong-dan-toc:1d:2024-05-30",
        "reminder:milestone.ho-so@mocd.local:phong-dan-toc:7d:2024-05-30",
        "reminder:milestone.ho-so@mocd.local:phong-noi-vu:1d:2024-05-30",
        "reminder:milestone.ho-so@mocd.local:phong-noi-vu:7d:2024-05-30",
    ]
    row = outbox(factory)[1]
    assert row.state == "pending"
    assert row.fire_at == datetime(2024, 5, 29, 0, 30, tzinfo=UTC)  # 07:30 in Hà Nội
    assert occurrence(factory, "milestone.ho-so@mocd.local").sequence == 0


def test_the_same_revision_is_applied_once(factory) -> None:
    assert apply(factory, config_text()).applied
    again = apply(factory, config_text())
    assert not again.applied
    with factory() as session:
        assert len(list(session.scalars(select(ConfigRevision)))) == 1


def test_reminders_past_by_more_than_catch_up_are_not_created(factory) -> None:
    # 26/5 09:00: the 7d reminder fired on 23/5 07:30, more than catch_up (2 days) ago.
    result = apply(factory, config_text(), now=datetime(2024, 5, 26, 9, 0, tzinfo=VN))
    keys = [row.idempotency_key for row in outbox(factory)]
    assert "reminder:milestone.ho-so@mocd.local:phong-noi-vu:7d:2024-05-30" not in keys
    assert "reminder:milestone.ho-so@mocd.local:phong-noi-vu:1d:2024-05-30" in keys
    assert (result.reminders_late, result.reminders_too_late) == (0, 2)  # the two phòng


def test_a_date_change_within_90_days_notifies_and_replans(factory) -> None:
    apply(factory, config_text())
    result = apply(factory, config_text(hop_dong="2024-06-06"))
    assert (result.updated, result.unchanged, result.notices) == (1, 1, 2)
    notices = outbox(factory, "change")
    assert [n.unit for n in notices] == ["phong-dan-toc", "phong-noi-vu"]
    assert notices[0].payload["before"]["due"] == "2024-05-30"
    assert notices[0].payload["sequence"] == 1
    assert occurrence(factory, "milestone.ho-so@mocd.local").sequence == 1
    assert occurrence(factory, "milestone.bao-cao@mocd.local").sequence == 0
    rows = {r.idempotency_key: r for r in outbox(factory, "reminder")}
    # The reminders of the new day: 1d before Thu 6/6 is Wed 5/6, 07:30 local.
    new = rows["reminder:milestone.ho-so@mocd.local:phong-noi-vu:1d:2024-06-06"]
    assert (new.state, new.fire_at) == ("pending", datetime(2024, 6, 5, 0, 30, tzinfo=UTC))
    old = rows["reminder:milestone.ho-so@mocd.local:phong-noi-vu:1d:2024-05-30"]
    assert old.state == "cancelled"


def test_a_change_of_time_or_place_within_the_day_notifies(factory) -> None:
    """Moved from 08:30 to 09:00, then given a place: both are changes a unit acts on."""
    event = ("  - {id: hop, title: Họp, kind: event, when: 2024-05-20 %s, duration: 2h,"
             " units: [phong-noi-vu]%s}")
    apply(factory, config_text(extra=event % ("08:30", "")))
    moved = apply(factory, config_text(extra=event % ("09:00", "")))
    assert moved.notices == 1
    placed = apply(factory, config_text(extra=event % ("09:00", ", location: Hội trường")))
    assert placed.notices == 1
    retitled = apply(factory, config_text(extra=event.replace("Họp", "Họp giao ban")
                                          % ("09:00", ", location: Hội trường")))
    assert (retitled.updated, retitled.notices) == (1, 0)  # the feed shows a new title
    payloads = [n.payload for n in outbox(factory, "change")]
    assert [p["before"]["start_at"] for p in payloads] == [
        "2024-05-20T08:30:00", "2024-05-20T09:00:00"]
    assert [p["before"]["location"] for p in payloads] == ["", ""]
    assert [p["sequence"] for p in payloads] == [1, 2]


def test_sent_reminders_are_never_touched_or_resent(factory) -> None:
    apply(factory, config_text())
    key = "reminder:milestone.ho-so@mocd.local:phong-noi-vu:7d:2024-05-30"
    with factory() as session, session.begin():
        row = session.scalars(select(OutboxRow).where(OutboxRow.idempotency_key == key)).one()
        row.state = "sent"
        sent_fire_at = row.fire_at
    apply(factory, config_text(hop_dong="2024-06-06"))
    rows = {r.idempotency_key: r for r in outbox(factory, "reminder")}
    assert (rows[key].state, rows[key].fire_at) == ("sent", sent_fire_at)
    # The new day is reminded again: 7 days before 6/6.
    again = rows["reminder:milestone.ho-so@mocd.local:phong-noi-vu:7d:2024-06-06"]
    assert (again.state, again.fire_at) == ("pending", datetime(2024, 5, 30, 0, 30, tzinfo=UTC))


# -- catch-up: reminders whose time passed before their item was added or moved ---------

LATE_NOW = datetime(2024, 5, 10, 10, 0, tzinfo=VN)  # a Friday, 10:00
LATE = "  - {id: moi, title: Việc mới, when: %s, units: [phong-noi-vu], reminders: %s}"


def late_rows(factory: sessionmaker[Session]) -> dict[str, tuple[str, datetime]]:
    return {r.idempotency_key.split(":")[3]: (r.state, r.fire_at.astimezone(VN))
            for r in outbox(factory, "reminder") if "milestone.moi@" in r.idempotency_key}


def test_a_deadline_added_after_its_reminder_time_is_reminded_at_once(factory) -> None:
    apply(factory, config_text(), now=LATE_NOW - timedelta(days=1))
    result = apply(factory, config_text(extra=LATE % ("2024-05-11", "[1d]")), now=LATE_NOW)
    # 1d before Saturday 11/5 fired today at 07:30: added at 10:00, it is due at once.
    assert late_rows(factory) == {"1d": ("pending", datetime(2024, 5, 10, 7, 30, tzinfo=VN))}
    assert (result.reminders_late, result.reminders_too_late) == (1, 0)


def test_the_first_start_catches_up_too(factory) -> None:
    apply(factory, config_text(extra=LATE % ("2024-05-11", "[1d]")), now=LATE_NOW)
    assert late_rows(factory) == {"1d": ("pending", datetime(2024, 5, 10, 7, 30, tzinfo=VN))}


def test_only_the_latest_past_reminder_of_an_item_is_sent(factory) -> None:
    """Due today, added at 10:00: the 1d reminder (yesterday 07:30) and the 0d (today
    07:30) both passed within catch-up; one email says it is due today."""
    apply(factory, config_text(), now=LATE_NOW - timedelta(days=1))
    result = apply(factory, config_text(extra=LATE % ("2024-05-10", "[3d, 1d, 0d]")),
                   now=LATE_NOW)
    assert late_rows(factory) == {"0d": ("pending", datetime(2024, 5, 10, 7, 30, tzinfo=VN))}
    assert (result.reminders_late, result.reminders_too_late) == (1, 2)


def test_no_catch_up_once_the_item_is_over_or_longer_ago_than_catch_up(factory) -> None:
    apply(factory, config_text(), now=LATE_NOW - timedelta(days=1))
    result = apply(factory, config_text(extra=LATE % ("2024-05-09", "[0d]")), now=LATE_NOW)
    assert late_rows(factory) == {}  # due yesterday: over
    assert result.reminders_too_late == 1


def test_a_pending_reminder_moved_into_the_far_past_is_skipped(factory) -> None:
    """Same day, same offset, an earlier fire time: days off declared on 13–15/5 move the
    1d reminder of Thu 16/5 from Wed 15/5 back to Fri 10/5 … after 10/5 10:00 it would be
    due, so within catch-up it is pending; with the days off from 9/5 it moves to Wed 8/5,
    more than catch-up ago: skipped."""
    item = LATE % ("2024-05-16", "[1d]")
    apply(factory, config_text(extra=item), now=LATE_NOW - timedelta(days=3))
    off = "calendar: {extra_holidays: [{from: %s, to: 2024-05-15, name: Nghỉ}]}\n"
    apply(factory, off % "2024-05-13" + config_text(extra=item), now=LATE_NOW)
    assert late_rows(factory) == {"1d": ("pending", datetime(2024, 5, 10, 7, 30, tzinfo=VN))}
    result = apply(factory, off % "2024-05-09" + config_text(extra=item), now=LATE_NOW)
    assert late_rows(factory) == {"1d": ("skipped", datetime(2024, 5, 8, 7, 30, tzinfo=VN))}
    assert result.reminders_too_late == 1


def test_a_unit_that_confirmed_gets_no_reminders_for_the_moved_day(factory) -> None:
    from notifications.confirmations import confirm

    apply(factory, config_text())
    confirm(factory, "milestone.ho-so@mocd.local", "phong-noi-vu", now=NOW)
    apply(factory, config_text(hop_dong="2024-06-06"))
    units = {r.unit for r in outbox(factory, "reminder")
             if r.idempotency_key.endswith("2024-06-06") and r.state == "pending"}
    assert units == {"phong-dan-toc"}


def test_a_far_away_date_change_bumps_the_sequence_without_a_notice(factory) -> None:
    # Both the old (2/12) and the new day (9/12) are more than 90 days after 1/5/2024.
    far = "  - {id: tong-ket, title: Tổng kết, when: %s, units: [phong-noi-vu]}"
    apply(factory, config_text(extra=far % "2024-12-02"))
    result = apply(factory, config_text(extra=far % "2024-12-09"))
    assert (result.updated, result.notices) == (1, 0)
    assert occurrence(factory, "milestone.tong-ket@mocd.local").sequence == 1


def test_moving_a_near_date_far_away_still_notifies(factory) -> None:
    # 30/5 is within 90 days: its units must learn that it moved, even to December.
    apply(factory, config_text())
    assert apply(factory, config_text(hop_dong="2024-12-30")).notices == 2


def test_removing_a_milestone_cancels_its_reminders_and_notifies(factory) -> None:
    apply(factory, config_text())
    text = config_text().replace(
        "  - {id: bao-cao, title: Báo cáo, when: 2024-06-28, units: [ubnd-cac-xa], "
        "reminders: [3d]}\n", "")
    result = apply(factory, text)
    assert (result.removed, result.reminders_cancelled, result.notices) == (1, 1, 1)
    assert [(n.unit, n.occurrence_uids) for n in outbox(factory, "cancellation")] == [
        ("ubnd-xa-a", ["milestone.bao-cao@mocd.local"])]
    states = {r.idempotency_key: r.state for r in outbox(factory, "reminder")}
    assert states["reminder:milestone.bao-cao@mocd.local:ubnd-xa-a:3d:2024-06-28"] == "cancelled"
    stored = occurrence(factory, "milestone.bao-cao@mocd.local")
    assert stored.removed_at is not None
    assert stored.sequence == 1


def test_cancelled_true_notifies_once(factory) -> None:
    apply(factory, config_text())
    cancelled = config_text().replace("reminders: [3d]}", "reminders: [3d], cancelled: true}")
    assert apply(factory, cancelled).notices == 1
    assert apply(factory, cancelled + "\n# touched\n").notices == 0


def test_two_instances_applying_the_same_revision_apply_it_once(factory) -> None:
    results: list[ApplyResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(apply(factory, config_text()))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.applied for r in results) == [False, True]
    assert len(outbox(factory)) == 5


def test_a_milestone_removed_then_restored_is_reminded_again(factory) -> None:
    apply(factory, config_text())
    without = config_text().replace(
        "  - {id: bao-cao, title: Báo cáo, when: 2024-06-28, units: [ubnd-cac-xa], "
        "reminders: [3d]}\n", "")
    apply(factory, without)
    apply(factory, config_text())
    states = {r.idempotency_key: r.state for r in outbox(factory, "reminder")}
    assert states["reminder:milestone.bao-cao@mocd.local:ubnd-xa-a:3d:2024-06-28"] == "pending"


def test_reminders_enter_the_outbox_within_the_planning_horizon(factory) -> None:
    """Ten years of recurrences for thousands of units would be millions of rows at once:
    a reminder is put in the outbox once it fires within PLANNING_HORIZON, by the apply of
    that day (the daemon re-applies daily, the revision naming its window)."""
    far = (NOW + PLANNING_HORIZON + timedelta(days=30)).date()
    text = config_text(extra=f"""
  - {{id: xa, title: Xa, when: {far.isoformat()}, units: [phong-noi-vu], reminders: [7d]}}
""")
    apply(factory, text)
    keys = [r.idempotency_key for r in outbox(factory, "reminder")]
    assert not [k for k in keys if "milestone.xa@" in k]
    later = NOW + timedelta(days=60)  # now it fires within the horizon
    result = apply(factory, text + "# the next day's apply\n", now=later)
    assert result.summary["reminders_added"] == 1
    [row] = [r for r in outbox(factory, "reminder") if "milestone.xa@" in r.idempotency_key]
    assert row.state == "pending"
