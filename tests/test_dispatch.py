"""The dispatcher against a real SMTP server (aiosmtpd on 127.0.0.1, a random port).

Time is a FixedClock moved by the tests; nothing sleeps until 07:30.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from notifications.digest import queue_digests
from notifications.mail_url import MailServer
from notifications.messages import MessageFactory
from notifications.outbox import counts, next_due
from notifications.planning import plan_reminders
from notifications.smtp import SmtpTransport
from scheduler.apply import apply_revision
from scheduler.clock import FixedClock
from scheduler.dispatcher import Dispatcher, DispatchReport
from scheduler.expand import Window, expand, working_calendar
from scheduler.models import OutboxRow
from tests.engine import UNITS, load
from tests.smtp_server import LocalController

VN = ZoneInfo("Asia/Ho_Chi_Minh")
APPLIED = datetime(2024, 5, 1, 9, 0, tzinfo=VN)


@dataclass
class Mailbox:
    """An aiosmtpd handler that records what it accepts and refuses what it is told to."""

    refuse: set[str] = field(default_factory=set)
    busy: int = 0  # this many DATA commands answer 451 first
    received: list[tuple[tuple[str, ...], email.message.EmailMessage]] = field(
        default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.busy:
            self.busy -= 1
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.received.append((tuple(envelope.rcpt_tos), message))
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = LocalController(box, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


CONFIG = UNITS + """
milestones:
  - {id: ho-so, title: Gửi hồ sơ đề nghị khen thưởng, when: 2024-05-30,
     units: [phong-chuyen-mon], reminders: [7d]}
  - {id: bao-cao, title: Báo cáo sơ kết, when: 2024-05-30, units: [phong-noi-vu],
     reminders: [7d]}
"""


def settings(**mail: Any) -> Settings:
    return Settings(mail={"admin": "admin@huyen.example.vn", **mail})


def applied(factory: sessionmaker[Session], config_text: str = CONFIG,
            s: Settings | None = None) -> None:
    s = s or settings()
    config = load(config_text)
    occurrences = expand(config, Window(date(2024, 1, 1), date(2024, 12, 31)))
    reminders = plan_reminders(occurrences, config.units, working_calendar(config),
                               s.reminders, VN)
    apply_revision(factory, config, occurrences, reminders, settings=s, now=APPLIED)


def dispatch(factory: sessionmaker[Session], port: int, at: datetime,
             s: Settings | None = None) -> DispatchReport:
    s = s or settings()
    config = load(CONFIG)

    async def run() -> DispatchReport:
        transport = SmtpTransport(MailServer("127.0.0.1", port, "none", timeout=5), 2)
        names = {uid: u.name for uid, u in config.units.items()}
        dispatcher = Dispatcher(factory, transport, MessageFactory(s, names), s,
                                FixedClock(at), owner="test")
        try:
            return await dispatcher.run_once()
        finally:
            await transport.close()

    return asyncio.run(run())


FIRE = datetime(2024, 5, 23, 7, 30, tzinfo=VN)  # 7 days before Thu 30/5


def test_nothing_is_sent_before_its_time(factory, mailbox) -> None:
    box, port = mailbox
    applied(factory)
    report = dispatch(factory, port, FIRE - timedelta(minutes=1))
    assert (report.claimed, box.received) == (0, [])


def test_one_email_per_unit_for_reminders_firing_together(factory, mailbox) -> None:
    box, port = mailbox
    applied(factory)
    report = dispatch(factory, port, FIRE)
    # Phòng Nội vụ has two reminders at 07:30 on 23/5 (ho-so and bao-cao): one email.
    # Phòng Dân tộc has one. Three rows, two emails.
    assert (report.claimed, report.sent, report.messages) == (3, 3, 2)
    by_rcpt = {rcpts: message for rcpts, message in box.received}
    assert set(by_rcpt) == {("noivu@huyen.example.vn",), ("dantoc@huyen.example.vn",)}
    grouped = by_rcpt[("noivu@huyen.example.vn",)]
    assert grouped["Subject"] == "[Nhắc hạn] 2 việc sắp đến hạn (gần nhất 30/5/2024)"
    assert grouped["Auto-Submitted"] == "auto-generated"
    single = by_rcpt[("dantoc@huyen.example.vn",)]
    assert single["Subject"] == (
        "[Nhắc hạn] Còn 7 ngày: Gửi hồ sơ đề nghị khen thưởng (30/5/2024)")
    assert counts(factory) == {"sent": 3}
    with factory() as session:
        replies = set(session.scalars(select(OutboxRow.smtp_reply)))
    assert replies == {"250 2.0.0 Ok: queued"}
    # A second run sends nothing more: each (occurrence, unit, offset) once.
    assert dispatch(factory, port, FIRE + timedelta(hours=1)).claimed == 0
    assert len(box.received) == 2


def test_a_temporary_refusal_is_retried_later(factory, mailbox) -> None:
    box, port = mailbox
    box.busy = 10
    applied(factory)
    report = dispatch(factory, port, FIRE)
    assert (report.sent, report.retried) == (0, 3)
    assert counts(factory) == {"pending": 3}
    retry_at = next_due(factory)
    assert retry_at is not None
    assert retry_at > FIRE
    box.busy = 0
    report = dispatch(factory, port, retry_at.astimezone(VN) + timedelta(minutes=1))
    assert report.sent == 3
    assert len(box.received) == 2
    with factory() as session:
        attempts = set(session.scalars(select(OutboxRow.attempts)))
    assert attempts == {2}


def test_a_permanent_refusal_fails_that_row_and_reports_to_the_admin(factory, mailbox) -> None:
    box, port = mailbox
    box.refuse = {"dantoc@huyen.example.vn"}
    applied(factory)
    report = dispatch(factory, port, FIRE)
    assert (report.sent, report.failed) == (2, 1)
    assert [r for r, _ in box.received] == [("noivu@huyen.example.vn",)]
    with factory() as session:
        failed = session.scalars(select(OutboxRow).where(OutboxRow.state == "failed")).one()
        assert failed.unit == "phong-dan-toc"
        assert failed.last_error is not None
        assert failed.last_error == "dantoc@huyen.example.vn: 550 5.1.1 mailbox unavailable"
    # The failure report is an outbox row too, sent on the next run to mail.admin.
    report = dispatch(factory, port, FIRE + timedelta(minutes=1))
    assert report.messages == 1
    rcpts, message = box.received[-1]
    assert rcpts == ("admin@huyen.example.vn",)
    assert "dantoc@huyen.example.vn" in message.get_body(("plain",)).get_content()


def test_the_weekly_digest_is_queued_once_per_unit_and_day_and_sent(factory, mailbox) -> None:
    box, port = mailbox
    applied(factory)
    monday = datetime(2024, 5, 27, 7, 30, tzinfo=VN)
    s = settings()
    # Units with email: ubnd-huyen, phong-noi-vu, phong-dan-toc, ubnd-xa-a → four digests.
    assert queue_digests(factory, s, monday) == 4
    assert queue_digests(factory, s, monday) == 0  # a restart or a second instance: no more
    with factory() as session:
        rows = {r.unit: r.occurrence_uids for r in session.scalars(
            select(OutboxRow).where(OutboxRow.kind == "digest"))}
    assert rows["phong-noi-vu"] == ["milestone.bao-cao@mocd.local",
                                    "milestone.ho-so@mocd.local"]
    assert rows["ubnd-xa-a"] == []
    report = dispatch(factory, port, monday)
    digests = [m for _, m in box.received if m["Subject"].startswith("[Lịch tuần]")]
    assert len(digests) == 4
    assert report.sent >= 4
