"""Every change reaches every unit, once: late additions, same-day changes, cancellations
as iTIP, a bad template, retries, a wrong clock, the lead, confirm links in feeds.

Over real components: the store (a SQLite file and the real PostgreSQL), aiosmtpd on
127.0.0.1, the real dispatcher and message factory, the feed renderer on the stored
state, and the attachments read back by icalendar, ical.js (Thunderbird's parser) and
calcurse. Time is a FixedClock the tests move.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from calendars.feed_cache import builder_from_database
from calendars.feed_types import FeedKey
from config.settings import Settings
from notifications.confirmations import confirm, feed_confirm_lines, read_confirm_token
from notifications.mail_url import MailServer
from notifications.messages import MessageFactory
from notifications.outbox import HELD, counts, retry_failed
from notifications.planning import planned_emails
from notifications.smtp import SmtpTransport
from scheduler.apply import ApplyResult, apply_revision
from scheduler.clock import FixedClock
from scheduler.dispatcher import Dispatcher, DispatchReport
from scheduler.expand import Window, expand, working_calendar
from scheduler.models import OutboxRow, StoredOccurrence
from scheduler.status import campaign_status, status_csv, status_records, status_text
from tests.engine import load
from tests.smtp_server import LocalController

VN = ZoneInfo("Asia/Ho_Chi_Minh")
KEY = b"k" * 32
ADMIN = "admin@huyen.example.vn"
CLIENTS = Path(__file__).resolve().parent / "clients"
NODE = shutil.which("node")
HAVE_ICALJS = (CLIENTS / "node_modules" / "ical.js" / "package.json").is_file()
CALCURSE = shutil.which("calcurse")

UNITS = """
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ, email: noivu@huyen.example.vn}
  - {id: phong-dan-toc, name: Phòng Dân tộc, email: dantoc@huyen.example.vn}
  - {id: ubnd-xa-a, name: UBND xã A, email: xa-a@huyen.example.vn}
"""


def config(*milestones: str) -> str:
    return UNITS + "milestones:\n" + "".join(f"  - {m}\n" for m in milestones)


# -- the SMTP server ----------------------------------------------------------------------


@dataclass
class Mailbox:
    refuse_all: bool = False
    received: list[tuple[tuple[str, ...], EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:
        if self.refuse_all:
            return "550 5.7.1 relaying denied"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append((tuple(envelope.rcpt_tos), message))
        return "250 2.0.0 Ok: queued"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpts, m in self.received if address in rcpts]

    def take(self) -> list[EmailMessage]:
        with self.lock:
            taken = [m for _, m in self.received]
            self.received.clear()
        return taken


@dataclass
class Site:
    """A store, a mailbox, and the daemon's pieces driven by hand at chosen moments."""

    factory: sessionmaker[Session]
    box: Mailbox
    port: int
    spool: Path
    settings: Settings = field(default_factory=lambda: Settings(
        mail={"admin": ADMIN}, public_url="https://lich.example.vn"))
    templates: Path | None = None

    def apply(self, text: str, now: datetime) -> ApplyResult:
        loaded = load(text)
        occurrences = expand(loaded, Window(date(2024, 1, 1), date(2025, 12, 31)))
        planned = planned_emails(occurrences, loaded.units, working_calendar(loaded),
                                 self.settings.reminders, VN)
        return apply_revision(self.factory, loaded, occurrences, planned,
                              settings=self.settings, now=now)

    def dispatch(self, at: datetime) -> DispatchReport:
        settings = self.settings

        async def run() -> DispatchReport:
            transport = SmtpTransport(MailServer("127.0.0.1", self.port, "none", timeout=5), 2)
            names = {"phong-noi-vu": "Phòng Nội vụ", "phong-dan-toc": "Phòng Dân tộc",
                     "ubnd-xa-a": "UBND xã A"}
            dispatcher = Dispatcher(self.factory, transport,
                                    MessageFactory(settings, names, self.templates), settings,
                                    FixedClock(at), owner="test", confirm_key=KEY,
                                    admin_spool=self.spool)
            try:
                return await dispatcher.run_once()
            finally:
                await transport.close()

        return asyncio.run(run())

    def feed(self, unit: str | None, at: datetime) -> bytes:
        links = feed_confirm_lines(KEY, self.settings.public_url)
        builder = builder_from_database(self.factory, self.settings, at, extra_lines=links)
        return builder.render(FeedKey("unit", unit) if unit else FeedKey("all"))

    def stored(self, uid: str) -> StoredOccurrence:
        with self.factory() as session:
            row = session.get(StoredOccurrence, uid)
            assert row is not None
            return row

    def rows(self, kind: str | None = None) -> list[OutboxRow]:
        with self.factory() as session:
            query = select(OutboxRow).order_by(OutboxRow.id)
            if kind:
                query = query.where(OutboxRow.kind == kind)
            return list(session.scalars(query))


@pytest.fixture
def site(factory: sessionmaker[Session], tmp_path: Path) -> Iterator[Site]:
    box = Mailbox()
    controller = LocalController(box, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield Site(factory, box, controller.port, tmp_path / "outbox")
    finally:
        controller.stop()


def at(day: str, hm: str = "10:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hm}").replace(tzinfo=VN)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def attachment(message: EmailMessage) -> bytes:
    for part in message.iter_attachments():
        if part.get_content_type() == "text/calendar":
            data = part.get_content()
            return data if isinstance(data, bytes) else data.encode()
    raise AssertionError("no .ics attached")


def vevents(data: bytes) -> dict[str, Any]:
    calendar = Calendar.from_ical(data)
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


def feed_sequence(feed: bytes, uid: str) -> int:
    return int(vevents(feed)[uid].get("SEQUENCE", 0))


# -- 1. a deadline added late is reminded at once -------------------------------------------

DUE_TOMORROW = "{id: moi, title: Báo cáo gấp, when: 2024-05-09, units: [phong-dan-toc], " \
               "reminders: [1d]}"
LATER = "{id: sau, title: Báo cáo quý, when: 2024-07-01, units: [phong-noi-vu]}"


def test_a_deadline_added_at_ten_is_reminded_at_once_and_only_once(site: Site) -> None:
    site.apply(config(LATER), at("2024-05-07"))
    assert site.dispatch(at("2024-05-07")).claimed == 0
    # Wed 8/5 10:00: a deadline due tomorrow, its 1d reminder was due today at 07:30.
    result = site.apply(config(LATER, DUE_TOMORROW), at("2024-05-08"))
    assert (result.reminders_late, result.reminders_too_late) == (1, 0)
    report = site.dispatch(at("2024-05-08", "10:00"))
    assert (report.sent, report.messages) == (1, 1)
    [message] = site.box.to("dantoc@huyen.example.vn")
    assert message["Subject"] == "[Nhắc hạn] Còn 1 ngày: Báo cáo gấp (09/5/2024)"
    assert site.dispatch(at("2024-05-08", "11:00")).claimed == 0
    site.apply(config(LATER, DUE_TOMORROW) + "# sửa chú thích\n", at("2024-05-08", "12:00"))
    assert site.dispatch(at("2024-05-08", "12:00")).claimed == 0  # once


def test_a_reminder_sent_late_counts_the_days_from_today(site: Site) -> None:
    """Due Monday 13/5, its 1d reminder moved back to Friday 10/5 07:30; added on Saturday
    11/5 at 10:00: the email sent then says two days are left, not three."""
    item = "{id: moi, title: Báo cáo, when: 2024-05-13, units: [phong-dan-toc], reminders: [1d]}"
    site.apply(config(item), at("2024-05-11"))
    site.dispatch(at("2024-05-11"))
    [message] = site.box.to("dantoc@huyen.example.vn")
    assert message["Subject"] == "[Nhắc hạn] Còn 2 ngày: Báo cáo (13/5/2024)"


# -- 2. a change within the day sends a notice --------------------------------------------

MEETING = ("{id: hop, title: Họp giao ban, kind: event, when: 2024-05-20 %s, duration: 2h, "
           "units: [phong-noi-vu, ubnd-xa-a]%s}")


def test_a_meeting_moved_within_the_day_gets_a_notice_with_old_and_new(site: Site) -> None:
    site.apply(config(MEETING % ("08:30", "")), at("2024-05-01"))
    site.apply(config(MEETING % ("09:00", ", location: Hội trường")), at("2024-05-02"))
    site.dispatch(at("2024-05-02"))
    [notice] = site.box.to("noivu@huyen.example.vn")
    assert notice["Subject"] == ("[Thay đổi lịch] Họp giao ban: 08:30 20/5/2024 → "
                                 "09:00 20/5/2024")
    text = text_of(notice)
    assert "Thời gian cũ: Thứ Hai, 20/5/2024, từ 08:30 đến 10:30" in text
    assert "Thời gian mới: Thứ Hai, 20/5/2024, từ 09:00 đến 11:00" in text
    assert "Địa điểm cũ: (chưa có)" in text
    assert "Địa điểm mới: Hội trường" in text
    uid = "milestone.hop@mocd.local"
    event = vevents(attachment(notice))[uid]
    assert event["DTSTART"].dt.replace(tzinfo=None) == datetime(2024, 5, 20, 9, 0)
    assert int(event["SEQUENCE"]) == site.stored(uid).sequence == 1
    assert feed_sequence(site.feed("phong-noi-vu", at("2024-05-02")), uid) == 1
    assert len(site.box.to("xa-a@huyen.example.vn")) == 1


def test_a_deadline_given_a_time_gets_a_notice(site: Site) -> None:
    item = "{id: nop, title: Nộp báo cáo, when: %s, units: [phong-dan-toc], reminders: []}"
    site.apply(config(item % "2024-05-30"), at("2024-05-01"))
    site.apply(config(item % "2024-05-30 17:00"), at("2024-05-02"))
    site.dispatch(at("2024-05-02"))
    [notice] = site.box.to("dantoc@huyen.example.vn")
    assert notice["Subject"] == "[Thay đổi lịch] Nộp báo cáo: 30/5/2024 → 17:00 30/5/2024"
    assert "Hạn hoàn thành mới: Thứ Năm, 30/5/2024, lúc 17:00" in text_of(notice)


# -- 3. cancellations are iTIP CANCEL; UID and SEQUENCE agree with the feed ----------------

CONGRESS = ("{id: dai-hoi, title: Đại hội đại biểu, kind: event, when: 2024-06-20 08:00, "
            "duration: 4h, units: [phong-noi-vu]%s}")


def itip_exchange(site: Site) -> tuple[dict[str, bytes], bytes]:
    """A reminder, a change, a cancellation of one event, as the unit receives them, and
    the unit's feed after the cancellation."""
    uid = "milestone.dai-hoi@mocd.local"
    site.apply(config(CONGRESS % ", reminders: [7d]"), at("2024-06-01"))
    site.dispatch(at("2024-06-13", "07:30"))
    site.apply(config(CONGRESS % ", reminders: [7d], location: Nhà văn hóa"),
               at("2024-06-14"))
    site.dispatch(at("2024-06-14"))
    site.apply(config(CONGRESS % ", reminders: [7d], cancelled: true"), at("2024-06-15"))
    site.dispatch(at("2024-06-15"))
    messages = site.box.to("noivu@huyen.example.vn")
    kinds = {m["Subject"].split("]")[0] + "]": attachment(m) for m in messages}
    assert set(kinds) == {"[Nhắc lịch]", "[Thay đổi lịch]", "[Hủy lịch]"}, list(kinds)
    assert site.stored(uid).sequence == 2
    return kinds, site.feed("phong-noi-vu", at("2024-06-15"))


def test_a_cancellation_attachment_is_an_itip_cancel_with_the_feeds_sequence(
        site: Site) -> None:
    uid = "milestone.dai-hoi@mocd.local"
    attached, feed = itip_exchange(site)
    sequences = {}
    for subject, data in attached.items():
        calendar = Calendar.from_ical(data)
        event = vevents(data)[uid]
        sequences[subject] = int(event["SEQUENCE"])
        assert str(event["ORGANIZER"]) == "mailto:mocd@localhost"
        if subject == "[Hủy lịch]":
            assert str(calendar["METHOD"]) == "CANCEL"
            assert str(event["ATTENDEE"]) == "mailto:noivu@huyen.example.vn"
            assert str(event["STATUS"]) == "CANCELLED"
            assert str(event["SUMMARY"]).startswith("[Đã hủy] ")
        else:
            assert str(calendar["METHOD"]) == "PUBLISH"
            assert str(event["STATUS"]) == "CONFIRMED"
    assert sequences == {"[Nhắc lịch]": 0, "[Thay đổi lịch]": 1, "[Hủy lịch]": 2}
    feed_event = vevents(feed)[uid]
    assert str(feed_event["STATUS"]) == "CANCELLED"
    assert int(feed_event["SEQUENCE"]) == sequences["[Hủy lịch]"]  # not below the feed's


@pytest.mark.skipif(NODE is None or not HAVE_ICALJS,
                    reason="NOT CHECKED WITH THUNDERBIRD'S PARSER: node or ical.js missing "
                           "(make test runs `npm ci` in tests/clients)")
def test_thunderbirds_parser_reads_the_itip_exchange(site: Site, tmp_path: Path) -> None:
    uid = "milestone.dai-hoi@mocd.local"
    attached, feed = itip_exchange(site)
    files = {}
    for name, data in [*attached.items(), ("feed", feed)]:
        path = tmp_path / f"{len(files)}.ics"
        path.write_bytes(data)
        files[name] = str(path)
    assert NODE is not None
    done = subprocess.run([NODE, str(CLIENTS / "icaljs_check.mjs"), *files.values()],
                          capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout)
    seen = {name: (parsed[path]["method"],
                   [(e["uid"], e["sequence"], e["status"]) for e in parsed[path]["events"]])
            for name, path in files.items()}
    assert seen == {
        "[Nhắc lịch]": ("PUBLISH", [(uid, 0, "CONFIRMED")]),
        "[Thay đổi lịch]": ("PUBLISH", [(uid, 1, "CONFIRMED")]),
        "[Hủy lịch]": ("CANCEL", [(uid, 2, "CANCELLED")]),
        "feed": ("PUBLISH", [(uid, 2, "CANCELLED")]),
    }


@pytest.mark.skipif(CALCURSE is None, reason="NOT CHECKED WITH CALCURSE: calcurse is missing "
                                             "(make test installs the Debian package)")
def test_calcurse_imports_every_attachment_and_shows_the_cancellation_as_such(
        site: Site, tmp_path: Path) -> None:
    """calcurse (through 4.8) reads neither METHOD nor STATUS nor UID: every import adds
    an item. What mocd can do for it: every attachment imports cleanly, and the
    cancellation's title says it is cancelled."""
    attached, _ = itip_exchange(site)
    assert CALCURSE is not None
    titles = {}
    for name, data in attached.items():
        home = tmp_path / f"calcurse-{len(titles)}"
        home.mkdir()
        path = home / "in.ics"
        path.write_bytes(data)
        done = subprocess.run([CALCURSE, "-D", str(home), "-i", str(path)],
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        assert "0 skipped" in done.stdout, done.stdout
        titles[name] = (home / "apts").read_text(encoding="utf-8")
    assert "[Đã hủy] Đại hội đại biểu" in titles["[Hủy lịch]"]
    assert "[Đã hủy]" not in titles["[Thay đổi lịch]"]


def test_a_cancellation_of_an_item_restored_meanwhile_is_not_sent(site: Site) -> None:
    site.apply(config(CONGRESS % ""), at("2024-06-01"))
    site.apply(config(CONGRESS % ", cancelled: true"), at("2024-06-02"))
    site.apply(config(CONGRESS % ""), at("2024-06-02", "10:05"))
    site.dispatch(at("2024-06-02", "10:10"))
    assert [m["Subject"] for m in site.box.take()] == []
    [row] = site.rows("cancellation")
    assert (row.state, row.last_error) == ("cancelled", "the item was restored since")


# -- 6. one bad row stops nothing -----------------------------------------------------------

TWO = [
    "{id: a, title: Việc A, when: 2024-05-20, units: [phong-dan-toc], reminders: [1d]}",
    "{id: b, title: Việc B, when: 2024-05-20, units: [phong-noi-vu], reminders: [1d]}",
]


def test_a_template_that_fails_for_one_unit_fails_that_row_only(site: Site,
                                                               tmp_path: Path) -> None:
    """An override that renders in ``check`` (the sample unit) but not for one real unit."""
    templates = tmp_path / "templates"
    (templates / "vi").mkdir(parents=True)
    (templates / "vi" / "reminder.txt.j2").write_text(
        "{% if recipient.unit_id == 'phong-dan-toc' %}{{ no_such_variable }}{% endif %}"
        "Kính gửi {{ recipient.name }}\n", encoding="utf-8")
    site.templates = templates
    site.apply(config(*TWO), at("2024-05-01"))
    report = site.dispatch(at("2024-05-17", "07:30"))
    assert (report.sent, report.failed) == (1, 1)
    [failed] = [r for r in site.rows("reminder") if r.state == "failed"]
    assert failed.unit == "phong-dan-toc"
    assert failed.last_error == (
        f"cannot build the message: template {templates}/vi/reminder.txt.j2:1: "
        "UndefinedError: 'no_such_variable' is undefined")
    assert len(site.box.to("noivu@huyen.example.vn")) == 1
    site.dispatch(at("2024-05-17", "07:31"))
    [report_mail] = site.box.to(ADMIN)
    assert "no_such_variable" in text_of(report_mail)


def test_a_row_with_a_broken_payload_fails_alone(site: Site) -> None:
    site.apply(config(*TWO), at("2024-05-01"))
    with site.factory.begin() as session:
        session.add(OutboxRow(idempotency_key="change:broken", kind="change",
                              unit="phong-noi-vu", occurrence_uids=["milestone.a@mocd.local"],
                              fire_at=at("2024-05-17", "07:00"), state="pending", attempts=0,
                              next_attempt_at=at("2024-05-17", "07:00"), payload={"x": 1},
                              created_at=at("2024-05-17", "07:00")))
    report = site.dispatch(at("2024-05-17", "07:30"))
    assert (report.sent, report.failed) == (2, 1)
    with site.factory() as session:
        row = session.scalars(select(OutboxRow).where(
            OutboxRow.idempotency_key == "change:broken")).one()
    assert row.state == "failed"
    assert row.last_error == "cannot build the message: KeyError: 'old_first'"


# -- 7. failed rows can be retried; a report that fails is kept as a file --------------------


def test_failed_rows_are_retried_and_a_failing_report_is_kept_as_a_file(site: Site) -> None:
    site.apply(config(*TWO), at("2024-05-01"))
    site.box.refuse_all = True  # the server refuses everything, the admin's address too
    report = site.dispatch(at("2024-05-17", "07:30"))
    assert report.failed == 2
    report = site.dispatch(at("2024-05-17", "07:31"))  # the report to mail.admin
    assert (report.failed, report.messages) == (2, 0)  # its two rows, one email
    [kept] = list(site.spool.glob("*.eml"))
    saved = email.message_from_bytes(kept.read_bytes(), policy=email.policy.default)
    assert [a.addr_spec for a in saved["To"].addresses] == [ADMIN]
    assert saved["Subject"] == "[mocd] 2 thư không gửi được"
    due_now = {"failed": 4}
    assert {k: v for k, v in counts(site.factory).items() if k != "pending"} == due_now

    site.box.refuse_all = False  # the admin fixed the server
    fixed = at("2024-05-17", "09:00")
    assert retry_failed(site.factory, now=fixed, unit="phong-noi-vu") == 1
    assert retry_failed(site.factory, now=fixed) == 3  # the other unit and the report
    report = site.dispatch(fixed)
    assert (report.sent, report.messages) == (4, 3)
    delivered = {a.addr_spec for m in site.box.take() for a in m["To"].addresses}
    assert delivered == {"noivu@huyen.example.vn", "dantoc@huyen.example.vn", ADMIN}
    assert retry_failed(site.factory, now=fixed) == 0
    assert {k: v for k, v in counts(site.factory).items() if k != "pending"} == {"sent": 4}


def test_retry_since_a_day_and_of_one_unit(site: Site) -> None:
    site.apply(config(*TWO), at("2024-05-01"))
    with site.factory.begin() as session:
        for row in session.scalars(select(OutboxRow)):
            row.state = "failed"
    # Per unit: the 1d reminder (17/5), overdue notices on 21/5 and 27/5.
    assert retry_failed(site.factory, now=at("2024-05-20"), since=date(2024, 5, 28),
                        tz=VN) == 0
    assert retry_failed(site.factory, now=at("2024-05-20"), since=date(2024, 5, 21),
                        unit="phong-dan-toc", tz=VN) == 2
    assert retry_failed(site.factory, now=at("2024-05-20"), unit="phong-noi-vu") == 3


# -- 8. a wrong clock at start holds reminders; the fixed clock sends them ---------------------


def test_a_clock_three_days_ahead_skips_nothing_for_good(site: Site) -> None:
    items = [
        "{id: a, title: Hội nghị A, kind: event, when: 2024-05-21, units: [phong-dan-toc], "
        "reminders: [1d]}",
        "{id: b, title: Hội nghị B, kind: event, when: 2024-05-24, units: [phong-noi-vu], "
        "reminders: [1d]}",
    ]
    site.apply(config(*items), at("2024-05-18"))
    site.dispatch(at("2024-05-19", "10:00"))  # the daemon runs; nothing is due yet
    # Restarted at 10:00 on 19/5 with the clock on 22/5: A's reminder (20/5 07:30) looks
    # two days late and is held; B's (23/5) is not due yet by either clock.
    report = site.dispatch(at("2024-05-22", "10:00"))
    assert (report.sent, site.box.take()) == (0, [])
    [held] = [r for r in site.rows("reminder") if r.unit == "phong-dan-toc"]
    assert (held.state, held.last_error) == ("skipped", HELD)
    # The clock is fixed: 19/5 10:05. A is pending again and goes out at its time.
    site.dispatch(at("2024-05-19", "10:05"))
    assert [r.state for r in site.rows("reminder")] == ["pending", "pending"]
    site.dispatch(at("2024-05-20", "07:30"))
    assert len(site.box.to("dantoc@huyen.example.vn")) == 1


# -- 9. the lead: one rule for emails, status and pages -------------------------------------

LED = ("{id: nop, title: Nộp hồ sơ, when: 2024-05-30, lead: phong-noi-vu, "
       "units: [phong-noi-vu, phong-dan-toc, ubnd-xa-a], reminders: [1d]}")
ALONE = "{id: rieng, title: Việc riêng, when: 2024-05-30, lead: phong-noi-vu, " \
        "units: [phong-noi-vu], reminders: [1d]}"


def test_the_lead_follows_up_and_a_lead_alone_is_tracked(site: Site) -> None:
    site.apply(config(LED, ALONE), at("2024-05-01"))
    confirm(site.factory, "milestone.nop@mocd.local", "ubnd-xa-a", now=at("2024-05-02"),
            by="Trần Thị B")
    site.dispatch(at("2024-05-29", "07:30"))
    [lead_mail] = site.box.to("noivu@huyen.example.vn")
    lead_text = text_of(lead_mail)
    assert "Đã xác nhận: 1/2 đơn vị" in lead_text
    assert "Đơn vị chưa xác nhận hoàn thành: Phòng Dân tộc" in lead_text
    assert lead_text.count("/confirm/") == 1  # only for the deadline it does alone
    [worker_mail] = site.box.to("dantoc@huyen.example.vn")
    assert text_of(worker_mail).count("/confirm/") == 1


def test_status_counts_the_workers_and_shows_who_confirmed(site: Site) -> None:
    campaign = """
campaigns:
  - id: thi-dua
    title: Thi đua
    period: {start: 2024-04-01, end: 2024-12-31}
    units: [phong-noi-vu, phong-dan-toc, ubnd-xa-a]
    milestones:
      - {id: nop, title: Nộp hồ sơ, when: 2024-05-30, lead: phong-noi-vu, reminders: []}
      - {id: rieng, title: Việc riêng, when: 2024-06-27, lead: phong-noi-vu,
         units: [phong-noi-vu], reminders: []}
"""
    site.apply(UNITS + campaign, at("2024-05-01"))
    confirm(site.factory, "thi-dua.nop@mocd.local", "ubnd-xa-a", now=at("2024-05-02"),
            by="Trần Thị B")
    with site.factory() as session:
        statuses = campaign_status(session, "thi-dua", today=date(2024, 5, 31))
    assert [(s.uid, [(u.unit, u.state, u.confirmed_by) for u in s.units]) for s in statuses] == [
        ("thi-dua.nop@mocd.local", [("phong-dan-toc", "overdue", None),
                                    ("ubnd-xa-a", "confirmed", "Trần Thị B")]),
        ("thi-dua.rieng@mocd.local", [("phong-noi-vu", "pending", None)])]
    [record, _] = list(status_records(statuses, VN))
    assert record["units"][1]["confirmed_by"] == "Trần Thị B"
    csv = status_csv(statuses, VN)
    assert csv.splitlines()[0] == ("\ufeffuid,title,due,unit,unit_name,state,confirmed_at,"
                                   "confirmed_by,last_reminder,last_reminder_at")
    assert ",Trần Thị B," in csv
    assert "(Trần Thị B)" in "\n".join(status_text(statuses, VN))
    # The overdue notice goes to the workers, with the lead alone tracked too.
    site.dispatch(at("2024-05-31", "07:30"))
    [chased] = site.box.to("dantoc@huyen.example.vn")
    assert chased["Subject"] == "[Quá hạn] Đã quá hạn 1 ngày: Nộp hồ sơ (30/5/2024)"
    assert [a.addr_spec for a in chased["Cc"].addresses] == ["noivu@huyen.example.vn"]
    assert site.box.to("xa-a@huyen.example.vn") == []  # confirmed
    site.dispatch(at("2024-06-28", "07:30"))  # nop's 7d notice (6/6) was held: a gap
    assert [m["Subject"] for m in site.box.to("noivu@huyen.example.vn")
            if m["Subject"].startswith("[Quá hạn]") and "Cc" not in m] == [
        "[Quá hạn] Đã quá hạn 1 ngày: Việc riêng (27/6/2024)"]


# -- 10. per-unit feeds carry the confirmation link ---------------------------------------------


def test_a_units_feed_carries_its_confirm_link_and_shared_feeds_none(site: Site) -> None:
    site.apply(config(LED, MEETING % ("08:30", "")), at("2024-05-01"))
    now = at("2024-05-02")
    uid = "milestone.nop@mocd.local"

    def description(unit: str | None) -> str:
        return str(vevents(site.feed(unit, now))[uid].get("DESCRIPTION", ""))

    worker = description("phong-dan-toc")
    assert "Xác nhận hoàn thành: https://lich.example.vn/confirm/" in worker
    token = worker.split("/confirm/")[1].split()[0]
    assert read_confirm_token(KEY, token) == (uid, "phong-dan-toc")
    assert "/confirm/" not in description("phong-noi-vu")  # the lead follows up
    assert "/confirm/" not in description(None)  # the feed of all
    meeting = vevents(site.feed("phong-noi-vu", now))["milestone.hop@mocd.local"]
    assert "/confirm/" not in str(meeting.get("DESCRIPTION", ""))  # nothing to complete
