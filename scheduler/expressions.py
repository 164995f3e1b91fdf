"""Date expressions (SPEC §4.1): what ``when``, ``period.start`` and ``period.end`` may say.

Parsing turns the raw YAML value (text or mapping) into a small immutable AST;
evaluation, which needs the other milestones (references) and the working-day
calendar, lives in :mod:`scheduler.expand`. Errors carry the sub-path inside
the expression (``when.days``) so ``mocd check`` points at the exact key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from config.errors import Path, did_you_mean
from scheduler.dates import (
    DateTextError,
    Span,
    days_in_month,
    make_date,
    parse_datetime,
    shorten,
)

Direction = Literal["before", "after"]
Edge = Literal["start", "end"]


class ExprError(ValueError):
    """A bad date expression; ``path`` is relative to the expression itself."""

    def __init__(self, message: str, path: Path = (), *, at_key: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.at_key = at_key  # point at the key itself (an unknown key)


@dataclass(frozen=True, slots=True)
class Ref:
    """What a relative date counts from (SPEC §4.1 ``REF``)."""

    text: str
    campaign: str | None = None  # None: the campaign the expression is in
    milestone: str | None = None
    period_edge: Edge | None = None
    anniversary: str | None = None
    n: int | None = None


@dataclass(frozen=True, slots=True)
class Fixed:
    """A day, month, quarter, half year or year written out."""

    span: Span


@dataclass(frozen=True, slots=True)
class At:
    """A local start time; the milestone's ``duration`` gives the end."""

    start: datetime


@dataclass(frozen=True, slots=True)
class Relative:
    direction: Direction
    ref: Ref
    days: int = 0
    weeks: int = 0
    months: int = 0
    years: int = 0
    working_days: bool = False


@dataclass(frozen=True, slots=True)
class Between:
    """From the start of ``start`` to the end of ``end``."""

    start: SingleExpr
    end: SingleExpr


@dataclass(frozen=True, slots=True)
class Yearly:
    month: int
    day: int
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Monthly:
    day: int  # 31 means the month's last day
    first: tuple[int, int]
    last: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Quarterly:
    edge: Edge
    first: tuple[int, int]
    last: tuple[int, int]


@dataclass(frozen=True, slots=True)
class LunarYearly:
    month: int
    day: int
    first: int
    last: int


SingleExpr = Fixed | At | Relative
Recurrence = Yearly | Monthly | Quarterly | LunarYearly
DateExpr = Fixed | At | Relative | Between | Recurrence

FORMS_HELP = (
    "expected a date (2024-06-20), a time (2024-06-20 08:00), a month (2024-06), "
    "a quarter (2024-Q3), a half year (2024-H1), a year (\"2024\"), "
    "or a mapping with start/end, before/after, yearly, monthly, quarterly or lunar"
)

_MONTH = re.compile(r"(\d{4})-(\d{1,2})")
_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])")
_HALF = re.compile(r"(\d{4})-[Hh]([12])")
_YEAR = re.compile(r"\d{4}")
_MMDD = re.compile(r"(\d{1,2})-(\d{1,2})")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
_DAY = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")


def quarter_span(year: int, quarter: int) -> Span:
    first_month = 3 * (quarter - 1) + 1
    last_month = first_month + 2
    return Span(date(year, first_month, 1), date(year, last_month, days_in_month(year, last_month)))


def month_span(year: int, month: int) -> Span:
    return Span(date(year, month, 1), date(year, month, days_in_month(year, month)))


def parse_text(text: str) -> Fixed | At:
    """The written-out forms: day, local time, month, quarter, half year, year."""
    s = text.strip()
    try:
        if _DAY.fullmatch(s):
            m = _DAY.fullmatch(s)
            assert m
            return Fixed(Span.day(make_date(int(m[1]), int(m[2]), int(m[3]), s)))
        at = parse_datetime(s)
        if at is not None:
            return At(at)
    except DateTextError as exc:
        raise ExprError(str(exc)) from None
    if m := _MONTH.fullmatch(s):
        month = int(m[2])
        if not 1 <= month <= 12:
            raise ExprError(f"'{s}' is not a month: there is no month {month}")
        return Fixed(month_span(int(m[1]), month))
    if m := _QUARTER.fullmatch(s):
        return Fixed(quarter_span(int(m[1]), int(m[2])))
    if m := _HALF.fullmatch(s):
        year, half = int(m[1]), int(m[2])
        return Fixed(Span(date(year, 1, 1), date(year, 6, 30)) if half == 1
                     else Span(date(year, 7, 1), date(year, 12, 31)))
    if _YEAR.fullmatch(s):
        year = int(s)
        return Fixed(Span(date(year, 1, 1), date(year, 12, 31)))
    raise ExprError(f"{FORMS_HELP}; got '{shorten(s)}'")


def parse_ref(text: str) -> Ref:
    """``dai-hoi``, ``period.start``, ``other-campaign/dai-hoi``, ``anniversary:ID:N``."""
    s = text.strip()
    if s.startswith("anniversary:"):
        parts = s.split(":")
        if (len(parts) != 3 or not _SLUG.fullmatch(parts[1]) or not parts[2].isdigit()
                or len(parts[2]) > 4):
            raise ExprError(f"'{shorten(s)}': write an anniversary reference as "
                            "anniversary:ID:N (N: the anniversary's number, e.g. 90)")
        n = int(parts[2])
        if n < 1:
            raise ExprError(f"'{s}': the anniversary number must be 1 or more")
        return Ref(s, anniversary=parts[1], n=n)
    campaign: str | None = None
    rest = s
    if "/" in s:
        campaign, _, rest = s.partition("/")
        if not _SLUG.fullmatch(campaign):
            raise ExprError(f"'{shorten(s)}': '{shorten(campaign)}' is not a campaign id")
    if rest in ("period.start", "period.end"):
        edge: Edge = "start" if rest == "period.start" else "end"
        return Ref(s, campaign=campaign, period_edge=edge)
    if not _SLUG.fullmatch(rest):
        raise ExprError(
            f"'{shorten(s)}' is not a reference: use a milestone id, period.start, period.end, "
            "CAMPAIGN/MILESTONE or anniversary:ID:N"
        )
    return Ref(s, campaign=campaign, milestone=rest)


def _text(value: object, key: str) -> str:
    if isinstance(value, str):
        return value
    raise ExprError(f"expected text, got {describe(value)}", (key,))


def _count(value: object, key: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        if len(value.strip()) > 9:  # int() of 5,000 digits asks for sys.set_int_max_…
            raise ExprError(f"a number of {len(value.strip()):,} digits is too large for "
                            f"{key}", (key,))
        return int(value)
    raise ExprError(f"expected a whole number of {key}, got {describe(value)}", (key,))


def _year(value: object, key: str) -> int:
    text = _text(value, key).strip()
    if not _YEAR.fullmatch(text):
        raise ExprError(f"expected a year like 2025, got '{text}'", (key,))
    return int(text)


def _year_month(value: object, key: str) -> tuple[int, int]:
    text = _text(value, key).strip()
    m = _MONTH.fullmatch(text)
    if not m or not 1 <= int(m[2]) <= 12:
        raise ExprError(f"expected a month like 2024-01, got '{text}'", (key,))
    return int(m[1]), int(m[2])


def _year_quarter(value: object, key: str) -> tuple[int, int]:
    text = _text(value, key).strip()
    m = _QUARTER.fullmatch(text)
    if not m:
        raise ExprError(f"expected a quarter like 2024-Q1, got '{text}'", (key,))
    return int(m[1]), int(m[2])


def _check_keys(raw: Mapping[str, object], allowed: tuple[str, ...], form: str,
                required: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            raise ExprError(
                f"unknown key '{key}' in {form}{did_you_mean(key, allowed)}; "
                f"allowed: {', '.join(allowed)}",
                (key,),
                at_key=True,
            )
    for key in required:
        if key not in raw:
            raise ExprError(f"{form} needs '{key}'")


def _ordered(first: tuple[int, ...], last: tuple[int, ...]) -> None:
    if last < first:
        raise ExprError("'until' is before 'from'", ("until",))


def describe(value: object) -> str:
    """A value as an error message shows it: long text shortened (a 100,000-character
    value must not become a 100,000-character line)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"'{shorten(str(value))}'"


def parse_expr(raw: object) -> DateExpr:
    """Parse the raw YAML value of ``when``/``period.start``/``period.end``."""
    if isinstance(raw, str):
        return parse_text(raw)
    if not isinstance(raw, Mapping):
        raise ExprError(f"{FORMS_HELP}; got {describe(raw)}")
    keys = set(raw)
    if keys & {"before", "after"}:
        return _parse_relative(raw)
    if keys & {"start", "end"}:
        _check_keys(raw, ("start", "end"), "a range", ("start", "end"))
        start = _single(raw["start"], "start")
        end = _single(raw["end"], "end")
        return Between(start, end)
    if keys & {"yearly", "lunar"}:
        key = "yearly" if "yearly" in keys else "lunar"
        _check_keys(raw, (key, "from", "until"), f"a {key} date", ("from", "until"))
        month, day = _month_day(raw[key], key, lunar=key == "lunar")
        first, last = _year(raw["from"], "from"), _year(raw["until"], "until")
        _ordered((first,), (last,))
        return (LunarYearly if key == "lunar" else Yearly)(month, day, first, last)
    if "monthly" in keys:
        _check_keys(raw, ("monthly", "from", "until"), "a monthly date", ("from", "until"))
        day = _count(raw["monthly"], "monthly")
        if not 1 <= day <= 31:
            raise ExprError("monthly takes a day of the month, 1 to 31", ("monthly",))
        first_m, last_m = _year_month(raw["from"], "from"), _year_month(raw["until"], "until")
        _ordered(first_m, last_m)
        return Monthly(day, first_m, last_m)
    if "quarterly" in keys:
        _check_keys(raw, ("quarterly", "from", "until"), "a quarterly date", ("from", "until"))
        edge = _text(raw["quarterly"], "quarterly").strip()
        if edge not in ("start", "end"):
            raise ExprError(f"quarterly is 'start' or 'end', got '{edge}'", ("quarterly",))
        first_q, last_q = _year_quarter(raw["from"], "from"), _year_quarter(raw["until"], "until")
        _ordered(first_q, last_q)
        return Quarterly("start" if edge == "start" else "end", first_q, last_q)
    known = ("before", "after", "start", "end", "yearly", "monthly", "quarterly", "lunar")
    first_key = next(iter(raw), "")
    raise ExprError(
        f"{FORMS_HELP}; unknown key '{first_key}'{did_you_mean(first_key, known)}",
        (first_key,) if first_key else (),
        at_key=True,
    )


def _single(raw: object, key: str) -> SingleExpr:
    try:
        expr = parse_expr(raw)
    except ExprError as exc:
        raise ExprError(exc.message, (key, *exc.path), at_key=exc.at_key) from None
    if isinstance(expr, Fixed | At | Relative):
        return expr
    raise ExprError("a range's start and end must be single dates, not ranges or recurrences",
                    (key,))


def _month_day(value: object, key: str, *, lunar: bool) -> tuple[int, int]:
    text = _text(value, key).strip()
    m = _MMDD.fullmatch(text)
    if not m:
        raise ExprError(f"expected a month and day like 06-15, got '{text}'", (key,))
    month, day = int(m[1]), int(m[2])
    limit = 30 if lunar else (29 if month == 2 else days_in_month(2001, month) if month <= 12
                              else 0)
    if not 1 <= month <= 12 or not 1 <= day <= limit:
        kind = "lunar month/day (months 1-12, days 1-30)" if lunar else "month/day"
        raise ExprError(f"'{text}' is not a valid {kind}", (key,))
    return month, day


def _parse_relative(raw: Mapping[str, object]) -> Relative:
    if "before" in raw and "after" in raw:
        raise ExprError("use either 'before' or 'after', not both", ("after",))
    direction: Direction = "before" if "before" in raw else "after"
    allowed = (direction, "days", "weeks", "months", "years", "working_days")
    _check_keys(raw, allowed, "a relative date", ())
    ref = parse_ref(_text(raw[direction], direction))
    amounts = {k: _count(raw[k], k) for k in ("days", "weeks", "months", "years") if k in raw}
    if not amounts:
        raise ExprError("a relative date needs days, weeks, months or years (days: 0 is allowed)")
    working = raw.get("working_days", False)
    if not isinstance(working, bool):
        raise ExprError(f"working_days is true or false, got {describe(working)}",
                        ("working_days",))
    if working and set(amounts) != {"days"}:
        raise ExprError("working_days: true counts days only (drop weeks/months/years)",
                        ("working_days",))
    return Relative(direction, ref, working_days=working, **amounts)


def recurrence_instances(expr: Recurrence) -> list[tuple[str, Span]]:
    """The (key, span) of each instance of a solar recurrence; lunar is in :mod:`expand`."""
    out: list[tuple[str, Span]] = []
    if isinstance(expr, Yearly):
        for year in range(expr.first, expr.last + 1):
            day = min(expr.day, days_in_month(year, expr.month))
            out.append((str(year), Span.day(date(year, expr.month, day))))
    elif isinstance(expr, Monthly):
        index, stop = expr.first[0] * 12 + expr.first[1] - 1, expr.last[0] * 12 + expr.last[1] - 1
        for i in range(index, stop + 1):
            year, month = divmod(i, 12)
            month += 1
            day = min(expr.day, days_in_month(year, month))
            out.append((f"{year}-{month:02d}", Span.day(date(year, month, day))))
    elif isinstance(expr, Quarterly):
        index, stop = expr.first[0] * 4 + expr.first[1] - 1, expr.last[0] * 4 + expr.last[1] - 1
        for i in range(index, stop + 1):
            year, q = divmod(i, 4)
            span = quarter_span(year, q + 1)
            when = span.first if expr.edge == "start" else span.last
            out.append((f"{year}-Q{q + 1}", Span.day(when)))
    else:
        raise TypeError(expr)
    return out


DEFAULT_EVENT_LENGTH = timedelta(hours=1)
