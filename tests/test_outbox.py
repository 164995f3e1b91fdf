"""The outbox: atomic claims with leases, crash recovery, retries, catch-up.

On a real SQLite file and the real PostgreSQL; concurrent claimers are real threads
with their own connections.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from notifications.outbox import (
    Failed,
    Retry,
    Sent,
    claim_due,
    counts,
    mark_retry,
    mark_sent,
    next_due,
    record,
    release_expired,
    release_owned,
    skip_missed,
)
from scheduler.models import OutboxRow

T0 = datetime(2024, 5, 23, 0, 30, tzinfo=UTC)  # 07:30 in Hà Nội


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


def test_reminders_missed_for_longer_than_catch_up_are_skipped(factory) -> None:
    add_rows(factory, 1, fire_at=T0 - timedelta(days=3), kind="old")
    add_rows(factory, 1, fire_at=T0 - timedelta(hours=5), kind="reminder")
    # kind "old" is not a reminder: only reminders are skipped by age.
    with factory() as session, session.begin():
        row = session.scalars(select(OutboxRow).where(OutboxRow.kind == "old")).one()
        row.kind = "reminder"
    assert skip_missed(factory, now=T0, catch_up=timedelta(days=2)) == 1
    assert sorted(states(factory).values()) == ["pending", "skipped"]
