"""How dates are written for people: Vietnamese (``Thứ Sáu, 07/6/2023``) and English."""

from __future__ import annotations

from datetime import date

WEEKDAYS_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)  # fmt: skip


def english_month(month: int) -> str:
    return _MONTHS_EN[month - 1]


def short_date(d: date) -> str:
    """``15/6/1933``: day and month without leading zeros, as the plans write them."""
    return f"{d.day}/{d.month}/{d.year}"


def vi_date(d: date) -> str:
    """``07/6/2023``: the day padded, the month not (the form of SPEC §5)."""
    return f"{d.day:02d}/{d.month}/{d.year}"


def vi_long_date(d: date) -> str:
    """``Thứ Sáu, 07/6/2023``."""
    return f"{WEEKDAYS_VI[d.weekday()]}, {vi_date(d)}"


def en_long_date(d: date) -> str:
    """``Friday, 7 June 2023``."""
    return f"{WEEKDAYS_EN[d.weekday()]}, {d.day} {english_month(d.month)} {d.year}"


def long_date(d: date, language: str) -> str:
    return vi_long_date(d) if language == "vi" else en_long_date(d)


def month_heading(year: int, month: int, language: str) -> str:
    return f"Tháng {month}/{year}" if language == "vi" else f"{english_month(month)} {year}"


def ordinal(n: int) -> str:
    """English ordinal: 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 22nd, 111th."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
