"""Feed rendering (calendars.feeds): the shared-bytes feeds equal what icalendar writes,
SPEC §6 properties, descriptions, alarms, cancellations, and byte-for-byte determinism.

``check_ics`` is the independent check every feed test uses: the strict ``ical`` parser
(not icalendar, which wrote the bytes), CRLF only, lines of at most 75 octets that each
decode as UTF-8 on their own, and a VTIMEZONE for every TZID.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ical.calendar import Calendar as IcalCalendar
from ical.calendar_stream import IcsCalendarStream
from icalendar import Calendar

from calendars.feed_cache import builder_from_occurrences, next_last_modified
from calendars.feed_types import FeedKey
from calendars.feeds import (
    RETENTION,
    FeedBuilder,
    FeedItem,
    FeedOptions,
    StoreRow,
    UnitInfo,
    alarm_triggers,
    build_input,
    naive_feed,
    select_rows,
)
from config.settings import Settings
from scheduler.apply import FIRST_LOAD_CHANGED_AT
from scheduler.expand import Window, expand
from scheduler.occurrences import Occurrence
from tests.engine import UNITS, load

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2024, 6, 1, 9, 0, tzinfo=VN)
SETTINGS = Settings()
OPTIONS = FeedOptions.from_settings(SETTINGS)
_TZID = re.compile(rb";TZID=([^:;]+)")


def check_ics(data: bytes) -> IcalCalendar:
    """The RFC 5545 rules clients trip over, checked on the bytes, then a strict parse."""
    assert data.startswith(b"BEGIN:VCALENDAR\r\n")
    assert data.endswith(b"END:VCALENDAR\r\n")
    assert b"\r" not in data.replace(b"\r\n", b""), "a CR outside CRLF"
    assert b"\n" not in data.replace(b"\r\n", b""), "a LF outside CRLF"
    for line in data[:-2].split(b"\r\n"):
        assert len(line) <= 75, f"line over 75 octets: {line!r}"
        line.decode("utf-8")  # a fold never splits a UTF-8 sequence
    unfolded = data.replace(b"\r\n ", b"").replace(b"\r\n\t", b"")
    calendar = IcsCalendarStream.calendar_from_ics(data.decode("utf-8"))
    zones = {tz.tz_id for tz in calendar.timezones}
    for tzid in set(_TZID.findall(unfolded)):
        assert tzid.decode() in zones, f"TZID {tzid!r} without a VTIMEZONE"
    for event in calendar.events:
        if not isinstance(event.dtstart, datetime):  # all-day: DTEND exclusive, after DTSTART
            assert isinstance(event.dtend, date)
            assert event.dtend > event.dtstart
    return calendar


def unfold(data: bytes) -> str:
    return data.replace(b"\r\n ", b"").decode()


def builder_for(text: str, now: datetime = NOW, options: FeedOptions = OPTIONS,
                **kwargs: object) -> FeedBuilder:
    config = load(text)
    first, last = options.window(now)
    return builder_from_occurrences(config, expand(config, Window(first, last)), options,
                                    now, **kwargs)  # type: ignore[arg-type]


CONFIG = UNITS + """
anniversaries:
  - {id: thanh-lap, title: Ngày thành lập huyện, origin: 1975-10-30, every: 1, units: [all],
     founding: true}
campaigns:
  - id: thi-dua-2024
    title: Phong trào thi đua chào mừng Đại hội lần thứ IV
    document: Kế hoạch số 12/KH-UBND ngày 15/4/2024
    owner: phong-noi-vu
    units: [all]
    period: {start: 2024-04-15, end: {before: dai-hoi, days: 1}}
    celebrates: thanh-lap
    milestones:
      - {id: dai-hoi, title: Đại hội, kind: event, when: 2024-06-20 08:00, duration: 4h,
         location: Hội trường UBND huyện, reminders: [7d, 1d, 2h]}
      - {id: ho-so, title: Gửi hồ sơ đề nghị khen thưởng, when: {before: dai-hoi, days: 15,
         working_days: true}, units: [phong-chuyen-mon, ubnd-cac-xa], lead: phong-noi-vu,
         submit_to: phong-noi-vu, cc: [ubnd-huyen]}
milestones:
  - {id: bao-cao-quy, title: Báo cáo quý, when: {quarterly: end, from: 2024-Q2,
     until: 2024-Q4}, units: [ubnd-xa-a]}
"""


def test_concatenated_feeds_equal_icalendars_own_output() -> None:
    builder = builder_for(CONFIG)
    assert len(builder.plans) == 1 + 1 + 5  # all, the campaign, five units
    for key in builder.plans:
        fast = builder.render(key)
        slow = naive_feed(builder, key)
        assert fast == slow, key
        # And parsed back by icalendar, component by component.
        parsed = Calendar.from_ical(fast)
        reference = Calendar.from_ical(slow)
        assert [(c.name, sorted(c.property_items(recursive=False))) for c in parsed.walk()] == [
            (c.name, sorted(c.property_items(recursive=False))) for c in reference.walk()]
        check_ics(fast)


def test_per_unit_lines_cost_a_description_line_and_match_icalendar() -> None:
    def confirm(o: Occurrence, unit: str | None, language: str) -> list[str]:
        if unit is None or o.kind != "deadline":
            return []
        return [f"Xác nhận hoàn thành: https://mocd.example.vn/confirm/{unit}/{o.uid}"]

    builder = builder_for(CONFIG, extra_lines=confirm)
    for key in builder.plans:
        assert builder.render(key) == naive_feed(builder, key)
    text = unfold(builder.render(FeedKey("unit", "ubnd-xa-a")))
    assert "https://mocd.example.vn/confirm/ubnd-xa-a/thi-dua-2024.ho-so@mocd.local" in text
    assert "/confirm/ubnd-xa-b/" not in text
    # Shared with the unit that has no extra lines: the same event object.
    plain = builder.signature(FeedKey("all"))[3]
    with_lines = builder.signature(FeedKey("unit", "ubnd-xa-a"))[3]
    assert set(map(id, with_lines)) <= set(map(id, plain))


_TEXT = st.text(st.sampled_from("aAờơ\\^,;:N\n -éỹ🙂/xyz0123456789"), max_size=300)


@settings(max_examples=400, deadline=None)
@given(description=_TEXT, extra=_TEXT)
def test_a_description_folded_in_two_pieces_is_icalendars_line(description: str,
                                                                  extra: str) -> None:
    """What a unit's feed does for its own lines (continue the folding of the shared part)
    gives the bytes icalendar writes for the whole text, whatever the text."""
    from calendars.feeds import FoldState, _description_line, escape_text, fold_more

    whole = f"{description}\n{extra}"
    start = fold_more(FoldState("", "", 0), f"DESCRIPTION:{escape_text(description)}")
    assert fold_more(start, escape_text(f"\n{extra}")).line() == _description_line(whole)
    assert start.line() == _description_line(description)


def test_calendar_properties_of_spec_6() -> None:
    builder = builder_for(CONFIG)
    text = unfold(builder.render(FeedKey("unit", "phong-noi-vu")))
    lines = text.split("\r\n")
    assert lines[:5] == ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//mocd//mocd//VI",
                         "CALSCALE:GREGORIAN", "METHOD:PUBLISH"]
    for expected in ("NAME:Phòng Nội vụ", "X-WR-CALNAME:Phòng Nội vụ",
                     "X-WR-TIMEZONE:Asia/Ho_Chi_Minh", "REFRESH-INTERVAL;VALUE=DURATION:PT6H",
                     "X-PUBLISHED-TTL:PT6H", "BEGIN:VTIMEZONE", "TZID:Asia/Ho_Chi_Minh"):
        assert expected in lines
    campaign = unfold(builder.render(FeedKey("campaign", "thi-dua-2024")))
    assert "X-WR-CALNAME:Phong trào thi đua chào mừng Đại hội lần thứ IV" in campaign
    everything = unfold(builder.render(FeedKey("all")))
    assert "X-WR-CALNAME:Tất cả các mốc (mocd)" in everything
    en = builder_for(CONFIG, options=replace(OPTIONS, language="en", refresh=timedelta(days=1)))
    assert "X-WR-CALNAME:All milestones (mocd)" in unfold(en.render(FeedKey("all")))
    assert "REFRESH-INTERVAL;VALUE=DURATION:P1D" in unfold(en.render(FeedKey("all")))


def event_block(text: str, uid: str) -> str:
    for block in text.split("BEGIN:VEVENT")[1:]:
        if f"UID:{uid}\r\n" in block:
            return block.split("END:VEVENT")[0]
    raise AssertionError(f"{uid} not in the feed")


def test_event_properties_and_description() -> None:
    builder = builder_for(CONFIG)
    text = unfold(builder.render(FeedKey("unit", "ubnd-xa-b")))
    ho_so = event_block(text, "thi-dua-2024.ho-so@mocd.local")
    for expected in ("DTSTART;VALUE=DATE:20240530", "DTEND;VALUE=DATE:20240531",
                     "DTSTAMP:20000101T000000Z", "LAST-MODIFIED:20000101T000000Z",
                     "SEQUENCE:0", "STATUS:CONFIRMED", "CATEGORIES:deadline"):
        assert expected + "\r\n" in ho_so
    description = re.search(r"DESCRIPTION:(.*)\r\n", ho_so)
    assert description is not None
    assert description[1].split("\\n") == [
        "Thuộc: Phong trào thi đua chào mừng Đại hội lần thứ IV",
        "Văn bản: Kế hoạch số 12/KH-UBND ngày 15/4/2024",
        "Đơn vị chủ trì: Phòng Nội vụ",
        "Gửi về: Phòng Nội vụ",
        "Đơn vị thực hiện: Phòng Dân tộc\\, Phòng Nội vụ\\, UBND xã A\\, UBND xã B",
        "Chào mừng: Kỷ niệm 49 năm Ngày thành lập huyện (30/10/1975 - 30/10/2024)",
    ]
    assert "VALARM" not in text  # feeds.alarms is off by default
    dai_hoi = event_block(text, "thi-dua-2024.dai-hoi@mocd.local")
    assert "DTSTART;TZID=Asia/Ho_Chi_Minh:20240620T080000\r\n" in dai_hoi
    assert "DTEND;TZID=Asia/Ho_Chi_Minh:20240620T120000\r\n" in dai_hoi
    assert "LOCATION:Hội trường UBND huyện\r\n" in dai_hoi
    anniversary = event_block(text, "anniversary.thanh-lap.49@mocd.local")
    assert "CATEGORIES:anniversary" in anniversary
    assert "không tổ chức lễ kỷ niệm" in anniversary  # Decree 111: not a round year


def test_cc_units_see_the_item_and_english_units_read_english() -> None:
    text = CONFIG.replace("{id: ubnd-huyen, name: UBND huyện,",
                          "{id: ubnd-huyen, name: UBND huyện, language: en,")
    builder = builder_for(text)
    feed = unfold(builder.render(FeedKey("unit", "ubnd-huyen")))
    ho_so = event_block(feed, "thi-dua-2024.ho-so@mocd.local")  # as cc
    assert "Part of: Phong trào thi đua" in ho_so
    assert "Submit to: Phòng Nội vụ" in ho_so
    assert "49th anniversary of Ngày thành lập huyện" in feed
    assert builder.plans[FeedKey("unit", "ubnd-huyen")].language == "en"


def test_the_campaign_feed_has_the_anniversary_it_celebrates() -> None:
    builder = builder_for(CONFIG)
    uids = [i.occurrence.uid for i in builder.plans[FeedKey("campaign", "thi-dua-2024")].items]
    # The first anniversary on or after the campaign's start (not the 48th, not the 50th).
    assert uids == ["thi-dua-2024.period@mocd.local", "thi-dua-2024.ho-so@mocd.local",
                    "thi-dua-2024.dai-hoi@mocd.local", "anniversary.thanh-lap.49@mocd.local"]


def test_units_beyond_twelve_are_counted_not_named() -> None:
    many = "units:\n" + "".join(f"  - {{id: xa-{i:02d}, name: UBND xã số {i}}}\n"
                                for i in range(30))
    text = many + """
milestones:
  - {id: x, title: Báo cáo, when: 2024-06-28, units: [all]}
"""
    builder = builder_for(text)
    feed = unfold(builder.render(FeedKey("unit", "xa-29")))
    assert "UBND xã số 10\\, UBND xã số 11 (+18 đơn vị khác)" in feed
    assert "UBND xã số 12" not in feed


def test_alarms_only_with_feeds_alarms_mirroring_the_reminders() -> None:
    alarms = FeedOptions.from_settings(Settings(feeds={"alarms": True}))
    builder = builder_for(CONFIG, options=alarms)
    text = unfold(builder.render(FeedKey("unit", "phong-noi-vu")))
    dai_hoi = event_block(text, "thi-dua-2024.dai-hoi@mocd.local")
    # 7d and 1d at 07:30 before an 08:00 start, 2h before the start.
    assert re.findall(r"TRIGGER:(.*)\r\n", dai_hoi) == ["-P7DT30M", "-P1DT30M", "-PT2H"]
    assert dai_hoi.count("ACTION:DISPLAY") == 3
    ho_so = event_block(text, "thi-dua-2024.ho-so@mocd.local")  # deadline defaults 14d 3d 1d 0d
    assert re.findall(r"TRIGGER:(.*)\r\n", ho_so) == [
        "-P13DT16H30M", "-P2DT16H30M", "-PT16H30M", "PT7H30M"]
    check_ics(builder.render(FeedKey("unit", "phong-noi-vu")))
    for key in builder.plans:
        assert builder.render(key) == naive_feed(builder, key)


def test_working_day_alarm_offsets_count_monday_to_friday() -> None:
    (o,) = expand(load(UNITS + """
milestones:
  - {id: x, title: X, when: 2024-06-03, units: [ubnd-huyen], reminders: [3wd]}
"""), Window(date(2024, 1, 1), date(2024, 12, 31)))
    # Monday 3 June: 3 working days before is Wednesday 29 May, 07:30.
    assert alarm_triggers(o, OPTIONS) == [datetime(2024, 5, 29, 7, 30) - datetime(2024, 6, 3)]


# -- cancellations, removals and the window ------------------------------------------------


def rows_and_items(now: datetime, **state: object) -> tuple[FeedBuilder, StoreRow]:
    config = load(UNITS + """
milestones:
  - {id: x, title: Họp, when: 2024-06-20, units: [ubnd-huyen]}
""")
    (o,) = expand(config, Window(date(2024, 1, 1), date(2024, 12, 31)))
    row = StoreRow(o.uid, o.kind, None, o.first, o.last, o.cancelled, 0,
                   FIRST_LOAD_CHANGED_AT)
    row = replace(row, **state)  # type: ignore[arg-type]
    if row.cancelled:
        o = replace(o, cancelled=True)
    selection = select_rows([row], now, OPTIONS)
    units = [UnitInfo(u, s.name, s.language) for u, s in config.units.items()]
    builder = FeedBuilder(build_input(selection, {o.uid: o}, units), OPTIONS)
    return builder, row


@pytest.mark.parametrize("state", ["removed", "cancelled"])
def test_cancelled_and_removed_items_stay_30_days_as_cancelled(state: str) -> None:
    changed = datetime(2024, 6, 5, 10, 0, tzinfo=UTC)
    facts: dict[str, object] = {"sequence": 3, "changed_at": changed}
    facts["removed_at" if state == "removed" else "cancelled"] = (
        changed if state == "removed" else True)
    for now, shown in ((changed + timedelta(days=1), True),
                       (changed + RETENTION - timedelta(seconds=1), True),
                       (changed + RETENTION, False)):
        builder, _ = rows_and_items(now, **facts)
        text = unfold(builder.render(FeedKey("unit", "ubnd-huyen")))
        assert ("UID:milestone.x@mocd.local" in text) is shown, now
        if shown:
            event = event_block(text, "milestone.x@mocd.local")
            assert "STATUS:CANCELLED\r\n" in event
            assert "SEQUENCE:3\r\n" in event
            assert "DTSTAMP:20240605T100000Z\r\n" in event
            assert "LAST-MODIFIED:20240605T100000Z\r\n" in event
            check_ics(builder.render(FeedKey("unit", "ubnd-huyen")))


def test_the_window_is_the_agendas() -> None:
    builder, _ = rows_and_items(datetime(2025, 6, 20, 12, tzinfo=VN))  # 365 days later
    assert len(builder.plans[FeedKey("all")].items) == 1
    builder, _ = rows_and_items(datetime(2025, 6, 21, 12, tzinfo=VN))
    assert builder.plans[FeedKey("all")].items == ()


def test_last_modified_never_moves_backwards() -> None:
    t0 = datetime(2024, 6, 1, tzinfo=UTC)
    t1 = t0 + timedelta(days=3)
    now = t1 + timedelta(days=40)
    assert next_last_modified(None, '"a"', t0, now) == t0
    assert next_last_modified(('"a"', t1), '"a"', t0, now) == t1  # same bytes: unchanged
    assert next_last_modified(('"a"', t0), '"b"', t1, now) == t1  # a newer event
    # The newest event left the feed: the rest is older, the feed changed now.
    assert next_last_modified(('"a"', t1), '"b"', t0, now) == now
    # A clock behind the stored date still moves it forward.
    assert next_last_modified(('"a"', now), '"b"', t0, t1) == now + timedelta(seconds=1)


# -- determinism on random configs --------------------------------------------------------

TEXT = st.text(alphabet="aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậỳỷỹýỵ ,;:\\\"'<>&\n\r\t…🙂",
               min_size=1, max_size=90)
TITLE = TEXT.filter(str.strip)  # titles and names must not be blank


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # JSON strings are YAML double-quoted ones


@st.composite
def configs(draw: st.DrawFn) -> str:
    """A small config: units (some English), milestones of every kind, timed or not."""
    n_units = draw(st.integers(1, 4))
    units = "units:\n" + "".join(
        f"  - {{id: u{i}, name: {_quote(draw(TITLE))}"
        + (", language: en" if draw(st.booleans()) else "") + "}\n" for i in range(n_units))
    milestones = []
    for i in range(draw(st.integers(1, 5))):
        day = draw(st.dates(date(2023, 7, 1), date(2026, 6, 30)))
        kind = draw(st.sampled_from(["deadline", "event", "period"]))
        timed = kind == "event" and draw(st.booleans())
        when = f"{day.isoformat()} {draw(st.integers(6, 17)):02d}:00" if timed else (
            day.isoformat())
        chosen = draw(st.lists(st.integers(0, n_units - 1), min_size=1, max_size=n_units,
                               unique=True))
        fields = [f"id: m{i}", f"title: {_quote(draw(TITLE))}", f"kind: {kind}",
                  f"when: {when}", f"units: [{', '.join(f'u{u}' for u in chosen)}]"]
        if draw(st.booleans()):
            fields.append(f"description: {_quote(draw(TEXT))}")
        if draw(st.booleans()):
            fields.append(f"location: {_quote(draw(TEXT))}")
        milestones.append("      - {" + ", ".join(fields) + "}\n")
    return (units + "campaigns:\n  - id: c\n"
            f"    title: {_quote(draw(TITLE))}\n"
            f"    document: {_quote(draw(TEXT))}\n"
            "    units: [u0]\n    milestones:\n" + "".join(milestones))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.booleans())
def test_random_configs_render_identically_twice_and_as_icalendar(text: str,
                                                                  alarms: bool) -> None:
    options = replace(OPTIONS, alarms=alarms)
    first = builder_for(text, options=options)
    second = builder_for(text, options=options)
    for key in first.plans:
        data = first.render(key)
        assert data == second.render(key)
        assert data == naive_feed(first, key)
        check_ics(data)


def test_two_renders_of_the_same_state_are_byte_identical_across_caches() -> None:
    one = builder_for(CONFIG)
    two = builder_for(CONFIG, now=NOW + timedelta(hours=5))  # later, the same day
    assert all(one.render(k) == two.render(k) for k in one.plans)


def test_text_that_utf_8_cannot_encode_is_dropped_not_fatal() -> None:
    text = UNITS + r"""
milestones:
  - {id: x, title: "Họp \ud83d mặt", when: 2024-06-28, units: [ubnd-huyen]}
"""
    feed = builder_for(text).render(FeedKey("unit", "ubnd-huyen"))
    check_ics(feed)
    assert "SUMMARY:Họp \ufffd mặt\r\n" in unfold(feed)  # the loader: U+FFFD


def test_feed_items_keep_their_store_state() -> None:
    item = FeedItem(next(iter(expand(load(CONFIG), Window(date(2024, 1, 1),
                                                           date(2024, 12, 31))))),
                    2, datetime(2024, 6, 1, 2, 3, 4, 999, tzinfo=VN), removed=True)
    assert item.cancelled
    assert item.stamp == datetime(2024, 5, 31, 19, 3, 4, tzinfo=UTC)
