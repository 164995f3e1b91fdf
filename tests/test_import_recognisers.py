"""What the importer recognises, sentence by sentence, and its tolerance of OCR damage.

The forms come from the issue and the seed plans. The property at the end is
the importer's main promise: a plan whose diacritics were lost, changed or
misread by OCR yields the same dates as the clean plan.
"""

from __future__ import annotations

import random
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.importer.assemble import NothingToImport, draft_plan
from config.importer.date_phrases import find_dates
from config.importer.document import read_document
from config.importer.folding import fold, make_id, restore
from config.importer.model import Draft
from config.importer.source import SourceText


def dates(text: str) -> list[str]:
    return [p.expr for p in find_dates(SourceText.of(text))]


def test_folding_strips_every_diacritic_and_keeps_the_length() -> None:
    text = "Kỷ niệm 90 năm Ngày truyền thống Đảng bộ tỉnh Lạng Sơn"
    assert fold(text) == "ky niem 90 nam ngay truyen thong dang bo tinh lang son"
    assert len(fold(text)) == len(text)


@pytest.mark.parametrize(("ocr", "restored"), [
    ("Ky ni¢ém 90 nam Ngay truyen thong Pang bo tinh Lang Son",
     "Kỷ niệm 90 năm Ngày truyền thống Đảng bộ tỉnh Lạng Sơn"),
    ("Uy ban nhén dan tinh", "Ủy ban nhân dân tỉnh"),
    ("Fhong Not vu", "Phòng Nội vụ"),
    ("S& Noi vu (Ban Thi dua - Khen thuéng)", "Sở Nội vụ (Ban Thi đua - Khen thưởng)"),
    ("Ngay thanh 13p tinh Bac Kan", "Ngày thành lập tỉnh Bắc Kạn"),
    ("KE HOACH", "KẾ HOẠCH"),
])
def test_the_phrase_dictionary_restores_known_phrases(ocr: str, restored: str) -> None:
    assert restore(ocr) == restored


def test_words_the_dictionary_does_not_know_are_left_as_written() -> None:
    # "Cao Lau" is a commune, not in the dictionary: no guessing at "Cao Lâu"/"Cao Lầu".
    assert restore("UBND xã Cao Lau ban hanh") == "UBND xã Cao Lau ban hành"
    assert restore("ba nam") == "ba nam"  # "Hà Nam"? one letter off and no exact word: no


def test_ids_are_slugs_with_the_usual_abbreviations() -> None:
    assert make_id("Phòng Lao động - Thương binh và Xã hội", suffix="ba-to") == \
        "phong-ldtbxh-ba-to"
    assert make_id("Ủy ban nhân dân tỉnh Bắc Kạn") == "ubnd-tinh-bac-kan"


@pytest.mark.parametrize(("text", "expected"), [
    ("thời gian dự kiến trong tháng 9 năm 2021", ["2021-09"]),
    ("thoi gian dy kién trong thang 9 nam 2021", ["2021-09"]),
    ("thời gian dự kiến trong Quý III năm 2022", ["2022-Q3"]),
    ("thoi gian du kién trong Quy IIT ndm 2022", ["2022-Q3"]),
    ("trong Quý III vào Quý IV năm 2023", ["{start: 2023-Q3, end: 2023-Q4}"]),
    ("trong Quy IIl va Quy IV ndm 2025", ["{start: 2025-Q3, end: 2025-Q4}"]),
    ("trong 6 tháng đầu năm 2023", ["2023-H1"]),
    ("6 thang cuoi nam 2023", ["2023-H2"]),
    ("trong-Quy I\nnam 2024", ["2024-Q1"]),
    ("đến hết ngày 31/5/2023", ["2023-05-31"]),
    ("ngày 25 tháng 12 năm 2019", ["2019-12-25"]),
    ("từ tháng 01/2020", ["2020-01"]),
    ("ngày 31/2/2023 hoặc Quý V năm 2023", []),  # no such day, no such quarter
])
def test_date_phrases(text: str, expected: list[str]) -> None:
    assert dates(text) == expected


def test_the_header_gives_number_type_place_date_and_issuer() -> None:
    doc = read_document(SourceText.of(
        "ỦY BAN NHÂN DÂN\nTỈNH LẠNG SƠN\nSố: 1365/PĐ-UBND\n"
        "Lạng Sơn, ngày 25 tháng 12 năm 2019\n\nPHÁT ĐỘNG\n\n"
        "Phong trào thi đua chào mừng Đại hội\n\n"
        "Ủy ban nhân dân tỉnh Lạng Sơn phát động phong trào thi đua như sau:\n"))
    assert (doc.type_name, doc.code, doc.number, doc.place) == \
        ("Phát động", "PĐ-UBND", "1365", "Lạng Sơn")
    assert doc.date is not None
    assert doc.date.isoformat() == "2019-12-25"
    assert doc.issuer == "UBND tỉnh Lạng Sơn"
    assert doc.title == "Phong trào thi đua chào mừng Đại hội"
    assert doc.describe() == "Phát động số 1365/PĐ-UBND ngày 25/12/2019 của UBND tỉnh Lạng Sơn"


PLAN = """\
UBND HUYỆN BA TƠ
Số: 12/KH-UBND
Ba Tơ, ngày 15 tháng 4 năm 2024

KẾ HOẠCH

Phát động thi đua chào mừng kỷ niệm 52 năm Ngày giải phóng huyện Ba Tơ (30/10/1972-30/10/2024)

I. THỜI GIAN THI ĐUA

Thời gian thi đua thực hiện từ ngày phát động đến hết ngày 31/5/2024.

II. THỜI GIAN THỰC HIỆN MỘT SỐ NHIỆM VỤ TRỌNG TÂM

1. Hằng năm: Ủy ban nhân dân huyện phát động phong trào thi đua trên địa bàn huyện.

2. Năm 2024:

- Tổ chức sơ kết phong trào thi đua của huyện; thời gian dự kiến trong Quý III năm 2024.

- Tổ chức Hội nghị biểu dương điển hình tiên tiến; thời gian dự kiến trong tháng 9 năm 2024.

- Tổng kết phong trào thi đua của các xã; thời gian dự kiến trong Quý III vào Quý IV năm 2024.

3. Năm 2025:

- Báo cáo kết quả thực hiện kế hoạch; thời gian dự kiến trong 6 tháng đầu năm 2025.

III. TỔ CHỨC THỰC HIỆN

Giao Phòng Nội vụ chủ trì, phối hợp với Phòng Văn hóa và Thông tin theo dõi, đôn đốc \
việc thực hiện Kế hoạch này. Các cơ quan gửi hồ sơ đề nghị khen thưởng về UBND huyện \
(qua Phòng Nội vụ) trước ngày 15/6/2024.
"""


def all_dates(draft: Draft) -> list[str]:
    """Every date the draft holds, in order (what must not depend on the diacritics)."""
    assert draft.campaign is not None
    out = [v.yaml for v in draft.values()]
    return [*out, draft.campaign.owner or "", *(m.submit_to or "" for m in draft.milestones)]


def test_the_clean_plan_gives_every_form_of_date() -> None:
    assert all_dates(draft_plan(PLAN, "plan.txt")) == [
        "2024-04-15", "2024-05-31",                   # period: launch = document date
        "{yearly: TODO, from: 2024, until: 2025}",    # "Hằng năm"
        "2024-Q3", "2024-09", "{start: 2024-Q3, end: 2024-Q4}", "2025-H1",
        "2024-06-15",                                 # "gửi hồ sơ … trước ngày 15/6/2024"
        "1972-10-30",                                 # the anniversary's origin
        "phong-noi-vu-ba-to", "", "", "", "", "", "phong-noi-vu-ba-to",
    ]


def test_a_campaign_open_to_the_end_of_an_event_drafts_the_event() -> None:
    draft = draft_plan(
        "KẾ HOẠCH\n\nThi đua chào mừng Đại hội\n\nIV. THỜI GIAN THI ĐUA\n\n"
        "Từ tháng 01/2020 đến khi kết thúc Đại hội Thi đua yêu nước tỉnh lần thứ V.\n",
        "plan.txt")
    assert draft.campaign is not None
    assert draft.campaign.period is not None
    assert draft.campaign.period.start.yaml == "2020-01"
    assert draft.campaign.period.end.yaml == \
        "{after: dai-hoi-thi-dua-yeu-nuoc-tinh-lan-thu-v, days: 0}"
    (event,) = draft.milestones
    assert (event.kind, event.when.yaml) == ("event", "TODO")


def test_year_only_anniversaries_and_a_wrong_number_of_years_are_flagged() -> None:
    draft = draft_plan("Kỷ niệm 70 năm chiến thắng Biên giới (1950 - 2020) và "
                       "kỷ niệm 76 năm Ngày giải phóng tỉnh (24/8/1949-24/8/2024).", "x.txt")
    border, liberation = draft.anniversaries
    assert border.title == "Chiến thắng Biên giới"
    assert (border.origin.yaml, border.origin.todo) == (
        "TODO", "ngày gốc (YYYY-MM-DD): văn bản chỉ ghi năm 1950")
    assert liberation.origin.yaml == "1949-08-24"
    assert liberation.notes == ("TODO: kiểm tra: văn bản ghi 76 năm nhưng 1949 → 2024 là 75 năm",)


def test_dates_that_are_criteria_are_listed_not_drafted() -> None:
    with pytest.raises(NothingToImport):
        draft_plan("Tập thể hoàn thành vượt mức các nhiệm vụ đề ra trong 6 tháng đầu năm 2023.",
                   "criteria.txt")


# --- diacritic damage ----------------------------------------------------------------

# Vietnamese letters by their folded form: a → a à á ả ã ạ ă ằ … ậ (wrong but plausible).
_VARIANTS: dict[str, list[str]] = {"d": ["d", "đ"], "D": ["D", "Đ"]}
for base in "aăâeêioôơuưyAĂÂEÊIOÔƠUƯY":
    for tone in ("", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"):
        letter = unicodedata.normalize("NFC", base + tone)
        key = fold(letter) if base.islower() else fold(letter).upper()
        _VARIANTS.setdefault(key, []).append(letter)
# What OCR made of some words in the seed plans.
OCR_WORDS = {
    "năm": ["nam", "nim", "ndm", "nadm"], "tháng": ["thang", "thdng"],
    "thời gian": ["thoi gian", "thdi gian", "thai gian"], "dự kiến": ["du kién", "dy kién"],
    "Quý III": ["Quy IIT", "Quy IIl"], "từ": ["tir"], "đến": ["dén"], "hết": ["hét"],
    "Hằng năm": ["Hing nim", "Hiang nim"], "Phòng Nội vụ": ["Fhong Not vu", "Phong Noi vu"],
}


def damage(text: str, rng: random.Random) -> str:
    """Lose, change or misread diacritics, and re-wrap long lines, at random."""
    for word, misread in OCR_WORDS.items():
        parts = text.split(word)
        text = parts[0] + "".join(
            (rng.choice(misread) if rng.random() < 0.5 else word) + part for part in parts[1:])
    out = []
    for c in text:
        roll = rng.random()
        if roll < 0.4 and c.isalpha():
            out.append(fold(c) if c.islower() else fold(c).upper())
        elif roll < 0.6 and (variants := _VARIANTS.get(fold(c) if c.islower()
                                                       else fold(c).upper())):
            out.append(rng.choice(variants))
        else:
            out.append(c)
    lines = []
    for line in "".join(out).split("\n"):
        if len(line) > 60 and not line.lstrip().startswith("-"):
            words = line.split(" ")
            line = " ".join(w if rng.random() > 0.1 else f"\n{w}" for w in words)
            line = line.replace(" \n- ", " - ")  # never make a new bullet
        lines.append(line)
    return "\n".join(lines)


# A seed rather than st.randoms(): the damage draws one number per character.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_damaged_and_clean_plans_give_the_same_dates(seed: int) -> None:
    damaged = damage(PLAN, random.Random(seed))
    assert all_dates(draft_plan(damaged, "damaged.txt")) == \
        all_dates(draft_plan(PLAN, "clean.txt")), damaged


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.sampled_from([
    ("thời gian dự kiến trong Quý III vào Quý IV năm 2023", "{start: 2023-Q3, end: 2023-Q4}"),
    ("thời gian dự kiến trong tháng 9 năm 2021", "2021-09"),
    ("trong 6 tháng đầu năm 2023", "2023-H1"),
    ("đến hết ngày 31/5/2023", "2023-05-31"),
]))
def test_damaged_date_phrases_read_the_same(seed: int, case: tuple[str, str]) -> None:
    text, expected = case
    assert dates(damage(text, random.Random(seed))) == [expected]
