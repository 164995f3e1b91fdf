"""Emails (SPEC §5) and their ``.ics`` attachment (SPEC §6), read back the way a mail client
and an independent iCalendar parser (``ical``) would."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ical.calendar import Calendar as IcalCalendar
from ical.calendar_stream import IcsCalendarStream

from calendars.ics_attachment import occurrence_vevent, occurrences_ics
from config.errors import UserError
from config.settings import Settings
from notifications.messages import (
    FailureLine,
    MessageFactory,
    Recipient,
    ReminderItem,
    TemplateFailure,
    encoded_words,
    message_id,
    text_header,
)
from notifications.mime import OutgoingMessage
from scheduler.dates import Span
from scheduler.occurrences import Occurrence
from tests.engine import UNITS, load, occurrences

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2024, 5, 27, 7, 30, tzinfo=TZ)  # Monday, 3 days before the deadline
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HO_SO = "thi-dua-dhdt-ba-to-2024.ho-so-khen-thuong"
DAI_HOI = "thi-dua-dhdt-ba-to-2024.dai-hoi"
HO_SO_TITLE = "Gửi hồ sơ đề nghị khen thưởng về UBND huyện (qua Phòng Nội vụ)"
DAI_HOI_TITLE = "Đại hội đại biểu các dân tộc thiểu số huyện Ba Tơ lần thứ IV - Năm 2024"
FOOTER_VI = "Đây là thư tự động từ hệ thống mocd, vui lòng không trả lời."


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "language": "vi", "public_url": "https://mocd.bato.example.vn/",
        "uid_domain": "mocd.local",
        "mail": {"sender": "Văn phòng UBND huyện Ba Tơ <mocd@bato.example.vn>"},
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def example() -> tuple[dict[str, Occurrence], dict[str, str], dict[str, str]]:
    texts = [p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.yaml"))]
    config = load(*texts)
    names = {uid: unit.name for uid, unit in config.units.items()}
    anniversaries = {aid: a.title for aid, a in config.anniversaries.items()}
    return occurrences(*texts), names, anniversaries


@pytest.fixture(scope="module")
def occ(example: tuple[dict[str, Occurrence], dict[str, str], dict[str, str]]
        ) -> dict[str, Occurrence]:
    return example[0]


@pytest.fixture(scope="module")
def factory(example: tuple[dict[str, Occurrence], dict[str, str], dict[str, str]]
            ) -> MessageFactory:
    _, names, anniversaries = example
    return MessageFactory(make_settings(), names, anniversaries=anniversaries)


@pytest.fixture(scope="module")
def factory_en(example: tuple[dict[str, Occurrence], dict[str, str], dict[str, str]]
               ) -> MessageFactory:
    _, names, anniversaries = example
    return MessageFactory(make_settings(language="en"), names, anniversaries=anniversaries)


DAN_TOC = Recipient("phong-dan-toc-ba-to", "Phòng Dân tộc huyện Ba Tơ",
                    ("dantoc@bato.example.vn",), "vi")
DAN_TOC_EN = replace(DAN_TOC, language="en")


def parse(msg: OutgoingMessage) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(msg.data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def plain(msg: EmailMessage) -> str:
    """The text part, with LF line ends (it travels in canonical form, CRLF)."""
    part = msg.get_body(("plain",))
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def html(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def ics_bytes(msg: EmailMessage) -> bytes:
    parts = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    data = parts[0].get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def ical(data: bytes) -> IcalCalendar:
    return IcsCalendarStream.calendar_from_ics(data.decode("utf-8"))


def assert_rfc5545_lines(data: bytes) -> None:
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")  # every line break is CRLF
    for line in data.split(b"\r\n"):
        assert len(line) <= 75, line
        line.decode("utf-8")  # a fold never splits a UTF-8 sequence


def reminder(factory: MessageFactory, occ: dict[str, Occurrence], uid: str, days: int,
             recipient: Recipient = DAN_TOC, **kw: object) -> EmailMessage:
    item = ReminderItem(occ[uid], f"{days}d", days, **kw)  # type: ignore[arg-type]
    return parse(factory.reminder(recipient, [item], key=f"reminder:{uid}:{days}", now=NOW))


# --- headers and structure --------------------------------------------------------------------


def test_reminder_headers(factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    msg = reminder(factory, occ, HO_SO, 3)
    assert msg["Subject"] == f"[Nhắc hạn] Còn 3 ngày: {HO_SO_TITLE} (30/5/2024)"
    sender = msg["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Văn phòng UBND huyện Ba Tơ",
                                                       "mocd@bato.example.vn")
    to = msg["To"].addresses
    assert [(a.display_name, a.addr_spec) for a in to] == [
        ("Phòng Dân tộc huyện Ba Tơ", "dantoc@bato.example.vn")]
    assert msg["Cc"] is None
    assert msg["Date"] == "Mon, 27 May 2024 07:30:00 +0700"
    assert msg["Date"].datetime == NOW
    assert re.fullmatch(r"<[0-9a-f]{32}@mocd\.local>", msg["Message-ID"])
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Content-Language"] == "vi"
    assert msg["MIME-Version"] == "1.0"


def test_reminder_structure(factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    msg = reminder(factory, occ, HO_SO, 3)
    assert msg.get_content_type() == "multipart/mixed"
    outer = list(msg.iter_parts())
    assert [p.get_content_type() for p in outer] == ["multipart/alternative", "text/calendar"]
    inner = list(outer[0].iter_parts())
    assert [p.get_content_type() for p in inner] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in inner)
    attachment = outer[1]
    assert attachment.get_filename() == "mocd.ics"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_param("method") == "PUBLISH"
    assert attachment.get_content_charset() == "utf-8"


def test_smtp_serialisation_is_crlf_with_short_header_lines(
        factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    raw = factory.reminder(DAN_TOC, [ReminderItem(occ[DAI_HOI], "7d", 24)], key="k",
                           now=NOW).data
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in head.replace(b"\r\n", b"")
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert head.isascii()


def test_wire_bytes_are_7bit_crlf_and_the_same_for_the_same_key(
        factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    """mocd writes its messages itself (notifications.mime): 7-bit, so any server takes them
    unchanged; CRLF everywhere; boundaries from the key, so a re-send is the same bytes."""
    cc = replace(DAN_TOC, cc=("Lãnh đạo <lanhdao@bato.example.vn>",))
    items = [ReminderItem(occ[HO_SO], "3d", 3), ReminderItem(occ[DAI_HOI], "7d", 24)]
    first = factory.reminder(cc, items, key="k", now=NOW)
    again = factory.reminder(cc, items, key="k", now=NOW)
    other = factory.reminder(cc, items, key="k2", now=NOW)
    assert first.data == again.data != other.data
    assert first.data.isascii()
    assert b"\n" not in first.data.replace(b"\r\n", b"")
    assert max(len(line) for line in first.data.split(b"\r\n")) <= 78
    assert first.sender == "mocd@bato.example.vn"
    assert first.recipients == ("dantoc@bato.example.vn", "lanhdao@bato.example.vn")
    parsed = parse(first)
    assert parsed.defects == []
    assert all(part.defects == [] for part in parsed.walk())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz()[]:-.,0123456789", min_size=1,
                        max_size=90), min_size=1, max_size=12))
def test_ascii_subjects_fold_at_spaces_and_unfold_to_the_text(words: list[str]) -> None:
    text = " ".join(words)
    value = text_header("Subject", text)
    lines = f"Subject: {value}".split("\n")
    assert all(len(line) <= 78 for line in lines)
    assert str(make_header(decode_header(value.replace("\n ", " ")))) == text or \
        value.replace("\n", "") == text


def test_date_header_is_local_time_whatever_zone_now_is_in(
        factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    msg = parse(factory.reminder(DAN_TOC, [ReminderItem(occ[HO_SO], "3d", 3)], key="k",
                                 now=NOW.astimezone(UTC)))
    assert msg["Date"] == format_datetime(NOW)


def test_naive_now_is_refused(factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    with pytest.raises(ValueError, match="aware"):
        factory.reminder(DAN_TOC, [ReminderItem(occ[HO_SO], "3d", 3)], key="k",
                         now=datetime(2024, 5, 27, 7, 30))


def test_message_id_is_stable_per_key(factory: MessageFactory,
                                      occ: dict[str, Occurrence]) -> None:
    items = [ReminderItem(occ[HO_SO], "3d", 3)]
    first = factory.reminder(DAN_TOC, items, key="reminder:a", now=NOW)
    again = factory.reminder(DAN_TOC, items, key="reminder:a", now=NOW + timedelta(hours=5))
    other = factory.reminder(DAN_TOC, items, key="reminder:b", now=NOW)
    assert first.message_id == again.message_id == message_id("reminder:a", "mocd.local")
    assert first.message_id != other.message_id
    assert parse(first)["Message-ID"] == first.message_id
    assert message_id("reminder:a", "mocd.local") == (
        "<" + __import__("hashlib").sha256(b"reminder:a").hexdigest()[:32] + "@mocd.local>")


def test_cc_and_several_addresses(factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    recipient = Recipient("phong-noi-vu-ba-to", "Phòng Nội vụ huyện Ba Tơ",
                          ("noivu@bato.example.vn", "vanthu@bato.example.vn"), "vi",
                          cc=("Phòng Dân tộc <dantoc@bato.example.vn>", "lead@bato.example.vn"))
    msg = parse(factory.reminder(recipient, [ReminderItem(occ[HO_SO], "1d", -1)], key="k",
                                 now=NOW))
    assert [a.addr_spec for a in msg["To"].addresses] == ["noivu@bato.example.vn",
                                                          "vanthu@bato.example.vn"]
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["dantoc@bato.example.vn",
                                                          "lead@bato.example.vn"]
    assert msg["Cc"].addresses[0].display_name == "Phòng Dân tộc"


# --- subjects -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("uid", "days", "subject"), [
    (HO_SO, 3, f"[Nhắc hạn] Còn 3 ngày: {HO_SO_TITLE} (30/5/2024)"),
    (HO_SO, 1, f"[Nhắc hạn] Còn 1 ngày: {HO_SO_TITLE} (30/5/2024)"),
    (HO_SO, 0, f"[Nhắc hạn] Hôm nay hết hạn: {HO_SO_TITLE} (30/5/2024)"),
    (HO_SO, -2, f"[Quá hạn] Đã quá hạn 2 ngày: {HO_SO_TITLE} (30/5/2024)"),
    (DAI_HOI, 7, f"[Nhắc lịch] Còn 7 ngày: {DAI_HOI_TITLE} (08:00 ngày 20/6/2024)"),
    (DAI_HOI, 1, f"[Nhắc lịch] Ngày mai: {DAI_HOI_TITLE} (08:00 ngày 20/6/2024)"),
    (DAI_HOI, 0, f"[Nhắc lịch] Hôm nay: {DAI_HOI_TITLE} (08:00 ngày 20/6/2024)"),
    ("thi-dua-dhdt-ba-to-2024.period", 7,
     "[Nhắc lịch] Còn 7 ngày: Phong trào thi đua chào mừng Đại hội đại biểu các dân tộc thiểu "
     "số huyện Ba Tơ lần thứ IV - Năm 2024 (15/4/2024)"),
    ("anniversary.giai-phong-huyen-ba-to.52", 30,
     "[Kỷ niệm] Còn 30 ngày: Kỷ niệm 52 năm Ngày giải phóng huyện Ba Tơ "
     "(30/10/1972 - 30/10/2024)"),
])
def test_subjects_vi(factory: MessageFactory, occ: dict[str, Occurrence], uid: str, days: int,
                     subject: str) -> None:
    msg = reminder(factory, occ, uid, days)
    assert msg["Subject"] == subject
    assert "\n" not in msg["Subject"]


@pytest.mark.parametrize(("uid", "days", "subject"), [
    (HO_SO, 3, f"[Reminder] 3 days left: {HO_SO_TITLE} (30 May 2024)"),
    (HO_SO, 1, f"[Reminder] 1 day left: {HO_SO_TITLE} (30 May 2024)"),
    (HO_SO, 0, f"[Reminder] Due today: {HO_SO_TITLE} (30 May 2024)"),
    (HO_SO, -1, f"[Overdue] 1 day overdue: {HO_SO_TITLE} (30 May 2024)"),
    (DAI_HOI, 7, f"[Reminder] In 7 days: {DAI_HOI_TITLE} (20 June 2024, 08:00)"),
    (DAI_HOI, 0, f"[Reminder] Today: {DAI_HOI_TITLE} (20 June 2024, 08:00)"),
])
def test_subjects_en(factory_en: MessageFactory, occ: dict[str, Occurrence], uid: str,
                     days: int, subject: str) -> None:
    assert reminder(factory_en, occ, uid, days, DAN_TOC_EN)["Subject"] == subject


def test_english_anniversary_subject_uses_the_english_title(
        factory_en: MessageFactory, occ: dict[str, Occurrence]) -> None:
    o = occ["anniversary.giai-phong-huyen-ba-to.52"]
    assert o.title_en
    msg = reminder(factory_en, occ, o.uid.removesuffix("@mocd.local"), 30, DAN_TOC_EN)
    assert msg["Subject"] == f"[Anniversary] In 30 days: {o.title_en}"


def test_several_items_are_one_email(factory: MessageFactory, factory_en: MessageFactory,
                                     occ: dict[str, Occurrence]) -> None:
    items = [ReminderItem(occ[DAI_HOI], "24d", 24), ReminderItem(occ[HO_SO], "3d", 3)]
    msg = parse(factory.reminder(DAN_TOC, items, key="k", now=NOW))
    assert msg["Subject"] == "[Nhắc hạn] 2 việc sắp đến hạn (gần nhất 30/5/2024)"
    text = plain(msg)
    assert "xin nhắc Quý cơ quan, đơn vị 2 nội dung sau:" in text
    # nearest first, numbered
    assert text.index(f"1. {HO_SO_TITLE}") < text.index(f"2. {DAI_HOI_TITLE}")
    cal = ical(ics_bytes(msg))
    assert sorted(e.uid for e in cal.events) == sorted([occ[HO_SO].uid, occ[DAI_HOI].uid])
    en = parse(factory_en.reminder(DAN_TOC_EN, items, key="k", now=NOW))
    assert en["Subject"] == "[Reminder] 2 items due soon (next: 30 May 2024)"


def test_several_events_without_deadline(factory: MessageFactory,
                                         occ: dict[str, Occurrence]) -> None:
    items = [ReminderItem(occ[DAI_HOI], "7d", 7),
             ReminderItem(occ["anniversary.giai-phong-huyen-ba-to.52"], "7d", 150)]
    msg = parse(factory.reminder(DAN_TOC, items, key="k", now=NOW))
    assert msg["Subject"] == "[Nhắc lịch] 2 mục sắp diễn ra (gần nhất 20/6/2024)"


def test_long_vietnamese_subject_keeps_every_space(factory: MessageFactory,
                                                   occ: dict[str, Occurrence]) -> None:
    """CPython 3.11's folder drops the space between two encoded-words ("hạn(gần"): the
    factory encodes subjects itself, every space inside a word."""
    o = replace(occ[HO_SO], title="Báo cáo sơ kết 6 tháng đầu năm về công tác thi đua, khen "
                                  "thưởng và nhân rộng điển hình tiên tiến của các xã, thị trấn")
    msg = factory.reminder(DAN_TOC, [ReminderItem(o, "3d", 3)], key="k", now=NOW)
    expected = f"[Nhắc hạn] Còn 3 ngày: {o.title} (30/5/2024)"
    assert parse(msg)["Subject"] == expected
    assert msg.subject == expected
    raw_subject = msg.data.split(b"\nSubject: ", 1)[1].split(b"\nDate:", 1)[0]
    assert str(make_header(decode_header(raw_subject.decode()))) == expected


def test_long_unit_name_is_encoded_whole(example: tuple[dict[str, Occurrence], dict[str, str],
                                                        dict[str, str]]) -> None:
    """A long display name needs several encoded-words: decoded by RFC 2047 rules (whitespace
    between encoded-words is not displayed), it is the name exactly. (CPython 3.11's own
    address parser wrongly inserts a space between the words, so it is not used here.)"""
    occ, names, _ = example
    name = "Hội đồng Thi đua - Khen thưởng tỉnh Bắc Kạn, Văn phòng"
    factory = MessageFactory(make_settings(), names)
    recipient = Recipient("hd", name, ("hdtdkt@backan.example.vn",), "vi")
    raw = factory.reminder(recipient, [ReminderItem(occ[HO_SO], "3d", 3)], key="k",
                           now=NOW).data
    to = raw.split(b"\nTo: ", 1)[1].split(b"\nSubject:", 1)[0].decode()
    display, addr = to.rsplit("<", 1)
    assert addr.strip() == "hdtdkt@backan.example.vn>"
    assert str(make_header(decode_header(display.strip()))) == name


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_encoded_words_never_split_a_character(text: str) -> None:
    words = encoded_words(text)
    assert all(len(w) <= 64 for w in words)
    assert "".join(str(make_header(decode_header(w))) for w in words) == text


def test_ascii_names_with_specials_round_trip(factory: MessageFactory,
                                             occ: dict[str, Occurrence]) -> None:
    recipient = Recipient("x", 'UBND xa A, B "C"', ("a@bato.example.vn",), "en",
                          cc=("Lead Unit <lead@bato.example.vn>",))
    msg = parse(factory.reminder(recipient, [ReminderItem(occ[HO_SO], "3d", 3)], key="k",
                                 now=NOW))
    assert msg["To"].addresses[0].display_name == 'UBND xa A, B "C"'
    assert msg["Cc"].addresses[0].display_name == "Lead Unit"


def test_sender_with_an_unquoted_comma(example: tuple[dict[str, Occurrence], dict[str, str],
                                                      dict[str, str]]) -> None:
    occ, names, _ = example
    sender = "Văn phòng HĐND và UBND huyện Ba Tơ, tỉnh Quảng Ngãi <mocd@bato.example.vn>"
    factory = MessageFactory(make_settings(mail={"sender": sender}), names)
    raw = factory.reminder(DAN_TOC, [ReminderItem(occ[HO_SO], "3d", 3)], key="k",
                           now=NOW).data
    head = raw.split(b"\nTo:", 1)[0].removeprefix(b"From: ").decode()
    display, addr = head.rsplit("<", 1)
    assert addr.strip() == "mocd@bato.example.vn>"
    assert str(make_header(decode_header(display.strip()))) == sender.split(" <")[0]


# --- bodies -------------------------------------------------------------------------------------


def test_reminder_body_vi(factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    msg = reminder(factory, occ, HO_SO, 3)
    for text in (plain(msg), html(msg)):
        assert "Kính gửi:" in text
        assert "Phòng Dân tộc huyện Ba Tơ" in text
        assert "Thứ Năm, 30/5/2024" in text
        assert "Hạn chót" in text
        assert "còn 3 ngày" in text
        assert "Kế hoạch số …/KH-UBND ngày …/4/2024 của UBND huyện Ba Tơ" in text
        assert "Hồ sơ, báo cáo gửi về:" in text
        assert "Phòng Nội vụ huyện Ba Tơ" in text  # submit_to and lead, by name
        assert "Đơn vị chủ trì:" in text
        assert "Chào mừng:" in text
        assert "Ngày giải phóng huyện Ba Tơ" in text  # the celebrated anniversary's title
        assert FOOTER_VI in text
        assert "/confirm/" not in text  # no link before issue 5 gives one
    assert plain(msg).startswith("Kính gửi: Phòng Dân tộc huyện Ba Tơ\n")


def test_timed_event_body(factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    text = plain(reminder(factory, occ, DAI_HOI, 7))
    assert "Thời gian: Thứ Năm, 20/6/2024, từ 08:00 đến 16:00" in text
    assert "Địa điểm: Hội trường UBND huyện Ba Tơ" in text
    assert "Sự kiện (còn 7 ngày nữa)" in text


def test_period_body(factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    text = plain(reminder(factory, occ, "thi-dua-dhdt-ba-to-2024.period", 7))
    assert "Thời gian: Từ Thứ Hai, 15/4/2024 đến Thứ Tư, 19/6/2024" in text


def test_window_of_a_deadline(factory: MessageFactory) -> None:
    found = occurrences(UNITS + """
milestones:
  - id: bao-cao-quy
    title: Báo cáo quý
    when: 2024-Q2
    units: [phong-noi-vu]
""")
    o = found["milestone.bao-cao-quy"]
    assert o.window == (date(2024, 4, 1), date(2024, 6, 30))
    msg = parse(factory.reminder(DAN_TOC, [ReminderItem(o, "3d", 4)], key="k", now=NOW))
    assert o.due == date(2024, 7, 1)  # 30 June is a Sunday: due the next working day
    text = plain(msg)
    assert "Hạn hoàn thành: Thứ Hai, 01/7/2024" in text
    assert "Thời gian thực hiện: từ Thứ Hai, 01/4/2024 đến Chủ Nhật, 30/6/2024" in text
    assert msg["Subject"] == "[Nhắc hạn] Còn 4 ngày: Báo cáo quý (01/7/2024)"


def test_confirmation_link_only_when_given(factory: MessageFactory,
                                           occ: dict[str, Occurrence]) -> None:
    msg = reminder(factory, occ, HO_SO, 3, confirm_url="/confirm/tok3n",
                   pending=("ubnd-xa-ba-dinh",))
    url = "https://mocd.bato.example.vn/confirm/tok3n"
    assert url in plain(msg)
    assert f'href="{url}"' in html(msg)
    assert "Đơn vị chưa xác nhận hoàn thành: UBND xã Ba Dinh" in plain(msg)
    absolute = reminder(factory, occ, HO_SO, 3, confirm_url="https://other.example/confirm/x")
    assert "https://other.example/confirm/x" in plain(absolute)
    unsafe = reminder(factory, occ, HO_SO, 3, confirm_url="javascript:alert(1)")
    assert "javascript:" not in html(unsafe)


def test_decree_111_note_for_founding_anniversaries(factory: MessageFactory,
                                                    occ: dict[str, Occurrence]) -> None:
    founding = [o for o in occ.values() if o.anniversary and o.anniversary.founding]
    assert founding, "the examples have a founding anniversary"
    o = founding[0]
    note = o.note("vi")
    assert note
    msg = parse(factory.reminder(DAN_TOC, [ReminderItem(o, "30d", 30)], key="k", now=NOW))
    assert note in plain(msg)
    assert note in html(msg)
    plain_anniversary = next(o for o in occ.values()
                             if o.anniversary and not o.anniversary.founding)
    other = parse(factory.reminder(DAN_TOC, [ReminderItem(plain_anniversary, "7d", 7)],
                                   key="k", now=NOW))
    assert "Nghị định 111" not in plain(other)


def test_english_body(factory_en: MessageFactory, occ: dict[str, Occurrence]) -> None:
    msg = reminder(factory_en, occ, HO_SO, 3, DAN_TOC_EN)
    assert msg["Content-Language"] == "en"
    text = plain(msg)
    assert "Due: Thursday, 30 May 2024" in text
    assert "Deadline (3 days left)" in text
    assert "Submit to: Phòng Nội vụ huyện Ba Tơ" in text
    assert "This is an automated message from mocd; please do not reply." in text
    assert 'lang="en"' in html(msg)
    assert "Kính gửi" not in text


def test_html_is_a_complete_phone_friendly_page(factory: MessageFactory,
                                                occ: dict[str, Occurrence]) -> None:
    page = html(reminder(factory, occ, HO_SO, 3))
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="vi">' in page
    assert 'name="viewport"' in page
    assert "max-width:640px" in page
    assert "<style" not in page  # inline styles only
    assert "<script" not in page


# --- injection and escaping ---------------------------------------------------------------------


def hostile(title: str, **extra: str) -> Occurrence:
    return Occurrence(uid="milestone.x@mocd.local", title=title, kind="deadline",
                      span=Span.day(date(2024, 5, 30)), units=("phong-noi-vu",),
                      due=date(2024, 5, 30), **extra)  # type: ignore[arg-type]


def test_header_injection_through_a_title_is_impossible(factory: MessageFactory) -> None:
    o = hostile("Gửi hồ sơ\r\nBcc: evil@x.example\r\n\r\nbody", location="A\r\nX-Evil: 1")
    msg = factory.reminder(DAN_TOC, [ReminderItem(o, "3d", 3)], key="k", now=NOW)
    raw = msg.data
    parsed = parse(msg)
    assert parsed["Bcc"] is None
    assert parsed["X-Evil"] is None
    assert not re.search(rb"^(Bcc|X-Evil):", raw, re.MULTILINE | re.IGNORECASE)
    assert parsed["Subject"] == "[Nhắc hạn] Còn 3 ngày: Gửi hồ sơ Bcc: evil@x.example body " \
                               "(30/5/2024)"
    assert [k.lower() for k in parsed] == [
        "from", "to", "subject", "date", "message-id", "auto-submitted",
        "x-auto-response-suppress", "content-language", "mime-version", "content-type"]


def test_header_injection_through_a_unit_name_is_impossible(
        factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    recipient = Recipient("x", "Phòng A\r\nBcc: evil@x.example", ("a@bato.example.vn",), "vi")
    msg = parse(factory.reminder(recipient, [ReminderItem(occ[HO_SO], "3d", 3)], key="k",
                                 now=NOW))
    assert msg["Bcc"] is None
    assert [a.addr_spec for a in msg["To"].addresses] == ["a@bato.example.vn"]
    ascii_name = Recipient("x", "Unit\nBcc: evil@x.example", ("a@bato.example.vn",), "en")
    msg = parse(factory.reminder(ascii_name, [ReminderItem(occ[HO_SO], "3d", 3)], key="k",
                                 now=NOW))
    assert msg["Bcc"] is None
    assert msg["To"].addresses[0].display_name == "Unit Bcc: evil@x.example"


@pytest.mark.parametrize("address", [
    "a@x.example\r\nBcc: evil@x.example", "a@x.example, b@x.example", "not an address", "",
])
def test_bad_addresses_are_refused(factory: MessageFactory, occ: dict[str, Occurrence],
                                   address: str) -> None:
    recipient = Recipient("x", "X", (address,), "vi")
    with pytest.raises(ValueError, match="invalid email address"):
        factory.reminder(recipient, [ReminderItem(occ[HO_SO], "3d", 3)], key="k", now=NOW)


def test_encoded_word_lookalike_in_a_title_stays_literal(factory: MessageFactory) -> None:
    lookalike = "=?utf-8?b?DQpCY2M6IGV2aWxAeA==?="  # would decode to "\r\nBcc: evil@x"
    msg = parse(factory.reminder(DAN_TOC, [ReminderItem(hostile(lookalike), "3d", 3)],
                                 key="k", now=NOW))
    assert msg["Subject"] == f"[Nhắc hạn] Còn 3 ngày: {lookalike} (30/5/2024)"
    assert msg["Bcc"] is None


def test_config_text_is_never_template_source(factory: MessageFactory) -> None:
    title = "Hồ sơ {{ 7*7 }} {% for x in range(3) %}x{% endfor %} {# c #}"
    o = hostile(title, description="{{ settings }} {{ ''.__class__ }}")
    msg = parse(factory.reminder(DAN_TOC, [ReminderItem(o, "3d", 3)], key="k", now=NOW))
    for text in (plain(msg), html(msg)):
        assert "{{ 7*7 }}" in text
        assert "{% for x in range(3) %}x{% endfor %}" in text
        assert "{# c #}" in text
        assert "49" not in text
        assert "xxx" not in text
        assert "{{ settings }}" in text
    assert msg["Subject"].startswith("[Nhắc hạn] Còn 3 ngày: Hồ sơ {{ 7*7 }}")


def test_html_part_escapes_config_text(factory: MessageFactory) -> None:
    o = hostile("<script>alert(1)</script> & <b>", location='"><img src=x onerror=alert(1)>',
                url="javascript:alert(1)", description="<i>a</i>\nline two")
    msg = parse(factory.reminder(DAN_TOC, [ReminderItem(o, "3d", 3)], key="k", now=NOW))
    page = html(msg)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in page
    assert "<img" not in page
    assert 'href="javascript:' not in page
    assert "&lt;i&gt;a&lt;/i&gt;<br>" in page  # line breaks kept, markup escaped
    assert "<script>alert(1)</script> & <b>" in plain(msg)  # the text part is text


# --- the .ics attachment ------------------------------------------------------------------------


def test_attachment_parses_with_an_independent_parser(factory: MessageFactory,
                                                      occ: dict[str, Occurrence]) -> None:
    items = [ReminderItem(occ[HO_SO], "3d", 3), ReminderItem(occ[DAI_HOI], "24d", 24)]
    data = ics_bytes(parse(factory.reminder(DAN_TOC, items, key="k", now=NOW)))
    assert_rfc5545_lines(data)
    cal = ical(data)
    assert cal.prodid == "-//mocd//mocd//VI"
    assert cal.version == "2.0"
    assert cal.method == "PUBLISH"
    assert cal.calscale == "GREGORIAN"
    events = {e.uid: e for e in cal.events}
    deadline = events[f"{HO_SO}@mocd.local"]
    assert deadline.dtstart == date(2024, 5, 30)
    assert deadline.dtend == date(2024, 5, 31)  # exclusive
    assert deadline.summary == HO_SO_TITLE
    assert deadline.categories == ["deadline"]
    assert deadline.dtstamp == NOW.astimezone(UTC)
    assert deadline.description is not None
    assert "Gửi về: Phòng Nội vụ huyện Ba Tơ" in deadline.description
    event = events[f"{DAI_HOI}@mocd.local"]
    assert event.dtstart == datetime(2024, 6, 20, 8, 0, tzinfo=TZ)
    assert event.dtend == datetime(2024, 6, 20, 16, 0, tzinfo=TZ)
    assert event.location == "Hội trường UBND huyện Ba Tơ"
    assert [tz.tz_id for tz in cal.timezones] == ["Asia/Ho_Chi_Minh"]
    text = data.decode()
    assert "DTSTART;VALUE=DATE:20240530\r\n" in text
    assert "DTEND;VALUE=DATE:20240531\r\n" in text
    assert "DTSTART;TZID=Asia/Ho_Chi_Minh:20240620T080000\r\n" in text


def test_attachment_without_timed_events_has_no_vtimezone() -> None:
    o = hostile("Báo cáo")
    data = occurrences_ics([o], tz=TZ, uid_domain="mocd.local", language="vi",
                           stamp=NOW)
    assert b"VTIMEZONE" not in data
    assert b"TZID" not in data


def test_vtimezone_covers_the_events_and_is_deterministic() -> None:
    event = Occurrence(uid="e@mocd.local", title="Hội nghị", kind="event",
                       span=Span.timed(datetime(2045, 3, 1, 14, 0), timedelta(hours=2)),
                       units=())
    data = occurrences_ics([event], tz=TZ, uid_domain="mocd.local", language="vi", stamp=NOW)
    assert data == occurrences_ics([event], tz=TZ, uid_domain="mocd.local", language="vi",
                                   stamp=NOW)
    cal = ical(data)
    assert cal.events[0].dtstart == datetime(2045, 3, 1, 14, 0, tzinfo=TZ)
    text = data.decode()
    assert "TZOFFSETTO:+0700" in text
    assert "+0800" not in text  # no pre-1975 observance for a 2045 event
    assert "2038" not in text  # not icalendar's default range


def test_cancelled_with_sequence() -> None:
    o = replace(hostile("Họp giao ban"), cancelled=True)
    data = occurrences_ics([o], tz=TZ, uid_domain="mocd.local", language="vi", stamp=NOW,
                           sequence={o.uid: 4})
    event = ical(data).events[0]
    assert event.status is not None
    assert event.status.value == "CANCELLED"
    assert event.sequence == 4
    plain_one = occurrences_ics([hostile("Họp")], tz=TZ, uid_domain="mocd.local",
                                language="vi", stamp=NOW)
    assert b"SEQUENCE" not in plain_one
    assert b"STATUS:CONFIRMED" in plain_one


def test_uid_without_domain_gets_uid_domain() -> None:
    o = replace(hostile("Họp"), uid="milestone.hop")
    event = occurrence_vevent(o, tz=TZ, uid_domain="bato.example.vn", language="vi",
                              stamp=NOW)
    assert str(event["UID"]) == "milestone.hop@bato.example.vn"


def test_naive_stamp_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        occurrences_ics([hostile("Họp")], tz=TZ, uid_domain="mocd.local", language="vi",
                        stamp=datetime(2024, 1, 1))


def test_ics_text_is_one_line_where_it_must_be() -> None:
    o = hostile("Gửi\r\nhồ sơ", location="Hội\rtrường", url="https://a.example/x y",
                description="a\r\nb\x00c")
    data = occurrences_ics([o], tz=TZ, uid_domain="mocd.local", language="vi", stamp=NOW)
    assert_rfc5545_lines(data)
    event = ical(data).events[0]
    assert event.summary == "Gửi hồ sơ"
    assert event.location == "Hội trường"
    assert event.url is None  # not a usable URL: kept in the description as text
    assert event.description is not None
    assert event.description.startswith("a\nbc")


VIETNAMESE = st.text(
    alphabet=st.sampled_from(list("aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệ"
                                  "ìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵĐƯƠ ,;:\\\"'\n")),
    min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(title=VIETNAMESE, description=VIETNAMESE, location=VIETNAMESE)
def test_folding_never_splits_utf8_and_round_trips(title: str, description: str,
                                                   location: str) -> None:
    o = hostile(title, description=description, location=location)
    data = occurrences_ics([o], tz=TZ, uid_domain="mocd.local", language="vi", stamp=NOW)
    assert_rfc5545_lines(data)
    event = ical(data).events[0]
    assert event.summary == " ".join(title.split())
    if location.strip():
        assert event.location == " ".join(location.split())
    if description.strip():
        assert event.description is not None
        assert event.description.startswith(description.strip())


# --- notices and digest -------------------------------------------------------------------------


def test_change_notice(factory: MessageFactory, factory_en: MessageFactory,
                       occ: dict[str, Occurrence]) -> None:
    o = occ[HO_SO]
    was = replace(o, span=Span.day(date(2024, 5, 28)), due=date(2024, 5, 28))
    msg = parse(factory.change_notice(DAN_TOC, o, was, key="change:x:1", now=NOW, sequence=2))
    assert msg["Subject"] == f"[Thay đổi lịch] {HO_SO_TITLE}: 28/5/2024 → 30/5/2024"
    text = plain(msg)
    assert "Hạn hoàn thành cũ: Thứ Ba, 28/5/2024" in text
    assert "Hạn hoàn thành mới: Thứ Năm, 30/5/2024" in text
    event = ical(ics_bytes(msg)).events[0]
    assert event.sequence == 2
    assert event.dtstart == date(2024, 5, 30)
    en = parse(factory_en.change_notice(DAN_TOC_EN, o, was, key="c", now=NOW))
    assert en["Subject"] == f"[Schedule change] {HO_SO_TITLE}: 28 May 2024 → 30 May 2024"
    assert "Due was: Tuesday, 28 May 2024" in plain(en)


def test_change_notice_of_a_time(factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    o = occ[DAI_HOI]
    was = replace(o, span=replace(o.span, start_at=datetime(2024, 6, 20, 14, 0),
                                  end_at=datetime(2024, 6, 20, 16, 0)))
    msg = parse(factory.change_notice(DAN_TOC, o, was, key="c", now=NOW))
    assert msg["Subject"] == f"[Thay đổi lịch] {DAI_HOI_TITLE}: 14:00 20/6/2024 → " \
                             "08:00 20/6/2024"
    text = plain(msg)
    assert "Thời gian cũ: Thứ Năm, 20/6/2024, từ 14:00 đến 16:00" in text
    assert "Địa điểm" not in text.split("Thời gian mới")[0]  # only what changed is listed


def test_change_notice_of_a_place(factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    o = replace(occ[DAI_HOI], location="Hội trường UBND huyện")
    msg = parse(factory.change_notice(DAN_TOC, o, replace(o, location=""), key="c", now=NOW))
    assert msg["Subject"] == (f"[Thay đổi lịch] {DAI_HOI_TITLE}: (chưa có) → "
                              "Hội trường UBND huyện")
    text = plain(msg)
    assert "Địa điểm cũ: (chưa có)" in text
    assert "Địa điểm mới: Hội trường UBND huyện" in text
    assert "Thời gian: Thứ Năm, 20/6/2024" in text  # unchanged, shown once
    assert text.count("Hội trường UBND huyện") == 1  # the new place, once


def test_cancellation_notice(factory: MessageFactory, factory_en: MessageFactory,
                             occ: dict[str, Occurrence]) -> None:
    o = occ[DAI_HOI]
    assert not o.cancelled  # a removed occurrence: the notice marks it cancelled itself
    msg = parse(factory.cancellation_notice(DAN_TOC, o, key="cancel:x", now=NOW, sequence=5))
    assert msg["Subject"] == f"[Hủy lịch] {DAI_HOI_TITLE} (20/6/2024)"
    assert "ĐÃ HỦY" in plain(msg)
    assert "hủy bỏ" in plain(msg)
    data = ics_bytes(msg)
    assert_rfc5545_lines(data)
    event = ical(data).events[0]
    assert event.status is not None
    assert event.status.value == "CANCELLED"
    assert event.sequence == 5
    en = parse(factory_en.cancellation_notice(DAN_TOC_EN, o, key="c", now=NOW))
    assert en["Subject"] == f"[Cancelled] {DAI_HOI_TITLE} (20 June 2024)"


def test_digest(factory: MessageFactory, occ: dict[str, Occurrence]) -> None:
    chosen = [occ[DAI_HOI], occ[HO_SO]]
    msg = parse(factory.digest(DAN_TOC, chosen, horizon_days=14, key="digest:2024-05-27",
                               now=NOW))
    assert msg["Subject"] == "[Lịch tuần] 2 mục từ 27/5/2024 đến 09/6/2024"
    text = plain(msg)
    assert "từ Thứ Hai, 27/5/2024 đến Chủ Nhật, 09/6/2024" in text
    assert text.index(HO_SO_TITLE) < text.index(DAI_HOI_TITLE)  # by date
    assert len(ical(ics_bytes(msg)).events) == 2


def test_empty_digest(factory: MessageFactory, factory_en: MessageFactory) -> None:
    msg = parse(factory.digest(DAN_TOC, [], horizon_days=14, key="d", now=NOW))
    assert msg["Subject"] == "[Lịch tuần] Không có mục nào từ 27/5/2024 đến 09/6/2024"
    assert "Không có nội dung nào trong thời gian này." in plain(msg)
    assert msg.get_content_type() == "multipart/alternative"  # nothing to attach
    en = parse(factory_en.digest(DAN_TOC_EN, [], horizon_days=7, key="d", now=NOW))
    assert en["Subject"] == "[Weekly agenda] Nothing from 27 May 2024 to 2 June 2024"


# --- admin reports ------------------------------------------------------------------------------


def test_delivery_failure_report(factory: MessageFactory) -> None:
    failures = [
        FailureLine("noivu@bato.example.vn", "[Nhắc hạn] Còn 3 ngày: Gửi hồ sơ",
                    "550 5.1.1 <noivu@bato.example.vn>: Recipient address rejected", 1, True,
                    "phong-noi-vu-ba-to", NOW),
        FailureLine("xa@bato.example.vn", "[Nhắc lịch] Hôm nay", "421 4.7.0 Try again later",
                    3, False),
    ]
    msg = parse(factory.delivery_failure_report("Admin <admin@bato.example.vn>", failures,
                                                key="failures:1", now=NOW))
    assert msg["Subject"] == "[mocd] 2 thư không gửi được"
    assert msg["To"].addresses[0].addr_spec == "admin@bato.example.vn"
    assert msg.get_content_type() == "multipart/alternative"
    text = plain(msg)
    assert "550 5.1.1 <noivu@bato.example.vn>: Recipient address rejected" in text
    assert "Phòng Nội vụ huyện Ba Tơ" in text
    assert "lỗi vĩnh viễn" in text
    assert "lỗi tạm thời" in text
    assert "&lt;noivu@bato.example.vn&gt;" in html(msg)
    assert msg["Auto-Submitted"] == "auto-generated"


def test_config_error_report(factory: MessageFactory) -> None:
    errors = ["campaigns.yaml:41:15: campaigns[0].milestones[2].when: unknown reference "
              "'dai-hoi-x' (did you mean 'dai-hoi'?)", "units.yaml:3:1: units[1]: <bad>"]
    msg = parse(factory.config_error_report("admin@bato.example.vn", errors,
                                            config_dir="/etc/mocd/milestones", key="cfg:abc",
                                            now=NOW))
    assert msg["Subject"] == "[mocd] Cấu hình không hợp lệ: 2 lỗi"
    text = plain(msg)
    assert errors[0] in text
    assert "mocd check --config /etc/mocd/milestones" in text
    assert "cấu hình hợp lệ gần nhất" in text
    assert "&lt;bad&gt;" in html(msg)


def test_config_error_report_en(factory_en: MessageFactory) -> None:
    msg = parse(factory_en.config_error_report("admin@bato.example.vn", ["a.yaml:1:1: x: y"],
                                               config_dir="cfg", key="c", now=NOW))
    assert msg["Subject"] == "[mocd] Invalid configuration: 1 error"
    assert msg["Content-Language"] == "en"


# --- templates ----------------------------------------------------------------------------------


def test_templates_dir_overrides_one_template(tmp_path: Path,
                                              example: tuple[dict[str, Occurrence],
                                                             dict[str, str], dict[str, str]]
                                              ) -> None:
    occ, names, _ = example
    (tmp_path / "vi").mkdir()
    (tmp_path / "vi" / "reminder.txt.j2").write_text(
        "Kính gửi {{ recipient.name }}: {{ items|length }} việc, "
        "hạn {{ items[0].occurrence.due|vi_long_date }}.\n", encoding="utf-8")
    factory = MessageFactory(make_settings(templates_dir=tmp_path), names)
    msg = parse(factory.reminder(DAN_TOC, [ReminderItem(occ[HO_SO], "3d", 3)], key="k",
                                 now=NOW))
    assert plain(msg) == "Kính gửi Phòng Dân tộc huyện Ba Tơ: 1 việc, hạn Thứ Năm, 30/5/2024.\n"
    assert FOOTER_VI in html(msg)  # the HTML template is still the packaged one
    explicit = MessageFactory(make_settings(), names, templates_dir=tmp_path)
    assert plain(parse(explicit.reminder(DAN_TOC, [ReminderItem(occ[HO_SO], "3d", 3)],
                                         key="k", now=NOW))).startswith("Kính gửi Phòng")
    assert factory.check_templates() == []


def test_override_html_template_is_autoescaped(tmp_path: Path) -> None:
    (tmp_path / "vi").mkdir()
    (tmp_path / "vi" / "reminder.html.j2").write_text(
        "<p>{{ items[0].title }}</p>", encoding="utf-8")
    factory = MessageFactory(make_settings(), {}, templates_dir=tmp_path)
    msg = parse(factory.reminder(DAN_TOC, [ReminderItem(hostile("<b>x</b>"), "3d", 3)],
                                 key="k", now=NOW))
    assert html(msg).rstrip("\n") == "<p>&lt;b&gt;x&lt;/b&gt;</p>"


def test_broken_override_is_reported(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "digest.txt.j2").write_text("{% if %}", encoding="utf-8")
    problems = MessageFactory(make_settings(), {}, templates_dir=tmp_path).check_templates()
    assert len(problems) == 1
    assert problems[0].startswith("en/digest.txt.j2: TemplateSyntaxError")


def test_missing_templates_dir_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a directory"):
        MessageFactory(make_settings(templates_dir=tmp_path / "nope"), {})


def test_packaged_templates_load() -> None:
    assert MessageFactory(make_settings(), {}).check_templates() == []


def test_templates_cannot_reach_python_internals(tmp_path: Path) -> None:
    (tmp_path / "vi").mkdir()
    (tmp_path / "vi" / "reminder.txt.j2").write_text(
        "{{ recipient.__class__.__mro__ }}", encoding="utf-8")
    factory = MessageFactory(make_settings(), {}, templates_dir=tmp_path)
    with pytest.raises(TemplateFailure, match="SecurityError"):
        factory.reminder(DAN_TOC, [ReminderItem(hostile("x"), "3d", 3)], key="k", now=NOW)
    assert [p.split(": ", 1)[1] for p in factory.check_templates()] == [
        "SecurityError: access to attribute '__class__' of 'dict' object is unsafe."]


def test_an_override_naming_a_missing_variable_is_found_by_the_check(tmp_path: Path) -> None:
    (tmp_path / "vi").mkdir()
    (tmp_path / "vi" / "change.html.j2").write_text(
        "<p>{{ item.title }}</p>\n<p>{{ no_such_variable }}</p>\n", encoding="utf-8")
    factory = MessageFactory(make_settings(), {}, templates_dir=tmp_path)
    assert factory.check_templates() == [
        f"template {tmp_path}/vi/change.html.j2:2: UndefinedError: "
        "'no_such_variable' is undefined"]
