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
