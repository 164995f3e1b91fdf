"""The document itself: number and type, place and date, issuing body, title.

A Vietnamese administrative document opens with a fixed header (Decree
30/2020/NĐ-CP): the issuing body, ``Số: 1365/PĐ-UBND``, ``Lạng Sơn, ngày 25
tháng 12 năm 2019``, the type in capitals (``KẾ HOẠCH``) and the title. OCR
often loses parts of it — Ba Tơ's plan leaves the number and day blank,
Bắc Kạn's reads ``ngay 467 thdng 8`` — so every part is optional and a part
that cannot be read is reported, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from config.importer.folding import fold, loose, restore
from config.importer.patterns import NAM, NGAY, THANG, compile_folded, valid_date, w, words
from config.importer.source import Quote, SourceText
from config.importer.structure import plain_words, resembles

HEADER_LINES = 30
HEADER_CHARS = 6000
"""The header is the first :data:`HEADER_LINES` lines, but no more than this many characters.

The seed plans' headers are 1,300–3,500 characters; a text that is one long
line would otherwise be all header, searched from every position.
"""
TITLE_CHARS = 600
"""The longest title: a plan's is two to four lines. A longer "title" paragraph is cut."""

#: Document types by their code in the number (``KH-UBND``) and their heading.
TYPES = {
    "kh": "Kế hoạch", "ctr": "Chương trình", "qd": "Quyết định", "pd": "Phát động",
    "ct": "Chỉ thị", "hd": "Hướng dẫn", "tb": "Thông báo", "cv": "Công văn",
}
_HEADINGS = (
    ("chuong trinh hanh dong", "Chương trình hành động"), ("chuong trinh", "Chương trình"),
    ("ke hoach", "Kế hoạch"), ("quyet dinh", "Quyết định"), ("phat dong", "Phát động"),
    ("huong dan", "Hướng dẫn"), ("thong bao", "Thông báo"),
)
LEVELS = {"tinh": "tỉnh", "thanh pho": "thành phố", "huyen": "huyện", "thi xa": "thị xã",
          "xa": "xã", "phuong": "phường", "thi tran": "thị trấn"}
#: Administrative rank, for telling superiors in "Nơi nhận" from the plan's own units.
RANK = {"xa": 1, "phuong": 1, "thi tran": 1, "huyen": 2, "thi xa": 2, "thanh pho": 2,
        "tinh": 3, "tw": 4}

_NUMBER = compile_folded(
    r"(?<![a-z])s[oe0-9&]\s*:\s*(?P<num>[^\n/]{0,16}?)\s*/\s*(?P<code>[a-z]{1,5})\s*-\s*"
    r"(?P<org>[a-z]{2,8})(?![a-z])"
)
_DATE_LINE = compile_folded(
    rf"(?P<place>[^\n,]{{2,80}}),\s*{NGAY}\s*(?P<d>[^\s]{{0,4}}?)\s*{THANG}\s+"
    rf"(?P<m>\d{{1,2}})\s+{NAM}\s+(?P<y>\d{{4}})(?!\d)"
)
_LEVEL = (rf"(?P<level>{words('thanh pho')}|{words('thi xa')}|{words('thi tran')}|{w('tinh')}"
          rf"|{w('huyen')}|{w('phuong')}|{w('xa')})")
_BODY = rf"(?:{words('uy ban nhan dan', loose=True)}|ubnd)\s+{_LEVEL}"
_ISSUER = compile_folded(
    rf"{_BODY}(?P<rest>[^\n.;:]{{0,40}}?)[\s“”\"']+(?:{words('ban hanh')}|{words('xay dung')}"
    rf"|{words('phat dong')}|{w('xay')}[\s“”\"']*{w('dung')})"
)
_ISSUES_TYPE = compile_folded(
    rf"(?:{words('ban hanh')}|{words('xay dung')})\s+(?P<type>{words('ke hoach')}"
    rf"|{words('chuong trinh')})"
)
_PLACE_WORD = re.compile(r"[^\W\d_][^\s,.;:()/]*")


@dataclass(frozen=True)
class DocumentInfo:
    """What the header says; None wherever it is missing or unreadable."""

    type_name: str | None = None
    code: str | None = None  # "KH-UBND"
    number: str | None = None
    place: str | None = None
    day: int | None = None
    month: int | None = None
    year: int | None = None
    issuer: str | None = None
    level: str | None = None  # a key of LEVELS
    issuer_place: str | None = None
    title: str | None = None
    title_span: tuple[int, int] | None = None
    date_span: tuple[int, int] | None = None
    quotes: tuple[Quote, ...] = ()

    @property
    def date(self) -> date | None:
        if self.year and self.month and self.day:
            return valid_date(self.year, self.month, self.day)
        return None

    @property
    def locality(self) -> str | None:
        """The place that names the plan's units: the issuer's, else the header's."""
        return self.issuer_place or self.place

    def describe(self) -> str:
        """``Kế hoạch số …/KH-UBND ngày …/4/2024 của UBND huyện Ba Tơ``."""
        out = self.type_name or "Văn bản"
        if self.code is not None:
            out += f" số {self.number or '…'}/{self.code}"
        if self.year is not None:
            day = str(self.day) if self.date else "…"
            out += f" ngày {day}/{self.month or '…'}/{self.year}"
        if self.issuer:
            out += f" của {self.issuer}"
        return out


def _header_end(src: SourceText) -> int:
    lines = min(HEADER_LINES, len(src.line_starts))
    return min(src.line(lines)[1], HEADER_CHARS)


def _place(src: SourceText, start: int, end: int) -> str | None:
    """The capitalised words just before ``, ngày``: ``Bdc Kan`` in ``/CTr-UBND Bdc Kan``."""
    tokens = src.text[start:end].split()
    place: list[str] = []
    for token in reversed(tokens):
        if _PLACE_WORD.fullmatch(token) and token[:1].isupper():
            place.insert(0, token)
            if len(place) == 4:
                break
        else:
            break
    return restore(" ".join(place)) if place else None


def _level_key(text: str) -> str:
    key = " ".join(loose(part) for part in fold(text).split())
    return key if key in LEVELS else "xa" if key.startswith("x") else key


def _heading_type(line: str) -> str | None:
    words_ = plain_words(line)
    if not words_ or len(words_) > 30:
        return None
    for folded, name in _HEADINGS:
        if abs(len(words_) - len(folded)) <= 2 and resembles(words_, folded, 2):
            return name
    return None


def read_document(src: SourceText) -> DocumentInfo:
    """Read the header and the issuer; see the module docstring."""
    header_end = _header_end(src)
    info: dict[str, object] = {}
    quotes: list[Quote] = []
    number_start = 0
    if m := _NUMBER.search(src.folded, 0, header_end):
        number_start = m.start()
        num = src.text[m.start("num"):m.end("num")].strip()
        code = src.text[m.start("code"):m.end("org")]
        info.update(code=re.sub(r"\s+", "", code), number=num if num.isdigit() else None)
        info["type_name"] = TYPES.get(m["code"])
        quotes.append(src.quote(m.start(), m.end()))
    if m := _DATE_LINE.search(src.folded, 0, header_end):
        info.update(place=_place(src, m.start("place"), m.end("place")),
                    month=int(m["m"]), year=int(m["y"]), date_span=(m.start(), m.end()))
        day = m["d"]
        if day.isdigit() and valid_date(int(m["y"]), int(m["m"]), int(day)):
            info["day"] = int(day)
        if not 1 <= int(m["m"]) <= 12:
            info.update(month=None)
        if quotes and quotes[-1].first_line == src.line_of(m.start()):
            quotes[-1] = src.quote(number_start, m.end())  # "Số: …" and the date share a line
        else:
            quotes.append(src.quote(m.start("place"), m.end()))
    info.update(_title(src, header_end))
    issuer = _issuer(src, info.get("place"))
    if issuer:
        info.update(issuer)
    if info.get("type_name") is None and (m := _ISSUES_TYPE.search(src.folded)):
        info["type_name"] = "Kế hoạch" if "k" in m["type"][:1] else "Chương trình"
    return DocumentInfo(**info, quotes=tuple(quotes))  # type: ignore[arg-type]


def _title(src: SourceText, header_end: int) -> dict[str, object]:
    """The paragraph after the type heading (``KẾ HOẠCH``), or the opening paragraph."""
    lines = src.text[:header_end].split("\n")
    offset = 0
    heading_line = None
    name = None
    for number, line in enumerate(lines, 1):
        found = _heading_type(line) if line.strip() else None
        if found is not None:
            heading_line, name = number, found
            break
        offset += len(line) + 1
    out: dict[str, object] = {}
    if heading_line is not None:
        out["type_name"] = name  # "CHƯƠNG TRÌNH HÀNH ĐỘNG" says more than the code "CTr"
        first = heading_line + 1
    else:
        first = 1
    span = _paragraph_from_line(src, first)
    if span is None:
        return out
    start, end = span
    if end - start > TITLE_CHARS:  # cut between words
        cut = src.text.rfind(" ", start, start + TITLE_CHARS)
        end = cut if cut > start else start + TITLE_CHARS
    folded = src.folded[start:end]
    opener = re.match(r"\s*(?:can cu|thuc hien|s[oe]\s*:)", folded)
    if heading_line is None and (opener or not re.search(r"thi dua|phat dong|ke hoach", folded)):
        return out
    title = restore(" ".join(src.text[start:end].split()))
    out.update(title=title, title_span=(start, end))
    return out


def _paragraph_from_line(src: SourceText, line: int) -> tuple[int, int] | None:
    """The first non-blank run of lines from ``line`` on."""
    total = len(src.line_starts)
    while line <= total and not src.text[slice(*src.line(line))].strip():
        line += 1
    if line > total:
        return None
    first = line
    start = src.line(first)[0]
    # Lines are looked at only as far as a title can reach.
    while (line + 1 <= total and src.line(line)[1] - start <= TITLE_CHARS
           and src.text[slice(*src.line(line + 1))].strip()):
        line += 1
    return start, src.line(line)[1]


def _issuer(src: SourceText, place: object) -> dict[str, object] | None:
    """``UBND huyện Ba Tơ``: the body that "ban hành / xây dựng / phát động" this plan."""
    for m in _ISSUER.finditer(src.folded):
        before = src.folded[max(0, m.start() - 6):m.start()]
        if re.search(r"c[uiu]a\s*$|cia\s*$", before):
            continue  # "… của UBND huyện Cao Lộc": another body's document
        level = _level_key(m["level"])
        rest = src.text[m.start("rest"):m.end("rest")].split()
        words_: list[str] = []
        for token in rest:
            if not (_PLACE_WORD.fullmatch(token) and token[:1].isupper()):
                break
            words_.append(token)
        own_place = restore(" ".join(words_)) if words_ else None
        name_place = own_place or (place if isinstance(place, str) else None)
        issuer = f"UBND {LEVELS.get(level, level)}" + (f" {name_place}" if name_place else "")
        return {"issuer": issuer, "level": level, "issuer_place": name_place}
    return None
