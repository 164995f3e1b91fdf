"""iCalendar feeds (SPEC §6): one per unit, one per campaign, one for all.

Pure: stored occurrences (with their ``sequence``, ``changed_at`` and removal) in, feed bytes
out. Reading the database or the config directory is :mod:`calendars.feed_cache`'s job.

**Why feeds are concatenations.** An occurrence sent to ``all`` is in every unit's feed, and
icalendar builds a few thousand events a second: rendering 5,000 feeds of 100 events event
by event takes minutes. So each VEVENT is rendered *once* per state — (UID, sequence,
``changed_at``, removal, language, the campaign and anniversary titles it names) — by
icalendar itself (:func:`build_event`), and a feed is the concatenation of those shared bytes
between its VCALENDAR header and ``END:VCALENDAR``. That is byte for byte what
``Calendar.to_ical()`` writes for the same calendar: icalendar serialises a component as
BEGIN, its properties, each subcomponent's content lines, END, and folds every content line
on its own (at 75 octets, never inside a UTF-8 sequence). :func:`naive_feed` builds the same
feed the slow way; the tests compare the two byte for byte.

**Per-unit text** (the confirmation link of issue 5) must not defeat the sharing: a shared
event keeps its bytes split around the DESCRIPTION line (:class:`SharedEvent`), so a unit's
own lines cost one content line, not one event.

**DTSTAMP and LAST-MODIFIED** are the time the occurrence last changed in the store, never
the time of the request, so an unchanged state gives byte-identical feeds.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event
from icalendar.prop import vDuration

from calendars.feed_types import FeedKey
from calendars.ics_attachment import (
    MAX_UNIT_NAMES,
    add_timezones,
    event_description,
    new_calendar,
    occurrence_vevent,
    one_line,
    vtimezone_ical,
)
from config.settings import ReminderSettings, Settings
from scheduler.occurrences import Occurrence

log = logging.getLogger("mocd.feeds")

RETENTION = timedelta(days=30)  # cancelled and removed occurrences stay this long (SPEC §6)
SIZE_WARNING = 1_000_000  # Google Calendar drops subscriptions over about 1 MB
ALL_NAMES = {"vi": "Tất cả các mốc (mocd)", "en": "All milestones (mocd)"}

_END = b"END:VCALENDAR\r\n"
# Stands in for the DESCRIPTION value while a shared event is rendered, so that its bytes
# can be split around that line (a private-use character: no config text contains it).
_PLACEHOLDER = "\ue000mocd-description\ue000"

ExtraLines = Callable[[Occurrence, str | None, str], Sequence[str]]
"""Per-unit DESCRIPTION lines: ``extra_lines(occurrence, unit_id, language)`` (``unit_id``
None for the campaign and all feeds) → lines appended to the description (the daemon's:
the unit's confirmation link, :func:`notifications.confirmations.feed_confirm_lines`).
It must be a pure function of its arguments (and of the occurrence's state, which its
``sequence`` and ``changed_at`` name): a feed's signature leaves the lines out, and they
are computed only when the feed is rendered."""


def _shift(day: date, delta: timedelta) -> date:
    try:
        return day + delta
    except OverflowError:
        return date.max if delta > timedelta(0) else date.min


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """The settings a feed depends on (a change of any of them re-renders every event)."""

    tz: ZoneInfo
    uid_domain: str
    language: str
    refresh: timedelta
    alarms: bool
    reminders: ReminderSettings
    past: timedelta
    future: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedOptions:
        feeds = settings.feeds
        return cls(settings.tz, settings.uid_domain, settings.language,
                   feeds.refresh_interval, feeds.alarms, settings.reminders,
                   feeds.past, feeds.future)

    def window(self, now: datetime) -> tuple[date, date]:
        """The feed window around today (local): the same range ``mocd agenda`` defaults to."""
        today = now.astimezone(self.tz).date()
        return _shift(today, -self.past), _shift(today, self.future)


def whole_seconds_utc(moment: datetime) -> datetime:
    """An aware moment as UTC whole seconds (what DTSTAMP and HTTP dates can express)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("expected an aware datetime")
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class StoreRow:
    """What decides whether an occurrence is in the feeds at all, without its data: the
    columns of the ``occurrences`` table (or the same facts for a config alone)."""

    uid: str
    kind: str
    campaign: str | None
    first: date
    last: date
    cancelled: bool
    sequence: int
    changed_at: datetime
    removed_at: datetime | None = None

    def shown(self, first: date, last: date, now: datetime) -> bool:
        """In the window and, if cancelled or removed, for 30 days after that happened."""
        if self.first > last or self.last < first:
            return False
        if self.removed_at is not None:
            return now < self.removed_at + RETENTION
        if self.cancelled:
            return now < self.changed_at + RETENTION
        return True


@dataclass(frozen=True, slots=True)
class FeedItem:
    """An occurrence as feeds show it: its data and its state in the store."""

    occurrence: Occurrence
    sequence: int
    changed_at: datetime  # aware: DTSTAMP and LAST-MODIFIED
    removed: bool = False  # gone from the config: shown as cancelled for RETENTION

    @property
    def cancelled(self) -> bool:
        return self.removed or self.occurrence.cancelled

    @property
    def stamp(self) -> datetime:
        return whole_seconds_utc(self.changed_at)


@dataclass(frozen=True, slots=True)
class UnitInfo:
    id: str
    name: str
    language: str | None = None  # None: settings.language


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    """What a campaign feed needs beyond its occurrences. The title is the campaign
    period's (the store keeps no campaign table; without a period the id stands in)."""

    id: str
    title: str
    first: date | None  # first day of its (live) occurrences
    celebrates: str | None


@dataclass(frozen=True)
class Selection:
    """Which stored occurrences the feeds need (decided from the columns alone)."""

    shown: list[StoreRow]
    needed: list[str]  # UIDs whose data must be loaded: the shown ones and campaign periods
    campaigns: dict[str, date | None]  # campaign id → first day of its live occurrences


def select_rows(rows: Iterable[StoreRow], now: datetime, options: FeedOptions) -> Selection:
    first, last = options.window(now)
    shown: list[StoreRow] = []
    needed: list[str] = []
    campaigns: dict[str, date | None] = {}
    for row in rows:
        is_shown = row.shown(first, last, now)
        if is_shown:
            shown.append(row)
        if row.campaign is not None:
            if row.removed_at is None:
                earlier = campaigns.get(row.campaign)
                if earlier is None or row.first < earlier:
                    campaigns[row.campaign] = row.first
            elif is_shown:  # a removed campaign's feed shows its cancellations
                campaigns.setdefault(row.campaign, None)
        if is_shown or (row.kind == "period" and row.removed_at is None):
            needed.append(row.uid)
    return Selection(shown, needed, campaigns)


def default_item(row: StoreRow, occurrence: Occurrence) -> FeedItem:
    return FeedItem(occurrence, row.sequence, row.changed_at, row.removed_at is not None)


@dataclass(frozen=True)
class FeedInput:
    """Everything the feeds show: the shown items (sorted), units, campaigns, and for each
    campaign the anniversary occurrence it celebrates."""

    items: tuple[FeedItem, ...]
    units: Mapping[str, UnitInfo]
    campaigns: Mapping[str, CampaignInfo]
    celebrated: Mapping[str, FeedItem] = field(default_factory=dict)


def _sort_key(item: FeedItem) -> tuple[date, int, datetime, str]:
    return item.occurrence.sort_key()


def celebrated_item(campaign: CampaignInfo, items: Iterable[FeedItem]) -> FeedItem | None:
    """The anniversary occurrence a campaign celebrates: the first one on or after the
    campaign's first day (a campaign leads up to it: Ba Tơ's 2024 campaign celebrates the
    52nd anniversary in October), else the latest before; cancelled ones never."""
    if campaign.celebrates is None:
        return None
    candidates = [i for i in items if i.occurrence.anniversary is not None
                  and i.occurrence.anniversary.id == campaign.celebrates and not i.cancelled]
    if not candidates:
        return None
    if campaign.first is not None:
        after = [i for i in candidates if i.occurrence.first >= campaign.first]
        if after:
            return min(after, key=_sort_key)
    return max(candidates, key=_sort_key)


def build_input(selection: Selection, occurrences: Mapping[str, Occurrence],
                units: Iterable[UnitInfo],
                item: Callable[[StoreRow, Occurrence], FeedItem] = default_item) -> FeedInput:
    """The feed input from a selection and the loaded occurrences (``item`` may reuse
    FeedItem objects across refreshes, which keeps the event cache's checks cheap)."""
    items = sorted((item(row, occurrences[row.uid]) for row in selection.shown), key=_sort_key)
    titles: dict[str, str] = {}
    celebrates: dict[str, str | None] = {}
    for uid in selection.needed:
        o = occurrences[uid]
        if o.campaign is None:
            continue
        if o.kind == "period":
            titles[o.campaign] = o.title
        celebrates.setdefault(o.campaign, o.celebrates)
    campaigns = {cid: CampaignInfo(cid, titles.get(cid, cid), first, celebrates.get(cid))
                 for cid, first in sorted(selection.campaigns.items())}
    anniversaries = [i for i in items if i.occurrence.kind == "anniversary"]
    celebrated = {cid: found for cid, info in campaigns.items()
                  if (found := celebrated_item(info, anniversaries)) is not None}
    return FeedInput(tuple(items), {u.id: u for u in sorted(units, key=lambda u: u.id)},
                     campaigns, celebrated)


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """One feed: its name (X-WR-CALNAME, NAME), language and items in order."""

    key: FeedKey
    name: str
    language: str
    items: tuple[FeedItem, ...]

    @property
    def unit(self) -> str | None:
        return self.key.id if self.key.kind == "unit" else None


def plan_feeds(feed_input: FeedInput, options: FeedOptions) -> dict[FeedKey, FeedPlan]:
    """Every feed: one per unit (recipient or cc), one per campaign (its occurrences and
    the anniversary it celebrates), and all. Items keep the input's order."""
    by_unit: dict[str, list[FeedItem]] = {u: [] for u in feed_input.units}
    by_campaign: dict[str, list[FeedItem]] = {c: [] for c in feed_input.campaigns}
    for item in feed_input.items:
        o = item.occurrence
        if o.campaign is not None and o.campaign in by_campaign:
            by_campaign[o.campaign].append(item)
        for unit in o.units:
            members = by_unit.get(unit)
            if members is not None:
                members.append(item)
        for unit in o.cc:
            members = by_unit.get(unit)
            if members is not None and unit not in o.units:
                members.append(item)
    for cid, anniversary in feed_input.celebrated.items():
        members = by_campaign[cid]
        if anniversary not in members:
            bisect.insort(members, anniversary, key=_sort_key)
    default = options.language
    plans: dict[FeedKey, FeedPlan] = {}
    key = FeedKey("all")
    plans[key] = FeedPlan(key, ALL_NAMES.get(default, ALL_NAMES["vi"]), default,
                          feed_input.items)
    for cid, items in by_campaign.items():
        key = FeedKey("campaign", cid)
        plans[key] = FeedPlan(key, feed_input.campaigns[cid].title, default, tuple(items))
    for uid, items in by_unit.items():
        info = feed_input.units[uid]
        key = FeedKey("unit", uid)
        plans[key] = FeedPlan(key, info.name, info.language or default, tuple(items))
    return plans


# -- one event ---------------------------------------------------------------------------


def _weekdays_before(day: date, count: int) -> date:
    """``count`` Monday–Friday days before ``day`` (the VALARM form of ``Nwd``)."""
    while count > 0:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def alarm_triggers(o: Occurrence, options: FeedOptions) -> list[timedelta]:
    """VALARM triggers (relative to DTSTART) mirroring the occurrence's reminder offsets:
    ``Nd``/``Nw`` at ``reminders.time_of_day`` N days (weeks) before the day, ``Nwd`` N
    Monday–Friday days before, ``Nh`` N hours before a timed start. Holidays and the move
    to the previous working day are not applied: the emails are the exact reminders."""
    offsets = o.reminders if o.reminders is not None else options.reminders.defaults_for(
        o.kind)
    at: time = options.reminders.time_of_day
    start = o.span.start_at if o.span.start_at is not None else datetime.combine(o.first,
                                                                                 time())
    triggers: list[timedelta] = []
    for offset in offsets:
        if offset.unit == "h":
            if o.span.start_at is None:
                continue
            trigger = -timedelta(hours=offset.amount)
        else:
            day = (_weekdays_before(o.day, offset.amount) if offset.unit == "wd"
                   else o.day - timedelta(days=offset.days))
            trigger = datetime.combine(day, at) - start
        if trigger not in triggers:
            triggers.append(trigger)
    return triggers


def feed_description(o: Occurrence, language: str, names: Mapping[str, str], *,
                     campaign: str | None, celebrated: str | None,
                     extra: Sequence[str] = ()) -> str:
    """DESCRIPTION of a feed event: the campaign it belongs to and its document, what is
    due and to whom it goes (lead, submit_to), the units (at most MAX_UNIT_NAMES by name),
    the Decree 111 note, the celebrated anniversary, then ``extra`` (per-unit) lines."""
    return event_description(
        o, language, names, extra,
        anniversaries={o.celebrates: celebrated} if o.celebrates and celebrated else None,
        campaign=campaign if o.kind != "period" else None, max_units=MAX_UNIT_NAMES)


def build_event(item: FeedItem, *, language: str, options: FeedOptions,
                names: Mapping[str, str], campaign: str | None, celebrated: str | None,
                description: str | None = None) -> Event:
    """The VEVENT of one feed item, built by icalendar (:func:`occurrence_vevent`) plus
    LAST-MODIFIED and, with ``feeds.alarms``, VALARMs. A removed occurrence is CANCELLED.
    ``description`` replaces :func:`feed_description` (per-unit lines, the split marker)."""
    o = item.occurrence
    if item.removed and not o.cancelled:
        o = replace(o, cancelled=True)
    if description is None:
        description = feed_description(o, language, names, campaign=campaign,
                                       celebrated=celebrated)
    event = occurrence_vevent(o, tz=options.tz, uid_domain=options.uid_domain,
                              language=language, stamp=item.stamp, sequence=item.sequence,
                              names=names, description=description)
    event.add("last-modified", item.stamp)
    if options.alarms and not item.cancelled:
        summary = one_line(o.title_in(language))
        for trigger in alarm_triggers(o, options):
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", summary)
            alarm.add("trigger", trigger)
            event.add_component(alarm)
    return event


def _property_line(component: Event | Calendar, name: str, value: str) -> bytes:
    """One folded content line exactly as icalendar writes ``value`` in ``component``."""
    component.add(name, value)
    line: bytes = component.content_lines()[1].to_ical()
    return line + b"\r\n"


def _description_line(text: str) -> bytes:
    return _property_line(Event(), "description", text)


# -- folding a content line in pieces ------------------------------------------------------
#
# A unit's feed appends its own lines (the confirmation link) to the DESCRIPTION of shared
# events: 5,000 feeds × 50 deadlines after one change. Rendering each of those lines
# through icalendar costs ~100 µs; continuing icalendar's own folding from where the
# shared part of the line left it costs a few. The functions below are icalendar 7's
# ``_escape_char`` and ``_foldline`` made resumable; tests hold them byte-identical to it.

_FOLD_LIMIT = 75  # octets per line, the CRLF excluded (icalendar's default)
_FOLD_SEP = "\r\n "
_ASCII_PLAIN = "".join(chr(c) for c in range(128) if chr(c) not in "\\^")  # 1 octet, no escape


@dataclass(frozen=True, slots=True)
class FoldState:
    """How far icalendar's folding of one content line has got: the complete lines (joined
    by the fold separator), the line being filled and its length in octets."""

    folded: str
    current: str
    count: int

    def line(self) -> bytes:
        """The content line so far, folded, with its CRLF."""
        whole = f"{self.folded}{_FOLD_SEP}{self.current}" if self.folded else self.current
        return whole.encode("utf-8") + b"\r\n"


def escape_text(text: str) -> str:
    """RFC 5545 TEXT escaping, as icalendar writes it."""
    return (text.replace(r"\N", "\n").replace("\\", "\\\\").replace(";", r"\;")
            .replace(",", r"\,").replace("\r\n", r"\n").replace("\n", r"\n")
            .replace("\r", r"\n"))


def fold_more(state: FoldState, text: str,
              memo: dict[str, FoldState] | None = None) -> FoldState:
    """``state`` with ``text`` (already escaped) appended, folded as icalendar folds: at 75
    octets, never inside a UTF-8 sequence, never right after a backslash or caret.

    The text's tail that is ASCII without a backslash or caret (a URL) is folded by
    slicing; the part before it character by character, remembered in ``memo`` (the same
    label before every unit's link)."""
    plain = len(text.rstrip(_ASCII_PLAIN))
    if plain:
        head = text[:plain]
        known = memo.get(head) if memo is not None else None
        if known is None:
            known = _fold_chars(state, head)
            if memo is not None:
                memo[head] = known
        state = known
    return _fold_ascii(state, text[plain:])


def _fold_chars(state: FoldState, text: str) -> FoldState:
    parts = [state.folded] if state.folded else []
    current, count = state.current, state.count
    for char in text:
        size = len(char.encode("utf-8"))
        if current and count + size >= _FOLD_LIMIT:
            current, count = _fold(parts, current)
        current += char
        count += size
    return FoldState(_FOLD_SEP.join(parts), current, count)


def _fold_ascii(state: FoldState, text: str) -> FoldState:
    """:func:`_fold_chars` for ASCII without a backslash or caret: one octet a character."""
    parts = [state.folded] if state.folded else []
    current, count = state.current, state.count
    at = 0
    while at < len(text):
        if current and count + 1 >= _FOLD_LIMIT:
            current, count = _fold(parts, current)
        chunk = text[at:at + _FOLD_LIMIT - 1 - count]
        current += chunk
        count += len(chunk)
        at += len(chunk)
    return FoldState(_FOLD_SEP.join(parts), current, count)


def _fold(parts: list[str], current: str) -> tuple[str, int]:
    """End the current line (keeping an escape character with what it escapes)."""
    if len(current) > 1 and current[-1] in "\\^":
        parts.append(current[:-1])
        return current[-1], 1
    parts.append(current)
    return "", 0


@dataclass(frozen=True, slots=True, eq=False)
class SharedEvent:
    """One rendered VEVENT, shared by every feed that shows it (compared by identity).

    ``data`` is the whole event; ``head`` and ``tail`` are the bytes before and after its
    DESCRIPTION line, so that a unit's own lines cost one content line. ``stamp`` and
    ``timed`` (first and last day of a timed event) spare the feeds a look at the item."""

    item: FeedItem
    data: bytes
    head: bytes
    tail: bytes
    description: str
    stamp: datetime
    timed: tuple[date, date] | None
    folded_description: FoldState | None = None  # the DESCRIPTION line's shared part
    folds: dict[str, FoldState] = field(default_factory=dict)  # its continuations
    def with_lines(self, lines: Sequence[str]) -> bytes:
        """The event with per-unit ``lines`` appended to its DESCRIPTION: the shared part of
        that line is folded once per event, the unit's part continues from there."""
        if not lines:
            return self.data
        extra = "\n".join(one_line(line) for line in lines)
        start = self.folded_description
        if start is None:
            text = f"DESCRIPTION:{escape_text(self.description)}"
            start = fold_more(FoldState("", "", 0), text)
            object.__setattr__(self, "folded_description", start)
        more = escape_text(f"\n{extra}" if self.description else extra)
        return self.head + fold_more(start, more, self.folds).line() + self.tail


def share_event(item: FeedItem, *, language: str, options: FeedOptions,
                names: Mapping[str, str], campaign: str | None,
                celebrated: str | None) -> SharedEvent:
    """Render one event with icalendar and split its bytes around the DESCRIPTION line."""
    o = item.occurrence
    description = feed_description(o, language, names, campaign=campaign,
                                   celebrated=celebrated)
    event = build_event(item, language=language, options=options, names=names,
                        campaign=campaign, celebrated=celebrated, description=_PLACEHOLDER)
    lines = event.content_lines()
    at = lines.index(f"DESCRIPTION:{_PLACEHOLDER}")
    head = b"".join(line.to_ical() + b"\r\n" for line in lines[:at])
    tail = b"".join(line.to_ical() + b"\r\n" for line in lines[at + 1:] if line)
    middle = _description_line(description) if description else b""
    return SharedEvent(item, head + middle + tail, head, tail, description, item.stamp,
                       None if o.all_day else (o.first, o.last))


# -- feeds -------------------------------------------------------------------------------


def calendar_for(name: str, options: FeedOptions) -> Calendar:
    """A feed's VCALENDAR without components: the properties of SPEC §6."""
    calendar = new_calendar("PUBLISH")
    title = one_line(name)
    calendar.add("x-wr-calname", title)
    calendar.add("name", title)
    calendar.add("x-wr-timezone", options.tz.key)
    calendar.add("refresh-interval", options.refresh, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(options.refresh))
    return calendar


class _Header:
    """A feed's VCALENDAR header (everything before its components) for any name: the
    lines around NAME and X-WR-CALNAME are rendered once, the two name lines per feed."""

    def __init__(self, options: FeedOptions) -> None:
        data: bytes = calendar_for(_PLACEHOLDER, options).to_ical()
        name = _property_line(Calendar(), "name", _PLACEHOLDER)
        calname = _property_line(Calendar(), "x-wr-calname", _PLACEHOLDER)
        at = data.index(b"\r\n" + name + calname) + 2  # adjacent in icalendar's order
        self._before = data[:at]
        self._after = data[at + len(name) + len(calname):-len(_END)]

    def __call__(self, name: str) -> bytes:
        title = one_line(name)
        return (self._before + _property_line(Calendar(), "name", title)
                + _property_line(Calendar(), "x-wr-calname", title) + self._after)


def _timezone(events: Sequence[SharedEvent], options: FeedOptions) -> bytes:
    """The VTIMEZONE covering the feed's timed events, or nothing when all are all-day."""
    timed = [e.timed for e in events if e.timed is not None]
    if not timed:
        return b""
    return vtimezone_ical(options.tz, min(t[0] for t in timed), max(t[1] for t in timed))


class EventCache:
    """Rendered events and feed headers by state, kept across refreshes.

    Keyed by (UID, sequence, changed_at, removal, language, campaign title, celebrated
    title): in the store, a new sequence or ``changed_at`` is what a change of the data
    looks like. The item itself is checked too (identity first, then equality), so a cache
    reused with different data for the same key re-renders rather than serving stale
    bytes. Unit names (in descriptions) and the options are fixed per cache: when they
    change, :meth:`fits` says so and the caller starts a new cache.
    """

    def __init__(self, options: FeedOptions, names: Mapping[str, str]) -> None:
        self.options = options
        self.names = dict(names)
        self._events: dict[tuple[object, ...], SharedEvent] = {}
        self._used: dict[tuple[object, ...], SharedEvent] = {}
        self._header = _Header(options)
        self._headers: dict[str, bytes] = {}
        self.rendered = 0  # events rendered by icalendar since the last sweep

    def fits(self, options: FeedOptions, names: Mapping[str, str]) -> bool:
        return options == self.options and names == self.names

    def event(self, item: FeedItem, language: str, campaign: str | None,
              celebrated: str | None) -> SharedEvent:
        key = (item.occurrence.uid, item.sequence, item.changed_at, item.removed, language,
               campaign, celebrated)
        found = self._used.get(key) or self._events.get(key)
        if found is None or (found.item is not item and found.item != item):
            found = share_event(item, language=language, options=self.options,
                                names=self.names, campaign=campaign, celebrated=celebrated)
            self.rendered += 1
        self._used[key] = found
        return found

    def header(self, name: str) -> bytes:
        found = self._headers.get(name)
        if found is None:
            found = self._headers[name] = self._header(name)
        return found

    def sweep(self) -> None:
        """Forget what the last build did not use (bounded memory across refreshes)."""
        self._events, self._used = self._used, {}
        self.rendered = 0


Signature = tuple[str, str, str | None, tuple[SharedEvent, ...]]  # name, language, unit


class FeedBuilder:
    """The feeds of one state: plans for every feed, rendered on demand from shared events.

    ``signature(key)`` identifies a feed's bytes without rendering them (the events are
    compared by identity), so a caller keeping the previous signatures re-renders only
    the feeds that changed."""

    def __init__(self, feed_input: FeedInput, options: FeedOptions, *,
                 extra_lines: ExtraLines | None = None,
                 cache: EventCache | None = None) -> None:
        self.input = feed_input
        self.options = options
        self.extra_lines = extra_lines
        self.plans = plan_feeds(feed_input, options)
        names = {u.id: u.name for u in feed_input.units.values()}
        if cache is None or not cache.fits(options, names):
            cache = EventCache(options, names)
        self.cache = cache
        # Per language: id(item) → its event. The items live as long as the builder
        # (self.input holds them), so their ids are stable keys, and cheap ones.
        self._tables: dict[str, dict[int, SharedEvent]] = {}
        self._celebrated_titles: dict[tuple[str, str], str | None] = {}

    def _celebrated(self, campaign: str | None, language: str) -> str | None:
        if campaign is None:
            return None
        key = (campaign, language)
        if key not in self._celebrated_titles:
            found = self.input.celebrated.get(campaign)
            self._celebrated_titles[key] = (None if found is None
                                            else found.occurrence.title_in(language))
        return self._celebrated_titles[key]

    def _campaign_title(self, o: Occurrence) -> str | None:
        info = self.input.campaigns.get(o.campaign) if o.campaign is not None else None
        return info.title if info is not None and o.kind != "period" else None

    def event(self, item: FeedItem, language: str) -> SharedEvent:
        table = self._tables.setdefault(language, {})
        found = table.get(id(item))
        if found is None:
            o = item.occurrence
            found = table[id(item)] = self.cache.event(
                item, language, self._campaign_title(o), self._celebrated(o.campaign,
                                                                          language))
        return found

    def signature(self, key: FeedKey) -> Signature:
        plan = self.plans[key]
        table = self._tables.setdefault(plan.language, {})
        try:
            events = tuple(map(table.__getitem__, map(id, plan.items)))
        except KeyError:
            events = tuple(self.event(item, plan.language) for item in plan.items)
        return (plan.name, plan.language, plan.unit, events)

    def render(self, key: FeedKey, signature: Signature | None = None) -> bytes:
        """The feed's bytes: header, VTIMEZONE, the shared events, END:VCALENDAR."""
        name, language, unit, events = signature or self.signature(key)
        parts = [self.cache.header(name), _timezone(events, self.options)]
        hook = self.extra_lines
        if hook is None or unit is None:
            parts.extend(event.data for event in events)
        else:
            items = self.plans[key].items
            for event, item in zip(events, items, strict=True):
                lines = hook(item.occurrence, unit, language)
                parts.append(event.with_lines(lines) if lines else event.data)
        parts.append(_END)
        body = b"".join(parts)
        if len(body) > SIZE_WARNING:
            log.warning("feed %s is %d bytes (over 1 MB): Google Calendar may drop the "
                        "subscription; shorten feeds.past / feeds.future", key.name, len(body))
        return body

    def content_time(self, key: FeedKey, signature: Signature | None = None) -> datetime | None:
        """The latest ``changed_at`` of the feed's events (None for an empty feed)."""
        events = (signature or self.signature(key))[3]
        return max([e.stamp for e in events], default=None)


def naive_feed(builder: FeedBuilder, key: FeedKey) -> bytes:
    """The same feed built the slow, obvious way: one icalendar Calendar with every event
    added and ``to_ical()`` once. The reference the tests and the benchmark compare with."""
    plan = builder.plans[key]
    options = builder.options
    names = builder.cache.names
    calendar = calendar_for(plan.name, options)
    add_timezones(calendar, options.tz, [i.occurrence for i in plan.items])
    for item in plan.items:
        o = item.occurrence
        campaign = builder._campaign_title(o)
        celebrated = builder._celebrated(o.campaign, plan.language)
        lines = (builder.extra_lines(o, plan.unit, plan.language)
                 if builder.extra_lines is not None else ())
        text = feed_description(o, plan.language, names, campaign=campaign,
                                celebrated=celebrated,
                                extra=[one_line(line) for line in lines])
        calendar.add_component(build_event(item, language=plan.language, options=options,
                                           names=names, campaign=campaign,
                                           celebrated=celebrated, description=text))
    data: bytes = calendar.to_ical()
    return data
