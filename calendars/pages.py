"""The pages of issue 5 over HTTP: ``/confirm/{token}``, ``/status/{campaign}/{token}``
(and ``….csv``), ``/agenda/{unit}/{token}``.

:class:`calendars.feed_server.FeedServer` hands every path under those prefixes to
:meth:`Pages.handle`, which follows the server's rules:

* paths are matched on the raw target, never decoded or mapped to files: each segment
  must be an id (``[a-z0-9][a-z0-9-]*``), a 32-character feed token or a confirmation
  token (``base64url.base64url``), so ``..``, ``%2e%2e``, ``%2f``, backslashes and NUL
  are not a page;
* anything not a page — bad path, forged or modified token, unknown unit, campaign or
  occurrence, an expired confirmation link — is ``None``, which the server turns into
  its one shared 404 (body and headers); feed tokens are compared in constant time
  (:meth:`calendars.tokens.FeedTokens.verify`) before anything is looked up;
* the database is only touched in the pages' own worker threads (:data:`PAGE_WORKERS`,
  at most :data:`PAGE_QUEUE` requests waiting, then 503), and the HTML is rendered there
  too, so the event loop serving feeds never waits and a flood of page requests cannot
  take the threads the dispatcher uses;
* every token is checked before the database is: the status page's owners come from a
  map kept in memory (:meth:`Pages.reload_owners`, after every apply), and the same
  number of token checks is made for an unknown campaign as for a known one.

Who may open what: the confirm page, whoever holds the signed link (it names one
occurrence and one unit); the status page of a campaign, its campaign feed token, the
admin token, or the unit token of the campaign's owner (the ``lead`` of its period, the
campaign's ``owner``; a campaign without a period: the leads of its deadlines); the
agenda page, the unit's feed token — the one in its feed URL.

The client address recorded with a confirmation is the TCP peer (:attr:`request.remote`):
no ``X-Forwarded-For`` header is believed, since anyone can send one — unless the peer is
one of ``http.trusted_proxies``; then the address that proxy saw (the last entry of its
``X-Forwarded-For``) is recorded.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from calendars.agenda_page import (
    AgendaUnit,
    agenda_view,
    agenda_window,
    concerns,
    long_day,
    moment_text,
    occurrences_from_rows,
    page_language,
    page_template,
    render_agenda_html,
    subscribe_links,
)
from calendars.confirm_page import (
    FORM_PURPOSE,
    ConfirmationState,
    Notice,
    check_nonce,
    confirm_view,
    form_nonce,
    render_confirm_html,
)
from calendars.ics_attachment import one_line
from calendars.tokens import ADMIN_SUBJECT, TOKEN_LENGTH, FeedTokens, derive_key, load_secret
from config.settings import Settings
from notifications.confirmations import (
    CONFIRM_PURPOSE,
    confirm,
    confirm_token,
    confirmed,
    link_valid,
    read_confirm_token,
    undo,
)
from scheduler.clock import Clock
from scheduler.models import Confirmation, StoredOccurrence, Unit
from scheduler.occurrences import Occurrence, from_record
from scheduler.status import DeadlineStatus, campaign_status, status_csv

log = logging.getLogger("mocd.http.pages")

PAGE_PREFIXES = ("/confirm/", "/status/", "/agenda/")
SERVER_NAME = "mocd"
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,199}")
_FEED_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")
# base64url(uid \n unit) "." base64url(16-byte MAC): see notifications.confirmations
_CONFIRM_TOKEN = re.compile(r"[A-Za-z0-9_-]{2,1400}\.[A-Za-z0-9_-]{22}")
_NOBODY = "\0"  # a subject no config id can be: keeps the token checks' work constant
_T = TypeVar("_T")
OWNER_CHECKS = 3  # unit tokens checked for every status request (padded with _NOBODY)
PAGE_WORKERS = 2  # threads serving pages (database reads and HTML)
PAGE_QUEUE = 32  # page requests waiting for them before a 503

_SECURITY = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token in the URL must not leak to other sites
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Server": SERVER_NAME,
}
_HTML_HEADERS = CIMultiDictProxy(CIMultiDict(
    {"Content-Type": "text/html; charset=utf-8", **_SECURITY}))
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body.encode("utf-8"), headers=_HTML_HEADERS)


def _not_allowed(allow: str) -> web.Response:
    return web.Response(status=405, headers={"Allow": allow, "Server": SERVER_NAME})


def _unavailable(why: bytes = b"the database does not answer") -> web.Response:
    return web.Response(status=503, body=b"503: " + why + b"; try again\n",
                        headers={"Content-Type": "text/plain; charset=utf-8",
                                 "Retry-After": "30", **_SECURITY})


class _Busy(Exception):
    """More page requests are waiting than :data:`PAGE_QUEUE`."""


# -- the status page (pure) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusUnitRow:
    name: str
    state: Literal["confirmed", "pending", "overdue"]
    state_text: str
    confirmed_at: str
    confirmed_by: str
    last_reminder: str
    reminder_failed: bool


@dataclass(frozen=True, slots=True)
class StatusDeadline:
    title: str
    due: str
    tally: str
    units: tuple[StatusUnitRow, ...]


@dataclass(frozen=True)
class StatusView:
    language: Literal["vi", "en"]
    title: str
    as_of: str
    csv_href: str
    deadlines: tuple[StatusDeadline, ...]
    overdue: int
    overdue_text: str


STATUS_TEXT: dict[str, dict[str, str]] = {
    "vi": {"title": "Tình hình thực hiện", "as_of": "Số liệu lúc {at}.",
           "csv": "Tải về tệp CSV (Excel)", "due": "Hạn", "unit": "Đơn vị",
           "state": "Tình trạng", "confirmed_at": "Xác nhận lúc",
           "confirmed_by": "Người xác nhận",
           "last_reminder": "Lời nhắc gần nhất",
           "caption": "Tình trạng của từng đơn vị thực hiện",
           "tally": "đã xác nhận {done}/{of} đơn vị", "tally_overdue": ", quá hạn {n}",
           "overdue": "{n} lượt đơn vị quá hạn chưa xác nhận hoàn thành.",
           "confirmed": "Đã xác nhận", "pending": "Chưa xác nhận", "state_overdue": "QUÁ HẠN",
           "sent": "đã gửi {at}", "failed": "GỬI LỖI {at}", "never": "—",
           "none": "Kế hoạch này không có hạn chót nào.",
           "footer": "Trang do hệ thống nhắc việc mocd tạo, dành cho đơn vị theo dõi."},
    "en": {"title": "Progress", "as_of": "As of {at}.",
           "csv": "Download as CSV (Excel)", "due": "Due", "unit": "Unit",
           "state": "Status", "confirmed_at": "Confirmed at", "confirmed_by": "Confirmed by",
           "last_reminder": "Last reminder", "caption": "Where each unit stands",
           "tally": "{done}/{of} units confirmed", "tally_overdue": ", {n} overdue",
           "overdue": "Overdue and not confirmed: {n} (deadline, unit) pairs.",
           "confirmed": "Confirmed", "pending": "Pending", "state_overdue": "OVERDUE",
           "sent": "sent {at}", "failed": "FAILED {at}", "never": "—",
           "none": "This campaign has no deadlines.",
           "footer": "A page of the mocd reminder system, for the unit following up."},
}


def status_view(statuses: Sequence[DeadlineStatus], *, title: str, token: str,
                now: datetime, settings: Settings, language: str | None = None) -> StatusView:
    """The lead's page of a campaign from :func:`scheduler.status.campaign_status`."""
    lang = page_language(language or settings.language)
    t = STATUS_TEXT[lang]
    tz = settings.tz
    deadlines = []
    overdue = 0
    for s in statuses:
        counts = s.counts
        overdue += counts["overdue"]
        tally = t["tally"].format(done=counts["confirmed"], of=len(s.units))
        if counts["overdue"]:
            tally += t["tally_overdue"].format(n=counts["overdue"])
        rows = tuple(StatusUnitRow(
            name=u.name, state=u.state,
            state_text=t["state_overdue" if u.state == "overdue" else u.state],
            confirmed_at=moment_text(u.confirmed_at, tz, lang) if u.confirmed_at else "",
            confirmed_by=u.confirmed_by or "",
            last_reminder=(t[u.last_reminder].format(at=moment_text(u.last_reminder_at, tz,
                                                                    lang))
                           if u.last_reminder and u.last_reminder_at else t["never"]),
            reminder_failed=u.last_reminder == "failed") for u in s.units)
        deadlines.append(StatusDeadline(s.title, long_day(s.due, lang), tally, rows))
    return StatusView(language=lang, title=title,
                      as_of=t["as_of"].format(at=moment_text(now, tz, lang)),
                      csv_href=f"{token}.csv", deadlines=tuple(deadlines), overdue=overdue,
                      overdue_text=t["overdue"].format(n=overdue))


def render_status_html(view: StatusView) -> str:
    return page_template("status.html.j2").render(
        view=view, t=STATUS_TEXT[view.language], language=view.language)


# -- store reads (worker threads) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Subject:
    """What a confirm page is about, read from the store."""

    occurrence: Occurrence
    unit_name: str
    language: str | None
    campaign: str | None
    confirmation: ConfirmationState | None


def _period_titles(session: Session, campaign: str | None = None) -> dict[str, str]:
    """Campaign id → the title of its (live) period: campaigns have no table of their own."""
    query = select(StoredOccurrence.campaign, StoredOccurrence.data).where(
        StoredOccurrence.kind == "period", StoredOccurrence.removed_at.is_(None))
    if campaign is not None:
        query = query.where(StoredOccurrence.campaign == campaign)
    return {cid: str(data.get("title") or cid) for cid, data in session.execute(query) if cid}


def _subject(session: Session, uid: str, unit: str, today: date) -> _Subject | None:
    """The occurrence and unit a genuine token names, if the link is still honoured: the
    occurrence exists, is neither removed nor cancelled, the unit is still one of its
    workers (:attr:`~scheduler.occurrences.Occurrence.workers`: a lead that follows others
    up has nothing to confirm), and its day is at most 90 days ago."""
    row = session.get(StoredOccurrence, uid)
    if row is None or row.removed_at is not None or row.cancelled:
        return None
    o = from_record(row.data)
    if o.kind != "deadline" or not o.is_worker(unit) or not link_valid(o.day, today):
        return None
    unit_row = session.get(Unit, unit)
    standing = session.get(Confirmation, (uid, unit))
    campaign = (_period_titles(session, o.campaign).get(o.campaign, o.campaign)
                if o.campaign is not None else None)
    return _Subject(
        occurrence=o, unit_name=unit_row.name if unit_row is not None else unit,
        language=unit_row.language if unit_row is not None else None, campaign=campaign,
        confirmation=(ConfirmationState(standing.confirmed_at, standing.confirmed_by)
                      if standing is not None and standing.undone_at is None else None))


# -- the handlers -------------------------------------------------------------------------


class Pages:
    """The three pages; built once by the daemon (:meth:`from_settings`) or by tests.

    ``tokens`` is the server's own :class:`FeedTokens` (the daemon updates it in place on
    rotations), ``clock`` the daemon's injected clock.
    """

    def __init__(self, factory: sessionmaker[Session], tokens: FeedTokens, *,
                 settings: Settings, clock: Clock, confirm_key: bytes,
                 form_key: bytes) -> None:
        self.factory = factory
        self.tokens = tokens
        self.settings = settings
        self.clock = clock
        self.confirm_key = confirm_key
        self.form_key = form_key
        self.owners: Mapping[str, tuple[str, ...]] = {}  # campaign → owner units
        self._workers = ThreadPoolExecutor(PAGE_WORKERS, thread_name_prefix="mocd-pages")
        self._waiting = 0

    def reload_owners(self) -> None:
        """Who owns each campaign (in a worker thread, after every apply): the ``lead`` of
        its period, else the leads of its deadlines."""
        periods: dict[str, set[str]] = {}
        deadlines: dict[str, set[str]] = {}
        with self.factory() as session:
            for campaign, kind, data in session.execute(
                    select(StoredOccurrence.campaign, StoredOccurrence.kind,
                           StoredOccurrence.data)
                    .where(StoredOccurrence.removed_at.is_(None),
                           StoredOccurrence.campaign.is_not(None),
                           StoredOccurrence.kind.in_(("period", "deadline")))):
                found = (periods if kind == "period" else deadlines).setdefault(campaign, set())
                if isinstance(data.get("lead"), str):
                    found.add(data["lead"])
        self.owners = {campaign: tuple(sorted(periods[campaign] if campaign in periods
                                              else deadlines[campaign]))
                       for campaign in periods.keys() | deadlines.keys()}

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)`` in a page thread; :class:`_Busy` when too many wait."""
        if self._waiting >= PAGE_QUEUE:
            raise _Busy
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._workers, function, *args)
        finally:
            self._waiting -= 1

    def close(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)

    @classmethod
    def from_settings(cls, settings: Settings, factory: sessionmaker[Session],
                      tokens: FeedTokens, clock: Clock) -> Pages:
        """Keys derived from the instance secret (reads ``state_dir``: call it off the loop)."""
        secret = load_secret(settings)
        return cls(factory, tokens, settings=settings, clock=clock,
                   confirm_key=derive_key(secret, CONFIRM_PURPOSE),
                   form_key=derive_key(secret, FORM_PURPOSE))

    def now(self) -> datetime:
        return self.clock.now(self.settings.tz)

    async def handle(self, request: web.BaseRequest, path: str) -> web.StreamResponse | None:
        """The response for a path under :data:`PAGE_PREFIXES`; None: the shared 404."""
        try:
            if path.startswith("/confirm/"):
                return await self._confirm(request, path[len("/confirm/"):])
            if request.method not in ("GET", "HEAD"):
                return _not_allowed("GET, HEAD")
            if path.startswith("/status/"):
                return await self._status(path[len("/status/"):])
            if path.startswith("/agenda/"):
                return await self._agenda(path[len("/agenda/"):])
        except SQLAlchemyError as exc:
            log.warning("page %s: the database does not answer: %s", path.split("/")[1],
                        str(exc).splitlines()[0])
            return _unavailable()
        except _Busy:
            return _unavailable(b"too many page requests at once")
        return None

    # -- /confirm/{token} --

    async def _confirm(self, request: web.BaseRequest, token: str
                       ) -> web.StreamResponse | None:
        if request.method not in ("GET", "HEAD", "POST"):
            return _not_allowed("GET, HEAD, POST")
        if _CONFIRM_TOKEN.fullmatch(token) is None:
            return None
        named = read_confirm_token(self.confirm_key, token)
        if named is None:
            return None
        uid, unit = named
        now = self.now()
        if request.method != "POST":
            page = await self._run(self._confirm_page, token, uid, unit, now, None, None,
                                   None)
            return _html(page[0]) if page is not None else None
        try:
            form = await request.post()
        except ValueError:  # a body that is not a form: as if the fields were missing
            form = None

        def field(name: str) -> str:
            value = form.get(name) if form is not None else None
            return value if isinstance(value, str) else ""

        action = field("action")
        if action not in ("confirm", "undo") or not check_nonce(
                self.form_key, token, field("issued"), field("nonce"), now):
            action = ""  # a POST not from our page: change nothing, show the page again
        by = one_line(field("by"))[:200]  # one line, no control characters: it is logged
        page = await self._run(self._confirm_page, token, uid, unit, now, action, by,
                               self._client(request))
        if page is None:
            return None
        body, notice = page
        return _html(body, 403 if notice == "stale" else 200)

    def _client(self, request: web.BaseRequest) -> str | None:
        """The client's address: the peer, or what a trusted reverse proxy says it saw."""
        peer = request.remote
        if peer not in self.settings.http.trusted_proxies:
            return peer
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        return forwarded[:100] or peer

    def _confirm_page(self, token: str, uid: str, unit: str, now: datetime,
                      action: str | None, by: str | None, address: str | None
                      ) -> tuple[str, Notice | None] | None:
        """Read (and for a POST, act), then render; None when the link is not honoured."""
        today = now.astimezone(self.settings.tz).date()
        with self.factory() as session:
            subject = _subject(session, uid, unit, today)
        if subject is None:
            return None
        notice: Notice | None = None
        if action == "confirm":
            outcome = confirm(self.factory, uid, unit, now=now, by=by, address=address)
            notice = "already" if outcome.already else "confirmed"
            if not outcome.already:
                log.info("confirmed: %s by unit %s (%s, from %s)", uid, unit,
                         by or "no name", address or "?")
        elif action == "undo":
            if subject.confirmation is not None:
                notice = "undone" if undo(self.factory, uid, unit, now=now) else "too_late"
                if notice == "undone":
                    log.info("confirmation undone: %s by unit %s (from %s)", uid, unit,
                             address or "?")
        elif action is not None:
            notice = "stale"
        if action in ("confirm", "undo"):
            with self.factory() as session:
                subject = _subject(session, uid, unit, today)
            if subject is None:  # removed between the two reads: the link is gone
                return None
        o = subject.occurrence
        view = confirm_view(
            language=subject.language or self.settings.language, unit_name=subject.unit_name,
            title=o.title_in(page_language(subject.language or self.settings.language)),
            due=o.day, campaign=subject.campaign, confirmation=subject.confirmation,
            now=now, tz=self.settings.tz, form=form_nonce(self.form_key, token, now),
            notice=notice)
        return render_confirm_html(view), notice

    # -- /status/{campaign}/{token}[.csv] --

    async def _status(self, rest: str) -> web.StreamResponse | None:
        as_csv = rest.endswith(".csv")
        parts = (rest[:-4] if as_csv else rest).split("/")
        if len(parts) != 2:
            return None
        campaign, token = parts
        if _ID.fullmatch(campaign) is None or _FEED_TOKEN.fullmatch(token) is None:
            return None
        if not self._allowed(campaign, token, self.owners.get(campaign, ())):
            return None  # before any database work, the same checks for any campaign
        now = self.now()
        found = await self._run(self._status_page, campaign, token, now, as_csv)
        if found is None:
            return None
        if as_csv:
            return web.Response(body=found.encode("utf-8"), headers={
                "Content-Type": CSV_CONTENT_TYPE,
                "Content-Disposition": f'attachment; filename="status-{campaign}-'
                                       f'{now.astimezone(self.settings.tz):%Y-%m-%d}.csv"',
                **_SECURITY})
        return _html(found)

    def _allowed(self, campaign: str, token: str, owners: Sequence[str]) -> bool:
        """Campaign token, admin token or an owner's unit token; every check is made (no
        early exit), each in constant time, and at least :data:`OWNER_CHECKS` owner
        checks (padded), so that a known campaign costs what an unknown one does."""
        checks = [self.tokens.verify("campaign", campaign, token),
                  self.tokens.verify("admin", ADMIN_SUBJECT, token)]
        padded = [*owners, *[_NOBODY] * max(0, OWNER_CHECKS - len(owners))]
        checks += [self.tokens.verify("unit", owner, token) for owner in padded]
        return any(checks)

    def _status_page(self, campaign: str, token: str, now: datetime, as_csv: bool
                     ) -> str | None:
        today = now.astimezone(self.settings.tz).date()
        with self.factory() as session:
            rows = session.execute(
                select(StoredOccurrence.kind, StoredOccurrence.data)
                .where(StoredOccurrence.campaign == campaign,
                       StoredOccurrence.removed_at.is_(None),
                       StoredOccurrence.kind.in_(("period", "deadline")))).all()
            periods = [data for kind, data in rows if kind == "period"]
            if not rows:
                return None
            statuses = campaign_status(session, campaign, today=today,
                                       language=self.settings.language)
        if as_csv:
            return status_csv(statuses, self.settings.tz)
        title = str(periods[0].get("title") or campaign) if periods else campaign
        return render_status_html(status_view(statuses, title=title, token=token, now=now,
                                              settings=self.settings))

    # -- /agenda/{unit}/{token} --

    async def _agenda(self, rest: str) -> web.StreamResponse | None:
        parts = rest.split("/")
        if len(parts) != 2:
            return None
        unit, token = parts
        if _ID.fullmatch(unit) is None or _FEED_TOKEN.fullmatch(token) is None:
            return None
        if not self.tokens.verify("unit", unit, token):
            return None
        page = await self._run(self._agenda_page, unit, token, self.now())
        return _html(page) if page is not None else None

    def _agenda_page(self, unit: str, token: str, now: datetime) -> str | None:
        tz = self.settings.tz
        today = now.astimezone(tz).date()
        with self.factory() as session:
            unit_row = session.get(Unit, unit)
            if unit_row is None:
                return None
            first, last = agenda_window(today)
            rows = session.scalars(select(StoredOccurrence).where(
                StoredOccurrence.removed_at.is_(None), StoredOccurrence.first_day <= last,
                StoredOccurrence.last_day >= first)).all()
            mine = [o for o in occurrences_from_rows(rows) if concerns(o, unit) is not None]
            standing = confirmed(session, [o.uid for o in mine if o.kind == "deadline"])
            titles = _period_titles(session)
        done = {uid: at for uid, by_unit in standing.items() if (at := by_unit.get(unit))}
        view = agenda_view(
            AgendaUnit(unit, unit_row.name, unit_row.language or self.settings.language),
            mine, today=today, tz=tz, confirmed=done, campaigns=titles,
            confirm_url=self._confirm_link(unit),
            subscribe=subscribe_links(self.settings.public_url, unit, token, unit_row.name))
        return render_agenda_html(view, with_confirm=True)

    def _confirm_link(self, unit: str) -> Callable[[str], str]:
        """Links relative to ``/agenda/{unit}/{token}``, so they work behind any prefix."""
        def link(uid: str) -> str:
            return f"../../confirm/{confirm_token(self.confirm_key, uid, unit)}"
        return link
