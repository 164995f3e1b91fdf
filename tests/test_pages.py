"""The pages of issue 5 over real loopback HTTP: the confirm page (GET never confirms, POST
does, once; undo within 24 h; forged, modified and expired links are the feed server's
404), the lead's status page and its CSV, the agenda page of a unit, path traversal on
the new routes, and config text that is data, never markup.

The server is the real :class:`FeedServer` with :class:`Pages`, in an event loop of its
own thread (as in ``test_feed_server``); the store is a real SQLite file and PostgreSQL
(the ``factory`` fixture); the clock is a :class:`FixedClock` the tests move.
"""

from __future__ import annotations

import csv
import html
import http.client
import io
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from calendars.agenda_page import (
    AgendaUnit,
    agenda_view,
    render_agenda_html,
    subscribe_links,
)
from calendars.confirm_page import FORM_PURPOSE, check_nonce, form_nonce
from calendars.feed_server import FeedServer, ServerOptions
from calendars.metrics import Metrics
from calendars.pages import Pages
from calendars.tokens import FEED_PURPOSE, FeedTokens, derive_key, load_secret
from config.settings import Settings
from notifications.confirmations import CONFIRM_PURPOSE, CONFIRMED, confirm_token
from notifications.planning import plan_overdue, plan_reminders
from scheduler.apply import apply_revision
from scheduler.clock import FixedClock
from scheduler.database import open_engine, session_factory
from scheduler.expand import Window, expand, working_calendar
from scheduler.models import Confirmation, OutboxRow
from scheduler.status import CSV_FIELDS
from tests.engine import load
from tests.test_daemon import Daemon
from tests.test_feed_server import Running, StaticFeeds
from tests.test_feed_server import daemon as daemon

VN = ZoneInfo("Asia/Ho_Chi_Minh")
SECRET = b"s" * 32
CONFIRM_KEY = derive_key(SECRET, CONFIRM_PURPOSE)
FORM_KEY = derive_key(SECRET, FORM_PURPOSE)
FEED_KEY = derive_key(SECRET, FEED_PURPOSE)
APPLIED = datetime(2024, 4, 20, 9, 0, tzinfo=VN)
NOW = datetime(2024, 6, 1, 9, 0, tzinfo=VN)  # a Saturday
PUBLIC = "https://lich.example.vn/mocd"
SETTINGS = Settings(public_url=PUBLIC)
DOMAIN = "mocd.local"
HO_SO = f"thi-dua-2024.ho-so@{DOMAIN}"  # due Thu 30/5/2024: overdue on 1/6
BAO_CAO = f"thi-dua-2024.bao-cao@{DOMAIN}"  # due Fri 28/6/2024
HOI_NGHI = f"thi-dua-2024.hoi-nghi@{DOMAIN}"  # an event, Fri 5/7/2024 08:00
OLD = f"milestone.cu@{DOMAIN}"  # due 1/2/2024: its link expired on 1/5/2024
HOSTILE = "Gửi hồ sơ <script>alert(1)</script> {{ 7*7 }}"
CONFIG = """
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ, email: noivu@huyen.example.vn}
  - {id: phong-dan-toc, name: "Phòng Dân tộc <b>huyện</b>", email: dantoc@huyen.example.vn}
  - {id: ubnd-xa-a, name: UBND xã A, email: xa-a@huyen.example.vn, language: en}
  - {id: ubnd-xa-b, name: UBND xã B}
campaigns:
  - id: thi-dua-2024
    title: Phong trào thi đua năm 2024
    owner: phong-noi-vu
    period: {start: 2024-04-15, end: 2024-09-30}
    units: [phong-dan-toc, ubnd-xa-a]
    milestones:
      - {id: ho-so, title: "Gửi hồ sơ <script>alert(1)</script> {{ 7*7 }}",
         when: 2024-05-30, lead: phong-noi-vu, reminders: [14d, 1d]}
      - {id: bao-cao, title: Báo cáo sơ kết, when: 2024-06-28, reminders: [3d]}
      - {id: hoi-nghi, title: Hội nghị sơ kết, kind: event, when: 2024-07-05 08:00,
         duration: 4h, location: Hội trường UBND huyện, cc: [ubnd-xa-b]}
milestones:
  - {id: cu, title: Báo cáo quý I, when: 2024-02-01, units: [phong-dan-toc]}
anniversaries:
  - {id: thanh-lap, title: Ngày thành lập huyện, origin: 1954-06-20, every: 5,
     units: [phong-dan-toc]}
"""


def apply(factory: sessionmaker[Session], text: str = CONFIG, now: datetime = APPLIED) -> None:
    config = load(text)
    occurrences = expand(config, Window(date(2023, 1, 1), date(2025, 12, 31)))
    calendar = working_calendar(config)
    planned = [*plan_reminders(occurrences, config.units, calendar, SETTINGS.reminders, VN),
               *plan_overdue(occurrences, config.units, calendar, SETTINGS.reminders, VN)]
    apply_revision(factory, config, occurrences, planned, settings=SETTINGS, now=now)


@dataclass
class Site:
    running: Running
    clock: FixedClock
    factory: sessionmaker[Session]

    @property
    def port(self) -> int:
        return self.running.port

    def token(self, scope: str, subject: str) -> str:
        return self.running.tokens.token(scope, subject)


@pytest.fixture
def site(factory: sessionmaker[Session]) -> Iterator[Site]:
    apply(factory)
    clock = FixedClock(NOW)
    tokens = FeedTokens(FEED_KEY)
    pages = Pages(factory, tokens, settings=SETTINGS, clock=clock, confirm_key=CONFIRM_KEY,
                  form_key=FORM_KEY)
    pages.reload_owners()  # as the daemon's feed service does after every apply
    running = Running(FeedServer(StaticFeeds(), tokens, ServerOptions(port=0), Metrics(),
                                 pages=pages))
    yield Site(running, clock, factory)
    running.close()


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        return found[0] if found else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def without_date(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers if k.lower() != "date"]


def request(port: int, path: str, method: str = "GET", form: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = dict(headers or {})
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def confirm_path(uid: str, unit: str) -> str:
    return f"/confirm/{confirm_token(CONFIRM_KEY, uid, unit)}"


def form_of(page: Reply, form_id: str = "confirm-form") -> dict[str, str]:
    """The hidden fields of one form of a page (what a browser would send)."""
    match = re.search(rf'<form[^>]*id="{form_id}"[^>]*>(.*?)</form>', page.text, re.S)
    assert match is not None, f"no form {form_id}"
    return {name: html.unescape(value) for name, value in re.findall(
        r'<input type="hidden" name="(\w+)" value="([^"]*)">', match.group(1))}


def confirmations(factory: sessionmaker[Session]) -> dict[tuple[str, str], Confirmation]:
    with factory() as session:
        return {(c.occurrence_uid, c.unit): c for c in session.scalars(select(Confirmation))}


def outbox(factory: sessionmaker[Session]) -> dict[str, tuple[str, str | None]]:
    with factory() as session:
        return {r.idempotency_key: (r.state, r.last_error)
                for r in session.scalars(select(OutboxRow))}


def not_found(site: Site) -> Reply:
    reply = request(site.port, "/no/such/page")
    assert reply.status == 404
    return reply


# -- the confirm page ---------------------------------------------------------------------


def test_get_shows_unit_milestone_and_due_date_and_never_confirms(site: Site) -> None:
    before = outbox(site.factory)
    path = confirm_path(HO_SO, "phong-dan-toc")
    for method in ("GET", "HEAD", "GET"):
        reply = request(site.port, path, method)
        assert reply.status == 200
    assert confirmations(site.factory) == {}
    assert outbox(site.factory) == before  # mail scanners follow links: nothing changes
    page = reply.text
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert reply.header("Cache-Control") == "no-store"
    assert reply.header("Referrer-Policy") == "no-referrer"
    assert "frame-ancestors 'none'" in (reply.header("Content-Security-Policy") or "")
    assert '<html lang="vi">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "Phòng Dân tộc &lt;b&gt;huyện&lt;/b&gt;" in page
    assert "Thứ Năm, 30/5/2024" in page
    assert "QUÁ HẠN 2 ngày, chưa xác nhận" in page
    assert "Phong trào thi đua năm 2024" in page
    assert page.count("<form") == 1
    assert 'method="post"' in page
    assert '<label for="by">Người xác nhận</label>' in page
    assert "<script" not in page


def test_post_confirms_once_then_says_already_confirmed(site: Site) -> None:
    path = confirm_path(HO_SO, "phong-dan-toc")
    fields = form_of(request(site.port, path))
    site.clock.at = NOW + timedelta(minutes=5)
    reply = request(site.port, path, "POST", {**fields, "by": "Nguyễn Văn Bình"},
                    {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"})
    assert reply.status == 200
    assert "Đã xác nhận lúc 09:05, Thứ Bảy, 01/6/2024." in reply.text
    assert "Nguyễn Văn Bình" in reply.text
    assert 'id="undo-form"' in reply.text
    assert 'id="confirm-form"' not in reply.text
    stored = confirmations(site.factory)[(HO_SO, "phong-dan-toc")]
    assert stored.confirmed_by == "Nguyễn Văn Bình"
    assert stored.address == "127.0.0.1"  # the TCP peer, no proxy header believed
    assert stored.confirmed_at == NOW + timedelta(minutes=5)
    assert stored.undone_at is None
    rows = outbox(site.factory)
    assert {v for k, v in rows.items() if f"{HO_SO}:phong-dan-toc:" in k} == {
        ("cancelled", CONFIRMED)}
    assert all(v[0] != "cancelled" for k, v in rows.items() if ":ubnd-xa-a:" in k)

    site.clock.at = NOW + timedelta(hours=2)
    again = request(site.port, path, "POST", {**fields, "by": "Người khác"})
    assert again.status == 200
    assert "Đã xác nhận trước đó, lúc 09:05, Thứ Bảy, 01/6/2024." in again.text
    assert confirmations(site.factory)[(HO_SO, "phong-dan-toc")].confirmed_by == \
        "Nguyễn Văn Bình"


def test_undo_within_24_hours_and_not_after(site: Site) -> None:
    path = confirm_path(BAO_CAO, "phong-dan-toc")
    fields = form_of(request(site.port, path))
    request(site.port, path, "POST", fields)
    before_undo = outbox(site.factory)
    key = f"reminder:{BAO_CAO}:phong-dan-toc:3d:2024-06-28"
    assert before_undo[key] == ("cancelled", CONFIRMED)

    site.clock.at = NOW + timedelta(hours=23, minutes=59)
    page = request(site.port, path)
    assert "Có thể hoàn tác đến 09:00, Chủ Nhật, 02/6/2024." in page.text
    undone = request(site.port, path, "POST", form_of(page, "undo-form"))
    assert undone.status == 200
    assert "Đã hoàn tác xác nhận." in undone.text
    assert 'id="confirm-form"' in undone.text
    assert confirmations(site.factory)[(BAO_CAO, "phong-dan-toc")].undone_at is not None
    assert outbox(site.factory)[key] == ("pending", None)

    # Confirmed again; after 24 h the page has no undo button any more, and the undo
    # button of a page loaded before then is refused.
    request(site.port, path, "POST", form_of(undone))
    site.clock.at += timedelta(hours=23)
    earlier = request(site.port, path)
    site.clock.at += timedelta(hours=1, seconds=1)
    page = request(site.port, path)
    assert 'id="undo-form"' not in page.text
    assert "Đã xác nhận hoàn thành lúc 08:59, Chủ Nhật, 02/6/2024" in page.text
    late = request(site.port, path, "POST", form_of(earlier, "undo-form"))
    assert late.status == 200
    assert "Không thể hoàn tác" in late.text
    assert confirmations(site.factory)[(BAO_CAO, "phong-dan-toc")].undone_at is None


def test_a_token_for_unit_a_cannot_confirm_for_unit_b(site: Site) -> None:
    token_a = confirm_token(CONFIRM_KEY, HO_SO, "ubnd-xa-a")
    token_b = confirm_token(CONFIRM_KEY, HO_SO, "phong-dan-toc")
    spliced = f"{token_b.split('.')[0]}.{token_a.split('.')[1]}"  # B's payload, A's MAC
    fields = form_of(request(site.port, f"/confirm/{token_a}"))
    reference = not_found(site)
    for method, form in (("GET", None), ("POST", fields), ("POST", {**fields,
                                                                   "unit": "phong-dan-toc"})):
        reply = request(site.port, f"/confirm/{spliced}", method, form)
        assert (reply.status, reply.body) == (404, reference.body)
    assert confirmations(site.factory) == {}
    # A's own link confirms for A, and only for A, whatever the form says.
    request(site.port, f"/confirm/{token_a}", "POST", {**fields, "unit": "phong-dan-toc"})
    assert set(confirmations(site.factory)) == {(HO_SO, "ubnd-xa-a")}


def test_modified_forged_unknown_and_expired_links_are_the_shared_404(site: Site) -> None:
    token = confirm_token(CONFIRM_KEY, HO_SO, "phong-dan-toc")
    payload, mac = token.split(".")
    flip = {"A": "B", "B": "A"}
    attempts = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # MAC changed
        ("B" if payload[0] != "B" else "C") + token[1:],  # payload changed
        token[:-1], token + "A", payload, f"{payload}.", f".{mac}", f"{token}.{mac}",
        token.replace(".", "%2E"), token + "/", token + "%00",
        "".join(flip.get(c, c) for c in token),
        confirm_token(derive_key(b"another secret" * 3, CONFIRM_PURPOSE), HO_SO,
                      "phong-dan-toc"),  # another deployment
        confirm_token(FEED_KEY, HO_SO, "phong-dan-toc"),  # a key of another purpose
        confirm_token(CONFIRM_KEY, f"nothing@{DOMAIN}", "phong-dan-toc"),  # unknown uid
        confirm_token(CONFIRM_KEY, HO_SO, "ubnd-xa-b"),  # not one of its recipients
        confirm_token(CONFIRM_KEY, OLD, "phong-dan-toc"),  # due 1/2: expired on 1/5
        site.token("unit", "phong-dan-toc"),  # a feed token is not a confirm token
    ]
    assert token not in attempts
    reference = not_found(site)
    for attempt in attempts:
        for method in ("GET", "POST"):
            reply = request(site.port, f"/confirm/{attempt}", method,
                            {"action": "confirm"} if method == "POST" else None)
            assert reply.status == 404, (attempt, method)
            assert reply.body == reference.body
            assert reply.without_date() == reference.without_date()
    assert confirmations(site.factory) == {}


def test_a_link_is_honoured_until_its_day_plus_90_days(site: Site) -> None:
    path = confirm_path(HO_SO, "phong-dan-toc")
    site.clock.at = datetime(2024, 8, 28, 23, 59, tzinfo=VN)  # 30/5 + 90 days
    assert request(site.port, path).status == 200
    site.clock.at = datetime(2024, 8, 29, 0, 0, tzinfo=VN)
    assert request(site.port, path).status == 404


def test_a_post_that_did_not_come_from_the_page_changes_nothing(site: Site) -> None:
    path = confirm_path(HO_SO, "phong-dan-toc")
    other = form_of(request(site.port, confirm_path(BAO_CAO, "phong-dan-toc")))
    fields = form_of(request(site.port, path))
    for form in ({"action": "confirm"},  # a bare POST (a scanner, a forger)
                 {**other, "action": "confirm"},  # a nonce made for another link
                 {**fields, "nonce": fields["nonce"][:-1] + "x"},
                 {**fields, "action": "delete"},
                 {**fields, "issued": str(int(fields["issued"]) + 1)}):
        reply = request(site.port, path, "POST", form)
        assert reply.status == 403
        assert "Trang đã quá cũ" in reply.text
        assert 'id="confirm-form"' in reply.text  # a fresh form: one more tap
    site.clock.at = NOW + timedelta(hours=24, seconds=1)  # a tab left open for a day
    assert request(site.port, path, "POST", fields).status == 403
    assert confirmations(site.factory) == {}
    assert request(site.port, path, "POST", {"action": "confirm", "issued": "x" * 5000,
                                             "nonce": "y"}).status == 403


def test_nonces_are_bound_to_the_token_and_expire() -> None:
    made = form_nonce(FORM_KEY, "token", NOW)
    assert check_nonce(FORM_KEY, "token", str(made.issued), made.nonce, NOW)
    assert check_nonce(FORM_KEY, "token", str(made.issued), made.nonce,
                       NOW + timedelta(hours=24))
    assert not check_nonce(FORM_KEY, "token", str(made.issued), made.nonce,
                           NOW + timedelta(hours=24, seconds=1))
    assert not check_nonce(FORM_KEY, "other", str(made.issued), made.nonce, NOW)
    assert not check_nonce(CONFIRM_KEY, "token", str(made.issued), made.nonce, NOW)
    assert not check_nonce(FORM_KEY, "token", "-1", made.nonce, NOW)
    assert not check_nonce(FORM_KEY, "token", "١٢", made.nonce, NOW)  # non-ASCII digits


def test_the_page_is_in_the_units_language(site: Site) -> None:
    reply = request(site.port, confirm_path(HO_SO, "ubnd-xa-a"))
    assert reply.status == 200
    assert '<html lang="en">' in reply.text
    assert "Thursday, 30 May 2024" in reply.text
    assert '<label for="by">Confirmed by</label>' in reply.text
    confirmed = request(site.port, confirm_path(HO_SO, "ubnd-xa-a"), "POST",
                        {**form_of(reply), "by": "Ms Lan\n\x07INFO a forged log line"})
    assert "Confirmed at 09:00, Saturday, 1 June 2024." in confirmed.text
    # A name is one line of text (it is logged): line breaks and control characters go.
    assert confirmations(site.factory)[(HO_SO, "ubnd-xa-a")].confirmed_by == \
        "Ms Lan INFO a forged log line"
    again = request(site.port, confirm_path(HO_SO, "ubnd-xa-a"), "POST", form_of(reply))
    assert "Already confirmed on 09:00, Saturday, 1 June 2024." in again.text


def test_other_methods_on_pages_are_405(site: Site) -> None:
    reply = request(site.port, confirm_path(HO_SO, "phong-dan-toc"), "PUT")
    assert (reply.status, reply.header("Allow")) == (405, "GET, HEAD, POST")
    status = f"/status/thi-dua-2024/{site.token('campaign', 'thi-dua-2024')}"
    reply = request(site.port, status, "POST", {})
    assert (reply.status, reply.header("Allow")) == (405, "GET, HEAD")
    assert confirmations(site.factory) == {}


def test_config_text_is_shown_as_written_never_run(site: Site) -> None:
    pages = [request(site.port, confirm_path(HO_SO, "phong-dan-toc")).text,
             request(site.port, f"/agenda/phong-dan-toc/"
                     f"{site.token('unit', 'phong-dan-toc')}").text,
             request(site.port, f"/status/thi-dua-2024/"
                     f"{site.token('campaign', 'thi-dua-2024')}").text]
    for page in pages:
        assert html.escape(HOSTILE, quote=False) in page
        assert "<script" not in page
        assert "Gửi hồ sơ &lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }}" in page
        assert "<b>huyện</b>" not in page


# -- the status page ----------------------------------------------------------------------


def delivered(factory: sessionmaker[Session], key: str, state: str, at: datetime) -> None:
    """Mark an outbox row as the dispatcher would (sent, or failed for good)."""
    with factory.begin() as session:
        row = session.scalars(select(OutboxRow).where(OutboxRow.idempotency_key == key)).one()
        row.state, row.sent_at = state, at if state == "sent" else None
        row.fire_at = at


def test_the_status_page_opens_with_the_campaign_owner_or_admin_token(site: Site) -> None:
    delivered(site.factory, f"reminder:{HO_SO}:phong-dan-toc:1d:2024-05-30", "failed",
              datetime(2024, 5, 29, 7, 30, tzinfo=VN))
    delivered(site.factory, f"reminder:{HO_SO}:ubnd-xa-a:1d:2024-05-30", "sent",
              datetime(2024, 5, 29, 7, 30, 12, tzinfo=VN))
    request(site.port, confirm_path(HO_SO, "ubnd-xa-a"), "POST",
            form_of(request(site.port, confirm_path(HO_SO, "ubnd-xa-a")))
            | {"by": "Nguyễn Văn <A>"})
    reference = not_found(site)
    for token in (site.token("campaign", "thi-dua-2024"), site.token("admin", "all"),
                  site.token("unit", "phong-noi-vu")):  # the owner
        reply = request(site.port, f"/status/thi-dua-2024/{token}")
        assert reply.status == 200, token
    for path in (f"/status/thi-dua-2024/{site.token('unit', 'phong-dan-toc')}",  # not the lead
                 f"/status/thi-dua-2024/{site.token('campaign', 'thi-dua-2025')}",
                 f"/status/thi-dua-2025/{site.token('admin', 'all')}",  # no such campaign
                 f"/status/thi-dua-2024/{'A' * 32}",
                 f"/status/thi-dua-2024/{site.token('campaign', 'thi-dua-2024')}.json"):
        reply = request(site.port, path)
        assert (reply.status, reply.body) == (404, reference.body), path
        assert reply.without_date() == reference.without_date()
    page = reply = request(site.port, f"/status/thi-dua-2024/"
                                      f"{site.token('campaign', 'thi-dua-2024')}")
    text = page.text
    assert "Tình hình thực hiện: Phong trào thi đua năm 2024" in text
    assert "Số liệu lúc 09:00, Thứ Bảy, 01/6/2024." in text
    # ho-so, due 30/5: xã A confirmed, Phòng Dân tộc overdue (in red, and in words).
    ho_so = text[text.index("Gửi hồ sơ"):text.index("Báo cáo sơ kết")]
    assert "đã xác nhận 1/2 đơn vị, quá hạn 1" in ho_so
    assert ('<tr class="row-overdue"><td>Phòng Dân tộc &lt;b&gt;huyện&lt;/b&gt;</td>'
            '<td class="state-overdue">QUÁ HẠN</td><td></td><td></td>'
            '<td class="overdue">GỬI LỖI 07:30, Thứ Tư, 29/5/2024</td></tr>') in ho_so
    assert ('<tr class="row-confirmed"><td>UBND xã A</td><td class="state-confirmed">'
            "Đã xác nhận</td><td>09:00, Thứ Bảy, 01/6/2024</td>"
            "<td>Nguyễn Văn &lt;A&gt;</td>"
            "<td>đã gửi 07:30, Thứ Tư, 29/5/2024</td></tr>") in ho_so
    bao_cao = text[text.index("Báo cáo sơ kết"):]
    assert "Chưa xác nhận" in bao_cao
    assert "QUÁ HẠN" not in bao_cao
    token = site.token("campaign", "thi-dua-2024")
    assert f'href="{token}.csv"' in text


def test_the_status_csv_has_the_columns_a_bom_and_vietnamese_intact(site: Site) -> None:
    token = site.token("unit", "phong-noi-vu")
    reply = request(site.port, f"/status/thi-dua-2024/{token}.csv")
    assert reply.status == 200
    assert reply.header("Content-Type") == "text/csv; charset=utf-8"
    assert reply.header("Content-Disposition") == \
        'attachment; filename="status-thi-dua-2024-2024-06-01.csv"'
    assert reply.body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(reply.body.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == CSV_FIELDS
    assert [(r["uid"], r["unit"], r["state"]) for r in rows] == [  # the lead is not listed
        (HO_SO, "phong-dan-toc", "overdue"), (HO_SO, "ubnd-xa-a", "overdue"),
        (BAO_CAO, "phong-dan-toc", "pending"), (BAO_CAO, "ubnd-xa-a", "pending")]
    assert {r["title"] for r in rows} == {HOSTILE, "Báo cáo sơ kết"}
    assert "Phòng Dân tộc <b>huyện</b>" in {r["unit_name"] for r in rows}


# -- the agenda page ----------------------------------------------------------------------


def agenda(site: Site, unit: str) -> Reply:
    return request(site.port, f"/agenda/{unit}/{site.token('unit', unit)}")


def items_of(page: str) -> dict[str, str]:
    """uid → the HTML of its item."""
    return dict(re.findall(r'<li class="item[^"]*" data-uid="([^"]+)">(.*?)</li>', page, re.S))


def test_the_agenda_page_of_a_unit(site: Site) -> None:
    reply = agenda(site, "phong-dan-toc")
    assert reply.status == 200
    page = reply.text
    assert "Lịch công việc: Phòng Dân tộc &lt;b&gt;huyện&lt;/b&gt;" in page
    assert "Các mốc của đơn vị từ 02/5/2024 đến 30/8/2024." in page
    months = re.findall(r'<h2 id="m-(\d{4}-\d\d)">([^<]+)</h2>', page)
    assert months == [("2024-05", "Tháng 5/2024"), ("2024-06", "Tháng 6/2024"),
                      ("2024-07", "Tháng 7/2024")]
    items = items_of(page)
    assert set(items) == {HO_SO, BAO_CAO, HOI_NGHI, f"thi-dua-2024.period@{DOMAIN}",
                          f"anniversary.thanh-lap.70@{DOMAIN}"}  # not the February one
    assert re.search(rf'class="item kind-deadline is-overdue" data-uid="{re.escape(HO_SO)}"',
                     page)
    assert '<p class="status overdue">QUÁ HẠN 2 ngày</p>' in items[HO_SO]
    assert "Hạn chót" in items[HO_SO]  # the kind in words, not only in colour
    assert "Còn 27 ngày" in items[BAO_CAO]
    assert "Sự kiện" in items[HOI_NGHI]
    assert "Hội trường UBND huyện" in items[HOI_NGHI]
    assert "Kỷ niệm" in items[f"anniversary.thanh-lap.70@{DOMAIN}"]
    assert '<div class="notice warn" role="status" id="overdue-summary">1 việc quá hạn' in page
    # Confirm buttons: the open deadlines only, each to its own signed link.
    links = re.findall(r'<a class="button confirm" href="([^"]+)">', page)
    assert links == [f"../../confirm/{confirm_token(CONFIRM_KEY, HO_SO, 'phong-dan-toc')}",
                     f"../../confirm/{confirm_token(CONFIRM_KEY, BAO_CAO, 'phong-dan-toc')}"]
    assert request(site.port, "/agenda/phong-dan-toc/" + links[0]).status == 404
    assert request(site.port, links[0].removeprefix("../..")).status == 200
    # Subscribe: webcal, Google and Outlook, all from the tokened feed URL.
    token = site.token("unit", "phong-dan-toc")
    https = f"{PUBLIC}/feeds/phong-dan-toc/{token}.ics"
    webcal = f"webcal://lich.example.vn/mocd/feeds/phong-dan-toc/{token}.ics"
    assert f'id="subscribe-webcal" href="{webcal}"' in page
    assert (f'id="subscribe-google" href="https://calendar.google.com/calendar/render?cid='
            f'{quote(webcal, safe="")}"') in page
    assert (f'id="subscribe-outlook" href="https://outlook.live.com/calendar/0/addfromweb?'
            f'url={quote(https, safe="")}&amp;name=') in page
    # The period on the timeline: it began before the window, ends inside it.
    assert '<div class="bar open-left open-right" style="left:0.0%;width:100.0%">' in page


def test_confirmed_deadlines_lose_their_button_and_say_so(site: Site) -> None:
    path = confirm_path(HO_SO, "phong-dan-toc")
    request(site.port, path, "POST", form_of(request(site.port, path)))
    page = agenda(site, "phong-dan-toc").text
    items = items_of(page)
    assert "Đã xác nhận 01/6/2024" in items[HO_SO]
    assert ' is-overdue"' not in page
    assert 'id="overdue-summary"' not in page
    assert 'class="button confirm"' not in items[HO_SO]
    assert 'class="button confirm"' in items[BAO_CAO]


def test_the_lead_and_cc_units_have_no_confirm_buttons(site: Site) -> None:
    lead = agenda(site, "phong-noi-vu").text
    assert HO_SO in lead
    assert 'class="button confirm"' not in lead
    assert ' is-overdue"' not in lead
    # One rule with the emails and status: the lead follows up; its link (if it had
    # one) opens nothing.
    reply = request(site.port, confirm_path(HO_SO, "phong-noi-vu"))
    assert (reply.status, reply.body) == (404, not_found(site).body)
    cc = agenda(site, "ubnd-xa-b").text
    assert set(items_of(cc)) == {HOI_NGHI}
    assert "(Để biết)" in cc
    english = agenda(site, "ubnd-xa-a").text
    assert '<html lang="en">' in english
    assert "Deadline" in english
    assert "OVERDUE by 2 days" in english


def test_agenda_tokens_are_per_unit_and_unknown_units_are_404(site: Site) -> None:
    reference = not_found(site)
    for path in (f"/agenda/phong-dan-toc/{site.token('unit', 'ubnd-xa-a')}",
                 f"/agenda/khong-co/{site.token('unit', 'khong-co')}",  # no such unit
                 f"/agenda/phong-dan-toc/{site.token('campaign', 'phong-dan-toc')}",
                 f"/agenda/phong-dan-toc/{site.token('unit', 'phong-dan-toc')}/"):
        reply = request(site.port, path)
        assert (reply.status, reply.body) == (404, reference.body), path
        assert reply.without_date() == reference.without_date()


TRAVERSALS = [
    "/confirm/../../etc/passwd",
    "/confirm/..%2f..%2fvar%2fsecret.key",
    "/confirm/%2e%2e/%2e%2e/var/mocd.sqlite3",
    "/confirm/{confirm}/../{confirm}",
    "/confirm/{confirm}%00",
    "/confirm//{confirm}",
    "/confirm/.{confirm}",
    "/confirm/",
    "/status/thi-dua-2024/../../var/secret.key",
    "/status/thi-dua-2024/{campaign}/..",
    "/status/thi-dua-2024/{campaign}.csv/..",
    "/status/thi-dua-2024%2f{campaign}",
    "/status/..%5c..%5csecret.key",
    "/status/THI-DUA-2024/{campaign}",
    "/status/thi-dua-2024/{campaign}.CSV",
    "/status/thi-dua-2024//{campaign}",
    "/status/./thi-dua-2024/{campaign}",
    "/status/",
    "/agenda/phong-dan-toc/../phong-dan-toc/{unit}",
    "/agenda/phong-dan-toc/{unit}%00",
    "/agenda/phong-dan-toc\\..\\..\\secret.key",
    "/agenda/%2e%2e/{unit}",
    "/agenda/phong-dan-toc/{unit}.ics",
    "/agenda/phong-dan-toc%2f{unit}",
    "/agenda/",
    "/agenda",
    "/status",
    "/confirm",
]


def test_path_traversal_on_the_pages_is_404_and_opens_no_file(site: Site) -> None:
    values = {"confirm": confirm_token(CONFIRM_KEY, HO_SO, "phong-dan-toc"),
              "campaign": site.token("campaign", "thi-dua-2024"),
              "unit": site.token("unit", "phong-dan-toc")}
    loop_thread = site.running.thread
    opened: list[str] = []
    watching = threading.Event()

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if watching.is_set() and event == "open" and threading.current_thread() is loop_thread:
            opened.append(str(args[0]))

    sys.addaudithook(audit)  # hooks cannot be removed; this one is inert once unset
    reference = not_found(site)
    watching.set()
    try:
        for attempt in TRAVERSALS:
            reply = request(site.port, attempt.format(**values))
            assert (reply.status, reply.body) == (404, reference.body), attempt
    finally:
        watching.clear()
    assert opened == []
    assert confirmations(site.factory) == {}


def test_the_database_is_only_used_off_the_event_loop(factory: sessionmaker[Session]) -> None:
    apply(factory)
    threads: list[threading.Thread] = []

    def recording() -> Session:
        threads.append(threading.current_thread())
        return factory()

    tokens = FeedTokens(FEED_KEY)
    pages = Pages(recording, tokens, settings=SETTINGS,  # type: ignore[arg-type]
                  clock=FixedClock(NOW), confirm_key=CONFIRM_KEY, form_key=FORM_KEY)
    running = Running(FeedServer(StaticFeeds(), tokens, ServerOptions(port=0), Metrics(),
                                 pages=pages))
    try:
        path = confirm_path(HO_SO, "phong-dan-toc")
        request(running.port, path, "POST", form_of(request(running.port, path)))
        request(running.port, f"/agenda/phong-dan-toc/{tokens.token('unit', 'phong-dan-toc')}")
        request(running.port, f"/status/thi-dua-2024/{tokens.token('admin', 'all')}.csv")
    finally:
        running.close()
    assert len(threads) >= 5
    assert running.thread not in threads
    assert confirmations(factory)[(HO_SO, "phong-dan-toc")].address == "127.0.0.1"


# -- the view model, without a server -----------------------------------------------------


def test_the_agenda_view_is_pure_and_renders_statically_without_confirm_buttons() -> None:
    config = load(CONFIG)
    occurrences = expand(config, Window(date(2023, 1, 1), date(2025, 12, 31)))
    unit = AgendaUnit("phong-dan-toc", "Phòng Dân tộc", None)
    links = subscribe_links(PUBLIC, "phong-dan-toc", "T" * 32, "Phòng Dân tộc")
    view = agenda_view(unit, occurrences, today=NOW.date(), tz=VN, confirmed={},
                       confirm_url=lambda uid: f"/confirm/{uid}", subscribe=links)
    assert [m.heading for m in view.months] == ["Tháng 5/2024", "Tháng 6/2024",
                                                "Tháng 7/2024"]
    assert view.overdue == 1
    [bar] = view.timeline
    # 15/4–30/9 overlaps the whole window (2/5–30/8): clipped on both sides
    assert (bar.left, bar.width, bar.starts_before, bar.ends_after) == (0.0, 100.0, True, True)
    assert view.today_at == round(30 / 121 * 100, 2)
    assert [i.uid for i in view.items if i.confirm_url] == [HO_SO, BAO_CAO]
    live = render_agenda_html(view, with_confirm=True)
    assert live.count('class="button confirm"') == 2
    assert 'class="button confirm"' not in render_agenda_html(view)
    # A static export knows no confirmations: nothing is called overdue or confirmed.
    static = agenda_view(unit, occurrences, today=NOW.date(), tz=VN,
                         ics_href="../units/phong-dan-toc.ics")
    assert static.overdue == 0
    assert not any(i.confirm_url for i in static.items)
    page = render_agenda_html(static)
    assert 'href="../units/phong-dan-toc.ics"' in page
    assert "/confirm/" not in page
    assert "QUÁ HẠN" not in page
    assert "Trang tĩnh" in page


# -- in the daemon ------------------------------------------------------------------------


def test_the_daemon_serves_the_pages(daemon: Daemon) -> None:
    """The wiring: FeedService gives the server its pages, with the instance's secret, the
    database and the daemon's clock."""
    daemon.start()
    daemon.notify.wait_for("READY=1")
    secret = load_secret(Settings(state_dir=daemon.tmp / "var"))
    key = derive_key(secret, CONFIRM_PURPOSE)
    path = f"/confirm/{confirm_token(key, 'milestone.ho-so@mocd.local', 'phong-noi-vu')}"
    page = request(daemon.port, path)
    assert page.status == 200, page.body
    assert "Gửi hồ sơ đề nghị khen thưởng" in page.text
    done = request(daemon.port, path, "POST", {**form_of(page), "by": "Văn thư"})
    assert "Đã xác nhận lúc" in done.text
    tokens = FeedTokens(derive_key(secret, FEED_PURPOSE))
    agenda = request(daemon.port, f"/agenda/phong-noi-vu/{tokens.token('unit', 'phong-noi-vu')}")
    assert agenda.status == 200
    assert f"http://127.0.0.1:{daemon.port}/feeds/phong-noi-vu/" in agenda.text
    assert request(daemon.port, path[:-1] + ("B" if path[-1] == "A" else "A")).status == 404
    assert daemon.stop() == 0
    engine = open_engine(f"sqlite:///{daemon.tmp / 'var' / 'mocd.sqlite3'}")
    try:
        stored = confirmations(session_factory(engine))
    finally:
        engine.dispose()
    assert stored[("milestone.ho-so@mocd.local", "phong-noi-vu")].confirmed_by == "Văn thư"


def test_behind_a_trusted_proxy_the_address_it_saw_is_recorded(
        factory: sessionmaker[Session]) -> None:
    """With http.trusted_proxies naming the peer (nginx on the same host), the last entry
    of X-Forwarded-For is the client; a spoofed first entry is not believed."""
    apply(factory)
    clock = FixedClock(NOW)
    tokens = FeedTokens(FEED_KEY)
    settings = Settings(public_url=PUBLIC, http={"trusted_proxies": ["127.0.0.1"]})
    pages = Pages(factory, tokens, settings=settings, clock=clock, confirm_key=CONFIRM_KEY,
                  form_key=FORM_KEY)
    running = Running(FeedServer(StaticFeeds(), tokens, ServerOptions(port=0), Metrics(),
                                 pages=pages))
    try:
        path = confirm_path(HO_SO, "phong-dan-toc")
        fields = form_of(request(running.port, path))
        reply = request(running.port, path, "POST", fields,
                        {"X-Forwarded-For": "198.51.100.66, 203.0.113.9"})
        assert reply.status == 200
    finally:
        running.close()
    assert confirmations(factory)[(HO_SO, "phong-dan-toc")].address == "203.0.113.9"
