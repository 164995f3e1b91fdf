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
        "reminder:milestone.bao-cao@mocd.local:ubnd-xa-a:3d",
        "reminder:milestone.ho-so@mocd.local:phong-dan-toc:1d",
        "reminder:milestone.ho-so@mocd.local:phong-dan-toc:7d",
        "reminder:milestone.ho-so@mocd.local:phong-noi-vu:1d",
        "reminder:milestone.ho-so@mocd.local:phong-noi-vu:7d",
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


def test_reminders_already_past_are_not_created(factory) -> None:
    apply(factory, config_text(), now=datetime(2024, 5, 24, 9, 0, tzinfo=VN))
    keys = [row.idempotency_key for row in outbox(factory)]
    assert "reminder:milestone.ho-so@mocd.local:phong-noi-vu:7d" not in keys  # fired 23/5
    assert "reminder:milestone.ho-so@mocd.local:phong-noi-vu:1d" in keys


def test_a_date_change_within_90_days_notifies_and_replans(factory) -> None:
    apply(factory, config_text())
    result = apply(factory, config_text(hop_dong="2024-06-06"))
    assert (result.updated, result.unchanged, result.notices) == (1, 1, 2)
    notices = outbox(factory, "change")
    assert [n.unit for n in notices] == ["phong-dan-toc", "phong-noi-vu"]
    assert notices[0].payload["old_day"] == "2024-05-30"
    assert notices[0].payload["new_day"] == "2024-06-06"
    assert occurrence(factory, "milestone.ho-so@mocd.local").sequence == 1
    assert occurrence(factory, "milestone.bao-cao@mocd.local").sequence == 0
    moved = {r.idempotency_key: r.fire_at for r in outbox(factory, "reminder")}
    # 1d before Thu 6/6 is Wed 5/6, 07:30 local.
    assert moved["reminder:milestone.ho-so@mocd.local:phong-noi-vu:1d"] == datetime(
        2024, 6, 5, 0, 30, tzinfo=UTC)


def test_sent_reminders_are_never_touched_or_resent(factory) -> None:
    apply(factory, config_text())
    key = "reminder:milestone.ho-so@mocd.local:phong-noi-vu:7d"
    with factory() as session, session.begin():
        row = session.scalars(select(OutboxRow).where(OutboxRow.idempotency_key == key)).one()
        row.state = "sent"
        sent_fire_at = row.fire_at
    apply(factory, config_text(hop_dong="2024-06-06"))
    rows = [r for r in outbox(factory, "reminder") if r.idempotency_key == key]
    assert [(r.state, r.fire_at) for r in rows] == [("sent", sent_fire_at)]


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
    assert states["reminder:milestone.bao-cao@mocd.local:ubnd-xa-a:3d"] == "cancelled"
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
    assert states["reminder:milestone.bao-cao@mocd.local:ubnd-xa-a:3d"] == "pending"


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
