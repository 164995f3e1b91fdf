"""The HTTP server of the daemon: feeds, ``/healthz`` and ``/metrics`` (SPEC §6).

It runs in the daemon's event loop on aiohttp's low-level server (:class:`aiohttp.web.Server`:
one handler, no router, no middlewares). A request never renders: a feed is a lookup
in a :class:`~calendars.feed_types.FeedSource` (bytes, gzip bytes, ETag, Last-Modified,
rendered once per change), and the response headers of each feed version are built
once and reused until the feed changes.

Paths are parsed here, from the raw request target, without percent-decoding: every
segment must be a slug (unit and campaign ids) or a token (32 URL-safe characters), so
``..``, ``%2e%2e``, ``%2f``, backslashes and NUL are simply not a feed and get the
404 that an unknown unit gets. Nothing here ever opens a file. Paths under ``/confirm/``,
``/status/`` and ``/agenda/`` go to :class:`calendars.pages.Pages` (issue 5), which keeps
the same rules and answers with the same 404.

Unknown unit, unknown campaign and wrong token are indistinguishable: the same 404
(body and headers), after the same work — the expected token is derived and compared
in constant time (:meth:`calendars.tokens.FeedTokens.verify`) whether the subject
exists or not; the feed is looked up only behind a valid token.

:class:`FeedServer` knows nothing of the database; :class:`FeedService` (at the end)
is the daemon's glue: token generations, feed refreshes after applies, the 60 s sync.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import resource
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, CIMultiDictProxy
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from calendars.feed_types import FeedKey, FeedSource, RenderedFeed
from calendars.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from calendars.metrics import Metrics
from calendars.pages import PAGE_PREFIXES, Pages
from calendars.tokens import (
    ADMIN_SUBJECT,
    TOKEN_LENGTH,
    FeedTokens,
    GenerationsVersion,
    ensure_generations,
    feed_subjects,
    generations_version,
    load_generations,
)
from config.errors import RuntimeFailure
from config.settings import Settings
from scheduler.clock import Clock, SystemClock
from scheduler.models import ConfigRevision

log = logging.getLogger("mocd.http")


class _BadRequestsInOneLine(logging.Filter):
    """aiohttp logs a malformed request (a raw NUL in the target, a TLS hello on the
    plain port) as an ERROR with a traceback; it is the client's fault: one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            reason = (error.message or "").strip().splitlines()
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "bad request from %s: %s", (remote, reason[0] if reason
                                                                   else error.code)
            record.exc_info, record.exc_text = None, None
        return True


_server_log = logging.getLogger("mocd.http.server")
_server_log.addFilter(_BadRequestsInOneLine())

FEED_CONTENT_TYPE = "text/calendar; charset=utf-8"
SERVER_NAME = "mocd"
PLAIN_BODIES = 32  # uncompressed bodies kept for clients without gzip (see RenderedFeed)
SHUTDOWN_TIMEOUT = 5.0  # seconds in-flight responses get to finish when the daemon stops
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,199}")
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")
_NOT_FOUND_BODY = b"404: Not Found\n"
_NOT_FOUND_HEADERS = CIMultiDictProxy(CIMultiDict({
    "Content-Type": "text/plain; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Server": SERVER_NAME,
}))
# -- request header parsing (cached: clients send the same few values again and again) ----


@lru_cache(maxsize=512)
def accepts_gzip(accept_encoding: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``gzip``, ``x-gzip`` or ``*``, q > 0).

    An explicit ``gzip;q=0`` refuses gzip even when ``*`` would allow it (RFC 9110 §12.5.3).
    """
    star: bool | None = None
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if name in ("gzip", "x-gzip"):
            return quality > 0
        if name == "*":
            star = quality > 0
    return bool(star)


@lru_cache(maxsize=512)
def _entity_tags(if_none_match: str) -> frozenset[str] | None:
    """The opaque tags of an ``If-None-Match`` list (``W/`` dropped: the weak comparison
    RFC 9110 prescribes for it); None stands for ``*``."""
    if if_none_match.strip() == "*":
        return None
    return frozenset(tag.strip().removeprefix("W/") for tag in if_none_match.split(","))


@lru_cache(maxsize=512)
def _http_date(value: str) -> float | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000": UTC by RFC 5322
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def gzip_etag(etag: str) -> str:
    """The ETag of the gzip variant: ``"abc"`` → ``"abc-gz"`` (a different representation
    needs a different strong validator)."""
    return etag[:-1] + '-gz"' if etag.endswith('"') else etag + "-gz"


# -- prepared responses -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One feed version with its four header sets (200/304, identity/gzip), built once."""

    feed: RenderedFeed
    tags: frozenset[str]
    modified: float
    ok_plain: CIMultiDictProxy[str]
    ok_gzip: CIMultiDictProxy[str]
    not_modified_plain: CIMultiDictProxy[str]
    not_modified_gzip: CIMultiDictProxy[str]


def _prepare(feed: RenderedFeed, max_age: int) -> _Prepared:
    modified = feed.last_modified.astimezone(UTC).replace(microsecond=0)
    common = {
        "Cache-Control": f"max-age={max_age}",
        "Last-Modified": format_datetime(modified, usegmt=True),
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "Server": SERVER_NAME,
    }
    etag_gz = gzip_etag(feed.etag)

    def headers(etag: str, body: bool, gzip: bool) -> CIMultiDictProxy[str]:
        values = CIMultiDict({"ETag": etag, **common})
        if body:
            values["Content-Type"] = FEED_CONTENT_TYPE
            if gzip:
                values["Content-Encoding"] = "gzip"
        return CIMultiDictProxy(values)

    return _Prepared(
        feed=feed, tags=frozenset((feed.etag, etag_gz)), modified=modified.timestamp(),
        ok_plain=headers(feed.etag, True, False), ok_gzip=headers(etag_gz, True, True),
        not_modified_plain=headers(feed.etag, False, False),
        not_modified_gzip=headers(etag_gz, False, True))


# -- health -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """What ``/healthz`` reports; ``ok`` (HTTP 200, else 503) needs the database and the
    scheduler."""

    database: bool
    scheduler: bool
    last_dispatch: datetime | None = None
    revision_id: int | None = None
    revision_hash: str | None = None
    state: str = ""
    waiting: str | None = None  # the daemon waits for its database (locked, away): degraded

    @property
    def ok(self) -> bool:
        return self.database and self.scheduler and self.waiting is None

    def to_json(self) -> dict[str, Any]:
        status = "ok" if self.ok else "degraded" if self.waiting else "unavailable"
        return {
            "status": status,
            "state": self.state,
            "waiting": self.waiting,
            "database": self.database,
            "scheduler": self.scheduler,
            "last_dispatch": self.last_dispatch.isoformat() if self.last_dispatch else None,
            "config_revision": ({"id": self.revision_id, "hash": self.revision_hash}
                                if self.revision_id is not None else None),
        }


HealthCheck = Callable[[], Awaitable[Health]]


# -- the server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8470
    public_feeds: bool = False
    max_age: int = 6 * 3600
    timeout: float = 15.0  # seconds a connection may go without a complete request
    max_connections: int = 500


_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Retry-After: 5\r\nConnection: close\r\nContent-Length: 34\r\n\r\n"
         b"503: too many connections; retry\r\n")


class _Refused(asyncio.Protocol):
    """A connection over the cap: told to come back, closed at once (its descriptor is
    free again before the next accept)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_BUSY)
        transport.close()


class _CappedServer(web.Server):
    """aiohttp's low-level server with a cap on open connections.

    aiohttp closes a connection that has sent no complete request within
    ``keepalive_timeout`` (the first request too), so a silent or slow client holds a slot
    for ``timeout`` at most. At the cap, a new connection first makes room by closing the
    oldest connection that is not serving a request (idle keep-alive, silent, or still
    sending its headers): a flood of silent connections then only displaces itself, and a
    real client — a calendar, ``/healthz`` — still gets in. Only when every connection is
    busy is the new one told "503, try again" and closed.
    """

    def __init__(self, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
                 *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self.busy: set[object] = set()  # transports of connections serving a request
        self.refused = 0
        self.evicted = 0

    def __call__(self) -> Any:
        if len(self.connections) >= self.max_connections and not self._evict_idle():
            self.refused += 1
            return _Refused()
        return super().__call__()

    def _evict_idle(self) -> bool:
        for connection in self.connections:  # oldest first
            transport = connection.transport
            if (transport is not None and transport not in self.busy
                    and not transport.get_write_buffer_size()):  # not still sending a feed
                transport.close()
                self.evicted += 1
                return True
        return False


class FeedServer:
    """Feeds, health and metrics over HTTP, in the caller's event loop.

    Lifecycle: :meth:`start` binds and listens (before the daemon says READY);
    :meth:`stop` closes the listeners, lets in-flight responses finish (at most
    :data:`SHUTDOWN_TIMEOUT` seconds) and closes idle keep-alive connections.
    """

    def __init__(self, source: FeedSource, tokens: FeedTokens, options: ServerOptions,
                 metrics: Metrics | None = None, health: HealthCheck | None = None,
                 pages: Pages | None = None) -> None:
        self.source = source
        self.tokens = tokens
        self.options = options
        self.metrics = metrics or Metrics()
        self.health = health
        self.pages = pages  # /confirm, /status, /agenda (issue 5); None: those are 404s
        self._prepared: dict[FeedKey, _Prepared] = {}
        self._plain: OrderedDict[FeedKey, tuple[RenderedFeed, bytes]] = OrderedDict()
        self._runner: web.ServerRunner | None = None
        self._server: _CappedServer | None = None
        self.port: int | None = None

    # -- lifecycle --

    async def start(self) -> int:
        """Listen on ``options.host:options.port``; returns the bound port (``port = 0``
        picks a free one)."""
        server = _CappedServer(self.handle, max_connections=connection_cap(
                                   self.options.max_connections),
                               access_log=None, logger=_server_log,
                               keepalive_timeout=self.options.timeout)
        self._server = server
        runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, self.options.host, self.options.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise RuntimeFailure(f"cannot listen on {self.options.host}:{self.options.port}: "
                                 f"{exc.strerror or exc}") from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self.pages is not None:
            self.pages.close()

    @property
    def base_url(self) -> str:
        host = self.options.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    # -- requests --

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        server = self._server
        transport = request.transport
        if server is None or transport is None:
            return await self._respond(request)
        server.busy.add(transport)
        try:
            return await self._respond(request)
        finally:
            server.busy.discard(transport)

    async def _respond(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.raw_path
        if not path.startswith("/"):  # absolute-form target (proxies): keep only the path
            path = request.rel_url.raw_path
        path = path.partition("?")[0]
        if path.startswith("/feeds/"):
            return self._feed(request, path)
        if path == "/healthz":
            return await self._healthz(request)
        if path == "/metrics":
            return await self._metrics(request)
        if self.pages is not None and path.startswith(PAGE_PREFIXES):
            return await self.pages.handle(request, path) or _not_found()
        return _not_found()

    def _feed(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            self.metrics.count_feed(405)
            return web.Response(status=405, headers={"Allow": "GET, HEAD",
                                                     "Server": SERVER_NAME})
        key = self._resolve(path[len("/feeds/"):])
        feed = self.source.get(key) if key is not None else None
        if key is None or feed is None:
            if key is not None:
                self._prepared.pop(key, None)  # the feed is gone: free its headers
            self.metrics.count_feed(404)
            return _not_found()
        prepared = self._prepared.get(key)
        if prepared is None or prepared.feed is not feed:
            prepared = _prepare(feed, self.options.max_age)
            self._prepared[key] = prepared
        headers = request.headers
        gzip = accepts_gzip(headers.get("Accept-Encoding", ""))
        if _not_modified(headers, prepared):
            self.metrics.count_feed(304)
            return web.Response(status=304, headers=prepared.not_modified_gzip if gzip
                                else prepared.not_modified_plain)
        self.metrics.count_feed(200)
        if gzip:
            return web.Response(body=feed.gzip, headers=prepared.ok_gzip)
        return web.Response(body=self._plain_body(key, feed), headers=prepared.ok_plain)

    def _plain_body(self, key: FeedKey, feed: RenderedFeed) -> bytes:
        """The uncompressed body (the feed keeps only its gzip), for the few clients that
        do not take gzip: the last :data:`PLAIN_BODIES` are kept."""
        hit = self._plain.get(key)
        if hit is not None and hit[0] is feed:
            self._plain.move_to_end(key)
            return hit[1]
        body = feed.body
        self._plain[key] = (feed, body)
        self._plain.move_to_end(key)
        while len(self._plain) > PLAIN_BODIES:
            self._plain.popitem(last=False)
        return body

    def _resolve(self, rest: str) -> FeedKey | None:
        """The feed a path under ``/feeds/`` names, if its token is right (else None).

        With a token: ``{unit}/{token}.ics``, ``campaign/{id}/{token}.ics``,
        ``all/{token}.ics``. With ``http.public_feeds`` also ``{unit}.ics``,
        ``campaign/{id}.ics``, ``all.ics``.
        """
        if not rest.endswith(".ics"):
            return None
        parts = rest[:-4].split("/")
        public = self.options.public_feeds
        if len(parts) == 1:
            if not public or _ID.fullmatch(parts[0]) is None:
                return None
            return FeedKey("all") if parts[0] == ADMIN_SUBJECT else FeedKey("unit", parts[0])
        if len(parts) == 2 and parts[0] == "campaign" and public \
                and _ID.fullmatch(parts[1]) is not None:
            key = FeedKey("campaign", parts[1])
            if self.source.get(key) is not None:
                return key  # else: maybe a unit named "campaign" with its token
        if len(parts) == 2:
            subject, token = parts
            if parts[0] == ADMIN_SUBJECT:
                scope, key = "admin", FeedKey("all")
            else:
                scope, key = "unit", FeedKey("unit", subject)
        elif len(parts) == 3 and parts[0] == "campaign":
            _, subject, token = parts
            scope, key = "campaign", FeedKey("campaign", subject)
        else:
            return None
        if _ID.fullmatch(subject) is None or _TOKEN.fullmatch(token) is None:
            return None
        return key if self.tokens.verify(scope, subject, token) else None

    async def _healthz(self, request: web.BaseRequest) -> web.StreamResponse:
        if self.health is None:
            report = Health(database=True, scheduler=True, state="serving")
        else:
            report = await self.health()
        body = json.dumps(report.to_json(), ensure_ascii=False).encode("utf-8") + b"\n"
        return web.Response(status=200 if report.ok else 503, body=body, headers={
            "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store",
            "Server": SERVER_NAME})

    async def _metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(body=await self.metrics.render(), headers={
            "Content-Type": METRICS_CONTENT_TYPE, "Cache-Control": "no-store",
            "Server": SERVER_NAME})


FILES_KEPT = 128  # descriptors left for the database, SMTP, the state files, the loop


def connection_cap(wanted: int) -> int:
    """``http.max_connections``, lowered to what the process may open (``LimitNOFILE``)
    minus :data:`FILES_KEPT`: past that, ``accept()`` itself fails and no connection
    can be made room for."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft - FILES_KEPT >= wanted:
        return wanted
    cap = max(10, soft - FILES_KEPT)
    log.warning("http.max_connections is %d but the process may open only %d files "
                "(LimitNOFILE): serving at most %d connections", wanted, soft, cap)
    return cap


def _not_modified(headers: CIMultiDictProxy[str], prepared: _Prepared) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present; else If-Modified-Since."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        tags = _entity_tags(if_none_match)
        return tags is None or not tags.isdisjoint(prepared.tags)
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since is not None:
        since = _http_date(if_modified_since)
        return since is not None and prepared.modified <= since
    return False


def _not_found() -> web.Response:
    return web.Response(status=404, body=_NOT_FOUND_BODY, headers=_NOT_FOUND_HEADERS)


# -- in the daemon ------------------------------------------------------------------------


class _NoFeeds:
    """A source without feeds: the server still answers (404, /healthz, /metrics) when no
    feed renderer is wired in."""

    def get(self, key: FeedKey) -> RenderedFeed | None:
        return None


SYNC_INTERVAL = 60.0  # seconds between checks for other instances' revisions and rotations


class FeedService:
    """The daemon's side of feeds: tokens, the feed source, the server, their upkeep.

    * after every accepted apply (:meth:`after_apply`, in the apply's worker thread):
      generation 1 for new units and campaigns, then the feeds re-rendered;
    * feeds are secondary to reminders: a rendering failure is logged and retried,
      never raised into the daemon;
    * every :data:`SYNC_INTERVAL` (:meth:`watch`): a revision applied by another
      instance on the shared database re-renders the feeds here too, and tokens rotated
      with ``mocd tokens rotate`` (another process) are picked up.
    """

    def __init__(self, settings: Settings, factory: sessionmaker[Session], metrics: Metrics,
                 health: HealthCheck | None = None, source: FeedSource | None = None,
                 refresh: Callable[[], object] | None = None, clock: Clock | None = None
                 ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()  # the pages' "now" (the daemon's clock)
        self.factory = factory
        self.metrics = metrics
        self.health = health
        self.source: FeedSource = source or _NoFeeds()
        self.refresh = refresh
        self.tokens: FeedTokens | None = None
        self.server: FeedServer | None = None
        self.max_age = int(settings.feeds.refresh_interval.total_seconds())
        self._revision: int | None = None
        self._generations: GenerationsVersion | None = None
        self._failed: int | None = None  # the revision whose rendering failed last
        self._lock = threading.Lock()  # an apply and a sync tick may run in two threads

    def after_apply(self, units: Iterable[str], campaigns: Iterable[str], now: datetime,
                    revision: int | None) -> None:
        """Make sure every feed has a token generation and the feeds show the revision.

        A failure here is logged, never raised: the apply has committed, reminders must
        keep going out, the server keeps the feeds it has, and the next sync tick
        (:data:`SYNC_INTERVAL`) tries the refresh again.
        """
        with self._lock:
            try:
                ensure_generations(self.factory, feed_subjects(units, campaigns), now)
                self._load_tokens()
            except Exception:
                log.exception("feeds: token generations not updated")
            self._refresh(revision)

    def _load_tokens(self) -> None:
        version = generations_version(self.factory)
        if self.tokens is not None and version == self._generations:
            return
        generations = load_generations(self.factory)
        if self.tokens is None:
            self.tokens = FeedTokens.from_settings(self.settings, generations)
        else:
            self.tokens.update(generations)
        self._generations = version

    def _refresh(self, revision: int | None) -> None:
        """Re-render; a failure is logged (with its traceback once per revision), never
        raised: the server keeps the feeds it has and the next sync tick tries again."""
        if self.refresh is not None:
            started = time.monotonic()
            try:
                report = self.refresh()
            except Exception as exc:
                if self._failed != revision:
                    log.exception("feeds: rendering revision %s failed; serving the previous "
                                  "feeds, retrying every %.0f s", revision, SYNC_INTERVAL)
                else:
                    log.error("feeds: rendering revision %s failed again: %r", revision, exc)
                self._failed = revision
                return
            log.info("feeds refreshed for revision %s in %.2f s%s", revision,
                     time.monotonic() - started, f": {report}" if report is not None else "")
        pages = self.server.pages if self.server is not None else None
        if pages is not None:
            try:
                pages.reload_owners()
            except SQLAlchemyError as exc:
                log.warning("pages: campaign owners not reloaded: %s",
                            str(exc).splitlines()[0])
        self._revision = revision
        self._failed = None

    def sync(self) -> None:
        """In a worker thread: catch up with the database (see the class doc)."""
        with self._lock:
            with self.factory() as session:
                latest = session.scalar(select(func.max(ConfigRevision.id))
                                        .where(ConfigRevision.ok.is_(True)))
            if latest is not None and latest != self._revision:
                log.info("feeds: config revision %s is in the database (applied by another "
                         "instance, or before a rejected config); refreshing", latest)
                self._refresh(latest)
            self._load_tokens()

    async def start(self) -> FeedServer:
        """Load the tokens, make sure the feeds are rendered (a rejected config at start
        still serves the last good revision), and listen, before READY: a port in use
        stops the daemon."""
        await asyncio.to_thread(self.sync)
        assert self.tokens is not None
        http = self.settings.http
        options = ServerOptions(http.host, http.port, http.public_feeds, self.max_age,
                                http.timeout.total_seconds(), http.max_connections)
        pages = await asyncio.to_thread(Pages.from_settings, self.settings, self.factory,
                                        self.tokens, self.clock)
        await asyncio.to_thread(pages.reload_owners)
        self.server = FeedServer(self.source, self.tokens, options, self.metrics, self.health,
                                 pages)
        await self.server.start()
        public = self.settings.public_url.rstrip("/")
        log.info("serving feeds on %s; feed URLs are %s/feeds/UNIT/TOKEN.ics (`mocd tokens "
                 "list` prints them)%s", self.server.base_url, public,
                 "; public feeds on (no token needed)" if options.public_feeds else "")
        return self.server

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SYNC_INTERVAL)
            if stop.is_set():
                return
            try:
                await asyncio.to_thread(self.sync)
            except SQLAlchemyError as exc:
                log.warning("feeds: cannot check the database: %s", str(exc).splitlines()[0])
            except Exception:
                log.exception("feeds: sync failed; serving the previous feeds")

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
