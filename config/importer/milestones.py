"""Dated milestones: year lists, "Hằng năm", due dates in context, and submissions.

* A **year list** ("2. Năm 2021: - …; thời gian dự kiến trong tháng 9 năm
  2021. - … 3. Năm 2022: …", as in the Bắc Kạn programme) gives one milestone
  per item: its date phrase, or the whole year when it names none.
* **"Hằng năm:"** items, and assignments done "hằng năm", recur every year of
  the plan; the plan never says on which day, so that is a ``TODO``.
* Elsewhere a date is a milestone only when the words before it make it a due
  date ("thời gian dự kiến trong", "hoàn thành trước", "chậm nhất"): plans are
  full of dates that are criteria or history ("nhiệm vụ đề ra trong 6 tháng
  đầu năm 2023"). Those are listed at the end of the draft instead.
* "gửi hồ sơ … về UBND huyện (qua Phòng Nội vụ)" is a submission, with
  ``submit_to``; its due date is a ``TODO`` unless the sentence gives one.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from config.importer.date_phrases import DatePhrase, context_start, find_dates
from config.importer.folding import restore
from config.importer.model import TODO_VALUE, Value
from config.importer.patterns import NAM, NGAY, compile_folded, w, words
from config.importer.source import Quote, SourceText
from config.importer.spans import Spans
from config.importer.structure import MAX_SENTENCE, paragraph, sections, sentence_end
from config.importer.units import Assignment, clean_name

TITLE_LIMIT = 200

_YEAR_MARK = compile_folded(
    rf"^[ \t]*(?:\d{{1,2}}\s*\.\s*)?(?:[-–•]\s*)?{NAM}\s+(?P<y>\d{{4}})\s*:")
_YEARLY_MARK = compile_folded(
    rf"(?:^[ \t]*(?:\d{{1,2}}\s*\.\s*)?(?:[-–•]\s*)?|(?<=[.;])\s+)"
    rf"(?P<mark>{words('hang nam', loose=True)})\s*[:,]")
_BULLET = re.compile(r"^[ \t]*[-–•_](?:[ \t]*[-–•_])*[ \t]*(?=\S)", re.MULTILINE)
_DAY_MONTH = compile_folded(rf"{NGAY}\s+(?P<d>\d{{1,2}})\s*/\s*(?P<m>\d{{1,2}})(?!\s*/\s*\d)")
# "gửi hồ sơ … về X (qua Y)": the head, then within 160 characters (no full stop) the
# tail "về X (qua Y)" or "về X" up to a comma, full stop or "để". Matched in two
# steps (see _submissions): one pattern made every failing "gửi hồ sơ" retry the tail
# at each "về" after it, quadratic on a line of them.
_SUBMIT_HEAD = compile_folded(
    rf"(?:{w('gui')}|{w('nop')})\s+(?:{words('ho so')}|{words('bao cao')})")
_SUBMIT_REACH = 160
_SUBMIT_TAIL = compile_folded(
    rf"\s{w('ve')}\s+(?P<to>[^.;(]{{2,60}}?)\s*(?:\(\s*\*?\s*{w('qua')}\s+"
    rf"(?P<via>[^)*;]{{2,80}}?)\s*\*?\s*\)|(?=[.;,]|\s+{w('de')}\s))"
)
_GAP_STOP = re.compile(r"[.;]")
_VE = compile_folded(rf"\s{w('ve')}")


def _submissions(folded: str) -> Iterator[tuple[int, re.Match[str]]]:
    """Where "gửi hồ sơ … về …" starts, and the match of its tail ("về X (qua Y)").

    What ``head [^.;]{0,160}? tail`` finds with ``finditer``, but each tail is
    tried once, whichever heads reach it — whether "về X" ends a submission
    does not depend on what came before it — and a "về" whose tail failed is
    skipped for good (``after``: the next "về" still worth trying).
    """
    ves = [m.start() for m in _VE.finditer(folded)]
    tails: dict[int, re.Match[str] | None] = {}
    after = list(range(len(ves) + 1))

    def next_untried(i: int) -> int:
        root = i
        while after[root] != root:
            root = after[root]
        while after[i] != root:  # path compression
            after[i], i = root, after[i]
        return root

    pos = 0
    while head := _SUBMIT_HEAD.search(folded, pos):
        stop = _GAP_STOP.search(folded, head.end(), head.end() + _SUBMIT_REACH + 1)
        reach = stop.start() if stop else head.end() + _SUBMIT_REACH + 1
        i = next_untried(bisect.bisect_left(ves, head.end()))
        tail = None
        while i < len(ves) and ves[i] < reach:
            if i not in tails:
                tails[i] = _SUBMIT_TAIL.match(folded, ves[i])
            if (tail := tails[i]) is not None:
                break
            after[i] = i + 1
            i = next_untried(i + 1)
        if tail is None:
            pos = head.start() + 1
            continue
        yield head.start(), tail
        pos = tail.end()


# OCR debris between words: a lone capital that is no Roman numeral, symbols with a
# bracket ("A L]", "theg}").
_DEBRIS = re.compile(r"(?<=\s)(?:[A-HJ-UWYZ]|\S?[\]\[|}{~^]\S*)(?=\s)")
_LEADING = re.compile(r"^[\s\-–•_.:;,]*(?:\d{1,2}\s*\.\s*)?[\s\-–•_]*")


@dataclass(frozen=True)
class FoundMilestone:
    """A milestone as found; unit names are resolved to ids when the draft is assembled."""

    title: str
    when: Value
    span: tuple[int, int]
    quotes: tuple[Quote, ...]
    lead: str | None = None
    units: tuple[str, ...] = ()
    submit_to: str | None = None
    year_end: date | None = None  # the last day of a span ending on 31 December


@dataclass(frozen=True)
class Found:
    milestones: list[FoundMilestone]
    unused: list[Quote]


def clean_title(raw: str) -> str:
    """A title from running text: one line, debris and list markers gone, diacritics restored."""
    text = " ".join(raw.replace("*", "").split())
    text = _LEADING.sub("", text)
    text = _DEBRIS.sub(" ", f" {text} ").strip()
    text = re.sub(r"[\[\]{}|~^]", "", text)
    text = " ".join(text.split()).strip(" .:;,-–")
    if len(text) > TITLE_LIMIT + 40:  # restoring costs by the word: restore what is kept
        text = text[:TITLE_LIMIT + 40].rsplit(" ", 1)[0]
    text = restore(text)
    if len(text) > TITLE_LIMIT:
        text = text[:TITLE_LIMIT].rsplit(" ", 1)[0].rstrip(" ,;:-–") + " …"
    return text[:1].upper() + text[1:]


def _overlaps(span: tuple[int, int], spans: Spans) -> bool:
    return spans.overlaps(*span)


def _year_end(phrase: DatePhrase | None) -> date | None:
    if phrase is not None and phrase.kind != "day" and (phrase.last.month,
                                                        phrase.last.day) == (12, 31):
        return phrase.last
    return None


@dataclass(frozen=True)
class _Item:
    start: int
    end: int
    year: int | None  # the "Năm 2023:" section it is in


def _year_items(src: SourceText, stops: list[int]) -> list[_Item]:
    """The items of "Năm 2021:" lists, up to the next stop (``stops`` sorted)."""
    marks = list(_YEAR_MARK.finditer(src.folded))
    items: list[_Item] = []
    for i, m in enumerate(marks):
        at = bisect.bisect_right(stops, m.end())  # the first stop after the mark
        limit = min([*stops[at:at + 1], len(src.text), m.end() + 3000])
        if i + 1 < len(marks):
            limit = min(limit, marks[i + 1].start())
        bullets = [b.start() for b in _BULLET.finditer(src.text, m.end(), limit)]
        starts = [m.end(), *bullets]
        for k, start in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else limit
            text = src.text[start:end]
            if len(re.findall(r"[^\W\d_]{2,}", text)) >= 3:
                items.append(_Item(start, end, int(m["y"])))
    return items


def _pick(src: SourceText, phrases: list[DatePhrase]) -> tuple[DatePhrase | None, int | None]:
    """The due date of an item: one introduced by "thời gian …", else the last one."""
    for phrase in reversed(phrases):
        at = context_start(src, phrase)
        if at is not None:
            return phrase, at
    candidates = [p for p in phrases if p.kind != "day"]
    return (candidates[-1], None) if candidates else (None, None)


def _title_end(src: SourceText, start: int, phrase: DatePhrase | None, context: int | None,
               limit: int) -> int:
    end = limit
    if phrase is not None:
        end = context if context is not None else phrase.start
        # "…; thời gian dự kiến trong Quý III": the clause before the date is the title.
        semicolon = src.text.rfind(";", start, end)
        if context is None and semicolon > start:
            end = semicolon
    return sentence_end(src, start, end)


def find_milestones(src: SourceText, *, years: tuple[int, int] | None,
                    excluded: list[tuple[int, int]],
                    assignments: list[Assignment]) -> Found:
    """Every milestone the plan dates, in text order; see the module docstring.

    ``years`` is the span of years of the campaign (for "Hằng năm" items);
    ``excluded`` are spans already read as something else (the header's date,
    the campaign period, anniversaries).
    """
    stops = [s.heading_start for s in sections(src)]
    yearly_marks = list(_YEARLY_MARK.finditer(src.folded))
    stops = sorted([*stops, *(m.start() for m in yearly_marks)])
    found: list[FoundMilestone] = []
    used = Spans(excluded)
    excluded_spans = Spans(excluded)

    for item in _year_items(src, stops):
        phrases = [p for p in find_dates(src, item.start, item.end)
                   if not _overlaps((p.start, p.end), excluded_spans)]
        phrase, context = _pick(src, phrases)
        end = _title_end(src, item.start, phrase, context, item.end)
        quotes = [src.quote(item.start, end)]
        if phrase is None:
            when = Value(f'"{item.year}"', note=f"văn bản chỉ ghi năm {item.year}: hạn "
                         f"31/12/{item.year}")
        else:
            clause = context if context is not None else phrase.start
            quotes.append(src.quote(clause, phrase.end))
            todo = (f"mục thuộc năm {item.year} nhưng thời gian ghi năm {phrase.year}"
                    if item.year is not None and phrase.year != item.year else None)
            when = Value(phrase.expr, todo=todo)
        found.append(FoundMilestone(clean_title(src.text[item.start:end]), when,
                                    (item.start, item.end), tuple(quotes),
                                    year_end=_year_end(phrase)))
        used.add(item.start, item.end)

    first, last = years if years else (None, None)
    for m in yearly_marks:
        start = m.end()
        para_end = paragraph(src, start)[1]
        end = sentence_end(src, start, para_end)
        found.append(_yearly(src, src.text[start:end], (m.start("mark"), end), first, last,
                             [src.quote(m.start("mark"), end)]))
        used.add(m.start(), end)

    for a in assignments:
        if a.yearly and not _overlaps(a.span, used):
            task = re.sub(r"^\s*h\S*\s+n\S*\s+", "", a.task)  # "hằng năm tham mưu …"
            first_clause = task.split(";", 1)[0]
            found.append(_yearly(src, first_clause, a.span, first, last, [a.quote], lead=a.lead,
                                 units=a.supporting))
            used.add(*a.span)

    for start, m in _submissions(src.folded):
        if _overlaps((start, m.end()), used):
            continue
        target = m["via"] or m["to"]
        name_span = (m.start("via"), m.end("via")) if m["via"] else (m.start("to"), m.end("to"))
        end = sentence_end(src, m.end(), paragraph(src, m.end())[1])
        phrases = [p for p in find_dates(src, start, end)
                   if not _overlaps((p.start, p.end), excluded_spans)]
        when = (Value(phrases[0].expr) if phrases else
                Value(TODO_VALUE, todo="hạn gửi (YYYY-MM-DD): văn bản không ghi hạn"))
        found.append(FoundMilestone(
            clean_title(src.text[start:m.end()]), when, (start, m.end()),
            (src.quote(start, m.end()),),
            submit_to=clean_name(src.text[slice(*name_span)]) if target else None))
        used.add(start, end)

    unused: list[Quote] = []
    for phrase in find_dates(src):
        span = (phrase.start, phrase.end)
        if _overlaps(span, used):
            continue
        context = context_start(src, phrase)
        if context is None:
            if phrase.kind != "day":
                unused.append(src.quote(*_line_around(src, phrase)))
            continue
        para_start = paragraph(src, phrase.start)[0]
        start = _sentence_start(src, para_start, context)
        title = clean_title(src.text[start:context])
        if len(title) < 8:
            continue
        found.append(FoundMilestone(
            title, Value(phrase.expr), (start, phrase.end),
            (src.quote(start, context), src.quote(context, phrase.end)),
            year_end=_year_end(phrase)))
        used.add(start, phrase.end)
    found.sort(key=lambda f: f.span[0])
    return Found(found, unused)


def _line_around(src: SourceText, phrase: DatePhrase) -> tuple[int, int]:
    """A little of the text before a date, for listing it: "… trong 6 tháng đầu năm 2023"."""
    # The line's start if it is within reach, else -1: it is further back than 40
    # characters (the whole line is not searched: it may be the whole text).
    reach = max(0, phrase.start - 41)
    newline = src.text.rfind("\n", reach, phrase.start)
    line_start = newline + 1 if newline >= 0 or reach == 0 else -1
    start = max(line_start, phrase.start - 40)
    if start > line_start:
        space = src.text.find(" ", start, phrase.start)
        start = space + 1 if space >= 0 else start
    return start, phrase.end


_SENTENCE_BREAK = re.compile(r"\.\s+|^[ \t]*[-–•]\s*|;\s+", re.MULTILINE)
# A character no sentence break can contain: a scan that begins on one finds the same
# breaks after it as a scan from further back.
_INSIDE_WORD = re.compile(r"[^\s.;\-–•]")


def _sentence_start(src: SourceText, start: int, end: int) -> int:
    """The start of the last sentence (or list item) in ``text[start:end]``.

    Looked for no further back than :data:`MAX_SENTENCE` before ``end``: past
    that the sentence is cut there, at the start of a word.
    """
    scan = start
    if end - start > MAX_SENTENCE:
        word = _INSIDE_WORD.search(src.text, end - MAX_SENTENCE, end)
        scan = word.start() if word else end
    best = scan
    for m in _SENTENCE_BREAK.finditer(src.text, scan, end):
        best = m.end()
    return best


def _yearly(src: SourceText, text: str, span: tuple[int, int], first: int | None,
            last: int | None, quotes: list[Quote], *, lead: str | None = None,
            units: tuple[str, ...] = ()) -> FoundMilestone:
    """A "Hằng năm" milestone: every year of the plan, on a day the plan seldom gives."""
    day = _DAY_MONTH.search(src.folded, *span)
    if day:
        month_day = f'"{int(day["m"]):02d}-{int(day["d"]):02d}"'
        todo = None
    else:
        month_day = TODO_VALUE
        todo = "ngày trong năm (MM-DD): văn bản chỉ ghi \"hằng năm\""
    since = str(first) if first else TODO_VALUE
    until = str(last) if last else since
    if not first:
        todo = (todo or "") + ("; " if todo else "") + "năm đầu, năm cuối (from, until)"
    when = Value(f"{{yearly: {month_day}, from: {since}, until: {until}}}", todo=todo)
    return FoundMilestone(clean_title(text), when, span, tuple(quotes), lead=lead, units=units)
