"""The text of a plan as the recognisers see it: normalised, folded, with line numbers.

Recognisers match on :attr:`SourceText.folded` — the same text lower-cased and
stripped of diacritics, character for character — so a match's offsets are
also offsets into :attr:`SourceText.text`, from which titles are cut and lines
are quoted. Keeping the two strings the same length is what lets OCR-damaged
text be matched loosely and still be quoted exactly.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property

from config.importer.folding import fold

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_SPACES = {ord(c): " " for c in "\t\u00a0\u2002\u2003\u2009\u202f\u3000"}
# str.translate costs ~0.1 µs a character even when nothing is to be translated:
# a search for the characters first is ten times cheaper.
_HAS_INVISIBLE = re.compile("[" + "".join(map(chr, _INVISIBLE)) + "]")
_HAS_SPACES = re.compile("[" + "".join(map(chr, _SPACES)) + "]")
_WHITESPACE = re.compile(r"\s+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_BLANK_LINE_START = re.compile(r"\n(?=[ \t]*\n)")
QUOTE_LIMIT = 110


def normalise(raw: str) -> str:
    """One line per source line, NFKC (ligatures such as ``ﬁ`` split), no stray marks.

    Combining marks that NFKC could not attach to a letter are OCR debris; they
    are dropped so that every remaining character folds to exactly one.
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    if _HAS_INVISIBLE.search(text):
        text = text.translate(_INVISIBLE)
    if _HAS_SPACES.search(text):
        text = text.translate(_SPACES)
    text = unicodedata.normalize("NFKC", text)
    # Looked up once per distinct character, not once per character of the text.
    stray = {ord(c): None for c in set(text) if unicodedata.combining(c)}
    return text.translate(stray) if stray else text


@dataclass(frozen=True)
class Quote:
    """Where a drafted item came from: its source lines and the text, for a comment."""

    first_line: int
    last_line: int
    text: str

    def render(self) -> str:
        """``dòng 57: "Quý III năm 2022"`` (``dòng 5–6`` when it spans lines)."""
        lines = (f"dòng {self.first_line}" if self.first_line == self.last_line
                 else f"dòng {self.first_line}–{self.last_line}")
        return f'{lines}: "{self.text}"'


@dataclass(frozen=True)
class SourceText:
    """A plan's text (normalised) and its folded twin of the same length."""

    text: str
    folded: str
    line_starts: tuple[int, ...]
    #: Results the recognisers compute more than once on the same text (by their key).
    memo: dict[object, object] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, raw: str) -> SourceText:
        text = normalise(raw)
        folded = fold(text)
        assert len(folded) == len(text)
        starts = [0] + [m.end() for m in re.finditer("\n", text)]
        return cls(text, folded, tuple(starts))

    @cached_property
    def blank_lines(self) -> tuple[list[int], list[int]]:
        """Where paragraphs break: the ends of the blank-line runs, and where runs may start.

        The ends are those of ``_BLANK_LINE.finditer(text)``, the starts every
        position at which ``_BLANK_LINE`` matches; :meth:`paragraph` bisects them
        instead of scanning the text before and after an offset.
        """
        ends = [m.end() for m in _BLANK_LINE.finditer(self.text)]
        starts = [m.start() for m in _BLANK_LINE_START.finditer(self.text)]
        return ends, starts

    def paragraph(self, offset: int) -> tuple[int, int]:
        """The paragraph (between blank lines) around an offset."""
        ends, starts = self.blank_lines
        i = bisect.bisect_right(ends, offset)  # runs that end at or before offset
        j = bisect.bisect_left(starts, offset)  # the first run starting at or after it
        return (ends[i - 1] if i else 0), (starts[j] if j < len(starts) else len(self.text))

    def line_of(self, offset: int) -> int:
        """The 1-based line number of a character offset."""
        return bisect.bisect_right(self.line_starts, offset)

    def snippet(self, start: int, end: int) -> str:
        """The original text of a span on one line, whitespace collapsed."""
        return _WHITESPACE.sub(" ", self.text[start:end]).strip()

    def quote(self, start: int, end: int, limit: int = QUOTE_LIMIT) -> Quote:
        """A :class:`Quote` of ``text[start:end]``, shortened to ``limit`` characters."""
        while start < end and self.text[start].isspace():
            start += 1
        while end > start and self.text[end - 1].isspace():
            end -= 1
        text = self.snippet(start, end)
        if len(text) > limit:
            text = text[: limit - 1].rstrip() + "…"
        return Quote(self.line_of(start), self.line_of(max(start, end - 1)), text)

    def line(self, number: int) -> tuple[int, int]:
        """The span of a 1-based line, without its newline."""
        start = self.line_starts[number - 1]
        end = (self.line_starts[number] - 1 if number < len(self.line_starts)
               else len(self.text))
        return start, end
