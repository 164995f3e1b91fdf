"""Regular-expression building blocks that match folded, OCR-damaged Vietnamese.

Patterns are written as plain folded words (``w("thang")``) and compiled into
expressions that accept what OCR makes of them: any vowel for a vowel, ``ir``
or ``tr`` for ``ư`` (``chirc`` = chức), ``d`` for ``ă``/``â`` (``ndm`` = năm),
``p`` or ``b`` for a leading ``Đ`` (``Pang`` = Đảng). They are only ever used
next to digits or other keywords, which keeps such tolerance from matching
ordinary words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

_VOWELS = "aeiouy"
# What OCR leaves where a vowel was, vowel by vowel: "thdng" (tháng), "thai" (thời),
# "dgng" (động), "thyc" (thực), "chirc" (chức), "twéng" (tưởng), "b¢" (bộ).
_VOWEL_CLASSES = {
    "a": "[ad&@43]", "e": "[ec¢€6]", "i": "[il1j|y]", "o": "[o0689dgab]",
    "u": "(?:ir|[uyw])", "y": "[yij]",
}
# After each vowel OCR may add one stray letter ("lurong" for lương).
_STRAY = "[rd]?"
# Fully tolerant vowel runs, for words that only ever stand next to digits (năm 2024).
_ANY_VOWELS = r"[aeiouyrdg&@4¢0-9]{1,3}"
_BEFORE = r"(?<![a-z0-9])"
_AFTER = r"(?![a-z0-9])"


def _word_core(word: str, loose: bool) -> str:
    out: list[str] = []
    i = 0
    while i < len(word):
        c = word[i]
        if c in _VOWELS:
            run = ""
            while i < len(word) and word[i] in _VOWELS:
                run += word[i]
                i += 1
            out.append(_ANY_VOWELS if loose
                       else "".join(_VOWEL_CLASSES[v] + _STRAY for v in run))
            continue
        if c == "d" and i == 0:
            out.append("[dpb]")
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def w(word: str, *, loose: bool = False) -> str:
    """A tolerant pattern for one folded word, bounded on both sides.

    Each vowel accepts what OCR makes of it; ``loose`` accepts any vowel run,
    for words that only appear next to digits (``nim 2021`` is năm 2021).
    """
    return f"{_BEFORE}{_word_core(word, loose)}{_AFTER}"


@lru_cache(maxsize=4096)
def tolerant(word: str) -> re.Pattern[str]:
    """:func:`w` compiled to match a whole folded word (for dictionary look-ups)."""
    return re.compile(_word_core(word, False))


def tolerant_first_chars(word: str) -> str:
    """The characters a text word that :func:`tolerant` accepts for ``word`` can begin with."""
    head = word[:1]
    if head == "u":
        return "iuyw"  # (?:ir|[uyw])
    if head in _VOWELS:
        return _VOWEL_CLASSES[head].strip("[]")
    return "dpb" if head == "d" else head


def words(text: str, *, loose: bool = False) -> str:
    """Tolerant words separated by any whitespace (line breaks included)."""
    return r"\s+".join(w(part, loose=loose) for part in text.split())


NAM = w("nam", loose=True)
THANG = w("thang")
NGAY = w("ngay")
QUY = w("quy")
#: A Roman quarter number as OCR writes it: ``IIT`` and ``Il`` are III and II.
ROMAN = r"(?:iv|[il1t|]{1,3})(?![a-z0-9])"
DMY = r"(?P<d>\d{1,2})\s*/\s*(?P<m>\d{1,2})\s*/\s*(?P<y>\d{4})"


def roman_quarter(text: str) -> int | None:
    """``iit`` → 3, ``iv`` → 4; None for anything that is not a quarter."""
    normal = text.translate(str.maketrans("l1t|", "iiii"))
    return {"i": 1, "ii": 2, "iii": 3, "iv": 4}.get(normal)


def valid_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


@dataclass(frozen=True)
class Hit:
    """A match in the folded text: its span and the named groups."""

    start: int
    end: int
    groups: dict[str, str]


def find_all(pattern: re.Pattern[str], folded: str, start: int = 0,
             end: int | None = None) -> list[Hit]:
    stop = len(folded) if end is None else end
    return [Hit(m.start(), m.end(), {k: v for k, v in m.groupdict().items() if v is not None})
            for m in pattern.finditer(folded, start, stop)]


def compile_folded(pattern: str) -> re.Pattern[str]:
    """Compile a pattern meant for folded text (already lower-case); ``^`` is a line start."""
    return re.compile(pattern, re.DOTALL | re.MULTILINE)

