"""The emails mocd sends (SPEC §5): reminders, change and cancellation notices, the weekly
digest, and the reports to ``mail.admin``.

Pure functions of their inputs: data in, :class:`notifications.mime.OutgoingMessage` (the
envelope and the exact bytes) out; the only I/O is reading templates. The dispatcher sends
what these return through a transport.

Every message is ``multipart/alternative`` (text/plain, then text/html, UTF-8); reminders,
notices and digests wrap it in ``multipart/mixed`` with an ``.ics`` attachment. Headers:
``From`` (``mail.sender``), ``To`` (the unit's addresses under its name), ``Cc``, ``Subject``,
``Date``, a ``Message-ID`` derived from the outbox's idempotency key (so a re-send after a
crash carries the same id), ``Auto-Submitted: auto-generated``,
``X-Auto-Response-Suppress: All`` and ``Content-Language``.

Config text (titles, names, locations) is data: header values are built on one line (line
breaks and control characters cannot add a header), templates receive it as variables (a
title holding ``{{ 7*7 }}`` stays literal) and the HTML part escapes it. Subjects are built
here rather than in templates so that they are always one line.

Templates live in ``notifications/templates/{vi,en}/`` (``_base.html.j2`` is shared); a
``templates_dir`` with the same layout overrides them file by file.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from calendars.ics_attachment import (
    MAX_UNIT_NAMES,
    clean_text,
    is_web_url,
    occurrences_ics,
    one_line,
)
from config.errors import UserError
from config.settings import Settings
from notifications.mime import Attachment, OutgoingMessage, base64_lines, compose
from scheduler.dates import Span
from scheduler.occurrences import AnniversaryInfo, Occurrence
from scheduler.vietnamese import (
    en_long_date,
    english_month,
    short_date,
    vi_date,
    vi_long_date,
)

Language = Literal["vi", "en"]
LANGUAGES: tuple[Language, ...] = ("vi", "en")
ICS_FILENAME = "mocd.ics"
TEMPLATE_NAMES = ("reminder", "change", "cancellation", "digest", "delivery_failure",
                  "config_error")


@dataclass(frozen=True, slots=True)
class Recipient:
    """One unit as an addressee: its addresses get the unit name as display name."""

    unit_id: str
    name: str
    emails: tuple[str, ...]
    language: Language
    cc: tuple[str, ...] = ()  # addresses ("a@x" or "Name <a@x>"), e.g. the lead's on overdue


@dataclass(frozen=True, slots=True)
class ReminderItem:
    """One occurrence in a reminder email.

    ``days_left`` counts from the send day to the occurrence's day (due day, or first day);
    0 is today, negative is overdue. ``confirm_url`` is the signed confirmation link,
    absolute or relative to ``public_url`` (``/confirm/TOKEN``); without it no link is
    shown. ``pending`` lists the units (ids) that have not confirmed yet, shown to the lead
    with ``tally``.
    """

    occurrence: Occurrence
    offset_text: str
    days_left: int
    confirm_url: str | None = None
    pending: tuple[str, ...] = ()
    confirmed_on: date | None = None  # the recipient confirmed it then (digest items)
    tally: tuple[int, int] | None = None  # (confirmed, of) the other units, for the lead


class TemplateFailure(Exception):
    """A template that does not render (an override naming a variable that does not exist,
    a filter that fails): the message names the template file and, when known, its line.
    The dispatcher fails that one message with this text and goes on with the others."""


def _template_failure(exc: Exception, path: str) -> TemplateFailure:
    """Where in which template ``exc`` happened: jinja's rewritten traceback has a frame per
    template line (an included macro file is named rather than the template including it)."""
    where = path
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    lineno = getattr(exc, "lineno", None)
    source = getattr(exc, "filename", None)
    if isinstance(source, str) and isinstance(lineno, int):  # a syntax error
        where = f"{source}:{lineno}"
    text = one_line(str(exc)) or type(exc).__name__
    return TemplateFailure(f"template {where}: {type(exc).__name__}: {text}")


@dataclass(frozen=True, slots=True)
class FailureLine:
    """One message that could not be delivered (or is still retrying)."""

    to: str
    subject: str
    reply: str
    attempts: int = 1
    permanent: bool = True
    unit: str | None = None
    at: datetime | None = None


# --- text helpers ---------------------------------------------------------------------------


def message_id(key: str, domain: str) -> str:
    """``<{sha256(key)[:32]}@{domain}>``: the same idempotency key, the same Message-ID."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{one_line(domain).replace(' ', '') or 'mocd.local'}>"


def en_date(d: date) -> str:
    """``7 June 2023``."""
    return f"{d.day} {english_month(d.month)} {d.year}"


def _hm(moment: datetime) -> str:
    return f"{moment:%H:%M}"


def when_text(o: Occurrence, language: str) -> str:
    """When an occurrence happens, for people: days in the long form, times if timed."""
    long = vi_long_date if language == "vi" else en_long_date
    start, end = o.span.start_at, o.span.end_at
    if start is not None and end is not None:
        if end <= start:
            return (f"{long(start.date())}, lúc {_hm(start)}" if language == "vi"
                    else f"{long(start.date())} at {_hm(start)}")
        if o.first == o.last:
            return (f"{long(start.date())}, từ {_hm(start)} đến {_hm(end)}" if language == "vi"
                    else f"{long(start.date())}, {_hm(start)}–{_hm(end)}")
        return (f"Từ {_hm(start)} {long(start.date())} đến {_hm(end)} {long(end.date())}"
                if language == "vi"
                else f"From {long(start.date())} {_hm(start)} to {long(end.date())} {_hm(end)}")
    if o.first == o.last:
        return long(o.first)
    return (f"Từ {long(o.first)} đến {long(o.last)}" if language == "vi"
            else f"From {long(o.first)} to {long(o.last)}")


def _subject_date(o: Occurrence, language: str) -> str:
    """The date in a subject: ``07/6/2023``; a timed event also gets its time."""
    day = o.day
    if language == "vi":
        if o.kind != "deadline" and o.span.start_at is not None:
            return f"{_hm(o.span.start_at)} ngày {vi_date(day)}"
        return vi_date(day)
    if o.kind != "deadline" and o.span.start_at is not None:
        return f"{en_date(day)}, {_hm(o.span.start_at)}"
    return en_date(day)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _item_subject(item: ReminderItem, language: str) -> str:
    o = item.occurrence
    title = one_line(o.title_in(language))
    n = item.days_left
    when = _subject_date(o, language)
    if language == "vi":
        if o.kind == "deadline":
            if n < 0:
                return f"[Quá hạn] Đã quá hạn {-n} ngày: {title} ({when})"
            lead = "Hôm nay hết hạn" if n == 0 else f"Còn {n} ngày"
            return f"[Nhắc hạn] {lead}: {title} ({when})"
        lead = "Hôm nay" if n <= 0 else "Ngày mai" if n == 1 else f"Còn {n} ngày"
        if o.kind == "anniversary":
            return f"[Kỷ niệm] {lead}: {title}"  # the title ends with the dates already
        return f"[Nhắc lịch] {lead}: {title} ({when})"
    if o.kind == "deadline":
        if n < 0:
            return f"[Overdue] {_plural(-n, 'day')} overdue: {title} ({when})"
        lead = "Due today" if n == 0 else f"{_plural(n, 'day')} left"
        return f"[Reminder] {lead}: {title} ({when})"
    lead = "Today" if n <= 0 else "Tomorrow" if n == 1 else f"In {n} days"
    if o.kind == "anniversary":
        return f"[Anniversary] {lead}: {title}"
    return f"[Reminder] {lead}: {title} ({when})"


def reminder_subject(items: Sequence[ReminderItem], language: str) -> str:
    if len(items) == 1:
        return _item_subject(items[0], language)
    nearest = min(item.occurrence.day for item in items)
    n = len(items)
    any_deadline = any(item.occurrence.kind == "deadline" for item in items)
    if language == "vi":
        if any_deadline:
            return f"[Nhắc hạn] {n} việc sắp đến hạn (gần nhất {vi_date(nearest)})"
        return f"[Nhắc lịch] {n} mục sắp diễn ra (gần nhất {vi_date(nearest)})"
    if any_deadline:
        return f"[Reminder] {n} items due soon (next: {en_date(nearest)})"
    return f"[Reminder] {n} upcoming items (next: {en_date(nearest)})"


def _nl2br(value: object) -> Markup:
    """Escape, then turn line breaks into ``<br>``: multi-line config text in HTML."""
    lines = clean_text(str(value)).split("\n")
    return Markup("<br>\n").join(escape(line) for line in lines)


# --- headers -------------------------------------------------------------------------------
#
# CPython 3.11's header folder (policy.default) loses or adds spaces around RFC 2047
# encoded-words (python/cpython#92081, #144156): "[Nhắc hạn] 2 việc sắp đến hạn (gần nhất …)"
# came out as "…hạn(gần nhất …)", "Sở Nội vụ" as "SởNội vụ". Non-ASCII subjects and display
# names are therefore encoded here: the whole text as base64 encoded-words split only at
# character boundaries, every space inside a word, one word per line (whitespace between
# adjacent encoded-words is not displayed, RFC 2047 §6.2). Lines stay under 78 octets.
# mocd writes its headers itself (notifications.mime): no policy refolds them.

_EW_BYTES = 39  # 39 bytes → 52 base64 chars → a 64-char word: "Subject: " + word < 78


def encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 base64 encoded-words, none splitting a UTF-8 sequence.

    A word ends after a space when one is near the end of the chunk, so that decoders that
    wrongly keep the whitespace between encoded-words (CPython 3.11's address parser) show
    "Ba  Tơ" rather than "Ba T ơ".
    """
    chunks: list[str] = []
    chunk = ""
    size = 0
    for char in text:
        n = len(char.encode("utf-8"))
        if chunk and size + n > _EW_BYTES:
            cut = chunk.rfind(" ") + 1
            if cut <= len(chunk) // 2:
                cut = len(chunk)
            chunks.append(chunk[:cut])
            chunk = chunk[cut:]
            size = len(chunk.encode("utf-8"))
        chunk += char
        size += n
    if chunk:
        chunks.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(c.encode('utf-8')).decode('ascii')}?=" for c in chunks]


def _needs_encoding(text: str) -> bool:
    return not text.isascii() or "=?" in text  # "=?" could be decoded as an encoded-word


def text_header(name: str, text: str) -> str:
    """An unstructured header's value (Subject) from one-line text, folded under 78 octets:
    plain ASCII folded at spaces, anything else as encoded-words, one per line."""
    text = one_line(text)
    if not _needs_encoding(text):
        lines: list[str] = []
        line = ""
        room = 78 - len(name) - 2
        for word in text.split(" "):
            if line and len(line) + 1 + len(word) > room:
                lines.append(line)
                line, room = word, 77
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
        if all(len(item) <= 77 for item in lines):
            return "\n ".join(lines)
    return "\n ".join(encoded_words(text))


_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")  # atoms: no quoting needed


def _address_text(a: Address) -> str:
    """One address as header text on lines under 78 octets (a header name of ≤ 10 before)."""
    if not a.display_name:
        return a.addr_spec
    name = a.display_name
    if (not _needs_encoding(name) and _ATOM_PHRASE.fullmatch(name)
            and len(name) + len(a.addr_spec) <= 60):
        return f"{name} <{a.addr_spec}>"
    return "\n ".join(encoded_words(name)) + f"\n <{a.addr_spec}>"


def address_header(addresses: Sequence[Address]) -> str:
    """An address header's value, one address per line. Display names that are not plain
    ASCII words are encoded-words (CPython 3.11 folds both non-ASCII names and long quoted
    strings wrongly, so nothing here is left to its folder)."""
    return ",\n ".join(_address_text(a) for a in addresses)


_NAME_ADDR = re.compile(r"(.*?)\s*<([^<>]*)>")


@lru_cache(maxsize=4096)
def _address(text: str) -> Address:
    """``a@x`` or ``Name <a@x>`` (the name quoted or not, commas allowed: "Văn phòng UBND
    huyện Ba Tơ, tỉnh Quảng Ngãi <…>" is what admins write) as one Address. Anything else
    (two addresses, a line break smuggling a header) is an error: config and settings
    validation should have caught it."""
    if any(c in text for c in "\r\n\x00"):
        raise ValueError(f"invalid email address {text!r}")
    text = text.strip()
    match = _NAME_ADDR.fullmatch(text)
    if match:
        name, addr = match[1].strip(), match[2].strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    else:
        name, addr = "", text
    if "<" in name or ">" in name:  # "ceo@bank.example <evil@x.example>"
        raise ValueError(f"invalid email address {text!r}")
    if not addr.isascii() or "@" not in addr or any(c.isspace() or c in ",;<>" for c in addr):
        raise ValueError(f"invalid email address {text!r}")  # SMTPUTF8 is not supported
    try:
        return Address(display_name=one_line(name), addr_spec=addr)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise ValueError(f"invalid email address {text!r}: {exc}") from None


@lru_cache(maxsize=4096)
def _unit_header(name: str, emails: tuple[str, ...]) -> str:
    """The To header of a unit: each address under the unit's name (cached: a unit gets
    many emails, and validating an address with the email package is not cheap)."""
    display = one_line(name)
    result = []
    for email in emails:
        address = _address(email)
        result.append(Address(display_name=display or address.display_name,
                              addr_spec=address.addr_spec))
    return address_header(result)


@dataclass(frozen=True, slots=True)
class ChangeLine:
    """One changed value of a change notice: ``old``/``new`` for the text, the short forms
    for the subject."""

    label: str
    old: str
    new: str
    old_short: str
    new_short: str


_CHANGE_LABELS = {
    "vi": {"when": "Thời gian", "due": "Hạn hoàn thành", "location": "Địa điểm",
           "none": "(chưa có)"},
    "en": {"when": "Time", "due": "Due", "location": "Location", "none": "(none)"},
}


def _short_when(o: Occurrence, language: str) -> str:
    """A subject's form of when: ``30/5/2024``, ``08:00 20/6/2024`` (``17:00 30/5/2024`` for
    a timed deadline)."""
    fmt = vi_date if language == "vi" else en_date
    start = o.span.start_at
    return f"{_hm(start)} {fmt(start.date())}" if start is not None else fmt(o.day)


def change_lines(before: Occurrence, after: Occurrence, language: str) -> list[ChangeLine]:
    """What changed between two states of an occurrence, as a unit reads it: when (the due
    day and time of a deadline; the days and times of anything else), then the location."""
    labels = _CHANGE_LABELS["en" if language == "en" else "vi"]
    lines = []
    old, new = when_text(before, language), when_text(after, language)
    if old != new or before.day != after.day:
        label = labels["due"] if after.kind == "deadline" else labels["when"]
        lines.append(ChangeLine(label, old, new, _short_when(before, language),
                                _short_when(after, language)))
    old_place, new_place = one_line(before.location), one_line(after.location)
    if old_place != new_place:
        lines.append(ChangeLine(labels["location"], old_place or labels["none"],
                                new_place or labels["none"], old_place or labels["none"],
                                new_place or labels["none"]))
    return lines


# --- the factory -----------------------------------------------------------------------------


class MessageFactory:
    """Builds every email mocd sends. One per settings + unit names; thread-safe once built.

    ``names`` maps unit ids to names (lead, submit_to, units are shown by name);
    ``anniversaries`` maps anniversary ids to titles (for "chào mừng …"); ids it does not
    know are shown as they are. ``templates_dir`` (default: ``settings.templates_dir``)
    overrides the packaged templates file by file (``vi/reminder.txt.j2``, …).
    """

    def __init__(self, settings: Settings, names: Mapping[str, str],
                 templates_dir: Path | None = None, *,
                 anniversaries: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.names = dict(names)
        self._ics_cache: dict[tuple[object, ...], Attachment] = {}
        self.anniversaries = dict(anniversaries or {})
        self.tz = settings.tz
        self.public_url = settings.public_url.rstrip("/")
        directory = templates_dir if templates_dir is not None else settings.templates_dir
        loaders: list[BaseLoader] = []
        if directory is not None:
            if not Path(directory).is_dir():
                raise UserError(f"templates_dir {directory}: not a directory")
            loaders.append(FileSystemLoader(str(directory)))
        loaders.append(PackageLoader("notifications", "templates"))
        # The sandbox: templates (possibly an admin's override) cannot reach Python internals.
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader(loaders),
            # select_autoescape(["html"]) alone would miss "*.html.j2": name both forms.
            autoescape=select_autoescape(
                enabled_extensions=("html", "htm", "xml", "html.j2", "htm.j2"),
                disabled_extensions=("txt", "txt.j2"),
                default_for_string=True,
                default=True,
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        filters: dict[str, Callable[..., Any]] = {
            "vi_date": vi_date, "vi_long_date": vi_long_date, "short_date": short_date,
            "en_date": en_date, "en_long_date": en_long_date, "hm": _hm,
            "when": when_text, "nl2br": _nl2br, "one_line": one_line,
        }
        self.env.filters.update(filters)

    # --- public API ---------------------------------------------------------------------

    def reminder(self, recipient: Recipient, items: Sequence[ReminderItem], *, key: str,
                 now: datetime, sequence: Mapping[str, int] | None = None) -> OutgoingMessage:
        """One email for every reminder of one unit firing at the same time."""
        if not items:
            raise ValueError("a reminder needs at least one item")
        language = recipient.language
        ordered = sorted(items, key=lambda i: (i.days_left, i.occurrence.sort_key()))
        subject = reminder_subject(ordered, language)
        views = [self._item_view(i.occurrence, language, days_left=i.days_left,
                                 offset=i.offset_text, confirm_url=i.confirm_url,
                                 pending=i.pending, confirmed_on=i.confirmed_on,
                                 tally=i.tally) for i in ordered]
        context = {"items": views, "several": len(views) > 1}
        return self._build(
            "reminder", recipient, subject, context, key=key, now=now,
            ics=[i.occurrence for i in ordered], sequence=sequence)

    def change_notice(self, recipient: Recipient, occurrence: Occurrence,
                      before: Occurrence, *, key: str, now: datetime,
                      sequence: int | None = None) -> OutgoingMessage:
        """What a unit acts on changed (:data:`~scheduler.occurrences.ACTED_ON`): each
        changed value old → new in the text, the first in the subject; ``before`` is the
        occurrence as it was. The attachment is the updated VEVENT with the feed's
        ``sequence``, so a calendar that imported the earlier one replaces it."""
        language = recipient.language
        o = occurrence
        changes = change_lines(before, o, language)
        title = one_line(o.title_in(language))
        tag = "[Thay đổi lịch]" if language == "vi" else "[Schedule change]"
        first = changes[0] if changes else None
        subject = (f"{tag} {title}: {first.old_short} → {first.new_short}" if first
                   else f"{tag} {title}")
        item = self._item_view(o, language)
        if any(c.label == _CHANGE_LABELS[language]["location"] for c in changes):
            item["location"] = None  # shown once, as the change
        context = {"item": item,
                   "changes": [{"label": c.label, "old": c.old, "new": c.new}
                               for c in changes],
                   "when_changed": any(c.label != _CHANGE_LABELS[language]["location"]
                                       for c in changes),
                   "old_when": when_text(before, language),
                   "old_day": before.day, "new_day": o.day}
        return self._build("change", recipient, subject, context, key=key, now=now, ics=[o],
                           sequence=None if sequence is None else {o.uid: sequence})

    def cancellation_notice(self, recipient: Recipient, occurrence: Occurrence, *, key: str,
                            now: datetime, sequence: int | None = None) -> OutgoingMessage:
        """The occurrence was cancelled or removed. The attachment is an iTIP cancellation
        (RFC 5546 ``METHOD:CANCEL``, ``STATUS:CANCELLED``, the same UID and the feed's
        ``sequence``): a calendar that imported the item from an earlier email removes
        it; its SUMMARY is marked cancelled for the clients that import without iTIP."""
        language = recipient.language
        o = replace(occurrence, cancelled=True)
        fmt = vi_date if language == "vi" else en_date
        tag = "[Hủy lịch]" if language == "vi" else "[Cancelled]"
        subject = f"{tag} {one_line(o.title_in(language))} ({fmt(o.day)})"
        context = {"item": self._item_view(o, language)}
        return self._build("cancellation", recipient, subject, context, key=key, now=now,
                           ics=[o], sequence=None if sequence is None else {o.uid: sequence},
                           method="CANCEL")

    def digest(self, recipient: Recipient, occurrences: Sequence[Occurrence], *,
               horizon_days: int, key: str, now: datetime,
               sequence: Mapping[str, int] | None = None,
               confirm_urls: Mapping[str, str] | None = None,
               confirmed_on: Mapping[str, date] | None = None) -> OutgoingMessage:
        """The weekly agenda: ``occurrences`` (chosen by the caller) of the next
        ``horizon_days`` days, today included; by UID, the confirmation links and the days
        the recipient confirmed (those items are marked done)."""
        language = recipient.language
        first = self._local(now).date()
        last = first + timedelta(days=max(horizon_days, 1) - 1)
        ordered = sorted(occurrences, key=Occurrence.sort_key)
        n = len(ordered)
        if language == "vi":
            subject = (f"[Lịch tuần] {n} mục từ {vi_date(first)} đến {vi_date(last)}" if n
                       else f"[Lịch tuần] Không có mục nào từ {vi_date(first)} đến "
                            f"{vi_date(last)}")
        else:
            subject = (f"[Weekly agenda] {_plural(n, 'item')}, {en_date(first)} – "
                       f"{en_date(last)}" if n
                       else f"[Weekly agenda] Nothing from {en_date(first)} to {en_date(last)}")
        urls, done = confirm_urls or {}, confirmed_on or {}
        context = {"items": [self._item_view(o, language, confirm_url=urls.get(o.uid),
                                             confirmed_on=done.get(o.uid)) for o in ordered],
                   "first": first, "last": last}
        return self._build("digest", recipient, subject, context, key=key, now=now,
                           ics=ordered or None, sequence=sequence)

    def delivery_failure_report(self, admin_address: str, failures: Sequence[FailureLine], *,
                                key: str, now: datetime, subject: str | None = None,
                                language: Language | None = None) -> OutgoingMessage:
        """To ``mail.admin``: messages that failed (or keep failing). ``subject`` replaces
        the usual one; ``language`` that of the settings."""
        language = language or self.settings.language
        n = len(failures)
        subject = subject or (f"[mocd] {n} thư không gửi được" if language == "vi"
                              else f"[mocd] {_plural(n, 'message')} could not be delivered")
        lines = [{"to": one_line(f.to), "subject": one_line(f.subject),
                  "reply": clean_text(f.reply).strip(), "attempts": f.attempts,
                  "permanent": f.permanent, "unit": self._name(f.unit) if f.unit else None,
                  "at": self._local(f.at) if f.at else None} for f in failures]
        return self._build("delivery_failure", self._admin(admin_address, language), subject,
                           {"failures": lines}, key=key, now=now)

    def config_error_report(self, admin_address: str, errors: Sequence[str], *,
                            config_dir: Path | str, key: str, now: datetime,
                            language: Language | None = None) -> OutgoingMessage:
        """To ``mail.admin``: the new config was rejected; the last good one keeps running."""
        language = language or self.settings.language
        n = len(errors)
        subject = (f"[mocd] Cấu hình không hợp lệ: {n} lỗi" if language == "vi"
                   else f"[mocd] Invalid configuration: {_plural(n, 'error')}")
        context = {"errors": [clean_text(e).strip() for e in errors],
                   "config_dir": one_line(str(config_dir))}
        return self._build("config_error", self._admin(admin_address, language), subject,
                           context, key=key, now=now)

    def check_templates(self) -> list[str]:
        """Problems with the templates, one line each naming the file: every template is
        loaded (a syntax error in an override), then every message is rendered in both
        languages against a sample that fills every field the packaged templates use (an
        override naming a variable that does not exist). ``mocd check`` and the daemon's
        start run this, so a broken override is found before a unit's email is due."""
        problems = []
        for language in LANGUAGES:
            for name in TEMPLATE_NAMES:
                for ext in ("txt", "html"):
                    path = f"{language}/{name}.{ext}.j2"
                    try:
                        self.env.get_template(path)
                    except TemplateError as exc:
                        problems.append(f"{path}: {type(exc).__name__}: {one_line(str(exc))}")
        if problems:
            return problems
        for language in LANGUAGES:
            for build in _sample_messages(self, language):
                try:
                    build()
                except TemplateFailure as exc:
                    problems.append(str(exc))
        return list(dict.fromkeys(problems))

    # --- internals ----------------------------------------------------------------------

    def _name(self, unit: str) -> str:
        return one_line(self.names.get(unit, unit))

    def _names(self, units: Iterable[str]) -> list[str]:
        return [self._name(u) for u in units]

    def _local(self, moment: datetime) -> datetime:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")
        return moment.astimezone(self.tz)

    def _admin(self, admin_address: str, language: Language) -> Recipient:
        name = "Quản trị hệ thống mocd" if language == "vi" else "mocd administrator"
        address = _address(admin_address)
        return Recipient("", address.display_name or name, (address.addr_spec,), language)

    def _confirm_url(self, url: str | None) -> str | None:
        if not url:
            return None
        url = url.strip()
        if url.startswith("/"):
            url = self.public_url + url
        return url if is_web_url(url) else None

    def _item_view(self, o: Occurrence, language: str, *, days_left: int | None = None,
                   offset: str | None = None, confirm_url: str | None = None,
                   pending: Sequence[str] = (), confirmed_on: date | None = None,
                   tally: tuple[int, int] | None = None) -> dict[str, Any]:
        """What the templates show of one occurrence (all keys always present)."""
        units = self._names(o.units[:MAX_UNIT_NAMES])
        celebrates = None
        if o.celebrates:
            celebrates = one_line(self.anniversaries.get(o.celebrates)
                                  or self.names.get(o.celebrates) or o.celebrates)
        return {
            "occurrence": o,
            "uid": o.uid,
            "kind": o.kind,
            "title": one_line(o.title_in(language)),
            "days_left": days_left,
            "offset": offset,
            "when": when_text(o, language),
            "timed": not o.all_day,
            "due": o.due,
            "window": o.window,
            "document": one_line(o.document) or None,
            "lead": self._name(o.lead) if o.lead else None,
            "submit_to": self._name(o.submit_to) if o.submit_to else None,
            "units": units,
            "more_units": max(0, len(o.units) - MAX_UNIT_NAMES),
            "location": one_line(o.location) or None,
            "url": one_line(o.url) or None,
            "url_is_link": is_web_url(o.url),
            "description": clean_text(o.description).strip() or None,
            "note": o.note(language),
            "celebrates": celebrates,
            "anniversary": o.anniversary,
            "cancelled": o.cancelled,
            "confirm_url": None if confirmed_on else self._confirm_url(confirm_url),
            "pending": self._names(pending),
            "confirmed_on": confirmed_on,
            "tally": tally,
        }

    def _build(self, template: str, recipient: Recipient, subject: str,
               context: Mapping[str, Any], *, key: str, now: datetime,
               ics: Sequence[Occurrence] | None = None,
               sequence: Mapping[str, int] | None = None,
               method: str = "PUBLISH") -> OutgoingMessage:
        language = recipient.language
        local_now = self._local(now)
        subject = one_line(subject)
        full = {
            **context,
            "language": language,
            "subject": subject,
            "recipient": {"unit_id": recipient.unit_id, "name": one_line(recipient.name)},
            "public_url": self.public_url,
            "now": local_now,
            "today": local_now.date(),
        }
        text = self._render(f"{language}/{template}.txt.j2", full)
        html = self._render(f"{language}/{template}.html.j2", full)

        sender = _address(one_line(self.settings.mail.sender))
        to = _unit_header(recipient.name, tuple(recipient.emails))
        headers = [("From", address_header([sender])), ("To", to)]
        cc = [_address(a) for a in recipient.cc]
        if cc:
            headers.append(("Cc", address_header(cc)))
        mid = message_id(key, self.settings.uid_domain)
        headers += [
            ("Subject", text_header("Subject", subject)),
            ("Date", format_datetime(local_now)),
            ("Message-ID", mid),
            ("Auto-Submitted", "auto-generated"),
            ("X-Auto-Response-Suppress", "All"),
            ("Content-Language", language),
        ]
        # A cancellation names the recipient as ATTENDEE: RFC 5546 lists every attendee of
        # a cancelled event (one email per unit, so the cache still serves the others).
        attendees = (tuple((recipient.name, _address(e).addr_spec) for e in recipient.emails)
                     if method == "CANCEL" else ())
        attachment = (self._ics(tuple(ics), language, local_now, sequence, method, attendees)
                      if ics else None)
        data = compose(headers, text, html, attachment, key=key)
        recipients = tuple(dict.fromkeys(
            [_address(e).addr_spec for e in recipient.emails] + [a.addr_spec for a in cc]))
        return OutgoingMessage(sender.addr_spec, recipients, data, mid, subject)

    def _render(self, path: str, context: Mapping[str, Any]) -> str:
        try:
            return self.env.get_template(path).render(context)
        except Exception as exc:  # anything an override can make a template raise
            raise _template_failure(exc, path) from exc

    def _ics(self, occurrences: tuple[Occurrence, ...], language: str, now: datetime,
             sequence: Mapping[str, int] | None, method: str,
             attendees: tuple[tuple[str, str], ...] = ()) -> Attachment:
        """The attachment, cached (rendered and base64-encoded once): the units of one
        milestone get the same bytes. ``method`` is ``PUBLISH`` (reminders, changes,
        digests) or ``CANCEL``; the ORGANIZER is ``mail.sender`` (RFC 5546 asks for one in
        both). base64 keeps the CRLF line ends of RFC 5545 intact.

        DTSTAMP is the minute the message is built, so all reminders of one
        dispatch round share one rendering (icalendar is ~40 % of building a message).
        """
        stamp = now.replace(second=0, microsecond=0)
        key = (occurrences, language, stamp, tuple(sorted((sequence or {}).items())),
               id(self.names), method, attendees)
        cached = self._ics_cache.get(key)
        if cached is None:
            if len(self._ics_cache) >= 512:
                self._ics_cache.clear()
            sender = _address(one_line(self.settings.mail.sender))
            data = occurrences_ics(list(occurrences), tz=self.tz,
                                   uid_domain=self.settings.uid_domain, language=language,
                                   stamp=stamp, sequence=sequence, names=self.names,
                                   anniversaries=self.anniversaries, method=method,
                                   organizer=(sender.display_name, sender.addr_spec),
                                   attendees=attendees)
            cached = Attachment(
                f'text/calendar; charset="utf-8"; method={method}; name="{ICS_FILENAME}"',
                ICS_FILENAME, base64_lines(data))
            self._ics_cache[key] = cached
        return cached


# --- the sample every template is checked against --------------------------------------------

_SAMPLE_NOW = datetime(2024, 5, 27, 7, 30)


def _sample_occurrences() -> tuple[Occurrence, Occurrence, Occurrence]:
    """A deadline, a timed event and an anniversary with every field set."""
    day = date(2024, 5, 30)
    deadline = Occurrence(
        uid="mau.han-chot", title="Gửi báo cáo (mẫu)", title_en="Send the report (sample)",
        kind="deadline", span=Span.day(day), units=("don-vi-a", "don-vi-b"), due=day,
        window=(date(2024, 5, 1), day), campaign="mau", milestone="han-chot", lead="don-vi-a",
        cc=("don-vi-c",), submit_to="don-vi-c", description="Nội dung mẫu.\nDòng thứ hai.",
        location="Hội trường", url="https://example.invalid/van-ban", document="Số 1/KH-UBND",
        celebrates="mau-ky-niem")
    event = replace(deadline, uid="mau.su-kien", kind="event", due=None, window=None,
                    span=Span(day, day, datetime(2024, 5, 30, 8, 0),
                              datetime(2024, 5, 30, 11, 30)))
    anniversary = replace(deadline, uid="anniversary.mau.90", kind="anniversary", due=None,
                          window=None, lead=None, anniversary=AnniversaryInfo(
                              "mau", 90, "tron", date(1934, 5, 30), True))
    return deadline, event, anniversary


def _sample_messages(factory: MessageFactory, language: Language
                     ) -> list[Callable[[], OutgoingMessage]]:
    """Every kind of message mocd sends, built from the sample (for :meth:`check_templates`)."""
    now = _SAMPLE_NOW.replace(tzinfo=factory.tz)
    deadline, event, anniversary = _sample_occurrences()
    to = Recipient("don-vi-a", "Đơn vị A", ("a@example.invalid",), language,
                   cc=("Đơn vị C <c@example.invalid>",))
    # The deadline comes first (the nearest): an override written for deadlines only
    # (``items[0].occurrence.due``) passes, as it would with the admin's own plans.
    items = [ReminderItem(deadline, "1d", 1, confirm_url="/confirm/mau", pending=("don-vi-b",),
                          tally=(0, 1)),
             ReminderItem(event, "3d", 3), ReminderItem(anniversary, "7d", 7)]
    overdue = [ReminderItem(deadline, "1d", -1, confirm_url="/confirm/mau")]
    failure = FailureLine("a@example.invalid", "Gửi báo cáo", "550 5.1.1 no such user", 3,
                          True, "don-vi-a", now)
    admin = "admin@example.invalid"
    return [
        lambda: factory.reminder(to, items, key="mau:1", now=now),
        lambda: factory.reminder(to, items[:1], key="mau:2", now=now),
        lambda: factory.reminder(to, overdue, key="mau:3", now=now),
        lambda: factory.change_notice(to, deadline, replace(deadline, due=date(2024, 5, 29)),
                                      key="mau:4", now=now, sequence=1),
        lambda: factory.change_notice(
            to, event, replace(event, location="", span=Span(
                event.first, event.last, datetime(2024, 5, 30, 7, 30), None)),
            key="mau:5", now=now),
        lambda: factory.cancellation_notice(to, deadline, key="mau:6", now=now, sequence=2),
        lambda: factory.digest(to, [deadline, event, anniversary], horizon_days=14,
                               key="mau:7", now=now, confirm_urls={deadline.uid: "/confirm/x"},
                               confirmed_on={event.uid: date(2024, 5, 26)}),
        lambda: factory.digest(to, [], horizon_days=14, key="mau:8", now=now),
        lambda: factory.delivery_failure_report(admin, [failure], key="mau:9", now=now,
                                                language=language),
        lambda: factory.config_error_report(admin, ["a.yaml:1:1: x: sai"], config_dir="/etc",
                                            key="mau:10", now=now, language=language),
    ]
