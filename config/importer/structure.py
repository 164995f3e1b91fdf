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
    """The paragraph (between blank lines) around an offset (:meth:`SourceText.paragraph`)."""
    return src.paragraph(offset)


MAX_SENTENCE = 3000
"""The longest sentence, in characters: where a sentence is cut when no full stop ends it.

The seed plans' longest paragraph is 1,353 characters. Without a bound, a text
with no full stops (a single line, an OCR without punctuation) would make every
sentence run to the end of the text, and every recogniser that reads one
sentence per match quadratic.
"""


def sentence_end(src: SourceText, offset: int, limit: int) -> int:
    """Where the sentence running at ``offset`` ends, at most ``limit``.

    A full stop before a capital, a number or a bullet ends it; so does a blank
    line, unless the text goes on in lower case after it — OCR breaks pages in
    mid-sentence and leaves short debris lines ("A L]") in between. No sentence
    runs longer than :data:`MAX_SENTENCE`; each character is looked at a bounded
    number of times.
    """
    text = src.text
    limit = min(limit, offset + MAX_SENTENCE)
    seen = offset  # text[offset:seen] has been looked at for its last printing character
    last = ""  # … which is this ("" when there is none yet)
    resolved, first = -1, ""  # a debris walk from at most `resolved` lands on `first`
    for m in _BREAK.finditer(text, offset, limit):
        if m.group().startswith("."):
            return m.start()
        if before := text[seen:m.start()].rstrip():
            last = before[-1]
        seen = m.start()
        if not last or last in ".;:":
            return m.start() if last else limit
        rest = m.end()
        if rest > resolved:  # a walk from an earlier break covered the breaks up to there
            while True:  # skip debris paragraphs
                nxt = _BLANK_LINE.search(text, rest, limit)
                paragraph_text = text[rest:nxt.start() if nxt else limit].strip()
                if len(paragraph_text) >= 8 or nxt is None:
                    break
                rest = nxt.end()
            resolved, first = rest, paragraph_text[:1]
        if not first.islower():
            return m.start()
    return limit
