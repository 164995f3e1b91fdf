"""Units: the ``Nơi nhận:`` list and the assignments ("Giao Phòng Nội vụ chủ trì, …").

``Nơi nhận`` names who receives the plan: single bodies become units, plural
entries ("Các cơ quan, đơn vị", "UBND các xã, thị trấn") become groups.
Superiors (a higher level than the issuer, or marked ``(b/c)``, "để báo cáo")
receive it to be informed, not to act: they are drafted as units but not as
recipients. "Lưu: VT" is the archive and is skipped.

Assignments name who leads (chủ trì) and who supports (phối hợp với); the one
that follows the campaign up ("theo dõi", "đôn đốc") becomes its ``owner``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from config.importer.document import RANK
from config.importer.folding import fold, restore
from config.importer.patterns import compile_folded, w, words
from config.importer.source import Quote, SourceText
from config.importer.structure import plain_words, sentence_end

_RECIPIENTS = compile_folded(rf"^[ \t]*{words('noi nhan', loose=True)}[ \t]*[:;,.]")
_ENTRY = re.compile(r"^[ \t]*[-–•+][ \t]*(?P<entry>.*)$", re.MULTILINE)
_ARCHIVE = re.compile(r"^\s*l[uư]u\b", re.IGNORECASE)

#: First words of a body's name: what an assignment's subject must start with.
UNIT_HEADS = frozenset({
    "phong", "so", "ban", "ubnd", "uy", "hoi", "cong", "van", "dai", "bao", "truong",
    "trung", "mat", "huyen", "tinh", "dang", "thuong", "chu", "can", "doan", "lien", "chi",
    "thanh", "ho", "ttyt", "tram",
})
_VERBS = ("chu tri", "phoi hop", "co trach nhiem", "tham muu", "theo doi", "don doc",
          "huong dan", "to chuc", "trien khai", "thuc hien", "kiem tra", "tiep nhan",
          "tham dinh", "xay dung", "chi dao", "tang cuong", "tong hop", "bao cao",
          "tuyen truyen", "ban hanh")
_VERB = "|".join([*(words(v) for v in _VERBS), words("hang nam", loose=True)])
_FIRST_VERB = compile_folded(rf"[\s,]*(?:{_VERB})")
_GIAO = compile_folded(rf"(?:^|(?<=[.;:]))[ \t]*(?:\d{{1,2}}\s*\.\s*)?{w('giao')}\s+")
_NUMBERED = compile_folded(r"^[ \t]*\d{1,2}\s*\.\s*(?=\S)")
_LEAD_END = compile_folded(
    rf"\s*,?\s*(?:{words('chu tri')}|{words('co trach nhiem')}|{words('phoi hop')}"
    rf"|{words('tham muu')}|:)"
)
_SUPPORT = compile_folded(rf"{words('phoi hop')}(?:\s+{w('voi')})?\s+")
_FOLLOWS_UP = compile_folded(rf"{words('theo doi')}")
_URGES = compile_folded(rf"{words('don doc')}")
_YEARLY = compile_folded(rf"{words('hang nam', loose=True)}")
_KIND_OF = re.compile(r"^(?:cac\s+)?(phong|so|ban)\s*:\s*", re.IGNORECASE)


NAME_LIMIT = 200
"""The longest unit name, in characters ("Phòng Lao động - Thương binh và Xã hội" is 38)."""


@dataclass(frozen=True)
class FoundUnit:
    """A unit or group named in the plan (by its restored name)."""

    name: str
    group: bool
    superior: bool = False
    quote: Quote | None = None


@dataclass(frozen=True)
class Assignment:
    """``Giao LEAD chủ trì, phối hợp với SUPPORT TASK``."""

    lead: str
    supporting: tuple[str, ...]
    task_text: str  # as written, whitespace collapsed
    follow_up: int  # 2: "theo dõi", 1: "đôn đốc", 0: neither
    yearly: bool
    quote: Quote
    span: tuple[int, int]

    @cached_property
    def task(self) -> str:
        """The task, diacritics restored: only "hằng năm" tasks become titles, so on demand."""
        return restore(self.task_text)


def clean_name(raw: str) -> str:
    """A unit name as written, OCR debris trimmed and diacritics restored where known."""
    text = raw.replace("*", " ")
    text = re.sub(r"\(\s*(?:b\s*/\s*c|để\s+b\s*/\s*c|de\s+b\s*/\s*c)\s*\)", " ", text,
                  flags=re.IGNORECASE)
    text = " ".join(text.split()).strip(" ,.;:-–")
    if len(text) > NAME_LIMIT:  # no body's name is this long; restore only what may be one
        text = text[:NAME_LIMIT].rsplit(" ", 1)[0]
    if text.count("(") != text.count(")"):
        text = text.replace("(", " ").replace(")", " ")
        text = " ".join(text.split()).strip(" ,.;:-–")
    text = restore(text)
    return text[:1].upper() + text[1:]


def is_group(name: str) -> bool:
    """Plural entries: "Các …", "UBND các …", "Thành viên …"."""
    words_ = plain_words(name).split()
    return bool(words_) and ((words_[0] in ("cac", "thanh") and (
        words_[0] == "cac" or words_[1:2] == ["vien"])) or words_[1:2] == ["cac"])


def rank(name: str) -> int:
    """The administrative level a name points at (0 when it names none)."""
    words_ = plain_words(name).split()
    text = f" {' '.join(words_)} "
    best = 0
    if any(k in text for k in (" tw ", " trung uong ", " chinh phu ", " bo ")):
        best = RANK["tw"]
    elif " tinh " in text or words_[:1] == ["so"]:
        best = RANK["tinh"]
    elif " huyen " in text or words_[:1] == ["phong"] or " huyen uy " in text:
        best = RANK["huyen"]
    elif any(k in text for k in (" xa ", " phuong ", " thi tran ")):
        best = RANK["xa"]
    return best


def find_recipients(src: SourceText, issuer_level: str | None) -> list[FoundUnit]:
    """The ``Nơi nhận`` list; see the module docstring."""
    m = _RECIPIENTS.search(src.folded)
    if m is None:
        m = compile_folded(rf"{words('noi nhan', loose=True)}\s*[:;,.]").search(src.folded)
        if m is None:
            return []
    own = RANK.get(issuer_level or "", 0)
    out: list[FoundUnit] = []
    first = src.line_of(m.start())
    for number in range(first + 1, min(first + 40, len(src.line_starts)) + 1):
        start, end = src.line(number)
        entry = _ENTRY.match(src.text, start, end)
        if entry is None:
            continue
        raw = entry["entry"]
        if _ARCHIVE.match(fold(raw)):
            break
        raw_name = re.split(r"[;:]", raw, maxsplit=1)[0]
        reports = bool(re.search(r"b\s*/\s*c", fold(raw_name)))
        name = clean_name(raw_name)
        if len(re.findall(r"[^\W\d_]", name)) < 3:
            continue
        superior = reports or (own > 0 and rank(name) > own)
        quote = src.quote(entry.start("entry"), entry.start("entry") + len(raw_name))
        out.append(FoundUnit(name, is_group(name), superior, quote))
    return out


def _split_units(raw: str) -> list[str]:
    """``các Phòng: Nội vụ; Lao động - …`` → ``Phòng Nội vụ``, ``Phòng Lao động - …``."""
    prefix = ""
    folded = fold(raw)
    m = _KIND_OF.match(folded.strip())
    text = raw.strip()
    if m:
        prefix = {"phong": "Phòng", "so": "Sở", "ban": "Ban"}[m[1].lower()] + " "
        text = text[m.end():]
    parts = re.split(r";" if ";" in text else r",(?!\s*-)", text)
    out = []
    for part in parts:
        part = re.sub(r"^\s*(?:và|va)\s+", "", part.strip(" ,.-–"), flags=re.IGNORECASE)
        part = part.replace(", -", " -").replace(",-", " -")
        if len(re.findall(r"[^\W\d_]", part)) >= 2 and len(part) <= 80:
            name = clean_name(prefix + part)
            if _looks_like_unit(name) or is_group(name):
                out.append(name)
    return out


def _looks_like_unit(name: str) -> bool:
    first = plain_words(name).split()[:1]
    return bool(first) and first[0] in UNIT_HEADS and not is_group(name)


def find_assignments(src: SourceText, start: int = 0, end: int | None = None) -> list[Assignment]:
    """Every "Giao X chủ trì …" / "N. X chủ trì …" / "N. X có trách nhiệm …" sentence."""
    stop = len(src.text) if end is None else end
    out: list[Assignment] = []
    seen: set[int] = set()
    candidates = [(m.end(), True) for m in _GIAO.finditer(src.folded, start, stop)]
    candidates += [(m.end(), False) for m in _NUMBERED.finditer(src.folded, start, stop)
                   if not re.match(rf"\s*{w('giao')}\s", src.folded[m.end():m.end() + 8])]
    for subject, explicit in sorted(candidates):
        sentence_stop = sentence_end(src, subject, min(stop, subject + 800))
        lead_end = _LEAD_END.search(src.folded, subject, sentence_stop)
        if lead_end is None or lead_end.start() - subject > 120:
            continue
        verb = _FIRST_VERB.search(src.folded, subject, lead_end.start())
        lead = clean_name(src.text[subject:verb.start() if verb else lead_end.start()])
        if not _looks_like_unit(lead) or subject in seen:
            continue
        if not explicit and lead_end.group().strip() == ":":
            continue  # "2. Hội đồng …: tăng cường …" describes a duty, it assigns nothing
            continue
        seen.add(subject)
        rest = lead_end.end()
        supporting: tuple[str, ...] = ()
        if sm := _SUPPORT.search(src.folded, lead_end.start(), sentence_stop):
            verb = _FIRST_VERB.search(src.folded, sm.end(), sentence_stop)
            support_end = verb.start() if verb else sentence_stop
            supporting = tuple(_split_units(src.text[sm.end():support_end]))
            rest = support_end
        task_raw = src.text[rest:sentence_stop]
        task = " ".join(task_raw.split()).strip(" ,;:.-")
        follow = (2 if _FOLLOWS_UP.search(src.folded, subject, sentence_stop)
                  else 1 if _URGES.search(src.folded, subject, sentence_stop) else 0)
        yearly = bool(_YEARLY.search(src.folded, subject, sentence_stop))
        out.append(Assignment(lead, supporting, task, follow, yearly,
                              src.quote(subject, sentence_stop), (subject, sentence_stop)))
    return out


def owner(assignments: list[Assignment]) -> Assignment | None:
    """The unit that follows the campaign up: "theo dõi" first, else "đôn đốc"."""
    ranked = [a for a in assignments if a.follow_up]
    return max(ranked, key=lambda a: a.follow_up, default=None) if ranked else None
