"""The agenda page of a unit (issue 5): what concerns it from 30 days ago to 90 days ahead,
as a page people read — by month, coloured by kind with the kind written too, overdue
deadlines in red, campaign periods on a timeline, subscribe buttons, confirm buttons.

Two steps, both pure, so that the daemon serves the page (``/agenda/{unit}/{token}``, see
:mod:`calendars.pages`) and ``mocd export-feeds`` writes it as a static file from the very
same code:

* :func:`agenda_view` — occurrences (and, when known, the unit's confirmations) in, an
  :class:`AgendaView` out: every date, label and percentage is decided here, so the
  template only lays things out and the tests can check the decisions without HTML;
* :func:`render_agenda_html` — the view in, a page out (Jinja2, autoescaped: titles,
  names and descriptions come from the config and are data, never markup or template).

This module also owns the Jinja2 environment of ``calendars/templates/pages/`` that the
confirm and status pages share (:func:`page_environment`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape

from calendars.ics_attachment import is_web_url
from calendars.tokens import feed_url, webcal_url
from notifications.confirmations import link_valid
from notifications.messages import when_text  # the wording of the emails
from scheduler.agenda import KIND_LABELS
from scheduler.models import StoredOccurrence
from scheduler.occurrences import Occurrence, from_record
from scheduler.vietnamese import (
    en_long_date,
    english_month,
    month_heading,
    vi_date,
    vi_long_date,
)

PAST_DAYS = 30
FUTURE_DAYS = 90
GOOGLE_SUBSCRIBE = "https://calendar.google.com/calendar/render?cid="
OUTLOOK_SUBSCRIBE = "https://outlook.live.com/calendar/0/addfromweb?url="

Role = Literal["recipient", "cc"]


# -- the shared template environment ------------------------------------------------------


@lru_cache(maxsize=1)
def page_environment() -> Environment:
    """Jinja2 for ``templates/pages/``, autoescaping everything.

    A plain (not sandboxed) environment is enough: the templates are ours, and config
    text only ever reaches them as *values* — autoescaped, never compiled — so a title
    like ``{{ 7*7 }}`` or ``<script>`` is shown as written. ``StrictUndefined`` turns a
    misspelt variable into an error in the tests instead of a blank on the page.
    """
    return Environment(loader=PackageLoader("calendars", "templates/pages"),
                       autoescape=select_autoescape(default=True, default_for_string=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       keep_trailing_newline=True)


def page_template(name: str) -> Template:
    return page_environment().get_template(name)


def page_language(language: str | None) -> Literal["vi", "en"]:
    """``en`` or ``vi`` (anything else, including None, is Vietnamese: the default)."""
    return "en" if language == "en" else "vi"


def long_day(day: date, language: str) -> str:
    """``Thứ Sáu, 07/6/2023`` or ``Friday, 7 June 2023``."""
    return en_long_date(day) if language == "en" else vi_long_date(day)


def day_text(day: date, language: str) -> str:
    """``07/6/2023`` or ``7 June 2023``."""
    return f"{day.day} {english_month(day.month)} {day.year}" if language == "en" \
        else vi_date(day)


def days_text(n: int, language: str) -> str:
    """``3 ngày``; ``1 day``, ``3 days``."""
    if language == "en":
        return "1 day" if n == 1 else f"{n} days"
    return f"{n} ngày"


def moment_text(moment: datetime, tz: tzinfo, language: str) -> str:
    """A stored (UTC) moment for people, in the local zone: ``09:05, Thứ Bảy, 01/6/2024``."""
    local = moment.astimezone(tz)
    return f"{local:%H:%M}, {long_day(local.date(), language)}"


# -- the view model -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgendaUnit:
    """Whose agenda: the unit's id, its name, its language (None: the default)."""

    id: str
    name: str
    language: str | None = None


@dataclass(frozen=True, slots=True)
class SubscribeLinks:
    """One-click subscriptions to the unit's feed (all derived from its tokened URL)."""

    https: str
    webcal: str
    google: str
    outlook: str


def subscribe_links(public_url: str, unit: str, token: str, name: str = "") -> SubscribeLinks:
    """The four subscribe URLs of a unit's feed.

    Google takes the ``webcal://`` URL in ``cid``, Outlook.com the ``https://`` one in
    ``url``; both are percent-encoded whole so the token stays one parameter value.
    """
    https = feed_url(public_url, "unit", unit, token)
    webcal = webcal_url(https)
    outlook = OUTLOOK_SUBSCRIBE + quote(https, safe="")
    if name:
        outlook += "&name=" + quote(name, safe="")
    return SubscribeLinks(https=https, webcal=webcal,
                          google=GOOGLE_SUBSCRIBE + quote(webcal, safe=""), outlook=outlook)


@dataclass(frozen=True, slots=True)
class AgendaItem:
    """One occurrence as the page shows it; every text is final (in the page's language)."""

    uid: str
    kind: str
    kind_label: str
    title: str
    when: str  # "Thứ Sáu, 07/6/2024", "Từ … đến …", with times for timed events
    day: date  # the due day, or the first day
    status: str  # "Còn 5 ngày", "QUÁ HẠN 3 ngày", "Đã xác nhận 02/6/2024", …
    role: Role
    campaign: str | None = None  # the campaign's title ("Thuộc: …")
    document: str = ""
    location: str = ""
    url: str = ""  # only web URLs: anything else is not a link
    cancelled: bool = False
    past: bool = False  # over before today (shown muted)
    overdue: bool = False  # a deadline of this unit, passed, not confirmed
    confirmed_at: str | None = None
    confirm_url: str | None = None  # open deadlines only


@dataclass(frozen=True, slots=True)
class AgendaMonth:
    key: str  # "2024-06": an id for the heading
    heading: str  # "Tháng 6/2024"
    items: tuple[AgendaItem, ...]


@dataclass(frozen=True, slots=True)
class TimelineBar:
    """A campaign period on the window's timeline; positions in percent of the window."""

    uid: str
    title: str
    when: str
    left: float
    width: float
    starts_before: bool  # the period began before the window (drawn open on the left)
    ends_after: bool
    cancelled: bool = False


@dataclass(frozen=True)
class AgendaView:
    """Everything the agenda page shows, decided; :func:`render_agenda_html` lays it out."""

    unit: AgendaUnit
    language: Literal["vi", "en"]
    today: date
    first: date
    last: date
    months: tuple[AgendaMonth, ...]
    timeline: tuple[TimelineBar, ...]
    today_at: float  # the today marker on the timeline, percent
    overdue: int  # how many deadlines are overdue
    confirmations_known: bool  # False in a static export: no overdue/confirmed states
    subscribe: SubscribeLinks | None = None
    ics_href: str | None = None  # a plain link to the .ics (static export)

    @property
    def items(self) -> tuple[AgendaItem, ...]:
        return tuple(item for month in self.months for item in month.items)


_WORDS: dict[str, dict[str, str]] = {
    "vi": {"days_left": "Còn {d}", "today_due": "Hôm nay là hạn cuối",
           "overdue": "QUÁ HẠN {d}", "confirmed": "Đã xác nhận {day}",
           "passed": "Đã qua hạn", "today": "Hôm nay", "tomorrow": "Ngày mai",
           "running": "Đang diễn ra", "over": "Đã qua", "cancelled": "Đã hủy",
           "from_to": "Từ {a} đến {b}"},
    "en": {"days_left": "{d} left", "today_due": "Due today",
           "overdue": "OVERDUE by {d}", "confirmed": "Confirmed {day}",
           "passed": "Past due", "today": "Today", "tomorrow": "Tomorrow",
           "running": "Under way", "over": "Over", "cancelled": "Cancelled",
           "from_to": "From {a} to {b}"},
}


def concerns(o: Occurrence, unit: str) -> Role | None:
    """Whether the unit sees the occurrence (as its feed does: recipients, lead, cc)."""
    if unit in o.units:
        return "recipient"
    if unit in o.cc:
        return "cc"
    return None


def must_confirm(o: Occurrence, unit: str) -> bool:
    """Whether ``unit`` does the deadline and so confirms it (:attr:`Occurrence.workers`,
    the rule of emails, status and the confirm page)."""
    return o.kind == "deadline" and o.is_worker(unit)


def occurrences_from_rows(rows: Iterable[StoredOccurrence]) -> list[Occurrence]:
    """Stored rows → occurrences, the removed ones left out (cancelled ones stay: the page
    shows them struck through, as feeds do)."""
    return [from_record(row.data) for row in rows if row.removed_at is None]


def agenda_window(today: date, past_days: int = PAST_DAYS, future_days: int = FUTURE_DAYS
                  ) -> tuple[date, date]:
    """The days an agenda page covers, both included."""
    return today - timedelta(days=past_days), today + timedelta(days=future_days)


def agenda_view(unit: AgendaUnit, occurrences: Iterable[Occurrence], *, today: date,
                tz: tzinfo | None = None, language: str | None = None,
                confirmed: Mapping[str, datetime] | None = None,
                campaigns: Mapping[str, str] | None = None,
                confirm_url: Callable[[str], str] | None = None,
                subscribe: SubscribeLinks | None = None, ics_href: str | None = None,
                past_days: int = PAST_DAYS, future_days: int = FUTURE_DAYS) -> AgendaView:
    """The agenda of ``unit`` from ``today - past_days`` to ``today + future_days``.

    ``occurrences`` may hold anything (all of a store, a feed's items): those of the unit
    overlapping the window are kept. ``confirmed`` maps UIDs to the time this unit
    confirmed them; None means "not known" (a static export without a database): then no
    deadline is called overdue or confirmed. ``campaigns`` maps campaign ids to titles.
    ``confirm_url(uid)`` gives the link of an open deadline's confirm page; None: no
    links. ``language`` defaults to the unit's. ``tz`` is the zone confirmation times
    are shown in (the ``timezone`` setting; only needed with ``confirmed``).
    """
    lang = page_language(language or unit.language)
    zone = tz or UTC
    words = _WORDS[lang]
    labels = KIND_LABELS[lang]
    first, last = agenda_window(today, past_days, future_days)
    span_days = (last - first).days + 1
    known = confirmed is not None
    done = confirmed or {}
    titles = campaigns or {}
    chosen = sorted(((o, role) for o in occurrences
                     if o.overlaps(first, last) and (role := concerns(o, unit.id)) is not None),
                    key=lambda pair: pair[0].sort_key())
    months: dict[str, tuple[str, list[AgendaItem]]] = {}
    bars: list[TimelineBar] = []
    overdue_count = 0
    for o, role in chosen:
        item = _item(o, role, unit.id, today, lang, zone, words, labels[o.kind],
                     done.get(o.uid), known, titles, confirm_url)
        overdue_count += item.overdue
        shown_on = max(o.first, first)  # an item begun before the window: its first month
        key = f"{shown_on.year:04d}-{shown_on.month:02d}"
        months.setdefault(key, (month_heading(shown_on.year, shown_on.month, lang), []))[1] \
            .append(item)
        if o.kind == "period":
            start, end = max(o.first, first), min(o.last, last)
            bars.append(TimelineBar(
                uid=o.uid, title=item.title, when=item.when,
                left=round((start - first).days / span_days * 100, 2),
                width=round(((end - start).days + 1) / span_days * 100, 2),
                starts_before=o.first < first, ends_after=o.last > last,
                cancelled=o.cancelled))
    return AgendaView(
        unit=unit, language=lang, today=today, first=first, last=last,
        months=tuple(AgendaMonth(key, heading, tuple(items))
                     for key, (heading, items) in sorted(months.items())),
        timeline=tuple(bars), today_at=round((today - first).days / span_days * 100, 2),
        overdue=overdue_count, confirmations_known=known, subscribe=subscribe,
        ics_href=ics_href)


def _item(o: Occurrence, role: Role, unit: str, today: date, language: str, tz: tzinfo,
          words: Mapping[str, str], kind_label: str, confirmed_at: datetime | None,
          known: bool, campaigns: Mapping[str, str],
          confirm_url: Callable[[str], str] | None) -> AgendaItem:
    day = o.day
    worker = must_confirm(o, unit)
    overdue = known and worker and not o.cancelled and confirmed_at is None and day < today
    if o.cancelled:
        status = words["cancelled"]
    elif o.kind == "deadline":
        if confirmed_at is not None and worker:
            status = words["confirmed"].format(
                day=day_text(confirmed_at.astimezone(tz).date(), language))
        elif overdue:
            status = words["overdue"].format(d=days_text((today - day).days, language))
        elif day == today:
            status = words["today_due"]
        elif day > today:
            status = words["days_left"].format(d=days_text((day - today).days, language))
        else:
            status = words["passed"]
    elif o.first > today:
        n = (o.first - today).days
        status = (words["tomorrow"] if n == 1
                  else words["days_left"].format(d=days_text(n, language)))
    elif o.last >= today:
        status = words["today"] if o.first == o.last else words["running"]
    else:
        status = words["over"]
    open_deadline = (worker and known and not o.cancelled and confirmed_at is None
                     and link_valid(day, today))
    return AgendaItem(
        uid=o.uid, kind=o.kind, kind_label=kind_label, title=o.title_in(language),
        when=when_text(o, language), day=day, status=status, role=role,
        campaign=(campaigns.get(o.campaign, o.campaign)
                  if o.campaign is not None and o.kind != "period" else None),
        document=o.document, location=o.location,
        url=o.url if is_web_url(o.url) else "",
        cancelled=o.cancelled, past=o.last < today and not overdue, overdue=overdue,
        confirmed_at=(moment_text(confirmed_at, tz, language)
                      if confirmed_at is not None and worker else None),
        confirm_url=confirm_url(o.uid) if open_deadline and confirm_url is not None else None)


# -- rendering ----------------------------------------------------------------------------


AGENDA_TEXT: dict[str, dict[str, str]] = {
    "vi": {"title": "Lịch công việc", "intro": "Các mốc của đơn vị từ {a} đến {b}.",
           "today": "Hôm nay", "overdue": "{n} việc quá hạn chưa xác nhận hoàn thành.",
           "subscribe": "Đăng ký lịch", "subscribe_help":
               "Thêm lịch của đơn vị vào ứng dụng lịch đang dùng; lịch tự cập nhật.",
           "webcal": "Lịch trên máy (Apple, Thunderbird…)", "google": "Google Lịch",
           "outlook": "Outlook", "feed_link": "Địa chỉ lịch (iCalendar)",
           "ics": "Tải tệp lịch (.ics)", "timeline": "Các đợt, giai đoạn",
           "none": "Không có mục nào trong khoảng thời gian này.",
           "campaign": "Thuộc", "document": "Văn bản", "location": "Địa điểm",
           "link": "Đường dẫn", "cc": "Để biết", "confirm": "Xác nhận đã hoàn thành",
           "confirmed": "Đã xác nhận lúc", "cancelled": "đã hủy",
           "legend": "Chú giải màu", "static":
               "Trang tĩnh: tình trạng xác nhận không hiển thị ở đây."},
    "en": {"title": "Agenda", "intro": "The unit's milestones from {a} to {b}.",
           "today": "Today", "overdue": "Overdue, not confirmed as done: {n}.",
           "subscribe": "Subscribe", "subscribe_help":
               "Add the unit's calendar to the calendar app you use; it updates itself.",
           "webcal": "Calendar app (Apple, Thunderbird…)", "google": "Google Calendar",
           "outlook": "Outlook", "feed_link": "Calendar address (iCalendar)",
           "ics": "Download the calendar (.ics)", "timeline": "Periods",
           "none": "Nothing in this date range.",
           "campaign": "Part of", "document": "Document", "location": "Location",
           "link": "Link", "cc": "For information", "confirm": "Confirm completion",
           "confirmed": "Confirmed at", "cancelled": "cancelled",
           "legend": "Colours", "static":
               "Static page: confirmation states are not shown here."},
}


def render_agenda_html(view: AgendaView, with_confirm: bool = False) -> str:
    """The agenda page. ``with_confirm`` adds the confirm buttons of open deadlines (the
    daemon's page); a static export leaves them out (the links carry per-unit secrets and
    the files are served without tokens)."""
    t = AGENDA_TEXT[view.language]
    context: dict[str, Any] = {
        "view": view, "t": t, "language": view.language,
        "with_confirm": with_confirm,
        "kinds": [(kind, KIND_LABELS[view.language][kind])
                  for kind in ("deadline", "event", "period", "anniversary")],
        "intro": t["intro"].format(a=day_text(view.first, view.language),
                                   b=day_text(view.last, view.language)),
        "today_text": long_day(view.today, view.language),
        "window_first": vi_date(view.first), "window_last": vi_date(view.last),
    }
    return page_template("agenda.html.j2").render(context)

