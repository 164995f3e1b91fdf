"""iCalendar for occurrences (SPEC §6): the ``.ics`` attached to emails, and the building blocks
of the feeds (issue 4 builds the feed renderer on :func:`occurrence_vevent`, :func:`new_calendar`
and :func:`add_timezones`).

Pure: occurrences in, RFC 5545 bytes out (CRLF, lines folded at 75 octets by ``icalendar``,
which counts octets and never splits a UTF-8 sequence). All-day occurrences are ``VALUE=DATE``
with an exclusive ``DTEND``; timed ones carry a ``TZID`` with a matching ``VTIMEZONE``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, vCalAddress, vText

from scheduler.occurrences import Occurrence
from scheduler.vietnamese import long_date

PRODID = "-//mocd//mocd//VI"
# Units named in a DESCRIPTION (feeds and email attachments) and in an email's body; more
# are summarised as "+N more": an item sent to `all` of 5,000 units stays small everywhere.
MAX_UNIT_NAMES = 12

# Control characters are not allowed in TEXT values (RFC 5545 §3.3.11) except HTAB; line
# breaks are kept (escaped as \n by icalendar). Bidi overrides can disguise text: dropped.
# Lone surrogates (a YAML "\ud83d" escape) cannot be encoded as UTF-8 at all: dropped.
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_LINE_BREAKS = re.compile(r"\r\n|\r|\u2028|\u2029|\x85")

_LABELS = {
    "vi": {"document": "Văn bản", "lead": "Đơn vị chủ trì", "submit_to": "Gửi về",
           "units": "Đơn vị thực hiện", "window": "Thời gian thực hiện",
           "celebrates": "Chào mừng", "from": "từ", "to": "đến", "campaign": "Thuộc",
           "more": "đơn vị khác", "cancelled": "[Đã hủy]"},
    "en": {"document": "Document", "lead": "Lead", "submit_to": "Submit to",
           "units": "Units", "window": "Window", "celebrates": "Celebrating",
           "from": "from", "to": "to", "campaign": "Part of", "more": "more",
           "cancelled": "[Cancelled]"},
}


def clean_text(text: str) -> str:
    """Text safe for an iCalendar TEXT value: one kind of line break, no control characters."""
    return _CONTROL.sub("", _LINE_BREAKS.sub("\n", text))


def one_line(text: str) -> str:
    """Text on one line: every run of whitespace (line breaks included) is one space."""
    return " ".join(clean_text(text).split())


def is_web_url(url: str) -> bool:
    """An absolute http(s) URL without whitespace: safe for ``URL`` and for an ``href``."""
    if not url or any(c.isspace() or ord(c) < 32 for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _full_uid(uid: str, uid_domain: str) -> str:
    return uid if "@" in uid else f"{uid}@{uid_domain}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("stamp must be a timezone-aware datetime")
    return moment.astimezone(UTC)


def event_description(occurrence: Occurrence, language: str,
                      names: Mapping[str, str] | None = None,
                      extra: Sequence[str] = (), *,
                      anniversaries: Mapping[str, str] | None = None,
                      campaign: str | None = None,
                      max_units: int | None = MAX_UNIT_NAMES) -> str:
    """DESCRIPTION: the description, the Decree 111 note, the campaign (``campaign``: its
    title, when given), document, window, lead, submit_to, units (by name when ``names``
    knows them; beyond ``max_units`` summarised as "+N more", so that an item sent to
    thousands of units stays small in every feed), the celebrated anniversary (by title
    when ``anniversaries`` knows it), then ``extra`` lines (e.g. a confirmation link)."""
    labels = _LABELS["en" if language == "en" else "vi"]
    names = names or {}

    def name(unit: str) -> str:
        return one_line(names.get(unit, unit))

    o = occurrence
    lines: list[str] = []
    if o.description.strip():
        lines.append(clean_text(o.description).strip())
    note = o.note(language)
    if note:
        lines.append(note)
    if campaign and campaign.strip():
        lines.append(f"{labels['campaign']}: {one_line(campaign)}")
    if o.document.strip():
        lines.append(f"{labels['document']}: {one_line(o.document)}")
    if o.window is not None:
        first, last = o.window
        lines.append(f"{labels['window']}: {labels['from']} {long_date(first, language)} "
                     f"{labels['to']} {long_date(last, language)}")
    if o.lead:
        lines.append(f"{labels['lead']}: {name(o.lead)}")
    if o.submit_to:
        lines.append(f"{labels['submit_to']}: {name(o.submit_to)}")
    if o.units:
        shown = o.units if max_units is None else o.units[:max_units]
        text = ", ".join(name(u) for u in shown)
        if len(shown) < len(o.units):
            text += f" (+{len(o.units) - len(shown)} {labels['more']})"
        lines.append(f"{labels['units']}: {text}")
    if o.celebrates:
        title = (anniversaries or {}).get(o.celebrates) or o.celebrates
        lines.append(f"{labels['celebrates']}: {one_line(title)}")
    if o.url and not is_web_url(o.url):
        lines.append(one_line(o.url))  # not a link a client may open: kept as text
    lines.extend(clean_text(line) for line in extra)
    return "\n".join(lines)


def occurrence_vevent(
    occurrence: Occurrence,
    *,
    tz: ZoneInfo,
    uid_domain: str,
    language: str,
    stamp: datetime,
    sequence: int | None = None,
    names: Mapping[str, str] | None = None,
    anniversaries: Mapping[str, str] | None = None,
    description: str | None = None,
) -> Event:
    """One VEVENT. ``stamp`` (aware) becomes DTSTAMP in UTC; ``sequence`` is written when
    known (absent means 0 to clients); ``description`` replaces :func:`event_description`.

    The feed renderer adds LAST-MODIFIED, VALARMs etc. to the returned event.
    """
    o = occurrence
    event = Event()
    event.add("uid", _full_uid(o.uid, uid_domain))
    event.add("dtstamp", _utc(stamp))
    event.add("summary", one_line(o.title_in(language)))
    if o.all_day:
        event.add("dtstart", o.first)
        event.add("dtend", o.last + timedelta(days=1))  # exclusive (RFC 5545 §3.6.1)
    else:
        start = o.start_value(tz)
        end = o.end_value(tz)
        event.add("dtstart", start)
        if isinstance(end, datetime) and isinstance(start, datetime) and end > start:
            event.add("dtend", end)
        # else: a timed moment (a deadline at 17:00): no DTEND, it ends when it starts
    event.add("categories", [o.kind])
    if description is None:
        text = event_description(o, language, names, anniversaries=anniversaries)
    else:
        text = clean_text(description)
    if text:
        event.add("description", text)
    if o.location.strip():
        event.add("location", one_line(o.location))
    if is_web_url(o.url):
        event.add("url", o.url)
    event.add("status", "CANCELLED" if o.cancelled else "CONFIRMED")
    if sequence is not None:
        event.add("sequence", sequence)
    return event


def new_calendar(method: str | None = "PUBLISH") -> Calendar:
    """An empty VCALENDAR with VERSION, PRODID, CALSCALE and (unless None) METHOD."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method:
        calendar.add("method", method)
    return calendar


@lru_cache(maxsize=64)
def _vtimezone_ical(tzid: str, first_year: int, last_year: int) -> bytes:
    data: bytes = Timezone.from_tzid(
        tzid, first_date=date(first_year, 1, 1), last_date=date(last_year, 1, 1)).to_ical()
    return data


def vtimezone_ical(tz: ZoneInfo, first: date, last: date) -> bytes:
    """The bytes of :func:`vtimezone` (shared, not copied: the feeds concatenate them)."""
    return _vtimezone_ical(tz.key, first.year, last.year + 1)


def vtimezone(tz: ZoneInfo, first: date, last: date) -> Timezone:
    """A VTIMEZONE for ``tz`` valid from 1 January of ``first``'s year to the end of ``last``'s.

    ``icalendar`` derives the observances from the zone's offsets between the two dates
    (its default range, 1970–2038, would stop working in 2038 and start with the +08
    observance Saigon used until 1975). The range depends only on the dates, so an
    unchanged set of occurrences gives byte-identical output. Built once per range, then
    copied (parsed back) so callers may modify their copy.
    """
    component = Timezone.from_ical(_vtimezone_ical(tz.key, first.year, last.year + 1))
    assert isinstance(component, Timezone)
    return component


def add_timezones(calendar: Calendar, tz: ZoneInfo, occurrences: Iterable[Occurrence]) -> None:
    """Add the VTIMEZONE of ``tz`` (before the events) when any occurrence is timed."""
    timed = [o for o in occurrences if not o.all_day]
    if not timed:
        return
    first = min(o.first for o in timed)
    last = max(o.last for o in timed)
    calendar.subcomponents.insert(0, vtimezone(tz, first, last))


def occurrences_ics(
    occurrences: Iterable[Occurrence],
    *,
    tz: ZoneInfo,
    uid_domain: str,
    language: str,
    stamp: datetime,
    sequence: Mapping[str, int] | None = None,
    names: Mapping[str, str] | None = None,
    anniversaries: Mapping[str, str] | None = None,
    method: str | None = "PUBLISH",
    organizer: tuple[str, str] | None = None,
    attendees: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A VCALENDAR with one VEVENT per occurrence, as bytes (CRLF, folded).

    ``method`` is the iTIP method (RFC 5546): ``PUBLISH``, or ``CANCEL`` for a
    cancellation, whose SUMMARY also starts with "[Đã hủy]" ("[Cancelled]") for the
    clients that import it as an event without reading the method (calcurse).
    ``organizer`` (display name, address) becomes ORGANIZER, which iTIP requires;
    ``attendees`` (display name, address) become ATTENDEEs (a cancellation lists them).
    """
    items = list(occurrences)
    calendar = new_calendar(method)
    add_timezones(calendar, tz, items)
    tag = _LABELS["en" if language == "en" else "vi"]["cancelled"]
    for o in items:
        event = occurrence_vevent(
            o, tz=tz, uid_domain=uid_domain, language=language, stamp=stamp,
            sequence=None if sequence is None else sequence.get(o.uid), names=names,
            anniversaries=anniversaries)
        if method == "CANCEL":
            event["summary"] = vText(f"{tag} {one_line(o.title_in(language))}")
        if organizer is not None:
            name, address = organizer
            event.add("organizer", vCalAddress(f"mailto:{address}"),
                      parameters={"cn": one_line(name)} if name.strip() else {})
        for name, address in attendees:
            event.add("attendee", vCalAddress(f"mailto:{address}"),
                      parameters={"cn": one_line(name)} if name.strip() else {})
        calendar.add_component(event)
    data: bytes = calendar.to_ical()
    return data
