"""The layout of a plan: Roman-numbered sections, paragraphs and sentences.

Plans are laid out the same way everywhere (``I. MỤC ĐÍCH, YÊU CẦU`` …
``IV. THỜI GIAN THI ĐUA`` … ``V. TỔ CHỨC THỰC HIỆN``, then ``Nơi nhận:``), and
OCR keeps that layout even when it mangles the words, so sections are found
by shape first and named by a tolerant comparison of their folded titles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.importer.folding import levenshtein, loose_slug_text
from config.importer.source import SourceText

# On folded text: "ÍĨ." is a damaged "II.", "I11." and "L." are OCR'd Roman numerals.
_HEADING = re.compile(r"^[ \t]*[ivxlt1]{1,4}\d*\s*\.\s+(?P<title>[^\n]{3,120})$",
                      re.MULTILINE)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# A full stop that ends a sentence (not "TM." or "KT."), or a blank line.
_BREAK = re.compile(
    r"(?<!\b[A-Z])(?<!\b[A-Z][A-Z])\.(?=\s+(?:[-–•]|\d+\s*\.|[^\W\d_])|\s*$)|\n[ \t]*\n")


def _mostly_capitals(title: str) -> bool:
    letters = [c for c in title if c.isalpha()]
    return len(letters) >= 4 and sum(c.isupper() for c in letters) >= 0.7 * len(letters)


def plain_words(text: str) -> str:
    """Folded, look-alikes fixed, no punctuation: ``THOT GIAN`` → ``thot gian``."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", loose_slug_text(text)).split())


def resembles(text: str, expected: str, tolerance: int = 3) -> bool:
    """Whether a heading reads like ``expected`` (folded words) despite OCR damage."""
    head = plain_words(text)[: len(expected) + tolerance]
    lengths = range(max(1, len(expected) - tolerance), len(head) + 1)
    return any(levenshtein(head[:n], expected, tolerance) <= tolerance for n in lengths)


@dataclass(frozen=True)
class Section:
    """A Roman-numbered section: its heading line and its body (up to the next heading)."""

    title: str
    heading_start: int
    start: int
    end: int


def sections(src: SourceText) -> list[Section]:
    heads = [m for m in _HEADING.finditer(src.folded)
             if _mostly_capitals(src.text[m.start("title"):m.end("title")])]
    out = []
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(src.text)
        title = src.text[m.start("title"):m.end("title")].strip()
        out.append(Section(title, m.start(), m.end(), end))
    return out


def heading_starts(src: SourceText) -> list[int]:
    return [s.heading_start for s in sections(src)]


def paragraph(src: SourceText, offset: int) -> tuple[int, int]:
    """The paragraph (between blank lines) around an offset."""
    start = 0
    for m in _BLANK_LINE.finditer(src.text, 0, offset):
        start = m.end()
    after = _BLANK_LINE.search(src.text, offset)
    return start, after.start() if after else len(src.text)


def sentence_end(src: SourceText, offset: int, limit: int) -> int:
    """Where the sentence running at ``offset`` ends, at most ``limit``.

    A full stop before a capital, a number or a bullet ends it; so does a blank
    line, unless the text goes on in lower case after it — OCR breaks pages in
    mid-sentence and leaves short debris lines ("A L]") in between.
    """
    text = src.text
    for m in _BREAK.finditer(text, offset, limit):
        if m.group().startswith("."):
            return m.start()
        before = text[offset:m.start()].rstrip()
        if before.endswith((".", ";", ":")) or not before:
            return m.start() if before else limit
        rest = m.end()
        while True:  # skip debris paragraphs
            nxt = _BLANK_LINE.search(text, rest, limit)
            paragraph_text = text[rest:nxt.start() if nxt else limit].strip()
            if len(paragraph_text) >= 8 or nxt is None:
                break
            rest = nxt.end()
        if not paragraph_text[:1].islower():
            return m.start()
    return limit
