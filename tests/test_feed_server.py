"""The feed server over real loopback HTTP (issue 4): conditional requests, gzip, HEAD,
identical 404s, path traversal, token rotation, public feeds, /healthz, /metrics, the
lifecycle, and the daemon serving feeds as a real process.

The server runs in an event loop of its own thread; requests go through the standard
library's ``http.client`` (or a raw socket where the exact bytes on the wire matter).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import http.client
import json
import socket
import sys
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from calendars.feed_server import (
    FeedServer,
    Health,
    ServerOptions,
    accepts_gzip,
    gzip_etag,
)
from calendars.feed_types import FeedKey, RenderedFeed
from calendars.metrics import Metrics, read_outbox_counts
from calendars.tokens import (
    FEED_PURPOSE,
    FeedTokens,
    derive_key,
    ensure_generations,
    feed_subjects,
    load_generations,
    rotate,
)
from notifications.outbox import insert_new, new_row
from scheduler.database import transaction
from tests.conftest import NOW
from tests.test_daemon import CONFIG, Daemon, Notifications

T = TypeVar("T")
KEY = derive_key(b"k" * 32, FEED_PURPOSE)
MODIFIED = datetime(2024, 5, 30, 8, 15, 42, tzinfo=UTC)
BODY = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mocd//test//VI\r\n"
        "X-WR-CALNAME:Phòng Nội vụ huyện Ba Tơ\r\n" + "BEGIN:VEVENT\r\nSUMMARY:Gửi hồ sơ đề "
        "nghị khen thưởng\r\nEND:VEVENT\r\n" * 40 + "END:VCALENDAR\r\n").encode()


def rendered(body: bytes, modified: datetime = MODIFIED) -> RenderedFeed:
    return RenderedFeed(gzip=gzip.compress(body, mtime=0),
                        etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
                        last_modified=modified, size=len(body))


@dataclass
class StaticFeeds:
    """A FeedSource in memory (what calendars.feed_cache.FeedCache is to the daemon)."""

    feeds: dict[FeedKey, RenderedFeed] = field(default_factory=dict)
    asked: list[FeedKey] = field(default_factory=list)

    def get(self, key: FeedKey) -> RenderedFeed | None:
        self.asked.append(key)
        return self.feeds.get(key)


def default_feeds() -> StaticFeeds:
    return StaticFeeds({
        FeedKey("unit", "phong-noi-vu"): rendered(BODY),
        FeedKey("unit", "phong-dan-toc"): rendered(BODY.replace(b"Ba T", b"Ba V")),
        FeedKey("campaign", "thi-dua-2024"): rendered(BODY + b"\r\n"),
        FeedKey("all"): rendered(BODY * 2),
    })


class Running:
    """A FeedServer listening in an event loop in a thread of its own."""

    def __init__(self, server: FeedServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self.call(server.start())

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=20)

    def close(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    @property
    def tokens(self) -> FeedTokens:
        return self.server.tokens

    def url(self, scope: str, subject: str) -> str:
        token = self.tokens.token(scope, subject)
        if scope == "admin":
            return f"/feeds/all/{token}.ics"
        if scope == "campaign":
            return f"/feeds/campaign/{subject}/{token}.ics"
        return f"/feeds/{subject}/{token}.ics"


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(found) <= 1, f"{name} sent {len(found)} times"
        return found[0] if found else None

    def without_date(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers if k.lower() != "date"]


def fetch(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
          ) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def raw(port: int, request: bytes) -> bytes:
    """The exact bytes the server sends for one request (it closes the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def feeds() -> StaticFeeds:
    return default_feeds()


def serve(source: StaticFeeds, **options: Any) -> Running:
    server = FeedServer(source, FeedTokens(KEY, {("unit", "phong-noi-vu"): 1}),
                        ServerOptions(host="127.0.0.1", port=0, **options), Metrics())
    return Running(server)


@pytest.fixture
def running(feeds: StaticFeeds) -> Iterator[Running]:
    r = serve(feeds)
    yield r
    r.close()


# -- 200, validators, 304 -------------------------------------------------------------------


def test_a_unit_feed_is_200_with_a_strong_etag_and_calendar_headers(running: Running) -> None:
    reply = fetch(running.port, running.url("unit", "phong-noi-vu"))
    assert reply.status == 200
    assert reply.body == BODY
    etag = reply.header("ETag")
    assert etag == rendered(BODY).etag
    assert etag is not None
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    assert reply.header("Content-Type") == "text/calendar; charset=utf-8"
    assert reply.header("Content-Length") == str(len(BODY))
    assert reply.header("Last-Modified") == "Thu, 30 May 2024 08:15:42 GMT"
    assert reply.header("Cache-Control") == "max-age=21600"  # feeds.refresh PT6H
    assert reply.header("Vary") == "Accept-Encoding"
    assert reply.header("Content-Encoding") is None
    assert reply.header("Server") == "mocd"  # no version banner


def test_campaign_and_admin_feeds(running: Running, feeds: StaticFeeds) -> None:
    campaign = fetch(running.port, running.url("campaign", "thi-dua-2024"))
    assert (campaign.status, campaign.body) == (200, BODY + b"\r\n")
    everything = fetch(running.port, running.url("admin", "all"))
    assert (everything.status, everything.body) == (200, BODY * 2)


@pytest.mark.parametrize("if_none_match", [
    "{etag}", "{gz}", '"other", {etag}', "W/{etag}", "*", '"x",W/{gz}'])
def test_304_on_if_none_match(running: Running, if_none_match: str) -> None:
    path = running.url("unit", "phong-noi-vu")
    etag = fetch(running.port, path).header("ETag")
    assert etag is not None
    value = if_none_match.format(etag=etag, gz=gzip_etag(etag))
    reply = fetch(running.port, path, headers={"If-None-Match": value})
    assert reply.status == 304
    assert reply.body == b""
    assert reply.header("ETag") == etag
    assert reply.header("Cache-Control") == "max-age=21600"
    assert reply.header("Last-Modified") == "Thu, 30 May 2024 08:15:42 GMT"
    assert reply.header("Vary") == "Accept-Encoding"


def test_a_stale_etag_gets_the_new_body(running: Running) -> None:
    reply = fetch(running.port, running.url("unit", "phong-noi-vu"),
                  headers={"If-None-Match": '"an-old-version"'})
    assert (reply.status, reply.body) == (200, BODY)


def test_304_on_if_modified_since_at_or_after_last_modified(running: Running) -> None:
    path = running.url("unit", "phong-noi-vu")
    for since in (MODIFIED, MODIFIED + timedelta(days=3)):
        reply = fetch(running.port, path,
                      headers={"If-Modified-Since": format_datetime(since, usegmt=True)})
        assert (reply.status, reply.body) == (304, b"")
    earlier = format_datetime(MODIFIED - timedelta(seconds=1), usegmt=True)
    assert fetch(running.port, path, headers={"If-Modified-Since": earlier}).status == 200
    assert fetch(running.port, path, headers={"If-Modified-Since": "yesterday"}).status == 200
    # If-None-Match decides when both are sent (RFC 9110 §13.2.2).
    later = format_datetime(MODIFIED + timedelta(days=1), usegmt=True)
    reply = fetch(running.port, path, headers={"If-None-Match": '"old"',
                                               "If-Modified-Since": later})
    assert reply.status == 200


def test_a_changed_feed_gets_a_new_etag_and_last_modified(running: Running,
                                                          feeds: StaticFeeds) -> None:
    path = running.url("unit", "phong-noi-vu")
    first = fetch(running.port, path)
    changed = BODY.replace(b"Ba T", b"Ba X")
    feeds.feeds[FeedKey("unit", "phong-noi-vu")] = rendered(changed, MODIFIED + timedelta(hours=1))
    reply = fetch(running.port, path, headers={"If-None-Match": first.header("ETag") or ""})
    assert (reply.status, reply.body) == (200, changed)
    assert reply.header("ETag") != first.header("ETag")
    assert reply.header("Last-Modified") == "Thu, 30 May 2024 09:15:42 GMT"


# -- gzip, HEAD -----------------------------------------------------------------------------


def test_gzip_when_accepted_decompresses_to_the_same_bytes(running: Running) -> None:
    path = running.url("unit", "phong-noi-vu")
    plain = fetch(running.port, path)
    zipped = fetch(running.port, path, headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert zipped.status == 200
    assert zipped.header("Content-Encoding") == "gzip"
    assert zipped.header("Vary") == "Accept-Encoding"
    assert zipped.header("Content-Type") == "text/calendar; charset=utf-8"
    assert int(zipped.header("Content-Length") or 0) == len(zipped.body) < len(BODY)
    assert gzip.decompress(zipped.body) == plain.body == BODY
    etag = plain.header("ETag") or ""
    assert zipped.header("ETag") == etag[:-1] + '-gz"'  # another representation, another tag
    again = fetch(running.port, path, headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert again.status == 304  # either tag matches
    assert again.header("ETag") == zipped.header("ETag")
    refused = fetch(running.port, path, headers={"Accept-Encoding": "gzip;q=0, *"})
    assert refused.header("Content-Encoding") is None
    assert refused.body == BODY


def test_accept_encoding_parsing() -> None:
    assert accepts_gzip("gzip")
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("x-gzip")
    assert accepts_gzip("*")
    assert accepts_gzip("GZIP;Q=0.5")
    assert not accepts_gzip("")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("*;q=0")
    assert not accepts_gzip("gzip;q=0, *")
    assert not accepts_gzip("br, deflate")


def test_head_has_the_headers_of_get_and_no_body(running: Running) -> None:
    path = running.url("unit", "phong-noi-vu")
    for accept in ("identity", "gzip"):
        get = raw(running.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}"
                  "\r\nConnection: close\r\n\r\n".encode())
        head = raw(running.port, f"HEAD {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}"
                   "\r\nConnection: close\r\n\r\n".encode())
        get_head, _, get_body = get.partition(b"\r\n\r\n")
        head_head, _, head_body = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert head_body == b""  # nothing after the headers
        assert len(get_body) > 0

        def lines(block: bytes) -> list[bytes]:
            return [line for line in block.split(b"\r\n") if not line.startswith(b"Date:")]

        assert lines(head_head) == lines(get_head)  # Content-Length of the GET body included


# -- 404s -----------------------------------------------------------------------------------


def test_wrong_token_and_unknown_unit_get_identical_404s(running: Running,
                                                         feeds: StaticFeeds) -> None:
    right = running.tokens.token("unit", "phong-noi-vu")
    wrong = running.tokens.token("unit", "phong-dan-toc")
    replies = [
        fetch(running.port, f"/feeds/phong-noi-vu/{wrong}.ics"),           # wrong token
        fetch(running.port, f"/feeds/khong-co-don-vi/{right}.ics"),        # unknown unit
        fetch(running.port, f"/feeds/khong-co-don-vi/{'A' * 32}.ics"),
        fetch(running.port, f"/feeds/campaign/thi-dua-2024/{wrong}.ics"),  # wrong campaign token
        fetch(running.port, f"/feeds/campaign/khong-co/{wrong}.ics"),
        fetch(running.port, f"/feeds/all/{wrong}.ics"),                    # wrong admin token
        fetch(running.port, "/feeds/phong-noi-vu.ics"),                    # public: off
        fetch(running.port, "/khong-co"),
    ]
    first = replies[0]
    assert first.status == 404
    assert first.header("Content-Type") == "text/plain; charset=utf-8"
    for reply in replies:
        assert (reply.status, reply.body, reply.without_date()) == (
            first.status, first.body, first.without_date())


def test_a_feed_that_disappears_is_404(running: Running, feeds: StaticFeeds) -> None:
    path = running.url("unit", "phong-noi-vu")
    assert fetch(running.port, path).status == 200
    del feeds.feeds[FeedKey("unit", "phong-noi-vu")]
    assert fetch(running.port, path).status == 404


TRAVERSALS = [
    "/feeds/../../etc/passwd",
    "/feeds/..%2f..%2fetc%2fpasswd.ics",
    "/feeds/%2e%2e/%2e%2e/etc/passwd.ics",
    "/feeds/%2E%2E%2Fsecret.key",
    "/feeds/phong-noi-vu/..%2f..%2fsecret.key",
    "/feeds/phong-noi-vu%2f{token}.ics",
    "/feeds/./phong-noi-vu/{token}.ics",
    "/feeds/phong-noi-vu/../phong-noi-vu/{token}.ics",
    "/feeds//phong-noi-vu/{token}.ics",
    "/feeds/phong-noi-vu/{token}.ics/..",
    "/feeds/phong-noi-vu\\..\\..\\secret.key",
    "/feeds/..\\..\\var\\secret.key",
    "/feeds/phong-noi-vu/{token}%00.ics",
    "/feeds/phong-noi-vu%00/{token}.ics",
    "/feeds/%2e%2e%5c%2e%2e%5csecret.key",
    "/feeds/PHONG-NOI-VU/{token}.ics",
    "/feeds/phong-noi-vu/{token}.ICS",
    "/feeds/campaign/../all/{token}.ics",
    "/feeds/var/secret.key",
    "/feeds/",
    "/feeds",
    "/var/mocd.sqlite3",
]


def test_path_traversal_attempts_are_404_and_open_no_file(
        running: Running, caplog: pytest.LogCaptureFixture) -> None:
    token = running.tokens.token("unit", "phong-noi-vu")
    opened: list[str] = []
    watching = threading.Event()

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if watching.is_set() and event == "open" and threading.current_thread() is \
                running.thread:
            opened.append(str(args[0]))

    sys.addaudithook(audit)  # hooks cannot be removed; this one is inert once unset
    watching.set()
    try:
        for attempt in TRAVERSALS:
            path = attempt.format(token=token)
            assert fetch(running.port, path).status == 404, path
        raw_nul = raw(running.port, f"GET /feeds/phong-noi-vu/{token}\0.ics HTTP/1.1\r\n"
                      "Host: x\r\nConnection: close\r\n\r\n".encode())
        # A raw NUL is not HTTP: the parser rejects the request before any handler runs.
        assert raw_nul.split(b" ")[1] in (b"400", b"404")
    finally:
        watching.clear()
    assert opened == []
    bad = [r for r in caplog.records if r.name == "mocd.http.server"]
    assert [(r.levelname, r.exc_info) for r in bad] == [("INFO", None)]
    assert bad[0].getMessage().startswith("bad request from 127.0.0.1: Invalid char in url")
    assert fetch(running.port, f"/feeds/phong-noi-vu/{token}.ics?x=1").status == 200


def test_other_methods_are_405(running: Running) -> None:
    reply = fetch(running.port, running.url("unit", "phong-noi-vu"), method="POST")
    assert reply.status == 405
    assert reply.header("Allow") == "GET, HEAD"


# -- tokens from the database ---------------------------------------------------------------


def test_token_rotation_old_url_404_new_url_200(factory: sessionmaker[Session],
                                                feeds: StaticFeeds) -> None:
    ensure_generations(factory, feed_subjects(["phong-noi-vu", "phong-dan-toc"], []), NOW)
    tokens = FeedTokens(KEY, load_generations(factory))
    server = FeedServer(feeds, tokens, ServerOptions(port=0), Metrics())
    running = Running(server)
    try:
        old = running.url("unit", "phong-noi-vu")
        other = running.url("unit", "phong-dan-toc")
        assert fetch(running.port, old).status == 200
        assert rotate(factory, "unit", "phong-noi-vu", NOW) == 2
        tokens.update(load_generations(factory))  # what the daemon's sync tick does
        new = running.url("unit", "phong-noi-vu")
        assert new != old
        assert fetch(running.port, old).status == 404
        assert fetch(running.port, new).status == 200
        assert fetch(running.port, other).status == 200  # other units keep theirs
    finally:
        running.close()


# -- public feeds ---------------------------------------------------------------------------


def test_public_feeds_off_and_on(feeds: StaticFeeds) -> None:
    paths = {"/feeds/phong-noi-vu.ics": BODY, "/feeds/campaign/thi-dua-2024.ics": BODY + b"\r\n",
             "/feeds/all.ics": BODY * 2}
    closed = serve(feeds)
    try:
        for path in paths:
            assert fetch(closed.port, path).status == 404, path
    finally:
        closed.close()
    public = serve(feeds, public_feeds=True)
    try:
        for path, body in paths.items():
            reply = fetch(public.port, path)
            assert (reply.status, reply.body) == (200, body), path
        assert fetch(public.port, "/feeds/khong-co.ics").status == 404
        assert fetch(public.port, "/feeds/campaign/khong-co.ics").status == 404
        assert fetch(public.port, public.url("unit", "phong-noi-vu")).status == 200  # tokens too
        assert fetch(public.port, "/feeds/..%2fsecret.ics").status == 404
    finally:
        public.close()


# -- /healthz, /metrics ---------------------------------------------------------------------


def test_healthz_is_json_200_when_healthy_and_503_when_not(feeds: StaticFeeds) -> None:
    report = Health(database=True, scheduler=True, last_dispatch=NOW, revision_id=7,
                    revision_hash="ab" * 32, state="running")

    async def health() -> Health:
        return report

    server = FeedServer(feeds, FeedTokens(KEY), ServerOptions(port=0), Metrics(), health)
    running = Running(server)
    try:
        reply = fetch(running.port, "/healthz")
        assert reply.status == 200
        assert reply.header("Content-Type") == "application/json; charset=utf-8"
        assert json.loads(reply.body) == {
            "status": "ok", "state": "running", "waiting": None, "database": True,
            "scheduler": True, "last_dispatch": "2024-06-01T09:00:00+07:00",
            "config_revision": {"id": 7, "hash": "ab" * 32}}
        report = Health(database=False, scheduler=True, state="running")
        reply = fetch(running.port, "/healthz")
        assert reply.status == 503
        assert json.loads(reply.body)["status"] == "unavailable"
        assert json.loads(reply.body)["database"] is False
        report = Health(database=True, scheduler=True, state="running",
                        waiting="the database is locked by another program")
        reply = fetch(running.port, "/healthz")
        assert reply.status == 503
        assert json.loads(reply.body)["status"] == "degraded"
        assert json.loads(reply.body)["waiting"] == "the database is locked by another program"
    finally:
        running.close()


def parse_metrics(text: str) -> dict[str, dict[str, Any]]:
    """Samples by name and label set, read by prometheus_client's own parser."""
    samples: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
            samples[sample.name]["__type__"] = family.type
    return samples


def test_metrics_parse_and_count_feed_requests_and_the_outbox(
        factory: sessionmaker[Session], feeds: StaticFeeds) -> None:
    with transaction(factory) as session:
        rows = [new_row(f"reminder:{i}", "reminder", fire_at=NOW, created_at=NOW, unit="u",
                        uids=[f"o{i}"], offset="1d") for i in range(6)]
        rows.append(new_row("digest:1", "digest", fire_at=NOW, created_at=NOW, unit="u"))
        insert_new(session, rows)
        session.execute(
            __import__("sqlalchemy").text(
                "UPDATE outbox SET state = CASE idempotency_key "
                "WHEN 'reminder:0' THEN 'sent' WHEN 'reminder:1' THEN 'sent' "
                "WHEN 'reminder:2' THEN 'failed' WHEN 'reminder:3' THEN 'skipped' "
                "ELSE state END"))
    assert read_outbox_counts(factory).__dict__ == {"sent": 2, "failed": 1, "skipped": 1,
                                                    "pending": 3}
    metrics = Metrics(factory=factory)
    metrics.reload_done(True)
    metrics.reload_done(False)
    running = Running(FeedServer(feeds, FeedTokens(KEY), ServerOptions(port=0), metrics))
    try:
        ok = running.url("unit", "phong-noi-vu")
        fetch(running.port, ok)
        fetch(running.port, ok, headers={"If-None-Match": "*"})
        fetch(running.port, "/feeds/x/y.ics")
        fetch(running.port, "/feeds/x/y.ics")
        reply = fetch(running.port, "/metrics")
    finally:
        running.close()
    assert reply.status == 200
    assert reply.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    text = reply.body.decode()
    for line in text.splitlines():  # the 0.0.4 line grammar, besides the parser's reading
        assert line.startswith("# HELP mocd_") or line.startswith("# TYPE mocd_") or \
            line.startswith("mocd_"), line
    samples = parse_metrics(text)
    assert samples["mocd_reminders_sent_total"][""] == 2
    assert samples["mocd_reminders_sent_total"]["__type__"] == "counter"
    assert samples["mocd_reminders_failed_total"][""] == 1
    assert samples["mocd_reminders_skipped_total"][""] == 1
    assert samples["mocd_outbox_pending"] == {"": 3, "__type__": "gauge"}
    assert samples["mocd_feed_requests_total"] == {
        "status=200": 1, "status=304": 1, "status=404": 2, "__type__": "counter"}
    assert samples["mocd_config_reloads_total"][""] == 2  # accepted and rejected
    assert samples["mocd_config_reload_failures_total"][""] == 1


def test_outbox_counts_are_cached_between_scrapes(factory: sessionmaker[Session]) -> None:
    now = [100.0]
    metrics = Metrics(factory=factory, ttl=15.0, clock=lambda: now[0])
    assert asyncio.run(metrics.outbox()).pending == 0
    with transaction(factory) as session:
        insert_new(session, [new_row("digest:1", "digest", fire_at=NOW, created_at=NOW)])
    now[0] += 10
    assert asyncio.run(metrics.outbox()).pending == 0  # cached
    now[0] += 6
    assert asyncio.run(metrics.outbox()).pending == 1  # re-read after the ttl


# -- lifecycle ------------------------------------------------------------------------------


def test_listens_on_loopback_only_by_default(running: Running) -> None:
    assert ServerOptions().host == "127.0.0.1"
    from config.settings import HttpSettings

    assert HttpSettings().host == "127.0.0.1"
    runner = running.server._runner
    assert runner is not None
    assert [address[0] for address in runner.addresses] == ["127.0.0.1"]


def test_stop_finishes_in_flight_responses_then_refuses(feeds: StaticFeeds) -> None:
    started = threading.Event()

    async def slow_health() -> Health:
        started.set()
        await asyncio.sleep(0.5)
        return Health(database=True, scheduler=True)

    running = Running(FeedServer(feeds, FeedTokens(KEY), ServerOptions(port=0), Metrics(),
                                 slow_health))
    replies: list[Reply] = []
    client = threading.Thread(target=lambda: replies.append(fetch(running.port, "/healthz")))
    client.start()
    assert started.wait(10)
    running.close()  # while the request is in flight
    client.join(10)
    assert [r.status for r in replies] == [200]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", running.port), timeout=5).close()


def test_a_port_in_use_is_a_one_line_runtime_failure(feeds: StaticFeeds) -> None:
    from config.errors import RuntimeFailure

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = FeedServer(feeds, FeedTokens(KEY), ServerOptions(port=port), Metrics())
        with pytest.raises(RuntimeFailure, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(server.start())


# -- the daemon -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    notify = Notifications(tmp_path / "notify.sock")
    d = Daemon(tmp_path, notify, port=free_port())
    d.config.mkdir()
    (d.config / "plan.yaml").write_text(CONFIG, encoding="utf-8")
    yield d
    if d.process is not None and d.process.poll() is None:
        d.process.kill()
        d.process.wait()
    notify.sock.close()


def test_the_daemon_serves_health_metrics_and_tokened_urls(daemon: Daemon) -> None:
    daemon.start()
    daemon.notify.wait_for("READY=1")
    health = fetch(daemon.port, "/healthz")
    assert health.status == 200, health.body
    report = json.loads(health.body)
    assert report["database"] is True
    assert report["scheduler"] is True
    assert report["state"] == "running"
    assert report["config_revision"]["id"] == 1
    assert len(report["config_revision"]["hash"]) == 64
    samples = parse_metrics(fetch(daemon.port, "/metrics").body.decode())
    assert samples["mocd_outbox_pending"][""] >= 1  # the reminder (and its overdue notices)
    listed = daemon.mocd("tokens", "list", "--config", "config", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    [record] = json.loads(listed.stdout)
    assert record["unit"] == "phong-noi-vu"
    assert record["url"].startswith(f"http://127.0.0.1:{daemon.port}/feeds/phong-noi-vu/")
    assert f"serving feeds on http://127.0.0.1:{daemon.port}" in daemon.output()
    assert daemon.stop() == 0
    assert "stopped" in daemon.output()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", daemon.port), timeout=5).close()


def test_the_daemon_serves_the_bytes_of_mocd_feed(daemon: Daemon) -> None:
    pytest.importorskip("calendars.feed_cache", reason="feed rendering not wired in yet")
    daemon.start()
    daemon.notify.wait_for("READY=1")
    listed = daemon.mocd("tokens", "list", "--config", "config", "--format", "json")
    [record] = json.loads(listed.stdout)
    path = record["url"].removeprefix(f"http://127.0.0.1:{daemon.port}")
    served = fetch(daemon.port, path)
    printed = daemon.mocd_bytes("feed", "phong-noi-vu", "--config", "config")
    assert printed.returncode == 0, printed.stderr
    assert served.status == 200
    assert served.body == printed.stdout
    assert daemon.stop() == 0


def test_mocd_tokens_rotate_beside_a_running_daemon(daemon: Daemon) -> None:
    """The CLI writes the shared store while the daemon holds it (SQLite: two processes)."""
    daemon.start()
    daemon.notify.wait_for("READY=1")
    rotated = daemon.mocd("tokens", "rotate", "phong-noi-vu", "--config", "config")
    assert rotated.returncode == 0, rotated.stderr
    assert "generation 2" in rotated.stdout
    assert daemon.stop() == 0


def test_the_daemon_exits_3_when_its_port_is_taken(daemon: Daemon) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", daemon.port))
        taken.listen()
        daemon.start()
        assert daemon.process is not None
        assert daemon.process.wait(timeout=30) == 3
    assert f"cannot listen on 127.0.0.1:{daemon.port}" in daemon.output()
    assert "Traceback" not in daemon.output()



# -- the daemon's feed upkeep, in process ---------------------------------------------------


def test_feed_service_syncs_rotations_and_other_instances_revisions(
        factory: sessionmaker[Session], tmp_path: Path, mocd_env: Path) -> None:
    from calendars.feed_server import FeedService
    from config.settings import Settings
    from scheduler.models import ConfigRevision

    refreshed: list[int] = []
    settings = Settings(state_dir=tmp_path / "var")
    service = FeedService(settings, factory, Metrics(), source=default_feeds(),
                          refresh=lambda: refreshed.append(1))
    service.after_apply(["phong-noi-vu"], ["thi-dua-2024"], NOW, revision=None)
    assert refreshed == [1]
    assert service.tokens is not None
    old = service.tokens.token("unit", "phong-noi-vu")
    service.sync()  # nothing new
    assert refreshed == [1]
    rotate(factory, "unit", "phong-noi-vu", NOW)
    with transaction(factory) as session:  # another instance applies a revision
        session.add(ConfigRevision(content_hash="c" * 64, applied_at=NOW, ok=True, errors=None,
                                   summary={}))
    service.sync()
    assert refreshed == [1, 1]
    assert not service.tokens.verify("unit", "phong-noi-vu", old)
    assert service.tokens.generation("unit", "phong-noi-vu") == 2
    service.sync()
    assert refreshed == [1, 1]  # once per revision


def test_a_failing_render_never_reaches_the_daemon_and_is_retried(
        factory: sessionmaker[Session], tmp_path: Path, mocd_env: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Feeds are secondary to reminders: a renderer bug must not stop the daemon."""
    from calendars.feed_server import FeedService
    from config.settings import Settings
    from scheduler.models import ConfigRevision

    with transaction(factory) as session:
        session.add(ConfigRevision(content_hash="c" * 64, applied_at=NOW, ok=True, errors=None,
                                   summary={}))
    broken = [True]
    calls: list[bool] = []

    def refresh() -> None:
        calls.append(broken[0])
        if broken[0]:
            raise ValueError("a bug in rendering")

    service = FeedService(Settings(state_dir=tmp_path / "var"), factory, Metrics(),
                          refresh=refresh)
    service.after_apply(["phong-noi-vu"], [], NOW, revision=1)  # does not raise
    service.sync()  # retried: still broken, one line this time
    assert [r.exc_info is not None for r in caplog.records if r.levelname == "ERROR"] == [
        True, False]
    assert service.tokens is not None  # tokens were still made
    broken[0] = False
    service.sync()
    service.sync()  # done: no more refreshes for this revision
    assert calls == [True, True, False]
