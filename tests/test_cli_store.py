"""`mocd db upgrade` and `mocd outbox` on a real SQLite file."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.settings import Settings
from notifications.planning import plan_reminders
from scheduler.apply import apply_revision
from scheduler.database import open_engine, session_factory
from scheduler.expand import Window, expand, working_calendar
from tests.conftest import RunCli
from tests.engine import UNITS, load

VN = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'store' / 'mocd.sqlite3'}"
    monkeypatch.setenv("MOCD_DATABASE_URL", url)
    return url


def test_outbox_before_upgrade_says_what_to_do(run_cli: RunCli, database: str) -> None:
    code, out, err = run_cli(["outbox"])
    assert (code, out) == (3, "")
    assert err == ("mocd: the database has no mocd tables yet: run `mocd db upgrade` "
                   "(or start `mocd run`)\n")


def test_upgrade_then_list_the_outbox(run_cli: RunCli, database: str) -> None:
    code, out, _ = run_cli(["db", "upgrade"])
    assert code == 0
    assert out.endswith("mocd.sqlite3: up to date\n")
    assert run_cli(["outbox"])[1] == "the outbox is empty\n"
    config = load(UNITS + """
milestones:
  - {id: ho-so, title: Gửi hồ sơ, when: 2024-05-30, units: [phong-noi-vu], reminders: [7d, 1d]}
""")
    occurrences = expand(config, Window(date(2024, 1, 1), date(2024, 12, 31)))
    settings = Settings()
    reminders = plan_reminders(occurrences, config.units, working_calendar(config),
                               settings.reminders, VN)
    apply_revision(session_factory(open_engine(database)), config, occurrences, reminders,
                   settings=settings, now=datetime(2024, 5, 1, tzinfo=VN))
    code, out, _ = run_cli(["outbox", "--format", "json"])
    assert code == 0
    rows = json.loads(out)
    assert [(r["kind"], r["unit"], r["offset"], r["fire_at"], r["state"]) for r in rows] == [
        ("reminder", "phong-noi-vu", "7d", "2024-05-23T07:30:00+07:00", "pending"),
        ("reminder", "phong-noi-vu", "1d", "2024-05-29T07:30:00+07:00", "pending"),
    ]
    assert list(rows[0]) == ["id", "kind", "unit", "occurrence_uids", "offset", "fire_at",
                             "state", "attempts", "next_attempt_at", "last_error",
                             "smtp_reply", "message_id"]
    assert run_cli(["outbox", "--state", "sent"])[1] == "the outbox is empty (state sent)\n"
    text = run_cli(["outbox"])[1].splitlines()
    assert len(text) == 2
    assert "2024-05-23 07:30 pending   reminder" in text[0]


def test_an_unreachable_database_is_one_line_exit_3(run_cli: RunCli,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCD_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    code, out, err = run_cli(["outbox"])
    assert (code, out) == (3, "")
    assert err.startswith("mocd: cannot open the database: OperationalError")
    assert err.count("\n") == 1


def test_a_schema_behind_the_newest_migration_says_so(run_cli: RunCli, database: str) -> None:
    from scheduler.database import head_revision, upgrade

    upgrade(open_engine(database), "0003")
    code, out, err = run_cli(["outbox"])
    assert (code, out) == (3, "")
    assert err == (f"mocd: the database schema is at revision 0003, this mocd needs "
                   f"{head_revision()}: run `mocd db upgrade`\n")


def test_the_upgrade_names_the_day_in_reminder_keys(database: str) -> None:
    """Keys written by mocd before the day was part of them keep their rows: a sent
    reminder stays the same row (so it is not sent again), with the day appended."""
    from sqlalchemy import text

    from scheduler.database import upgrade

    engine = open_engine(database)
    upgrade(engine, "0003")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO occurrences (uid, kind, first_day, last_day, due, cancelled, "
            "fingerprint, data, sequence, changed_at) VALUES ('m@x', 'deadline', "
            "'2024-05-30', '2024-05-30', '2024-05-30', 0, 'f', '{}', 0, '2024-05-01')"))
        for key, kind, uids in [("reminder:m@x:u:1d", "reminder", '["m@x"]'),
                                ("overdue:m@x:u:1d", "overdue", '["m@x"]'),
                                ("reminder:gone@x:u:1d", "reminder", '["gone@x"]'),
                                ("change:m@x:u:1", "change", '["m@x"]')]:
            connection.execute(text(
                "INSERT INTO outbox (idempotency_key, kind, unit, occurrence_uids, fire_at, "
                "state, attempts, next_attempt_at, payload, created_at) VALUES (:k, :kind, "
                "'u', :uids, '2024-05-29', 'sent', 1, '2024-05-29', '{}', '2024-05-01')"),
                {"k": key, "kind": kind, "uids": uids})
    upgrade(engine)
    with engine.connect() as connection:
        keys = sorted(connection.scalars(text("SELECT idempotency_key FROM outbox")))
    assert keys == ["change:m@x:u:1", "overdue:m@x:u:1d:2024-05-30",
                    "reminder:gone@x:u:1d", "reminder:m@x:u:1d:2024-05-30"]
    engine.dispose()


def test_outbox_retry_queues_failed_rows_again(run_cli: RunCli, database: str) -> None:
    from sqlalchemy import update

    from scheduler.models import OutboxRow

    run_cli(["db", "upgrade"])
    config = load(UNITS + """
milestones:
  - {id: ho-so, title: Gửi hồ sơ, when: 2024-05-30, units: [phong-chuyen-mon], reminders: [1d]}
""")
    occurrences = expand(config, Window(date(2024, 1, 1), date(2024, 12, 31)))
    settings = Settings()
    reminders = plan_reminders(occurrences, config.units, working_calendar(config),
                               settings.reminders, VN)
    factory = session_factory(open_engine(database))
    apply_revision(factory, config, occurrences, reminders, settings=settings,
                   now=datetime(2024, 5, 1, tzinfo=VN))
    assert run_cli(["outbox", "retry"])[1] == "no failed emails to retry\n"
    with factory.begin() as session:
        session.execute(update(OutboxRow).values(state="failed", attempts=8,
                                                 last_error="550 relaying denied"))
    code, out, err = run_cli(["outbox", "retry", "--unit", "phong-noi-vu"])
    assert (code, err) == (0, "")
    assert out == ("queued 1 failed email of phong-noi-vu for another try; the running "
                   "daemon sends them within a minute\n")
    assert run_cli(["outbox", "retry", "--since", "2024-05-30"])[1] == (
        "no failed emails due since 2024-05-30 to retry\n")
    assert run_cli(["outbox", "retry"])[1].startswith("queued 1 failed email for another try")
    code, out, _ = run_cli(["outbox", "--state", "pending", "--format", "json"])
    assert [(r["attempts"], r["state"]) for r in json.loads(out)] == [(0, "pending")] * 2
    code, _, err = run_cli(["outbox", "retry", "--since", "30/5/2024"])
    assert code == 2
    assert "--since" in err
