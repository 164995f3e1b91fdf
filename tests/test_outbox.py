"""The outbox: atomic claims with leases, crash recovery, retries, catch-up.

On a real SQLite file and the real PostgreSQL; concurrent claimers are real threads
with their own connections.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from notifications import outbox
from notifications.outbox import (
    HELD,
    MISSED,
    Claimed,
    Failed,
    Retry,
    Sent,
    counts,
    mark_retry,
    mark_sent,
    next_due,
    note_dispatch,
    record,
    release_expired,
    release_owned,
    release_owners,
    renew,
    sending_owners,
)
from scheduler.models import OutboxRow

T0 = datetime(2024, 5, 23, 0, 30, tzinfo=UTC)  # 07:30 in Hà Nội
LEASE = timedelta(minutes=5)


def claim_due(factory: sessionmaker[Session], *, now: datetime, owner: str,
              lease: timedelta = LEASE, limit: int = 500) -> list[Claimed]:
    return outbox.claim_due(factory, now=now, owner=owner, lease=lease, limit=limit)


def add_rows(factory: sessionmaker[Session], n: int, fire_at: datetime = T0,
             kind: str = "reminder") -> None:
    rows = [{"idempotency_key": f"{kind}:u{i}", "kind": kind, "unit": f"unit-{i}",
             "occurrence_uids": [f"m{i}@mocd.local"], "offset": "1d", "fire_at": fire_at,
             "state": "pending", "attempts": 0, "next_attempt_at": fire_at, "payload": {},
             "created_at": fire_at - timedelta(days=30)} for i in range(n)]
    with factory() as session, session.begin():
        session.execute(insert(OutboxRow), rows)


def states(factory: sessionmaker[Session]) -> dict[str, str]:
    with factory() as session:
        return dict(session.execute(select(OutboxRow.idempotency_key, OutboxRow.state)).all())


def test_only_due_rows_are_claimed_and_become_sending_with_a_lease(factory) -> None:
    add_rows(factory, 3)
    add_rows(factory, 2, fire_at=T0 + timedelta(days=1), kind="later")
    claimed = claim_due(factory, now=T0, owner="a", lease=timedelta(minutes=5))
    assert sorted(c.idempotency_key for c in claimed) == ["reminder:u0", "reminder:u1",
                                                          "reminder:u2"]
    assert all(c.attempts == 1 for c in claimed)
    assert counts(factory) == {"sending": 3, "pending": 2}
    assert claim_due(factory, now=T0, owner="b") == []  # nothing due is left unclaimed
    assert next_due(factory) == T0 + timedelta(days=1)


def test_concurrent_claimers_never_get_the_same_row(factory) -> None:
    add_rows(factory, 500)
    got: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        mine: list[int] = []
        try:
            while batch := claim_due(factory, now=T0, owner=name, limit=7):
                mine.extend(c.id for c in batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        got[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    claimed = [row_id for ids in got.values() for row_id in ids]
    assert len(claimed) == 500
    assert len(set(claimed)) == 500  # each row claimed exactly once


def test_an_expired_lease_returns_the_row_to_pending(factory) -> None:
    add_rows(factory, 2)
    claim_due(factory, now=T0, owner="crashed", lease=timedelta(minutes=5))
    assert release_expired(factory, now=T0 + timedelta(minutes=4)) == 0
    assert release_expired(factory, now=T0 + timedelta(minutes=6)) == 2
    again = claim_due(factory, now=T0 + timedelta(minutes=6), owner="b")
    assert [c.attempts for c in again] == [2, 2]


def test_a_clean_stop_gives_back_its_claims(factory) -> None:
    add_rows(factory, 2)
    claim_due(factory, now=T0, owner="stopping")
    assert release_owned(factory, owner="other") == 0
    assert release_owned(factory, owner="stopping") == 2
    assert counts(factory) == {"pending": 2}


def test_sent_rows_keep_the_server_reply(factory) -> None:
    add_rows(factory, 1)
    (claimed,) = claim_due(factory, now=T0, owner="a")
    mark_sent(factory, [claimed.id], now=T0, reply="250 2.0.0 Ok: queued as ABC",
              message_id="<x@mocd.local>")
    with factory() as session:
        row = session.get(OutboxRow, claimed.id)
        assert row is not None
        assert (row.state, row.smtp_reply, row.lease_until) == (
            "sent", "250 2.0.0 Ok: queued as ABC", None)


def test_many_outcomes_are_recorded_in_one_transaction(factory) -> None:
    """The dispatcher's group commit: sent rows (each with its own reply and Message-ID),
    a retry, a last retry that fails with its report, a permanent failure with its report."""
    add_rows(factory, 6)
    claimed = sorted(claim_due(factory, now=T0, owner="a"), key=lambda c: c.id)
    ids = [c.id for c in claimed]
    report = {"to": "x@y", "subject": "s", "reply": "550 no", "attempts": 1,
              "permanent": True, "unit": "unit-4", "at": None}
    new_states = record(factory, [
        Sent((ids[0],), "250 Ok: A", "<a@mocd.local>"),
        Sent((ids[1], ids[2]), "250 Ok: B", "<b@mocd.local>"),
        Retry((ids[3],), "451 later", attempts=1, max_attempts=8),
        Retry((ids[4],), "451 again", attempts=8, max_attempts=8, report=report),
        Failed((ids[5],), "550 no such user", report=report),
    ], now=T0)
    assert new_states == ["sent", "sent", "pending", "failed", "failed"]
    with factory() as session:
        rows = {r.id: r for r in session.scalars(select(OutboxRow))}
    assert [(rows[i].state, rows[i].message_id, rows[i].smtp_reply) for i in ids[:3]] == [
        ("sent", "<a@mocd.local>", "250 Ok: A"), ("sent", "<b@mocd.local>", "250 Ok: B"),
        ("sent", "<b@mocd.local>", "250 Ok: B")]
    assert all(rows[i].lease_until is None and rows[i].sent_at == T0 for i in ids[:3])
    assert rows[ids[3]].next_attempt_at > T0
    assert [r.kind for r in rows.values()].count("delivery_failure") == 2


def test_transient_failures_back_off_then_fail_after_max_attempts(factory) -> None:
    add_rows(factory, 1)
    (claimed,) = claim_due(factory, now=T0, owner="a")
    state = mark_retry(factory, [claimed.id], now=T0, error="451 try later",
                       attempts=claimed.attempts, max_attempts=2)
    assert state == "pending"
    due = next_due(factory)
    assert due is not None
    assert T0 + timedelta(seconds=30) <= due <= T0 + timedelta(minutes=1)
    (again,) = claim_due(factory, now=due, owner="a")
    assert mark_retry(factory, [again.id], now=due, error="451 still", attempts=again.attempts,
                      max_attempts=2) == "failed"
    assert counts(factory) == {"failed": 1}


def test_a_claim_never_splits_one_email(factory) -> None:
    """A unit's reminders firing at the same moment are one email: a claim of 2 rows that
    reaches one of unit-0's three reminders takes the other two with it."""
    rows = [{"idempotency_key": f"reminder:m{i}:unit-0:1d", "kind": "reminder",
             "unit": "unit-0", "occurrence_uids": [f"m{i}"], "offset": "1d", "fire_at": T0,
             "state": "pending", "attempts": 0, "next_attempt_at": T0, "payload": {},
             "created_at": T0} for i in range(3)]
    with factory() as session, session.begin():
        session.execute(insert(OutboxRow), rows)
    add_rows(factory, 3)  # unit-0 … unit-2, one row each (unit-0's at the same moment)
    first = claim_due(factory, now=T0, owner="a", limit=2)
    assert sorted(c.idempotency_key for c in first) == [
        "reminder:m0:unit-0:1d", "reminder:m1:unit-0:1d", "reminder:m2:unit-0:1d",
        "reminder:u0"]
    assert len(claim_due(factory, now=T0, owner="b", limit=2)) == 2


def test_a_renewal_keeps_only_the_rows_still_owned(factory) -> None:
    add_rows(factory, 3)
    claimed = claim_due(factory, now=T0, owner="a", lease=timedelta(seconds=30))
    ids = [c.id for c in claimed]
    assert renew(factory, ids, owner="a", now=T0 + timedelta(seconds=20),
                 lease=timedelta(seconds=30)) == set(ids)
    assert release_expired(factory, now=T0 + timedelta(seconds=40)) == 0  # renewed
    assert release_expired(factory, now=T0 + timedelta(seconds=51)) == 3
    taken = claim_due(factory, now=T0 + timedelta(seconds=51), owner="b", limit=1)
    assert renew(factory, ids, owner="a", now=T0 + timedelta(seconds=52),
                 lease=timedelta(seconds=30)) == set()  # b has one, two are pending
    assert renew(factory, [taken[0].id], owner="b", now=T0 + timedelta(seconds=52),
                 lease=timedelta(seconds=30)) == {taken[0].id}


def test_the_rows_of_a_dead_owner_are_released_at_once(factory) -> None:
    add_rows(factory, 4)
    claim_due(factory, now=T0, owner="dead", limit=3)
    claim_due(factory, now=T0, owner="alive", limit=1)
    assert sending_owners(factory) == {"dead", "alive"}
    assert release_owners(factory, ["dead"]) == 3
    assert counts(factory) == {"pending": 3, "sending": 1}


def test_reminders_late_by_more_than_catch_up_are_skipped_when_the_clock_agrees(
        factory) -> None:
    add_rows(factory, 1, fire_at=T0 - timedelta(days=3), kind="old")
    add_rows(factory, 1, fire_at=T0 - timedelta(hours=5), kind="reminder")
    # kind "old" is not a reminder: only reminders are skipped by age.
    with factory() as session, session.begin():
        row = session.scalars(select(OutboxRow).where(OutboxRow.kind == "old")).one()
        row.kind = "reminder"
    catch_up = timedelta(days=2)
    first = note_dispatch(factory, now=T0 - timedelta(minutes=1), owner="a", catch_up=catch_up)
    assert (first.previous, first.jump) == (None, "none")  # a new store: nothing to prove
    reading = note_dispatch(factory, now=T0, owner="a", catch_up=catch_up)
    assert (reading.previous, reading.jump, reading.skipped) == (
        T0 - timedelta(minutes=1), "none", 1)
    assert sorted(states(factory).values()) == ["pending", "skipped"]
    with factory() as session:
        skipped = session.scalars(select(OutboxRow).where(OutboxRow.state == "skipped")).one()
    assert skipped.last_error == MISSED


def test_a_clock_that_jumps_forward_holds_reminders_and_gives_them_back_when_fixed(
        factory) -> None:
    """The clock 3 days ahead at start: the reminders due in the next real day look more
    than catch-up late. They are held, not skipped for good; when the clock is fixed (it
    goes back), they are pending again and go out at their time."""
    catch_up = timedelta(days=2)
    real = T0
    note_dispatch(factory, now=real - timedelta(minutes=5), owner="a", catch_up=catch_up)
    add_rows(factory, 2, fire_at=real + timedelta(hours=6))  # due in 6 real hours
    wrong = real + timedelta(days=3)
    ahead = note_dispatch(factory, now=wrong, owner="a", catch_up=catch_up)
    assert (ahead.jump, ahead.held, ahead.skipped) == ("forward", 2, 0)
    assert counts(factory) == {"skipped": 2}
    fixed = note_dispatch(factory, now=real + timedelta(minutes=1), owner="a",
                          catch_up=catch_up)
    assert (fixed.jump, fixed.revived) == ("backward", 2)
    assert counts(factory) == {"pending": 2}
    assert next_due(factory) == real + timedelta(hours=6)
    assert note_dispatch(factory, now=real + timedelta(minutes=2), owner="a",
                         catch_up=catch_up).jump == "none"


def test_a_real_downtime_keeps_the_missed_reminders_held(factory) -> None:
    catch_up = timedelta(days=2)
    note_dispatch(factory, now=T0, owner="a", catch_up=catch_up)
    add_rows(factory, 1, fire_at=T0 + timedelta(hours=1))  # fired while it was down
    back = note_dispatch(factory, now=T0 + timedelta(days=4), owner="b", catch_up=catch_up)
    assert (back.jump, back.held) == ("forward", 1)
    again = note_dispatch(factory, now=T0 + timedelta(days=4, minutes=1), owner="b",
                          catch_up=catch_up)
    assert (again.jump, again.revived) == ("none", 0)
    with factory() as session:
        row = session.scalars(select(OutboxRow)).one()
    assert (row.state, row.last_error) == ("skipped", HELD)
