"""Completion confirmations (SPEC §5): signed links, what confirming does to the outbox,
overdue notices, and the lead's list of units still pending.

Real SQLite file and PostgreSQL (the ``factory`` fixture), a real SMTP server (aiosmtpd on
127.0.0.1), a FixedClock moved by the tests.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from notifications.confirmations import (
    CONFIRMED,
    confirm,
    confirm_token,
    link_valid,
    read_confirm_token,
    undo,
)
from notifications.mail_url import MailServer
from notifications.messages import MessageFactory
from notifications.planning import plan_overdue, plan_reminders
from notifications.smtp import SmtpTransport
from scheduler.apply import apply_revision
from scheduler.clock import FixedClock
from scheduler.database import open_engine, session_factory, upgrade
from scheduler.dispatcher import Dispatcher, DispatchReport
from scheduler.expand import Window, expand, working_calendar
from scheduler.models import OutboxRow
from scheduler.status import CSV_FIELDS
from tests.conftest import RunCli
from tests.engine import UNITS, load
from tests.test_dispatch import Mailbox, mailbox  # noqa: F401 (a fixture)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
KEY = b"k" * 32
APPLIED = datetime(2024, 5, 1, 9, 0, tzinfo=VN)
UID = "milestone.ho-so@mocd.local"
# Due Thursday 30/5/2024; Phòng Nội vụ leads, two units do the work.
CONFIG = UNITS + """
milestones:
  - {id: ho-so, title: Gửi hồ sơ đề nghị khen thưởng, when: 2024-05-30,
     units: [phong-dan-toc, ubnd-xa-a], lead: phong-noi-vu, reminders: [7d, 1d]}
"""
SETTINGS = Settings(mail={"admin": "admin@huyen.example.vn"})


def applied(factory: sessionmaker[Session], text: str = CONFIG,
            now: datetime = APPLIED) -> None:
    config = load(text)
    occurrences = expand(config, Window(date(2024, 1, 1), date(2024, 12, 31)))
    calendar = working_calendar(config)
    planned = [*plan_reminders(occurrences, config.units, calendar, SETTINGS.reminders, VN),
               *plan_overdue(occurrences, config.units, calendar, SETTINGS.reminders, VN)]
    apply_revision(factory, config, occurrences, planned, settings=SETTINGS, now=now)


def dispatch(factory: sessionmaker[Session], port: int, at: datetime) -> DispatchReport:
    names = {uid: u.name for uid, u in load(CONFIG).units.items()}

    async def run() -> DispatchReport:
        transport = SmtpTransport(MailServer("127.0.0.1", port, "none", timeout=5), 2)
        dispatcher = Dispatcher(factory, transport, MessageFactory(SETTINGS, names), SETTINGS,
                                FixedClock(at), owner="test", confirm_key=KEY)
        try:
            return await dispatcher.run_once()
        finally:
            await transport.close()

    return asyncio.run(run())


def rows(factory: sessionmaker[Session]) -> dict[str, tuple[str, str | None]]:
    with factory() as session:
        return {r.idempotency_key: (r.state, r.last_error)
                for r in session.scalars(select(OutboxRow))}


# --- the link ---------------------------------------------------------------------------------


def test_a_token_names_its_occurrence_and_unit_and_nothing_else() -> None:
    token = confirm_token(KEY, UID, "ubnd-xa-a")
    assert read_confirm_token(KEY, token) == (UID, "ubnd-xa-a")
    assert token == confirm_token(KEY, UID, "ubnd-xa-a")  # the same link in every email
    assert all(c.isalnum() or c in "-_." for c in token)  # safe in a URL path


def test_a_token_for_unit_a_cannot_confirm_for_unit_b() -> None:
    token_a = confirm_token(KEY, UID, "ubnd-xa-a")
    token_b = confirm_token(KEY, UID, "phong-dan-toc")
    payload_b, _ = token_b.split(".")
    _, mac_a = token_a.split(".")
    assert read_confirm_token(KEY, f"{payload_b}.{mac_a}") is None  # B's payload, A's MAC
    assert read_confirm_token(b"another deployment" * 2, token_a) is None


@given(st.data())
def test_any_modified_token_is_refused(data: st.DataObject) -> None:
    token = confirm_token(KEY, UID, "ubnd-xa-a")
    i = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[i]))
    assert read_confirm_token(KEY, token[:i] + replacement + token[i + 1:]) is None


@given(st.text(max_size=300))
def test_garbage_is_refused_without_an_exception(text: str) -> None:
    assert read_confirm_token(KEY, text) is None


def test_a_link_is_honoured_until_90_days_after_the_day() -> None:
    assert link_valid(date(2024, 5, 30), date(2024, 8, 28))
    assert not link_valid(date(2024, 5, 30), date(2024, 8, 29))


# --- overdue planning -------------------------------------------------------------------------


def test_overdue_notices_go_to_the_units_not_the_lead_on_working_days() -> None:
    config = load(CONFIG)
    occurrences = expand(config, Window(date(2024, 1, 1), date(2024, 12, 31)))
    planned = plan_overdue(occurrences, config.units, working_calendar(config),
                           SETTINGS.reminders, VN)
    # 1d after Thu 30/5 is Fri 31/5; 7d is Thu 6/6. ubnd-xa-a has email, the lead is Cc'd.
    assert [(p.unit, p.offset.text, p.fire_at) for p in planned] == [
        ("phong-dan-toc", "1d", datetime(2024, 5, 31, 7, 30, tzinfo=VN)),
        ("ubnd-xa-a", "1d", datetime(2024, 5, 31, 7, 30, tzinfo=VN)),
        ("phong-dan-toc", "7d", datetime(2024, 6, 6, 7, 30, tzinfo=VN)),
        ("ubnd-xa-a", "7d", datetime(2024, 6, 6, 7, 30, tzinfo=VN)),
    ]
    assert {p.kind for p in planned} == {"overdue"}


@given(st.dates(date(2024, 1, 1), date(2026, 12, 31)), st.integers(0, 20))
def test_an_overdue_notice_fires_on_a_working_day_at_or_after_due_plus_offset(
        due: date, days: int) -> None:
    config = load(UNITS + f"""
milestones:
  - {{id: m, title: M, when: {due.isoformat()}, units: [phong-dan-toc], lead: phong-noi-vu}}
""")
    calendar = working_calendar(config)
    occurrences = expand(config, Window(date(2023, 1, 1), date(2027, 12, 31)))
    reminders = SETTINGS.reminders.model_copy(update={"overdue": (
        __import__("scheduler.offsets").offsets.parse_offset(f"{days}d"),)})
    [planned] = plan_overdue(occurrences, config.units, calendar, reminders, VN)
    fire_day = planned.fire_at.date()
    [occurrence] = occurrences
    assert occurrence.due is not None
    assert fire_day >= occurrence.due + timedelta(days=days)
    assert calendar.is_working_day(fire_day)
    assert all(not calendar.is_working_day(occurrence.due + timedelta(days=d))
               for d in range(days, (fire_day - occurrence.due).days))


# --- confirming --------------------------------------------------------------------------------


def test_confirming_cancels_that_units_reminders_and_overdue_notices_only(factory) -> None:
    applied(factory)
    outcome = confirm(factory, UID, "ubnd-xa-a", now=APPLIED, by="Văn thư xã A",
                      address="127.0.0.1")
    assert (outcome.already, outcome.cancelled) == (False, 4)  # 7d, 1d, overdue 1d and 7d
    state = rows(factory)
    mine = {k: v for k, v in state.items() if ":ubnd-xa-a:" in k}
    assert set(mine.values()) == {("cancelled", CONFIRMED)}
    assert all(v == ("pending", None) for k, v in state.items() if ":ubnd-xa-a:" not in k)
    again = confirm(factory, UID, "ubnd-xa-a", now=APPLIED + timedelta(days=2))
    assert (again.already, again.confirmed_at, again.cancelled) == (True, APPLIED, 0)


def test_undo_within_24_hours_restores_the_reminders(factory) -> None:
    applied(factory)
    confirm(factory, UID, "ubnd-xa-a", now=APPLIED)
    assert undo(factory, UID, "ubnd-xa-a", now=APPLIED + timedelta(hours=23))
    assert all(state == "pending" for state, _ in rows(factory).values())
    assert not undo(factory, UID, "ubnd-xa-a", now=APPLIED + timedelta(hours=23))  # once
    confirm(factory, UID, "ubnd-xa-a", now=APPLIED + timedelta(hours=24))
    assert not undo(factory, UID, "ubnd-xa-a", now=APPLIED + timedelta(hours=48, seconds=1))


def test_a_reload_never_revives_what_a_confirmation_cancelled(factory) -> None:
    applied(factory)
    confirm(factory, UID, "ubnd-xa-a", now=APPLIED)
    moved = CONFIG.replace("2024-05-30", "2024-05-31")  # a new revision moves the date
    applied(factory, moved, now=APPLIED + timedelta(hours=1))
    mine = {k: v for k, v in rows(factory).items()
            if ":ubnd-xa-a:" in k and k.startswith(("reminder:", "overdue:"))}
    assert len(mine) == 4
    assert set(mine.values()) == {("cancelled", CONFIRMED)}
    # The date change itself is still news to the unit: it gets the change notice.
    assert rows(factory)[f"change:{UID}:ubnd-xa-a:1"] == ("pending", None)


# --- what gets sent --------------------------------------------------------------------------


def test_after_confirmation_only_the_pending_units_are_reminded_and_chased(
        factory, mailbox: tuple[Mailbox, int]) -> None:  # noqa: F811
    box, port = mailbox
    applied(factory)
    confirm(factory, UID, "ubnd-xa-a", now=datetime(2024, 5, 24, 10, 0, tzinfo=VN))

    # Wed 29/5 07:30, the 1d reminder: Phòng Dân tộc still gets it, xã A does not. The lead
    # (Phòng Nội vụ) is reminded too, with who is pending and the tally.
    report = dispatch(factory, port, datetime(2024, 5, 29, 7, 30, tzinfo=VN))
    assert report.failed == 0
    got = {rcpts: message for rcpts, message in box.received}
    assert set(got) == {("dantoc@huyen.example.vn",), ("noivu@huyen.example.vn",)}
    lead = got[("noivu@huyen.example.vn",)].get_body(("plain",))
    assert lead is not None
    text = lead.get_content()
    assert "Đơn vị chưa xác nhận hoàn thành: Phòng Dân tộc" in text
    assert "Đã xác nhận: 1/2 đơn vị" in text
    unit = got[("dantoc@huyen.example.vn",)].get_body(("plain",))
    assert unit is not None
    link = next(line for line in unit.get_content().splitlines() if "/confirm/" in line)
    token = link.rsplit("/confirm/", 1)[1].strip()
    assert read_confirm_token(KEY, token) == (UID, "phong-dan-toc")

    # Fri 31/5 07:30, overdue: only Phòng Dân tộc, the lead in Cc.
    box.received.clear()
    dispatch(factory, port, datetime(2024, 5, 31, 7, 30, tzinfo=VN))
    [(rcpts, overdue)] = box.received
    assert rcpts == ("dantoc@huyen.example.vn", "noivu@huyen.example.vn")
    assert overdue["Subject"].startswith("[Quá hạn] Đã quá hạn 1 ngày: Gửi hồ sơ")
    assert [a.addr_spec for a in overdue["Cc"].addresses] == ["noivu@huyen.example.vn"]


# --- the lead's view: mocd status -------------------------------------------------------------

CAMPAIGN = UNITS + """
campaigns:
  - id: thi-dua-2024
    title: Phong trào thi đua năm 2024
    owner: phong-noi-vu
    period: {start: 2024-01-01, end: 2024-12-31}
    units: [phong-dan-toc, ubnd-xa-a]
    milestones:
      - {id: dang-ky, title: Đăng ký thi đua, when: 2024-03-15, lead: phong-noi-vu}
      - {id: so-ket, title: Báo cáo sơ kết, when: 2024-06-28, lead: phong-noi-vu}
"""


def campaign_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'store' / 'mocd.sqlite3'}"
    monkeypatch.setenv("MOCD_DATABASE_URL", url)
    engine = open_engine(url)
    upgrade(engine)
    factory = session_factory(engine)
    applied(factory, CAMPAIGN, now=datetime(2024, 1, 2, 9, 0, tzinfo=VN))
    return factory


def test_status_shows_confirmed_pending_and_overdue_units(
        run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    factory = campaign_store(tmp_path, monkeypatch)
    confirm(factory, "thi-dua-2024.dang-ky@mocd.local", "ubnd-xa-a",
            now=datetime(2024, 3, 10, 15, 0, tzinfo=VN))
    now = datetime(2024, 3, 20, 9, 0, tzinfo=VN)  # after the first deadline, before the next

    code, out, err = run_cli(["status", "thi-dua-2024", "--format", "json"], now=now)
    assert (code, err) == (0, "")
    first, second = json.loads(out)
    assert (first["uid"], first["due"], first["lead"]) == (
        "thi-dua-2024.dang-ky@mocd.local", "2024-03-15", "phong-noi-vu")
    assert [(u["unit"], u["state"], u["confirmed_at"]) for u in first["units"]] == [
        ("phong-dan-toc", "overdue", None),
        ("ubnd-xa-a", "confirmed", "2024-03-10T15:00:00+07:00")]
    assert first["counts"] == {"confirmed": 1, "pending": 0, "overdue": 1}
    assert {u["state"] for u in second["units"]} == {"pending"}

    code, out, _ = run_cli(["status", "thi-dua-2024"], now=now)
    assert "15/03/2024  Đăng ký thi đua  [1/2 đã xác nhận]" in out
    assert "QUÁ HẠN        Phòng Dân tộc (phong-dan-toc)" in out


def test_status_csv_opens_in_excel_with_vietnamese_intact(
        run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign_store(tmp_path, monkeypatch)
    code, out, _ = run_cli(["status", "thi-dua-2024", "--format", "csv"],
                           now=datetime(2024, 3, 1, tzinfo=VN))
    assert code == 0
    assert out.startswith("\ufeff")  # the BOM Excel needs to read UTF-8
    table = list(csv.reader(io.StringIO(out.removeprefix("\ufeff"))))
    assert table[0] == list(CSV_FIELDS)
    assert table[1][:6] == ["thi-dua-2024.dang-ky@mocd.local", "Đăng ký thi đua",
                            "2024-03-15", "phong-dan-toc", "Phòng Dân tộc", "pending"]
    assert len(table) == 5  # two deadlines × two units


def test_status_of_an_unknown_campaign_suggests_one(
        run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign_store(tmp_path, monkeypatch)
    code, out, err = run_cli(["status", "thi-dua-2025"])
    assert (code, out) == (1, "")
    assert err == "mocd: unknown campaign 'thi-dua-2025' (did you mean 'thi-dua-2024'?)\n"
