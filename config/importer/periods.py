"""The campaign period: ``Thời gian thi đua: từ ngày phát động đến hết ngày 31/5/2023``.

The start is usually the launch ("từ ngày phát động"), which is the document's
date when it can be read; the end is a date, a month or a year, or an event
("đến trước thời điểm diễn ra Đại hội …"). An event end becomes a relative
date on a drafted event milestone, whose own date is a ``TODO``: the plan says
what it runs up to, not when that is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.importer.date_phrases import find_dates
from config.importer.document import DocumentInfo
from config.importer.folding import fold, restore
from config.importer.model import TODO_VALUE, Value
from config.importer.patterns import DMY, NAM, NGAY, THANG, compile_folded, w, words
from config.importer.source import Quote, SourceText
from config.importer.structure import paragraph, resembles, sections, sentence_end

_TU = w("tu")
_DEN = w("den")
_LAUNCH = compile_folded(rf"{_TU}\s+{NGAY}\s+{words('phat dong')}")
_SIGNED = compile_folded(rf"{_TU}\s+{NGAY}\s+(?:{w('ky')}|{words('ban hanh')})")
_FROM_DATE = compile_folded(rf"{_TU}\s+(?:{NGAY}\s+)?{DMY}")
_FROM_MONTH = compile_folded(
    rf"{_TU}\s+{THANG}\s+(?P<m>\d{{1,2}})\s*(?:/|{NAM})\s*(?P<y>\d{{4}})")
_UNTIL = compile_folded(rf"{_DEN}\s+(?:{w('het')}\s+)?(?P<what>.{{0,40}})")
_UNTIL_EVENT = compile_folded(
    rf"{_DEN}\s+(?:(?P<before>{w('truoc')})|{w('khi')})\s+(?:{words('thoi diem')}\s+)?"
    rf"(?:(?P<ends>{words('ket thuc')}|{words('hoan thanh')})\s+|{words('dien ra')}\s+"
    rf"|{words('to chuc')}\s+)?(?P<event>[^.;\n]*(?:\n[^.;\n]+)*)"
)
_PERIOD_SENTENCE = compile_folded(rf"{words('thoi gian thi dua')}")
_NOT_AN_EVENT = re.compile(r"dot thi dua|phong trao|ke hoach")


@dataclass(frozen=True)
class FoundEvent:
    """What an open period runs up to: an event with no date yet."""

    title: str
    quote: Quote


@dataclass(frozen=True)
class FoundPeriod:
    start: Value
    end: Value
    quote: Quote
    span: tuple[int, int]
    event: FoundEvent | None = None
    event_days: int = 1  # "đến trước X": the day before X; "đến khi kết thúc X": after 0
    event_after: bool = False


def _period_text(src: SourceText) -> tuple[int, int] | None:
    """The body of ``THỜI GIAN THI ĐUA``, or the sentence that starts with those words."""
    for section in sections(src):
        if resembles(section.title, "thoi gian thi dua", 3):
            body = src.text[section.start:section.end]
            if body.strip():
                # The first paragraph: what follows is not about the period.
                first = section.start + len(body) - len(body.lstrip())
                return first, min(paragraph(src, first)[1], section.end, first + 600)
    m = _PERIOD_SENTENCE.search(src.folded)
    if m:
        return m.start(), sentence_end(src, m.end(), min(len(src.text), m.end() + 400)) + 1
    return None


def launch_value(doc: DocumentInfo, what: str) -> Value:
    """The document's date as the launch day, or a TODO saying what is known."""
    if doc.date is not None:
        return Value(doc.date.isoformat(), todo=f"{what}: lấy ngày ban hành văn bản, "
                     "kiểm tra lại nếu ngày phát động khác")
    known = (f"văn bản chỉ ghi tháng {doc.month}/{doc.year}" if doc.month and doc.year
             else "văn bản không ghi (hoặc không đọc được) ngày ban hành")
    return Value(TODO_VALUE, todo=f"{what} (YYYY-MM-DD): {known}")


def find_period(src: SourceText, doc: DocumentInfo) -> FoundPeriod | None:
    """The campaign period, if the plan states one; see the module docstring."""
    span = _period_text(src)
    if span is None:
        return None
    start_at, stop = span
    folded = src.folded
    start: Value | None = None
    if _LAUNCH.search(folded, start_at, stop):
        start = launch_value(doc, "ngày phát động")
    elif _SIGNED.search(folded, start_at, stop):
        start = launch_value(doc, "ngày ban hành")
    elif m := _FROM_DATE.search(folded, start_at, stop):
        dates = find_dates(src, m.start(), m.end())
        if dates:
            start = Value(dates[0].expr)
    elif m := _FROM_MONTH.search(folded, start_at, stop):
        start = Value(f"{int(m['y'])}-{int(m['m']):02d}")
    if start is None:
        start = Value(TODO_VALUE, todo="ngày bắt đầu (YYYY-MM-DD): văn bản không ghi rõ")
    quote = src.quote(start_at, stop)
    if m := _UNTIL_EVENT.search(folded, start_at, stop):
        raw = src.text[m.start("event"):m.end("event")]
        title = restore(" ".join(raw.split())).strip(" -–,")
        if title and not _NOT_AN_EVENT.search(fold(title)):
            event = FoundEvent(title[:1].upper() + title[1:], src.quote(m.start(), m.end()))
            after = bool(m["ends"])
            return FoundPeriod(start, Value(TODO_VALUE), quote, (start_at, stop), event,
                               0 if after else 1, after)
        end = Value(TODO_VALUE, todo="ngày kết thúc (YYYY-MM-DD): văn bản chỉ ghi "
                    f"\"{src.snippet(m.start(), m.end())[:60]}\"")
        return FoundPeriod(start, end, quote, (start_at, stop))
    end_value = Value(TODO_VALUE, todo="ngày kết thúc (YYYY-MM-DD): văn bản không ghi rõ")
    for m in _UNTIL.finditer(folded, start_at, stop):
        dates = find_dates(src, m.start("what"), m.end("what"), years=True)
        if dates:
            end_value = Value(dates[0].expr)
            break
    return FoundPeriod(start, end_value, quote, (start_at, stop))
