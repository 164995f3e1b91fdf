"""Anniversaries: ``N năm Ngày … (dd/mm/yyyy - dd/mm/yyyy)`` and ``N năm … (1950 - 2020)``.

Plans name the anniversaries their campaigns celebrate in one fixed form: the
number of years, the title, and the origin and anniversary dates in brackets.
The same anniversary is usually named several times; it is drafted once, with
every line it appears on. N is checked against the two years, because OCR
misreads digits (``2026`` for ``2025``) and a wrong origin silently moves every
future occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date

from config.importer.folding import fold, make_id, restore
from config.importer.patterns import NAM, compile_folded, valid_date
from config.importer.source import Quote, SourceText

_DATE_OR_YEAR = r"(?:(?P<d{i}>\d{{1,2}})\s*/\s*(?P<m{i}>\d{{1,2}})\s*/\s*)?(?P<y{i}>\d{{4}})"
_ANNIVERSARY = compile_folded(
    rf"(?<![\d/])(?P<n>\d{{1,3}})\s+{NAM}\s+"
    rf"(?P<title>(?:(?!\d{{1,3}}\s+{NAM})[^();])*?)\(\s*"
    + _DATE_OR_YEAR.format(i=1) + r"\s*[-–—]\s*" + _DATE_OR_YEAR.format(i=2) + r"\s*\)"
)
_TITLE_LIMIT = 200
_LETTERS = re.compile(r"[a-z]")
_JUNK_IN_WORD = re.compile(r"[^\W\d_][&@¢|$§0-9]|[&@¢|$§0-9][^\W\d_]")


@dataclass(frozen=True)
class FoundAnniversary:
    """One anniversary, possibly named on several lines."""

    n: int
    title: str
    origin: date | None  # None: only the year is written ("(1950 - 2020)")
    origin_year: int
    quotes: tuple[Quote, ...]
    spans: tuple[tuple[int, int], ...]
    problems: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return make_id(re.sub(r"^(?:ngay|le)\s+", "", fold(self.title)), limit=40)

    @property
    def founding(self) -> bool:
        """A founding or traditional day of a province, sector or party committee.

        Decree 111/2018/NĐ-CP allows a ceremony for those only in round years;
        "Ngày tái lập" (re-establishment) and nationwide days are not founding days.
        """
        t = fold(self.title)
        if "tai lap" in t or "tai thanh lap" in t or "thi dua" in t:
            return False
        if "thanh lap" in t:
            return True
        return "truyen thong" in t and any(
            k in t for k in ("tinh", "huyen", "nganh", "dang bo", "luc luong"))


def _clean_title(raw: str) -> str:
    text = " ".join(raw.split()).strip(" -–—,:;")
    text = restore(text)
    return text[:1].upper() + text[1:]


def _noise(title: str) -> int:
    """OCR debris in a title: symbols and digits inside words, letters left unrestored."""
    junk = len(_JUNK_IN_WORD.findall(title))
    plain = sum(1 for word in title.split() if word.isascii() and word.isalpha()
                and not word.isupper())
    return 3 * junk + plain


def find_anniversaries(src: SourceText) -> list[FoundAnniversary]:
    """Every anniversary named in the plan, once each, in order of first mention."""
    by_key: dict[tuple[object, ...], FoundAnniversary] = {}
    # Every mention's quote and span, gathered once at the end (a tuple grown by
    # copying at each mention is quadratic in the number of mentions).
    quotes: dict[tuple[object, ...], list[Quote]] = {}
    spans: dict[tuple[object, ...], list[tuple[int, int]]] = {}
    for m in _ANNIVERSARY.finditer(src.folded):
        title_raw = src.text[m.start("title"):m.end("title")]
        if len(_LETTERS.findall(m["title"])) < 3 or len(title_raw) > _TITLE_LIMIT:
            continue
        n = int(m["n"])
        y1, y2 = int(m["y1"]), int(m["y2"])
        problems: list[str] = []
        if n < 1 or y2 - y1 != n:
            problems.append(f"văn bản ghi {n} năm nhưng {y1} → {y2} là {y2 - y1} năm")
        origin = None
        if m["d1"] and m["m1"]:
            origin = valid_date(y1, int(m["m1"]), int(m["d1"]))
            if origin is None:
                problems.append(f"ngày gốc {m['d1']}/{m['m1']}/{y1} không có thật")
            elif m["d2"] and m["m2"] and (int(m["d2"]), int(m["m2"])) != (origin.day,
                                                                          origin.month):
                problems.append(f"ngày kỷ niệm {m['d2']}/{m['m2']}/{y2} khác ngày, tháng gốc")
        title = _clean_title(title_raw)
        key: tuple[object, ...] = (origin, n) if origin else (y1, n, make_id(fold(title)))
        quote = src.quote(m.start(), m.end())
        if key in by_key:
            found = by_key[key]
            if _noise(title) < _noise(found.title):
                by_key[key] = replace(found, title=title)
        else:
            by_key[key] = FoundAnniversary(n, title, origin, y1, (), (), tuple(problems))
            quotes[key], spans[key] = [], []
        quotes[key].append(quote)
        spans[key].append((m.start(), m.end()))
    return [replace(found, quotes=tuple(quotes[key]), spans=tuple(spans[key]))
            for key, found in by_key.items()]
