"""The milestone config schema (SPEC §4): one pydantic model per YAML mapping.

Strict: unknown keys are errors (with a suggestion), scalars arrive as text and
are parsed here (dates, offsets, durations, date expressions), so that every
mistake becomes a message with a path — :mod:`config.loader` adds the file,
line and column.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from config.errors import did_you_mean
from scheduler.dates import DateTextError, parse_date, parse_duration, shorten
from scheduler.expressions import DateExpr, ExprError, describe, parse_expr
from scheduler.lunar import LunarDate, NonexistentLunarDate, lunar_to_solar
from scheduler.offsets import Offset, parse_offset

SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
# An id names a unit, group, campaign, milestone or anniversary in URLs, UIDs and the
# store (a UID is campaign.milestone.key@domain in 500 characters; a feed path takes an id
# of up to 200): 100 leaves room for the rest.
MAX_ID_LENGTH = 100
EMAIL = re.compile(r"[^@\s,;<>\"'()]+@[^@\s,;<>\"'()]+\.[^@\s,;<>\"'()]+")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _fail(message: str, subpath: tuple[str | int, ...] = (), *,
          at_key: bool = False) -> PydanticCustomError:
    return PydanticCustomError("mocd", message, {"subpath": subpath, "at_key": at_key})


def suggest_slug(text: str) -> str:
    """``Phòng Nội vụ`` → ``phong-noi-vu``: the id an admin probably meant."""
    plain = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in plain if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")


def _slug(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(f"expected an id, got {describe(value)}")
    if len(value) > MAX_ID_LENGTH:
        raise _fail(f"an id of {len(value):,} characters is too long: at most "
                    f"{MAX_ID_LENGTH} (ids are in every feed URL and UID)")
    if not SLUG.fullmatch(value):
        hint = suggest_slug(value)
        raise _fail(
            f"'{shorten(value)}' is not a valid id: use lowercase letters, digits and '-'"
            + (f" (e.g. '{shorten(hint)}')" if hint else "")
        )
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _fail(f"expected text, got {describe(value)}")


def _title(value: Any) -> str:
    text = _text(value).strip()
    if not text:
        raise _fail("must not be empty")
    return " ".join(text.split())  # one line: titles end up in email subjects


def _date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise _fail(f"expected a date like 2024-06-20, got {describe(value)}")
    try:
        return parse_date(value)
    except DateTextError as exc:
        raise _fail(str(exc)) from None


def _expr(value: Any) -> DateExpr:
    try:
        return parse_expr(value)
    except ExprError as exc:
        raise _fail(exc.message, exc.path, at_key=exc.at_key) from None


def _duration(value: Any) -> timedelta:
    try:
        result = parse_duration(_text(value))
    except OverflowError:
        raise _fail("that duration is too long") from None
    except DateTextError as exc:
        raise _fail(str(exc)) from None
    if result <= timedelta(0):
        raise _fail("a duration must be longer than zero")
    return result


def _list_of(item: Any, what: str) -> Any:
    def validate(value: Any) -> tuple[Any, ...]:
        if isinstance(value, str) and what != "offsets":
            return (item(value),)  # `units: phong-noi-vu` means a list of one
        if not isinstance(value, list):
            raise _fail(f"expected a list of {what}, got {describe(value)}")
        out = []
        for i, element in enumerate(value):
            try:
                out.append(item(element))
            except PydanticCustomError as exc:
                context = exc.context or {}
                raise _fail(exc.message(), (i, *context.get("subpath", ())),
                            at_key=bool(context.get("at_key"))) from None
        return tuple(out)

    return validate


def _offset(value: Any) -> Offset:
    try:
        return parse_offset(_text(value))
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _email(value: Any) -> str:
    text = _text(value).strip()
    if not EMAIL.fullmatch(text):
        raise _fail(f"'{text}' is not an email address")
    return text


def _weekday(value: Any) -> int:
    text = _text(value).strip().lower()[:3]
    if text not in WEEKDAYS:
        raise _fail(f"expected a weekday (mon, tue, … sun), got {describe(value)}")
    return WEEKDAYS.index(text)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _fail(f"expected true or false, got {describe(value)}")


def _positive(value: Any) -> int:
    text = value.strip() if isinstance(value, str) else ""
    if text.isdigit() and len(text) > 9:  # int() of 5,000 digits asks for sys.set_int_max_…
        raise _fail(f"a number of {len(text):,} digits is too large")
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise _fail(f"expected a whole number of 1 or more, got {describe(value)}")


Slug = Annotated[str, PlainValidator(_slug)]
Text = Annotated[str, PlainValidator(_text)]
Title = Annotated[str, PlainValidator(_title)]
LocalDate = Annotated[date, PlainValidator(_date)]
When = Annotated[DateExpr, PlainValidator(_expr)]
Length = Annotated[timedelta, PlainValidator(_duration)]
Slugs = Annotated[tuple[str, ...], PlainValidator(_list_of(_slug, "ids"))]
Offsets = Annotated[tuple[Offset, ...], PlainValidator(_list_of(_offset, "offsets"))]
Emails = Annotated[tuple[str, ...], PlainValidator(_list_of(_email, "email addresses"))]
Dates = Annotated[tuple[date, ...], PlainValidator(_list_of(_date, "dates"))]
Weekdays = Annotated[tuple[int, ...], PlainValidator(_list_of(_weekday, "weekdays"))]
Flag = Annotated[bool, PlainValidator(_bool)]
Positive = Annotated[int, PlainValidator(_positive)]
Kind = Literal["deadline", "event", "period"]
Shift = Literal["next", "previous", "keep"]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HolidayRange(Spec):
    """``{from: 2025-01-25, to: 2025-02-02, name: Nghỉ Tết}`` (``to`` defaults to ``from``)."""

    start: LocalDate = Field(alias="from")
    to: LocalDate | None = None
    name: Text = ""


def _holiday(value: Any) -> HolidayRange:
    """A date, or ``{from, to, name}``; parsed by hand to keep error paths exact."""
    if not isinstance(value, dict):
        return HolidayRange.model_validate({"from": _date(value)})
    for key in value:
        if key not in ("from", "to", "name"):
            raise _fail(f"unknown key '{key}'{did_you_mean(key, ('from', 'to', 'name'))}", (key,),
                        at_key=True)
    if "from" not in value:
        raise _fail("a holiday range needs 'from' (and optionally 'to' and 'name')")
    fields: dict[str, Any] = {}
    for key, parse in (("from", _date), ("to", _date), ("name", _text)):
        if key in value:
            try:
                fields[key] = parse(value[key])
            except PydanticCustomError as exc:
                raise _fail(exc.message(), (key,)) from None
    result = HolidayRange.model_validate(fields)
    if result.to is not None and result.to < result.start:
        raise _fail("'to' is before 'from'", ("to",))
    return result


def _origin(value: Any) -> date | LunarDate:
    """A solar date, or ``{lunar: "YYYY-MM-DD"}`` for an âm lịch origin."""
    if not isinstance(value, dict):
        return _date(value)
    for key in value:
        if key != "lunar":
            raise _fail(f"unknown key '{key}'{did_you_mean(key, ('lunar',))}", (key,),
                        at_key=True)
    text = value.get("lunar")
    pattern = r"(\d{4})-(\d{1,2})-(\d{1,2})"
    m = re.fullmatch(pattern, text.strip()) if isinstance(text, str) else None
    if m is None:
        raise _fail(f"expected a lunar date like {{lunar: \"1930-01-10\"}}, got {describe(text)}",
                    ("lunar",))
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    try:
        lunar_to_solar(year, month, day)
    except NonexistentLunarDate as exc:
        raise _fail(str(exc), ("lunar",)) from None
    return LunarDate(year, month, day)


class CalendarSpec(Spec):
    weekend: Weekdays = (5, 6)
    holidays: Literal["vn", "none"] = "vn"
    extra_holidays: tuple[Annotated[HolidayRange, PlainValidator(_holiday)], ...] = ()
    working_days: Dates = ()


class UnitSpec(Spec):
    id: Slug
    name: Title
    email: Emails = ()
    parent: Slug | None = None
    groups: Slugs = ()
    since: LocalDate | None = None  # the unit exists from this day (e.g. created by a reform)
    until: LocalDate | None = None
    successor: Slug | None = None
    language: Literal["vi", "en"] | None = None


class GroupSpec(Spec):
    id: Slug
    name: Title
    members: Slugs = ()


class AnniversarySpec(Spec):
    id: Slug
    title: Title
    title_en: Title | None = None
    origin: Annotated[date | LunarDate, PlainValidator(_origin)]
    every: Positive = 5
    units: Slugs = ()
    reminders: Offsets | None = None
    founding: Flag = False  # founding day of a ministry/sector/province: Decree 111/2018 applies
    description: Text = ""
    location: Text = ""
    url: Text = ""


class MilestoneSpec(Spec):
    id: Slug
    title: Title
    title_en: Title | None = None  # for units whose language is en
    kind: Kind = "deadline"
    when: When
    duration: Length | None = None
    description: Text = ""
    units: Slugs | None = None
    lead: Slug | None = None
    cc: Slugs = ()
    submit_to: Slug | None = None
    location: Text = ""
    url: Text = ""
    reminders: Offsets | None = None
    on_non_working_day: Shift | None = None
    cancelled: Flag = False


class PeriodSpec(Spec):
    start: When
    end: When


class CampaignSpec(Spec):
    id: Slug
    title: Title
    title_en: Title | None = None  # the campaign period's title for units in English
    document: Text = ""
    description: Text = ""
    url: Text = ""
    owner: Slug | None = None
    units: Slugs = ()
    period: PeriodSpec | None = None
    celebrates: Slug | None = None
    milestones: tuple[MilestoneSpec, ...] = ()


class FileSpec(Spec):
    """One YAML file; the loader merges all files of the directory."""

    calendar: CalendarSpec | None = None
    units: tuple[UnitSpec, ...] = ()
    groups: tuple[GroupSpec, ...] = ()
    anniversaries: tuple[AnniversarySpec, ...] = ()
    campaigns: tuple[CampaignSpec, ...] = ()
    milestones: tuple[MilestoneSpec, ...] = ()


TOP_LEVEL_KEYS = tuple(FileSpec.model_fields)
