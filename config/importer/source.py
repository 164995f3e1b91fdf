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
from dataclasses import dataclass

from config.importer.folding import fold

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_SPACES = {ord(c): " " for c in "\t\u00a0\u2002\u2003\u2009\u202f\u3000"}
_WHITESPACE = re.compile(r"\s+")
QUOTE_LIMIT = 110


def normalise(raw: str) -> str:
    """One line per source line, NFKC (ligatures such as ``ﬁ`` split), no stray marks.

    Combining marks that NFKC could not attach to a letter are OCR debris; they
    are dropped so that every remaining character folds to exactly one.
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = unicodedata.normalize("NFKC", text.translate(_INVISIBLE).translate(_SPACES))
    return "".join(c for c in text if not unicodedata.combining(c))


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

    @classmethod
    def of(cls, raw: str) -> SourceText:
        text = normalise(raw)
        folded = fold(text)
        assert len(folded) == len(text)
        starts = [0] + [m.end() for m in re.finditer("\n", text)]
        return cls(text, folded, tuple(starts))

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
