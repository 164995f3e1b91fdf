"""The Vietnamese lunisolar calendar (âm lịch).

Office plans are full of lunar dates (Tết, Giỗ Tổ Hùng Vương, rằm tháng Giêng...), so the
scheduler needs to turn them into civil dates. The Chinese calendar (``lunardate``, most
"lunar" libraries) is *not* a substitute: the Vietnamese calendar places new moons and solar
terms in Hanoi time (UTC+7) instead of Beijing time (UTC+8). Whenever a new moon falls between
23:00 and 24:00 Hanoi time, the two calendars start the month on different days, and a shifted
solar term can even move the leap month, putting Tết a whole month apart (1985: 21 January in
Vietnam, 20 February in China).

The algorithm is Hồ Ngọc Đức's (https://www.informatik.uni-leipzig.de/~duc/amlich/), built on
the truncated series of Meeus' "Astronomical Algorithms" (1998). It is the de facto reference
reproduced by Vietnamese calendar sites and apps, so it is transcribed faithfully (same
constants, same rounding, same search order): agreeing with it day for day matters more to
users than a few minutes of astronomical precision. Dates are proleptic Gregorian, as in
:class:`datetime.date`; results are checked for the solar years 1800–2199.
"""

import math
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

__all__ = [
    "LunarDate",
    "NonexistentLunarDate",
    "leap_month",
    "lunar_month_length",
    "lunar_to_solar",
    "solar_to_lunar",
]

# Hours east of UTC of the meridian the calendar is computed for: this single constant is
# what makes the calendar Vietnamese rather than Chinese (8.0).
TIME_ZONE = 7.0

# Julian day number of proleptic Gregorian ordinal 0, so that JDN = date.toordinal() + this.
_ORDINAL_TO_JDN = 1721425

# Julian day of the first new moon of 1900 (k = 0) and the mean synodic month, as used by the
# reference implementation to guess the index k of the new moon near a given day.
_NEW_MOON_EPOCH = 2415021.076998695
_SYNODIC_MONTH = 29.530588853

_DEG = math.pi / 180


@dataclass(frozen=True, order=True)
class LunarDate:
    """A day of the Vietnamese lunar calendar.

    ``leap`` is needed because a leap (nhuận) month repeats the number of the month before it:
    lunar 2023-02-15 and lunar 2023-02-15 (leap) are a month apart.

    The generated ordering compares (year, month, day, leap), so it is chronological except
    across a leap month (day 1 of a leap month sorts before day 2 of the ordinary month it
    follows); sort by :func:`lunar_to_solar` when true chronology matters.
    """

    year: int
    month: int
    day: int
    leap: bool = False  # True for the leap (nhuận) month


class NonexistentLunarDate(ValueError):
    """The lunar date does not exist (e.g. day 30 of a 29-day month, or a missing leap month).

    A ValueError so that callers validating user input can treat it like any other bad value,
    while still being able to tell "no such lunar day" apart from other errors.
    """


# --- Hồ Ngọc Đức's astronomical primitives -------------------------------------------------


def _jdn_from_ymd(yy: int, mm: int, dd: int) -> int:
    """jdFromDate, proleptic Gregorian only.

    The original switches to the Julian calendar before 1582-10-15; Python dates never do, and
    keeping pure arithmetic (rather than ``date``) lets year-boundary helpers look one year past
    ``date.max`` without overflowing.
    """
    a = (14 - mm) // 12
    y = yy + 4800 - a
    m = mm + 12 * a - 3
    return dd + (153 * m + 2) // 5 + 365 * y + y // 4 - y // 100 + y // 400 - 32045


def _new_moon(k: int) -> float:
    """NewMoon: Julian day (UT) of the k-th new moon after the one of 1900-01-01 13:52 UT.

    Meeus' truncated series, kept term for term so that borderline new moons land on the same
    side of midnight as in the reference implementation.
    """
    t = k / 1236.85  # Julian centuries since 1900-01-00.5
    t2 = t * t
    t3 = t2 * t
    jd1 = 2415020.75933 + 29.53058868 * k + 0.0001178 * t2 - 0.000000155 * t3
    jd1 += 0.00033 * math.sin((166.56 + 132.87 * t - 0.009173 * t2) * _DEG)  # mean new moon
    m = 359.2242 + 29.10535608 * k - 0.0000333 * t2 - 0.00000347 * t3  # Sun's mean anomaly
    mpr = 306.0253 + 385.81691806 * k + 0.0107306 * t2 + 0.00001236 * t3  # Moon's mean anomaly
    f = 21.2964 + 390.67050646 * k - 0.0016528 * t2 - 0.00000239 * t3  # Moon's arg. of latitude
    c1 = (0.1734 - 0.000393 * t) * math.sin(m * _DEG) + 0.0021 * math.sin(2 * _DEG * m)
    c1 = c1 - 0.4068 * math.sin(mpr * _DEG) + 0.0161 * math.sin(_DEG * 2 * mpr)
    c1 = c1 - 0.0004 * math.sin(_DEG * 3 * mpr)
    c1 = c1 + 0.0104 * math.sin(_DEG * 2 * f) - 0.0051 * math.sin(_DEG * (m + mpr))
    c1 = c1 - 0.0074 * math.sin(_DEG * (m - mpr)) + 0.0004 * math.sin(_DEG * (2 * f + m))
    c1 = c1 - 0.0004 * math.sin(_DEG * (2 * f - m)) - 0.0006 * math.sin(_DEG * (2 * f + mpr))
    c1 = c1 + 0.0010 * math.sin(_DEG * (2 * f - mpr)) + 0.0005 * math.sin(_DEG * (2 * mpr + m))
    if t < -11:
        deltat = 0.001 + 0.000839 * t + 0.0002261 * t2 - 0.00000845 * t3 - 0.000000081 * t * t3
    else:
        deltat = -0.000278 + 0.000265 * t + 0.000262 * t2
    return jd1 + c1 - deltat


def _sun_longitude(jdn: float) -> float:
    """SunLongitude: the Sun's true longitude in radians, in [0, 2π), at Julian day ``jdn``."""
    t = (jdn - 2451545.0) / 36525  # Julian centuries since 2000-01-01 12:00 UT
    t2 = t * t
    m = 357.52910 + 35999.05030 * t - 0.0001559 * t2 - 0.00000048 * t * t2  # mean anomaly
    l0 = 280.46645 + 36000.76983 * t + 0.0003032 * t2  # mean longitude
    dl = (1.914600 - 0.004817 * t - 0.000014 * t2) * math.sin(_DEG * m)
    dl = dl + (0.019993 - 0.000101 * t) * math.sin(_DEG * 2 * m) + 0.000290 * math.sin(_DEG * 3 * m)
    lon = (l0 + dl) * _DEG
    return lon - math.pi * 2 * math.floor(lon / (math.pi * 2))


def _sun_sector(day_number: int) -> int:
    """getSunLongitude: which 30° sector (0–11, 0 = from the March equinox) the Sun is in.

    Evaluated at local midnight starting the day, because a month "contains" a principal solar
    term only if the Sun enters the next sector during one of the month's civil days in Hanoi.
    """
    return math.floor(_sun_longitude(day_number - 0.5 - TIME_ZONE / 24) / math.pi * 6)


@lru_cache(maxsize=16384)
def _new_moon_day(k: int) -> int:
    """getNewMoonDay: JDN of the Hanoi civil day holding the k-th new moon.

    Memoised because every conversion needs one or two of these and there are only ~12.4 per
    year; the sine series is by far the most expensive thing in this module.
    """
    return math.floor(_new_moon(k) + 0.5 + TIME_ZONE / 24)


@lru_cache(maxsize=2048)
def _lunar_month11(yy: int) -> int:
    """getLunarMonth11: JDN of the first day of lunar month 11 (the winter-solstice month).

    Month 11 is the anchor of the whole calendar: it is the only month whose position is fixed
    by rule, so both conversions count months from it.
    """
    off = _jdn_from_ymd(yy, 12, 31) - 2415021
    k = math.floor(off / _SYNODIC_MONTH)
    nm = _new_moon_day(k)
    if _sun_sector(nm) >= 9:  # Sun already past 270°: that new moon is after the solstice
        nm = _new_moon_day(k - 1)
    return nm


def _new_moon_index(day_number: int) -> int:
    """The k for which ``_new_moon_day(k)`` is (within rounding) ``day_number``."""
    return math.floor((day_number - _NEW_MOON_EPOCH) / _SYNODIC_MONTH + 0.5)


@lru_cache(maxsize=2048)
def _leap_month_offset(a11: int) -> int:
    """getLeapMonthOffset: months after month 11 (starting ``a11``) until the leap month.

    Only meaningful when the next month 11 is 13 months away. The leap month is the first one
    in which the Sun does not change sector, i.e. which contains no principal solar term.
    """
    k = _new_moon_index(a11)
    i = 1  # month 11 itself contains the solstice; start with the month after it
    arc = _sun_sector(_new_moon_day(k + i))
    while True:
        last = arc
        i += 1
        arc = _sun_sector(_new_moon_day(k + i))
        if arc == last or i >= 14:
            return i - 1


def _convert_solar2lunar(day_number: int, yy: int) -> tuple[int, int, int, bool]:
    """convertSolar2Lunar for the day ``day_number`` of solar year ``yy``.

    Returns (day, month, year, leap) as the reference program computes them, with one fix. The
    reference guesses the index k of the month's new moon from the mean synodic month and steps
    back at most once; when a new moon falls just after midnight in Hanoi the guess can be one
    too high twice over, and the reference answers "day 0" of the next month (e.g. 2054-05-07
    becomes 0/4 instead of 30/3). We walk to the right new moon instead, which gives the same
    result everywhere the reference gives a valid day.
    """
    k = math.floor((day_number - _NEW_MOON_EPOCH) / _SYNODIC_MONTH)
    while _new_moon_day(k + 1) <= day_number:
        k += 1
    while _new_moon_day(k) > day_number:
        k -= 1
    month_start = _new_moon_day(k)
    a11 = _lunar_month11(yy)
    b11 = a11
    if a11 >= month_start:
        lunar_year = yy
        a11 = _lunar_month11(yy - 1)
    else:
        lunar_year = yy + 1
        b11 = _lunar_month11(yy + 1)
    lunar_day = day_number - month_start + 1
    diff = (month_start - a11) // 29
    lunar_leap = False
    lunar_month = diff + 11
    if b11 - a11 > 365:
        leap_month_diff = _leap_month_offset(a11)
        if diff >= leap_month_diff:
            lunar_month = diff + 10
            if diff == leap_month_diff:
                lunar_leap = True
    if lunar_month > 12:
        lunar_month -= 12
    if lunar_month >= 11 and diff < 4:
        lunar_year -= 1
    return lunar_day, lunar_month, lunar_year, lunar_leap


def _span_leap_month(a11: int, b11: int) -> int | None:
    """Number of the leap month between month 11 starting ``a11`` and the next one, if any.

    The reference convertLunar2Solar computes ``leapOff - 2`` (mod 12), which names a leap month
    right after month 12 "month 0". That mismatches its own convertSolar2Lunar (which says 12)
    and makes such a month unreachable; we follow convertSolar2Lunar. It does not happen in
    1800–2199, so results there are unaffected.
    """
    if b11 - a11 <= 365:
        return None
    return (_leap_month_offset(a11) - 3) % 12 + 1


@lru_cache(maxsize=1024)
def _year_anchors(year: int) -> tuple[int, int, int, int | None]:
    """Per-lunar-year data: (a11, b11, c11, leap month) of lunar ``year``.

    Months 1–10 of lunar year Y (and any leap month among them) lie between month 11 of
    Y-1 (``a11``) and month 11 of Y (``b11``); months 11 and 12 (and a leap 11 or 12) lie between
    ``b11`` and month 11 of Y+1 (``c11``). Leap months are about three years apart, so a year
    never gets one from both spans (verified for 1790–2214).
    """
    a11 = _lunar_month11(year - 1)
    b11 = _lunar_month11(year)
    c11 = _lunar_month11(year + 1)
    early = _span_leap_month(a11, b11)
    late = _span_leap_month(b11, c11)
    leap: int | None = None
    if early is not None and early <= 10:
        leap = early
    if late is not None and late >= 11:
        leap = late
    return a11, b11, c11, leap


def _month_index(year: int, month: int, leap: bool) -> int:
    """convertLunar2Solar's month search: the k of the new moon starting the given month.

    Raises NonexistentLunarDate for a leap month the year lacks.
    """
    a11, b11, c11, year_leap = _year_anchors(year)
    if month >= 11:
        a11, b11 = b11, c11
    off = (month - 11) % 12
    if b11 - a11 > 365:
        leap_off = _leap_month_offset(a11)
        if leap or off >= leap_off:
            off += 1
    if leap and year_leap != month:
        if year_leap is None:
            reason = f"lunar year {year} has no leap month"
        else:
            reason = f"the leap month of lunar year {year} is {year_leap}, not {month}"
        raise NonexistentLunarDate(
            f"lunar {_format(year, month, 1, leap)} does not exist: {reason}"
        )
    return _new_moon_index(a11) + off


# --- Public API -----------------------------------------------------------------------------


def _format(year: int, month: int, day: int, leap: bool) -> str:
    return f"{year}-{month:02d}-{day:02d}" + (" (leap month)" if leap else "")


def _check_fields(year: int, month: int, day: int, leap: bool) -> None:
    if not 1 <= month <= 12:
        raise NonexistentLunarDate(
            f"lunar {_format(year, month, day, leap)} does not exist: month must be 1..12"
        )
    if not 1 <= day <= 30:
        raise NonexistentLunarDate(
            f"lunar {_format(year, month, day, leap)} does not exist: day must be 1..30"
        )


def solar_to_lunar(d: date) -> LunarDate:
    """Lunar date of the civil (Hanoi) day ``d``."""
    day, month, year, leap = _convert_solar2lunar(d.toordinal() + _ORDINAL_TO_JDN, d.year)
    return LunarDate(year, month, day, leap)


def lunar_to_solar(year: int, month: int, day: int, leap: bool = False) -> date:
    """Civil date of a lunar date, refusing dates that do not exist.

    Refusing (rather than rolling over into the next month, as the reference program silently
    does) matters for plans: "day 30 of month 12" must not quietly become Tết.
    """
    _check_fields(year, month, day, leap)
    k = _month_index(year, month, leap)
    start = _new_moon_day(k)
    length = _new_moon_day(k + 1) - start
    if day > length:
        which = "leap month" if leap else "month"
        raise NonexistentLunarDate(
            f"lunar {_format(year, month, day, leap)} does not exist: "
            f"{which} {month} of {year} has {length} days"
        )
    return date.fromordinal(start + day - 1 - _ORDINAL_TO_JDN)


def lunar_month_length(year: int, month: int, leap: bool = False) -> int:
    """Number of days (29 or 30) in a lunar month; it is decided by the moon, not by a rule."""
    _check_fields(year, month, 1, leap)
    k = _month_index(year, month, leap)
    return _new_moon_day(k + 1) - _new_moon_day(k)


def leap_month(year: int) -> int | None:
    """Number of the month that lunar ``year`` repeats as a leap month, or None.

    The leap month follows the ordinary month of the same number; about 7 years in 19 have one.
    """
    return _year_anchors(year)[3]
