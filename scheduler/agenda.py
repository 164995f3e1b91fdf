"""Agenda and reminder listings: the JSON of SPEC §8 and the text people read.

The JSON field set and order are a contract (users' scripts read them). The
text form is for an 80-column terminal: grouped by month, Vietnamese dates.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from notifications.planning import PlannedReminder
from scheduler.occurrences import Occurrence
from scheduler.vietnamese import long_date, month_heading

WIDTH = 80
KIND_LABELS = {
    "vi": {"deadline": "Hạn chót", "event": "Sự kiện", "period": "Giai đoạn",
           "anniversary": "Kỷ niệm"},
    "en": {"deadline": "Deadline", "event": "Event", "period": "Period",
           "anniversary": "Anniversary"},
}
WORDS = {
    "vi": {"units": "Đơn vị", "lead": "Chủ trì", "submit_to": "Gửi về", "window": "Thời gian",
           "cancelled": "đã hủy", "none": "Không có mục nào trong khoảng thời gian này.",
           "more": "khác", "reminders_none": "Không có lời nhắc nào trong khoảng này."},
    "en": {"units": "Units", "lead": "Lead", "submit_to": "Submit to", "window": "Window",
           "cancelled": "cancelled", "none": "Nothing in this date range.", "more": "more",
           "reminders_none": "No reminders in this date range."},
}


def _iso(value: date | datetime) -> str:
    return value.isoformat()


def agenda_record(o: Occurrence, tz: ZoneInfo, language: str) -> dict[str, Any]:
    """One object of ``mocd agenda --format json`` (SPEC §8), fields in contract order."""
    return {
        "uid": o.uid,
        "title": o.title_in(language),
        "kind": o.kind,
        "start": _iso(o.start_value(tz)),
        "end": _iso(o.end_value(tz)),
        "all_day": o.all_day,
        "due": o.due.isoformat() if o.due else None,
        "campaign": o.campaign,
        "units": list(o.units),
        "lead": o.lead,
        "anniversary": (
            {"id": o.anniversary.id, "n": o.anniversary.n, "class": o.anniversary.cls}
            if o.anniversary else None
        ),
        "window": [o.window[0].isoformat(), o.window[1].isoformat()] if o.window else None,
    }


def reminder_record(r: PlannedReminder) -> dict[str, Any]:
    return {"uid": r.uid, "unit": r.unit, "offset": r.offset.text, "fire_at": r.fire_at.isoformat()}


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def json_lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A JSON array, one compact object per line: fast (C encoder), streamed, greppable."""
    yield "["
    previous: str | None = None
    for record in records:
        if previous is not None:
            yield f"  {previous},"
        previous = _ENCODE(record)
    if previous is not None:
        yield f"  {previous}"
    yield "]"


def agenda_json(occurrences: Iterable[Occurrence], tz: ZoneInfo, language: str) -> Iterator[str]:
    """Occurrences arrive sorted by :meth:`Occurrence.sort_key`, which orders exactly as
    (``start`` text, ``uid``) does for one zone: all-day dates before times of that day."""
    return json_lines(agenda_record(o, tz, language) for o in occurrences if not o.cancelled)


def _names(ids: Iterable[str], names: Mapping[str, str], limit: int, more: str) -> str:
    ids = list(ids)
    text = ""
    for i, uid in enumerate(ids):
        part = names.get(uid, uid)
        candidate = f"{text}, {part}" if text else part
        rest = len(ids) - i - 1
        suffix = f" (+{rest} {more})" if rest else ""
        if len(candidate) + len(suffix) > limit and text:
            return f"{text} (+{len(ids) - i} {more})"
        text = candidate
    return text


def _pack(parts: list[str]) -> Iterator[str]:
    """Lay out a heading's parts on lines of at most WIDTH, never splitting a part."""
    first, *rest = [p for p in parts if p]
    line = f"  {first}"
    for part in rest:
        if len(line) + 2 + len(part) > WIDTH:
            yield line
            line = f"      {part}"
        else:
            line += f"  {part}"
    yield line


def _when(o: Occurrence, language: str) -> str:
    text = long_date(o.first, language)
    if o.span.start_at is not None and o.span.end_at is not None:
        text += f" {o.span.start_at:%H:%M}"
        if o.span.end_at == o.span.start_at:
            pass  # a timed deadline: one moment
        elif o.span.end_at.date() == o.span.start_at.date():
            text += f"–{o.span.end_at:%H:%M}"
        else:
            text += f" → {long_date(o.span.end_at.date(), language)} {o.span.end_at:%H:%M}"
    elif o.last != o.first:
        text += f" → {long_date(o.last, language)}"
    return text


def agenda_text(occurrences: Iterable[Occurrence], names: Mapping[str, str],
                language: str) -> Iterator[str]:
    words = WORDS[language]
    labels = KIND_LABELS[language]
    month: tuple[int, int] | None = None
    wrap = textwrap.TextWrapper(width=WIDTH, initial_indent="    ", subsequent_indent="    ")
    count = 0
    for o in occurrences:
        count += 1
        if (o.first.year, o.first.month) != month:
            month = (o.first.year, o.first.month)
            if count > 1:
                yield ""
            heading = month_heading(*month, language)
            yield heading
            yield "─" * len(heading)
        label = f"· {labels[o.kind]}" + (f" ({words['cancelled']})" if o.cancelled else "")
        yield from _pack([_when(o, language), label, f"[{o.campaign}]" if o.campaign else ""])
        yield from wrap.wrap(o.title_in(language))
        details = []
        if o.window:
            details.append(f"{words['window']}: {long_date(o.window[0], language)} → "
                           f"{long_date(o.window[1], language)}")
        if o.lead:
            details.append(f"{words['lead']}: {names.get(o.lead, o.lead)}")
        if o.submit_to:
            details.append(f"{words['submit_to']}: {names.get(o.submit_to, o.submit_to)}")
        prefix = f"    {words['units']}: "
        if o.units:
            details.append(prefix.strip() + " "
                           + _names(o.units, names, WIDTH - len(prefix), words["more"]))
        note = o.note(language)
        if note:
            details.append(note)
        for line in details:
            yield from textwrap.wrap(line, WIDTH, initial_indent="    ",
                                     subsequent_indent="      ")
    if count == 0:
        yield words["none"]


def reminders_text(reminders: Iterable[PlannedReminder], titles: Mapping[str, str],
                   language: str) -> Iterator[str]:
    day: date | None = None
    count = 0
    for r in reminders:
        count += 1
        local_day = r.fire_at.date()
        if local_day != day:
            if day is not None:
                yield ""
            day = local_day
            yield long_date(local_day, language)
        line = f"  {r.fire_at:%H:%M}  {r.offset.text:>4}  {r.unit:<24} {titles.get(r.uid, r.uid)}"
        yield line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"
    if count == 0:
        yield WORDS[language]["reminders_none"]
