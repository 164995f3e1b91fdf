"""Round anniversaries (SPEC §4.2): dates, titles and the Decree 145/111 rules.

Decree 145/2013/NĐ-CP Art. 3 classes an anniversary year as *năm tròn* (N ends
in 0), *năm lẻ 5* (N ends in 5) or other. Decree 111/2018/NĐ-CP allows a
ceremony (lễ kỷ niệm) for the founding day of a ministry, sector or province
only in năm tròn; anniversaries marked ``founding: true`` carry a note saying
whether this year's may have one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Literal

from scheduler.dates import anniversary_date
from scheduler.lunar import LunarDate, lunar_month_length, lunar_to_solar
from scheduler.vietnamese import ordinal, short_date

AnniversaryClass = Literal["tron", "le5", "khac"]
Origin = date | LunarDate


def decree_145_class(n: int) -> AnniversaryClass:
    if n % 10 == 0:
        return "tron"
    if n % 10 == 5:
        return "le5"
    return "khac"


def lunar_yearly(year: int, month: int, day: int) -> date:
    """Lunar ``month/day`` of lunar ``year`` as a solar date.

    Day 30 of a month that has only 29 days that year falls on the 29th, the
    month's last day — the way families keep a giỗ on a short month.
    """
    return lunar_to_solar(year, month, min(day, lunar_month_length(year, month)))


def origin_date(origin: Origin) -> date:
    """The solar date of the origin (a lunar origin converted once)."""
    if isinstance(origin, LunarDate):
        return lunar_to_solar(origin.year, origin.month, origin.day, origin.leap)
    return origin


def anniversary_day(origin: Origin, n: int) -> date:
    """The day of the N-th anniversary; lunar origins recur on their lunar month/day."""
    if isinstance(origin, LunarDate):
        return lunar_yearly(origin.year + n, origin.month, origin.day)
    return anniversary_date(origin, n)


def anniversary_numbers(origin: Origin, every: int, first: date, last: date) -> Iterator[int]:
    """The N (multiples of ``every``) whose anniversary falls within ``first..last``.

    Linear in the number of anniversaries, not in the days of the window.
    """
    start_year = origin.year
    low = max(1, first.year - start_year - 1)
    high = min(last.year + 1, 9999) - start_year
    n = ((low + every - 1) // every) * every
    while n <= high:
        try:
            day = anniversary_day(origin, n)
        except (ValueError, OverflowError):  # a lunar date spilling past 9999-12-31
            return
        if n >= 1 and first <= day <= last:
            yield n
        n += every


def title_vi(title: str, n: int, origin: date, day: date) -> str:
    """``Kỷ niệm 90 năm Ngày truyền thống … (15/6/1933 - 15/6/2023)``."""
    return f"Kỷ niệm {n} năm {title} ({short_date(origin)} - {short_date(day)})"


def title_en(title: str, n: int, origin: date, day: date) -> str:
    """``90th anniversary of … (15/6/1933 - 15/6/2023)``."""
    return f"{ordinal(n)} anniversary of {title} ({short_date(origin)} - {short_date(day)})"


def decree_111_note(cls: AnniversaryClass, language: str) -> str:
    """What a founding-day anniversary may hold this year under Decree 111/2018/NĐ-CP."""
    if language == "vi":
        if cls == "tron":
            return ("Năm tròn: được tổ chức lễ kỷ niệm ngày thành lập "
                    "(Nghị định 111/2018/NĐ-CP).")
        return ("Không phải năm tròn: không tổ chức lễ kỷ niệm ngày thành lập "
                "(Nghị định 111/2018/NĐ-CP chỉ cho phép vào năm tròn).")
    if cls == "tron":
        return "Round year: a founding-day ceremony may be held (Decree 111/2018/ND-CP)."
    return ("Not a round year: no founding-day ceremony "
            "(Decree 111/2018/ND-CP allows one only in round years).")
