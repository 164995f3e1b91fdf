"""Worked examples taken from the plans in shared/seeds, dates computed by hand.

Each test quotes the plan and shows the arithmetic in comments, so a reader can
check the engine against the calendar on the wall.
"""

from __future__ import annotations

from datetime import date, datetime

from tests.engine import UNITS, occurrences

BA_TO = UNITS + """
anniversaries:
  - id: giai-phong-ba-to
    title: Ngày giải phóng huyện Ba Tơ
    origin: 1972-10-30
    units: [all]
campaigns:
  - id: dhdt-ba-to-2024
    title: Phong trào thi đua chào mừng Đại hội đại biểu các dân tộc thiểu số huyện Ba Tơ lần thứ IV
    owner: phong-dan-toc
    units: [all]
    period: {start: 2024-04-15, end: {before: dai-hoi, days: 1}}
    celebrates: giai-phong-ba-to
    milestones:
      - id: dai-hoi
        title: Đại hội đại biểu các dân tộc thiểu số huyện Ba Tơ lần thứ IV
        kind: event
        when: 2024-06-20 08:00
        duration: 4h
      - id: ho-so-khen-thuong
        title: Gửi hồ sơ đề nghị khen thưởng về UBND huyện (qua Phòng Nội vụ)
        when: {before: dai-hoi, days: 15, working_days: true}
        units: [phong-chuyen-mon, ubnd-cac-xa]
        lead: phong-noi-vu
        submit_to: phong-noi-vu
      - id: ky-niem-52-nam
        title: Hoạt động kỷ niệm 52 năm Ngày giải phóng huyện Ba Tơ
        kind: event
        when: {after: anniversary:giai-phong-ba-to:52, days: 0}
"""


def test_ba_to_award_files_are_due_15_working_days_before_the_congress() -> None:
    # KH Ba Tơ V.5: "gửi hồ sơ đề nghị khen thưởng về UBND huyện (qua Phòng Nội vụ)".
    # Counting back from Thu 20/6/2024, its own day not counted: 19,18,17 (3), 14..10 (8),
    # 7..3 (13), Fri 31/5 (14), Thu 30/5 (15). No holiday in between.
    o = occurrences(BA_TO)["dhdt-ba-to-2024.ho-so-khen-thuong"]
    assert o.kind == "deadline"
    assert o.due == date(2024, 5, 30)
    assert o.span.first == o.span.last == date(2024, 5, 30)
    assert o.window is None
    # Recipients: the groups resolved, plus the lead; sorted.
    assert o.units == ("phong-dan-toc", "phong-noi-vu", "ubnd-xa-a", "ubnd-xa-b")
    assert o.lead == "phong-noi-vu"
    assert o.submit_to == "phong-noi-vu"


def test_ba_to_campaign_runs_from_launch_to_the_day_before_the_congress() -> None:
    # IV: "Từ ngày phát động … đến trước thời điểm diễn ra Đại hội": 15/4 → 19/6/2024.
    found = occurrences(BA_TO)
    period = found["dhdt-ba-to-2024.period"]
    assert (period.kind, period.first, period.last) == ("period", date(2024, 4, 15),
                                                        date(2024, 6, 19))
    assert period.lead == "phong-dan-toc"
    assert period.units == ("phong-dan-toc", "phong-noi-vu", "ubnd-huyen", "ubnd-xa-a",
                            "ubnd-xa-b")  # [all] ∪ owner
    congress = found["dhdt-ba-to-2024.dai-hoi"]
    assert congress.span.start_at == datetime(2024, 6, 20, 8, 0)
    assert congress.span.end_at == datetime(2024, 6, 20, 12, 0)


def test_ba_to_52nd_liberation_day_is_referencable_but_not_a_round_event() -> None:
    # III: "kỷ niệm 52 năm Ngày giải phóng huyện Ba Tơ (30/10/1972-30/10/2024)".
    # 52 is not a multiple of `every: 5`, so there is no anniversary occurrence for it,
    # but anniversary:giai-phong-ba-to:52 still names 30/10/2024.
    found = occurrences(BA_TO)
    assert "anniversary.giai-phong-ba-to.52" not in found
    assert found["dhdt-ba-to-2024.ky-niem-52-nam"].first == date(2024, 10, 30)
    fiftieth = found["anniversary.giai-phong-ba-to.50"]
    # 30/10/2022 is a Sunday: anniversaries keep their day.
    assert fiftieth.first == date(2022, 10, 30)
    assert fiftieth.title == "Kỷ niệm 50 năm Ngày giải phóng huyện Ba Tơ (30/10/1972 - 30/10/2022)"
    assert fiftieth.anniversary is not None
    assert fiftieth.anniversary.cls == "tron"
    assert found["anniversary.giai-phong-ba-to.55"].anniversary.cls == "le5"  # type: ignore[union-attr]


CAO_LAU = UNITS + """
anniversaries:
  - id: truyen-thong-dang-bo-lang-son
    title: Ngày truyền thống Đảng bộ tỉnh Lạng Sơn
    title_en: the Traditional Day of the Lang Son Provincial Party Committee
    origin: 1933-06-15
    every: 5
    founding: true
    units: [all]
  - id: loi-keu-goi-thi-dua-ai-quoc
    title: Ngày Chủ tịch Hồ Chí Minh ra Lời kêu gọi thi đua ái quốc
    origin: 1948-06-11
    units: [all]
campaigns:
  - id: thi-dua-90-nam-dang-bo
    title: Phong trào thi đua đặc biệt chào mừng Kỷ niệm 90 năm Ngày truyền thống Đảng bộ tỉnh
    owner: phong-noi-vu
    units: [all]
    period: {start: 2023-03-15, end: 2023-05-31}
    celebrates: truyen-thong-dang-bo-lang-son
    milestones:
      - id: ho-so-khen-thuong
        title: Gửi hồ sơ đề nghị khen thưởng
        when: {after: period.end, days: 3}
"""


def test_cao_lau_90th_anniversary_title_as_the_plan_writes_it() -> None:
    # "Kỷ niệm 90 năm Ngày truyền thống Đảng bộ tỉnh Lạng Sơn (15/6/1933 - 15/6/2023)"
    o = occurrences(CAO_LAU)["anniversary.truyen-thong-dang-bo-lang-son.90"]
    assert o.title == (
        "Kỷ niệm 90 năm Ngày truyền thống Đảng bộ tỉnh Lạng Sơn (15/6/1933 - 15/6/2023)"
    )
    assert o.title_en == (
        "90th anniversary of the Traditional Day of the Lang Son Provincial Party Committee "
        "(15/6/1933 - 15/6/2023)"
    )
    assert (o.kind, o.first, o.all_day) == ("anniversary", date(2023, 6, 15), True)
    assert o.anniversary is not None
    assert (o.anniversary.n, o.anniversary.cls, o.anniversary.founding) == (90, "tron", True)
    # Decree 111/2018: a founding day's ceremony only in năm tròn; 90 is one.
    assert "Năm tròn" in (o.note("vi") or "")
    eighty_fifth = occurrences(CAO_LAU)["anniversary.truyen-thong-dang-bo-lang-son.85"]
    assert "Không phải năm tròn" in (eighty_fifth.note("vi") or "")


def test_cao_lau_75th_anniversary_of_the_call_for_emulation_is_a_le5_year() -> None:
    # "kỷ niệm 75 năm ngày Chủ tịch Hồ Chí Minh ra lời kêu gọi thi đua ái quốc
    #  (11/6/1948 - 11/6/2023)"
    o = occurrences(CAO_LAU)["anniversary.loi-keu-goi-thi-dua-ai-quoc.75"]
    assert o.first == date(2023, 6, 11)  # a Sunday, kept
    assert o.anniversary is not None
    assert o.anniversary.cls == "le5"
    assert o.note("vi") is None  # not a founding day: Decree 111 says nothing


def test_cao_lau_campaign_ends_31_may_and_files_are_due_after() -> None:
    # IV: "từ ngày phát động đến hết ngày 31/5/2023" (a Wednesday).
    found = occurrences(CAO_LAU)
    assert found["thi-dua-90-nam-dang-bo.period"].last == date(2023, 5, 31)
    # 3 days after Wed 31/5 is Sat 3/6: a deadline moves to the next working day, Mon 5/6.
    assert found["thi-dua-90-nam-dang-bo.ho-so-khen-thuong"].due == date(2023, 6, 5)


BAC_KAN = UNITS + """
campaigns:
  - id: ctr-bac-kan-2021-2025
    title: Chương trình hành động thực hiện Chỉ thị 19/CT-TTg giai đoạn 2021-2025
    owner: phong-noi-vu
    units: [all]
    period: {start: 2021-08-16, end: 2025-12-31}
    milestones:
      - {id: dot-100-ngay, title: Phát động đợt thi đua 100 ngày đêm, when: 2021-09}
      - {id: so-ket-2022, title: Sơ kết phong trào văn hóa công sở, when: 2022-Q3}
      - {id: hoi-nghi-cum-2023, title: Hội nghị tổng kết Cụm thi đua, when: 2023-03}
      - {id: so-ket-ntm-2023, title: Sơ kết Nông thôn mới,
         when: {start: 2023-Q3, end: 2023-Q4}}
      - {id: phat-dong-75-nam, title: Phát động đợt thi đua 75 năm giải phóng tỉnh,
         when: 2024-Q1}
      - {id: dai-hoi-thi-dua, title: Đại hội Thi đua yêu nước lần thứ VI, kind: event,
         when: 2025-Q3}
      - {id: tong-ket, title: Tổng kết các phong trào thi đua, when: 2025-H2}
      - {id: phat-dong-hang-nam, title: Phát động thi đua hằng năm,
         when: {yearly: "02-15", from: 2022, until: 2025}}
"""


def test_bac_kan_dated_milestones_fall_due_on_the_last_day_of_their_span() -> None:
    found = occurrences(BAC_KAN)
    due = {uid.split(".")[1]: o.due for uid, o in found.items() if o.kind == "deadline"}
    # "trong tháng 9 năm 2021": due Thu 30/9/2021.
    assert due["dot-100-ngay"] == date(2021, 9, 30)
    # "Quý III năm 2022": Fri 30/9/2022.
    assert due["so-ket-2022"] == date(2022, 9, 30)
    # "tháng 3 năm 2023": Fri 31/3/2023.
    assert due["hoi-nghi-cum-2023"] == date(2023, 3, 31)
    # "Quý III vào Quý IV năm 2023": ends Sun 31/12/2023; Mon 1/1/2024 is New Year's Day,
    # so the deadline moves to Tue 2/1/2024 (Civil Code Art. 148: next working day).
    assert due["so-ket-ntm-2023"] == date(2024, 1, 2)
    # "Quý I năm 2024": Sun 31/3/2024 → Mon 1/4/2024.
    assert due["phat-dong-75-nam"] == date(2024, 4, 1)
    # "6 tháng cuối năm 2025" (H2): Wed 31/12/2025.
    assert due["tong-ket"] == date(2025, 12, 31)


def test_a_deadline_keeps_its_written_span_as_window() -> None:
    o = occurrences(BAC_KAN)["ctr-bac-kan-2021-2025.so-ket-ntm-2023"]
    assert o.window == (date(2023, 7, 1), date(2023, 12, 31))
    assert o.first == o.last == o.due


def test_events_keep_their_span() -> None:
    # "Đại hội Thi đua yêu nước lần thứ VI … trong Quý III năm 2025": an event keeps the quarter.
    o = occurrences(BAC_KAN)["ctr-bac-kan-2021-2025.dai-hoi-thi-dua"]
    assert (o.first, o.last, o.due, o.window) == (date(2025, 7, 1), date(2025, 9, 30), None,
                                                  None)


def test_yearly_milestones_get_one_occurrence_and_uid_per_year() -> None:
    # "Hằng năm: UBND tỉnh phát động …": 15/2 each year, moved off weekends.
    found = occurrences(BAC_KAN)
    yearly = {uid: o.due for uid, o in found.items() if ".phat-dong-hang-nam." in uid}
    assert yearly == {
        "ctr-bac-kan-2021-2025.phat-dong-hang-nam.2022": date(2022, 2, 15),  # Tue
        "ctr-bac-kan-2021-2025.phat-dong-hang-nam.2023": date(2023, 2, 15),  # Wed
        "ctr-bac-kan-2021-2025.phat-dong-hang-nam.2024": date(2024, 2, 15),  # Thu (after Tết)
        "ctr-bac-kan-2021-2025.phat-dong-hang-nam.2025": date(2025, 2, 17),  # Sat → Mon
    }
