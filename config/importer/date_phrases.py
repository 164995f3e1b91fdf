"""Dates as plans write them, turned into mocd date expressions (SPEC §4.1).

``trong tháng 9 năm 2021`` → ``2021-09``; ``Quý III năm 2022`` → ``2022-Q3``;
``Quý III vào Quý IV năm 2023`` → ``{start: 2023-Q3, end: 2023-Q4}``;
``6 tháng đầu năm 2023`` → ``2023-H1``; ``31/5/2023`` → ``2023-05-31``.
Matching runs on folded text with OCR-tolerant words (:mod:`.patterns`), so
``Quy IIT vao Quy IV ndm 2023`` reads like the clean sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal, cast

from config.importer.patterns import (
    DMY,
    NAM,
    NGAY,
    QUY,
    ROMAN,
    THANG,
    compile_folded,
    roman_quarter,
    valid_date,
    w,
    words,
)
from config.importer.source import SourceText
from config.importer.spans import Spans
from scheduler.dates import days_in_month

PhraseKind = Literal["day", "month", "quarter", "quarters", "half", "year"]

_QUARTERS = compile_folded(
    rf"{QUY}\s*(?P<q1>{ROMAN})\s*(?:{w('va')}|{w('vao')}|{w('den')}|{w('toi')}|[-–])\s*"
    rf"(?:{QUY}\s*)?(?P<q2>{ROMAN})\s*(?:/|{NAM})\s*(?P<y>\d{{4}})(?!\d)"
)
_QUARTER = compile_folded(rf"{QUY}\s*(?P<q>{ROMAN})\s*(?:/|{NAM})\s*(?P<y>\d{{4}})(?!\d)")
_HALF = compile_folded(
    rf"(?<![\d/])(?:6|{w('sau')})\s+{THANG}\s+(?P<h>{w('dau')}|{w('cuoi')})\s+{NAM}\s+"
    rf"(?P<y>\d{{4}})(?!\d)"
)
_MONTH = compile_folded(
    rf"{THANG}\s+(?P<m>\d{{1,2}})\s*(?:/|-|{NAM})\s*(?P<y>\d{{4}})(?!\d)"
)
_DAY = compile_folded(rf"(?<![\d/]){DMY}(?![\d/])")
_DAY_WORDS = compile_folded(
    rf"{NGAY}\s+(?P<d>\d{{1,2}})\s+{THANG}\s+(?P<m>\d{{1,2}})\s+{NAM}\s+(?P<y>\d{{4}})(?!\d)"
)
_YEAR = compile_folded(rf"{NAM}\s+(?P<y>\d{{4}})(?![\d/])")

#: Words before a date that make it a due date: "thời gian dự kiến (tổ chức) trong",
#: "hoàn thành trước", "chậm nhất", "trước ngày" — matched at the end of the text before it.
TIME_CONTEXT = compile_folded(
    rf"(?:{words('thoi gian')}(?:\s+{words('du kien')})?(?:\s+{words('to chuc')})?"
    rf"(?:\s+{words('thuc hien')})?|{words('hoan thanh')}|{words('cham nhat')}|{w('truoc')}"
    rf"|{w('han')}|{w('xong')})[\s\-:,]*(?:(?:{w('trong')}|{w('vao')}|{w('truoc')}|{w('tu')})"
    rf"[\s\-:,]*)?(?:{NGAY}\s*)?\Z"
)


@dataclass(frozen=True)
class DatePhrase:
    """A date written in the plan: where it is, and what mocd should read."""

    start: int
    end: int
    kind: PhraseKind
    expr: str  # the YAML date expression
    first: date
    last: date

    @property
    def year(self) -> int:
        return self.last.year


def _quarter_span(year: int, q: int) -> tuple[date, date]:
    last_month = 3 * q
    return date(year, last_month - 2, 1), date(year, last_month, days_in_month(year, last_month))


def _read(kind: PhraseKind, m: re.Match[str]) -> DatePhrase | None:
    g = m.groupdict()
    year = int(g["y"])
    if not 1000 <= year <= 9999:
        return None
    if kind == "quarters":
        q1, q2 = roman_quarter(g["q1"]), roman_quarter(g["q2"])
        if q1 is None or q2 is None or q2 <= q1:
            return None
        expr = f"{{start: {year}-Q{q1}, end: {year}-Q{q2}}}"
        return DatePhrase(m.start(), m.end(), kind, expr, _quarter_span(year, q1)[0],
                          _quarter_span(year, q2)[1])
    if kind == "quarter":
        q = roman_quarter(g["q"])
        if q is None:
            return None
        first, last = _quarter_span(year, q)
        return DatePhrase(m.start(), m.end(), kind, f"{year}-Q{q}", first, last)
    if kind == "half":
        second = g["h"].startswith("c")
        first = date(year, 7, 1) if second else date(year, 1, 1)
        last = date(year, 12, 31) if second else date(year, 6, 30)
        return DatePhrase(m.start(), m.end(), kind, f"{year}-H{2 if second else 1}", first, last)
    if kind == "month":
        month = int(g["m"])
        if not 1 <= month <= 12:
            return None
        return DatePhrase(m.start(), m.end(), kind, f"{year}-{month:02d}", date(year, month, 1),
                          date(year, month, days_in_month(year, month)))
    if kind == "day":
        day = valid_date(year, int(g["m"]), int(g["d"]))
        if day is None:
            return None
        return DatePhrase(m.start(), m.end(), kind, day.isoformat(), day, day)
    return DatePhrase(m.start(), m.end(), kind, f'"{year}"', date(year, 1, 1),
                      date(year, 12, 31))


_ORDER: tuple[tuple[PhraseKind, re.Pattern[str]], ...] = (
    ("quarters", _QUARTERS), ("quarter", _QUARTER), ("half", _HALF), ("day", _DAY_WORDS),
    ("month", _MONTH), ("day", _DAY), ("year", _YEAR),
)


def find_dates(src: SourceText, start: int = 0, end: int | None = None, *,
               years: bool = False) -> list[DatePhrase]:
    """Every date phrase in ``folded[start:end]``, longest first where they overlap.

    Bare years (``năm 2024``) are left out unless ``years``: plans name years
    everywhere ("nhiệm kỳ 2020-2025"), and only some of them are dates.
    """
    stop = len(src.folded) if end is None else end
    if start == 0 and stop == len(src.folded):  # the whole text: read once (it is immutable)
        key = ("find_dates", years)
        if key not in src.memo:
            src.memo[key] = tuple(_find_dates(src, 0, stop, years))
        return list(cast(tuple[DatePhrase, ...], src.memo[key]))
    return _find_dates(src, start, stop, years)


def _find_dates(src: SourceText, start: int, stop: int, years: bool) -> list[DatePhrase]:
    found: list[DatePhrase] = []
    taken = Spans()
    for kind, pattern in _ORDER:
        if kind == "year" and not years:
            continue
        for m in pattern.finditer(src.folded, start, stop):
            if taken.overlaps(m.start(), m.end()):
                continue
            phrase = _read(kind, m)
            if phrase is not None:
                found.append(phrase)
                taken.add(m.start(), m.end())
    return sorted(found, key=lambda p: p.start)


def context_start(src: SourceText, phrase: DatePhrase, reach: int = 80) -> int | None:
    """Where the "thời gian dự kiến trong …" words before a date begin, if they are there."""
    window_start = max(0, phrase.start - reach)
    m = TIME_CONTEXT.search(src.folded, window_start, phrase.start)
    return m.start() if m else None
