"""Diacritic folding, OCR-tolerant word comparison and the phrase dictionary.

Two of the three seed plans went through OCR and came out with lost or wrong
diacritics and letter confusions ("Ky niém 90 nim Ngay truyén thong Pang bo tinh
Lang Son"). Recognition therefore never compares Vietnamese text as written:

* :func:`fold` lower-cases and strips every diacritic (``đ`` → ``d``), one
  character for one, so offsets in the folded text are offsets in the original;
* :func:`similar` compares a word of the text with a dictionary word allowing
  the confusions OCR makes (``4``/``&`` for ``a``, ``0``/``6`` for ``o``,
  ``1`` for ``l``, one wrong letter in words of three letters or more);
* :class:`PhraseBook` restores diacritics in titles and unit names, but only
  where a phrase of the shipped dictionary (``data/phrases.txt``) matches —
  everything else keeps the text as written, because a guessed diacritic is
  worse than a missing one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache, lru_cache
from importlib import resources
from itertools import pairwise

from config.importer.patterns import tolerant, tolerant_first_chars

# OCR look-alikes inside words: what the letter probably was. Applied only in
# loose comparisons of words that contain a letter ("x4" → "xa", "13p" → "lap").
_LOOKALIKES = str.maketrans({
    "0": "o", "1": "l", "3": "a", "4": "a", "6": "o", "9": "o", "&": "a", "@": "a",
    "¢": "e", "|": "l", "!": "l", "$": "s", "'": None, "’": None,
})
#: A word of the text: letters and digits, plus the symbols OCR puts inside words.
TOKEN = re.compile(r"(?:[^\W_]|[&@¢|$])+(?:['’](?:[^\W_]|[&@¢])+)*")
_LETTER = re.compile(r"[^\W\d_]")
_IR = re.compile(r"(?<=[^aeiouy])ir|^ir")
_AFTER_VOWEL_R = re.compile(r"(?<=[aeiouy])r")
_ROMAN = re.compile(r"[ivxlt1|]{1,4}")
_LOOSE_NAM = re.compile(r"n[aeiouyrdg&@4¢]{1,3}m")


def fold_char(c: str) -> str:
    """One character, lower-cased and without diacritics (always one character)."""
    if c in "đĐ":
        return "d"
    base = unicodedata.normalize("NFD", c)[0]
    lower = base.lower()
    return lower if len(lower) == 1 else base


# Every Latin letter folded once, up front: str.translate is what makes folding cheap.
_FOLD_TABLE = {code: fold_char(chr(code))
               for code in [*range(0x41, 0x5B), *range(0xC0, 0x250), *range(0x1E00, 0x1F00)]
               if fold_char(chr(code)) != chr(code)}


# The same as a list indexed by code point (a look-up per character is cheaper in a list
# than in a dict: a third of the time on a long text); characters past it are left as
# they are, as str.translate does on a LookupError.
_FOLD_LIST = [_FOLD_TABLE.get(code, chr(code)) for code in range(max(_FOLD_TABLE) + 1)]


def fold(text: str) -> str:
    """``Kỷ niệm 90 năm`` → ``ky niem 90 nam``; same length as ``text``."""
    return text.translate(_FOLD_LIST)


@lru_cache(maxsize=65536)
def loose(word: str) -> str:
    """A folded word with OCR look-alikes replaced (``13p`` → ``lap``, ``x4`` → ``xa``)."""
    folded = fold(word)
    if not _LETTER.search(folded):
        return folded
    # Vietnamese never writes r after a vowel: "ir" is how OCR reads ư (chirc = chức).
    return _AFTER_VOWEL_R.sub("", _IR.sub("u", folded.translate(_LOOKALIKES)))


def levenshtein(a: str, b: str, limit: int) -> int:
    """Edit distance, or ``limit + 1`` as soon as it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


_JUNK = re.compile(r"[&@¢|$!0-9]")
# What an OCR symbol inside a word may have been: a vowel, or the letter it looks like.
_JUNK_MEANS = {"0": "[o]", "1": "[li]", "3": "[aeiouy]", "4": "[aeiouy]", "5": "[aeiouys]",
               "6": "[oaeiouy]", "9": "[aeiouy]", "|": "[li]", "!": "[li]", "$": "[s]"}


def _junk_pattern(folded: str) -> re.Pattern[str]:
    parts = [re.escape(c) if not _JUNK.fullmatch(c) else _JUNK_MEANS.get(c, "[aeiouy]")
             for c in folded if c not in "'’"]
    return re.compile("".join(parts))


class Match(Enum):
    NONE = 0
    CLOSE = 1  # one letter off: believable only next to an exact word
    LOOSE = 2  # a known OCR misreading (look-alike digit or symbol, vowel confusion)
    EXACT = 3


def is_abbreviation(word: str) -> bool:
    """``UBND``, ``TĐKT``, ``HĐND``: two or more capitals and nothing else."""
    return len(word) >= 2 and word.isalpha() and word.isupper()


@lru_cache(maxsize=65536)
def similar(text_word: str, dictionary_word: str) -> Match:
    """How well a word of the text matches a dictionary word (folded comparison)."""
    folded = fold(text_word)
    target = fold(dictionary_word)
    if folded == target:
        return Match.EXACT
    if abs(len(folded) - len(target)) > 3:
        return Match.NONE
    guess = loose(text_word)
    if guess == target:
        return Match.LOOSE
    if is_abbreviation(dictionary_word):
        # TPKT for TĐKT (Đ read as P): one letter, and only against capitals.
        ok = is_abbreviation(text_word) and len(target) >= 4
        return Match.CLOSE if ok and levenshtein(guess, target, 1) <= 1 else Match.NONE
    if _JUNK.search(folded) and _junk_pattern(folded).fullmatch(target):
        return Match.LOOSE  # "b¢" for "bộ", "S&" for "Sở": the symbol stood for a vowel
    if tolerant(target).fullmatch(folded):
        return Match.LOOSE  # "td" for "tổ", "chirc" for "chức": OCR's usual vowel misreadings
    if len(target) >= 3:
        allowed = 2 if len(target) >= 7 else 1
        if _letters_apart(guess, target) <= allowed and levenshtein(guess, target,
                                                                   allowed) <= allowed:
            return Match.CLOSE
    return Match.NONE


def _letters_apart(a: str, b: str) -> int:
    """A lower bound of the edit distance: each letter one word lacks costs an edit."""
    return max(len(set(a) - set(b)), len(set(b) - set(a)))


@dataclass(frozen=True)
class Phrase:
    """A dictionary phrase: its words as they should be written, and folded."""

    words: tuple[str, ...]
    folded: tuple[str, ...]


def _dictionary_lines(name: str) -> Iterator[str]:
    text = resources.files("config.importer").joinpath("data", name).read_text("utf-8")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            yield unicodedata.normalize("NFC", line)


def _adapt(written: str, word: str) -> str:
    """The dictionary word in the case of the written one (``KẾ HOẠCH``, ``Kỷ niệm``)."""
    if is_abbreviation(word):
        return word
    if written.isalpha() and written.isupper() and len(written) > 1:
        return word.upper()
    if written[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


# Words restored from their neighbours rather than from the dictionary: an
# administrative level before a name or after "UBND", and the date words.
_LEVELS = {"tinh": "tỉnh", "huyen": "huyện", "xa": "xã", "phuong": "phường"}
_LEVEL_BEFORE = {"ubnd", "hdnd", "dan", "cap", "cua", "cac", "toan", "uy", "tdkt"}


class PhraseBook:
    """Restores diacritics where a known phrase matches, leaving the rest as written."""

    def __init__(self, phrases: Iterable[str]) -> None:
        unique: dict[tuple[str, ...], Phrase] = {}
        for line in phrases:
            words = tuple(TOKEN.findall(line))
            if words:
                unique.setdefault(tuple(fold(w) for w in words), Phrase(words, ()))
        self.phrases = sorted(
            (Phrase(p.words, key) for key, p in unique.items()),
            key=lambda p: (-len(p.words), p.folded),
        )
        self._first_words = sorted({p.words[0] for p in self.phrases})
        self._index = _FirstWords(self._first_words)
        self._phrases_by_first: dict[str, list[int]] = {}
        for i, phrase in enumerate(self.phrases):
            self._phrases_by_first.setdefault(phrase.words[0], []).append(i)

    @lru_cache(maxsize=8192)  # noqa: B019 - one book per process (see phrase_book)
    def _starting_with(self, token: str) -> tuple[tuple[Phrase, Match], ...]:
        """The phrases whose first word ``token`` may be, and how well it matches it."""
        firsts = {w: q for w in self._index.candidates(token)
                  if (q := similar(token, w)) is not Match.NONE}
        indices = sorted(i for w in firsts for i in self._phrases_by_first[w])
        return tuple((self.phrases[i], firsts[self.phrases[i].words[0]]) for i in indices)

    def _match(self, words: list[str], joined: list[bool], i: int) -> Phrase | None:
        """The phrase that starts at token ``i``; ``joined[k]``: token k may follow k - 1."""
        for phrase, first in self._starting_with(words[i]):
            n = len(phrase.words)
            if i + n > len(words):
                continue
            exact = int(first is Match.EXACT)
            close = int(first is Match.CLOSE)
            for k in range(1, n):
                if not joined[i + k]:
                    break
                quality = similar(words[i + k], phrase.words[k])
                if quality is Match.NONE:
                    break
                exact += quality is Match.EXACT
                close += quality is Match.CLOSE
            else:
                # One word must be exact, or every word a known misreading ("T4 chirc"),
                # and a single word only counts when it is exact (or an abbreviation).
                if n == 1:
                    if exact or (close and is_abbreviation(phrase.words[0])):
                        return phrase
                elif exact or not close:
                    return phrase
        return None

    def restore(self, text: str) -> str:
        """``Ky ni¢ém 90 nam Ngay truyen thong`` → ``Kỷ niệm 90 năm Ngày truyền thống``."""
        tokens = list(TOKEN.finditer(text))
        written = [token.group() for token in tokens]
        joined = [False, *(_joinable(text[a.end():b.start()]) for a, b in pairwise(tokens))]
        words: dict[int, str] = {}
        i = 0
        while i < len(tokens):
            phrase = self._match(written, joined, i)
            if phrase is None:
                i += 1
                continue
            for k, word in enumerate(phrase.words):
                words[i + k] = _adapt(tokens[i + k].group(), word)
            i += len(phrase.words)
        for i, token in enumerate(tokens):
            if i not in words and (guess := _by_context(tokens, i)) is not None:
                words[i] = _adapt(token.group(), guess)
        out: list[str] = []
        last = 0
        for i, token in enumerate(tokens):
            if i in words:
                out.append(text[last:token.start()])
                out.append(words[i])
                last = token.end()
        out.append(text[last:])
        return "".join(out)


class _FirstWords:
    """The dictionary's first words, indexed so that a token is compared with few of them.

    :func:`similar` is not NONE only in one of its cases; each is indexed by what
    it needs, so that :meth:`candidates` is a superset of the words it would
    accept — which :func:`similar` then checks — at a few dictionary look-ups a
    token instead of a comparison with every word (a text of novel words, such as
    OCR noise, made every one of them cost milliseconds):

    * exact and look-alike (``loose``) spellings: by the folded word;
    * abbreviations: all of them, for tokens that are abbreviations;
    * symbols standing for vowels (``b¢``): by length;
    * OCR's vowel misreadings (:func:`~config.importer.patterns.tolerant`): by the
      characters the word's pattern can begin with;
    * one or two wrong letters (``levenshtein``): by every string left after
      deleting up to as many letters as are allowed (a "symmetric delete" index:
      two strings within edit distance k have a common such string).
    """

    def __init__(self, words: Iterable[str]) -> None:
        self.by_fold: dict[str, list[str]] = {}
        self.abbreviations: list[str] = []
        self.by_length: dict[int, list[str]] = {}
        self.by_first: dict[str, list[str]] = {}
        self.by_deletion: dict[str, list[str]] = {}
        self.longest = 0
        for word in words:
            target = fold(word)
            self.longest = max(self.longest, len(target))
            self.by_fold.setdefault(target, []).append(word)
            if is_abbreviation(word):
                self.abbreviations.append(word)
                continue
            self.by_length.setdefault(len(target), []).append(word)
            for c in set(tolerant_first_chars(target)):
                self.by_first.setdefault(c, []).append(word)
            if len(target) >= 3:
                allowed = 2 if len(target) >= 7 else 1
                for variant in _deletions(target, allowed):
                    self.by_deletion.setdefault(variant, []).append(word)

    def candidates(self, token: str) -> set[str]:
        folded = fold(token)
        if len(folded) > self.longest + 3:  # similar(): more than 3 letters off is NONE
            return set(self.by_fold.get(folded, ()))
        guess = loose(token)
        out = {*self.by_fold.get(folded, ()), *self.by_fold.get(guess, ())}
        if is_abbreviation(token):
            out.update(self.abbreviations)
        if _JUNK.search(folded):
            out.update(self.by_length.get(len(folded) - folded.count("'")
                                          - folded.count("’"), ()))
        out.update(self.by_first.get(folded[:1], ()))
        for variant in _deletions(guess, 2):
            out.update(self.by_deletion.get(variant, ()))
        return out


def _deletions(word: str, most: int) -> set[str]:
    """``word`` with up to ``most`` characters deleted (``word`` itself included)."""
    out = {word}
    frontier = {word}
    for _ in range(most):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


_JOINING = re.compile(r"[\s,\-–]*")


def _joinable(between: str) -> bool:
    """Words of one phrase may be separated by spaces, a line break, a comma or a dash."""
    return _JOINING.fullmatch(between) is not None and between.count(",") <= 1


def _by_context(tokens: list[re.Match[str]], i: int) -> str | None:
    word = loose(tokens[i].group())
    before = loose(tokens[i - 1].group()) if i else ""
    after = tokens[i + 1].group() if i + 1 < len(tokens) else ""
    if word in _LEVELS and (before in _LEVEL_BEFORE or i == len(tokens) - 1
                            or (after[:1].isupper() and not after.isupper())):
        return _LEVELS[word]
    if _LOOSE_NAM.fullmatch(fold(tokens[i].group())) and (
            before.isdigit() or re.fullmatch(r"\d{4}", after)):
        return "năm"
    if word == "thang" and after.isdigit():
        return "tháng"
    if word == "ngay" and (after.isdigit() or i == 0):
        return "ngày"
    if word == "quy" and _ROMAN.fullmatch(fold(after)):
        return "Quý"
    return None


@cache
def phrase_book() -> PhraseBook:
    """The shipped dictionary (``data/phrases.txt``), loaded once."""
    return PhraseBook(_dictionary_lines("phrases.txt"))


@lru_cache(maxsize=16384)
def restore(text: str) -> str:
    """Restore diacritics with the shipped dictionary; see :class:`PhraseBook`.

    Memoised: a long plan names the same units and repeats the same items, the
    milestones are read twice (:func:`config.importer.assemble.draft_plan`), and
    restoring is the recognisers' most expensive step (tens of µs a word). The
    texts are titles and names, a few hundred characters at most.
    """
    return phrase_book().restore(text)


@cache
def _id_abbreviations() -> tuple[tuple[str, str], ...]:
    pairs = []
    for line in _dictionary_lines("id_abbreviations.txt"):
        long, _, short = line.partition("=")
        pairs.append((long.strip(), short.strip()))
    return tuple(sorted(pairs, key=lambda p: -len(p[0])))


def slug(text: str) -> str:
    """``Phòng Lao động - Thương binh và Xã hội`` → ``phong-ldtbxh`` (shipped abbreviations)."""
    plain = re.sub(r"[^a-z0-9]+", "-", loose_slug_text(text)).strip("-")
    padded = f"-{plain}-"
    for long, short in _id_abbreviations():
        padded = padded.replace(f"-{long}-", f"-{short}-")
    return padded.strip("-")


def loose_slug_text(text: str) -> str:
    """Folded text for an id: OCR look-alikes fixed inside words, symbols dropped."""
    return TOKEN.sub(lambda m: loose(m.group()), fold(text))


def make_id(text: str, *, suffix: str = "", limit: int = 48) -> str:
    """A slug id from a title or name, at most ``limit`` characters, cut between words."""
    base = slug(text)
    if len(base) > limit:
        base = base[:limit + 1].rsplit("-", 1)[0] if "-" in base[:limit + 1] else base[:limit]
    if suffix and not (base == suffix or base.endswith(f"-{suffix}")):
        base = f"{base}-{suffix}" if base else suffix
    return base.strip("-") or "muc"
