"""FeedCache on a real store (SQLite file, and PostgreSQL when MOCD_TEST_POSTGRES_URL is
set): apply → edit → apply → refresh. UIDs stay, SEQUENCE rises, cancellations stay 30
days, Last-Modified never moves backwards, only changed feeds are re-rendered."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from calendars import feed_cache
from calendars.feed_cache import (
    GZIP_LEVEL,
    FeedCache,
    builder_from_database,
    builder_from_occurrences,
)
from calendars.feed_types import FeedKey, RenderedFeed
from calendars.feeds import FeedOptions
from config.settings import Settings
from scheduler.apply import FIRST_LOAD_CHANGED_AT, ApplyResult, apply_revision
from scheduler.database import transaction
from scheduler.expand import Window, expand
from scheduler.models import (
    ConfigRevision,
    FeedState,
    OutboxRow,
    StoredOccurrence,
    Unit,
)
from tests.engine import UNITS, load
from tests.test_feeds_render import check_ics, event_block, unfold

VN = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=VN)
SETTINGS = Settings()
WINDOW = Window(date(2023, 1, 1), date(2026, 12, 31))


def config_text(ho_so: str = "2024-05-30", bao_cao_units: str = "[ubnd-cac-xa]",
                extra: str = "") -> str:
    return UNITS + f"""
milestones:
  - {{id: ho-so, title: Gửi hồ sơ, when: {ho_so}, units: [phong-chuyen-mon]}}
  - {{id: bao-cao, title: Báo cáo, when: 2024-06-28, units: {bao_cao_units}}}
  - {{id: hop, title: Họp giao ban, kind: event, when: 2024-06-10 08:00, units: [ubnd-huyen]}}
{extra}"""


def apply(factory: sessionmaker[Session], text: str, now: datetime) -> ApplyResult:
    config = load(text)
    return apply_revision(factory, config, expand(config, WINDOW), [], settings=SETTINGS,
                          now=now, window=now.isoformat())


def feed(cache: FeedCache, kind: str, ident: str = "all") -> RenderedFeed:
    found = cache.get(FeedKey(kind, ident))  # type: ignore[arg-type]
    assert found is not None
    return found


def text_of(cache: FeedCache, unit: str) -> str:
    return unfold(feed(cache, "unit", unit).body)


def test_apply_edit_apply_keeps_uids_and_raises_sequence(factory: sessionmaker[Session]) -> None:
    apply(factory, config_text(), T0)
    cache = FeedCache()
    report = cache.refresh(factory, SETTINGS, T0)
    assert (report.feeds, report.rendered, report.changed) == (6, 6, 6)  # all + 5 units
    before = {k: cache.get(k) for k in cache.feeds}
    event = event_block(text_of(cache, "phong-noi-vu"), "milestone.ho-so@mocd.local")
    assert "SEQUENCE:0\r\n" in event
    assert "DTSTAMP:20000101T000000Z\r\n" in event
    assert feed(cache, "unit", "phong-noi-vu").last_modified == FIRST_LOAD_CHANGED_AT

    t1 = T0 + timedelta(days=2, minutes=7, microseconds=5)
    apply(factory, config_text(ho_so="2024-06-04"), t1)
    report = cache.refresh(factory, SETTINGS, t1)
    # ho-so is in all and in the two phòng's feeds: only those are re-rendered.
    assert (report.rendered, report.changed, report.events_rendered,
            report.occurrences_loaded) == (3, 3, 1, 1)
    for key in (FeedKey("unit", "ubnd-xa-a"), FeedKey("unit", "ubnd-huyen")):
        assert cache.get(key) is before[key]
    event = event_block(text_of(cache, "phong-noi-vu"), "milestone.ho-so@mocd.local")
    assert "UID:milestone.ho-so@mocd.local\r\n" in event
    assert "SEQUENCE:1\r\n" in event
    assert "DTSTART;VALUE=DATE:20240604\r\n" in event
    stamp = t1.astimezone(UTC).replace(microsecond=0)
    assert f"DTSTAMP:{stamp:%Y%m%dT%H%M%SZ}\r\n" in event
    assert f"LAST-MODIFIED:{stamp:%Y%m%dT%H%M%SZ}\r\n" in event
    assert feed(cache, "unit", "phong-noi-vu").last_modified == stamp
    assert feed(cache, "unit", "ubnd-huyen").last_modified == FIRST_LOAD_CHANGED_AT

    # Nothing changed: nothing rendered, the same objects served.
    same = {k: cache.get(k) for k in cache.feeds}
    report = cache.refresh(factory, SETTINGS, t1 + timedelta(hours=1))
    assert (report.rendered, report.events_rendered, report.occurrences_loaded) == (0, 0, 0)
    assert all(cache.get(k) is v for k, v in same.items())


def test_rendered_feeds_are_consistent_and_persisted(factory: sessionmaker[Session]) -> None:
    apply(factory, config_text(), T0)
    cache = FeedCache()
    cache.refresh(factory, SETTINGS, T0)
    for key, rendered in cache.feeds.items():
        assert gzip.decompress(rendered.gzip) == rendered.body
        assert rendered.gzip[4:8] == b"\0\0\0\0"  # mtime 0: equal bodies, equal bytes
        assert rendered.gzip == gzip.compress(rendered.body, compresslevel=GZIP_LEVEL, mtime=0)
        assert rendered.etag == f'"{hashlib.sha256(rendered.body).hexdigest()}"'
        check_ics(rendered.body)
        assert key.kind != "unit" or rendered.body == builder_from_database(
            factory, SETTINGS, T0).render(key)
    with factory() as session:
        states = {s.key: s for s in session.scalars(select(FeedState))}
    assert set(states) == {k.name for k in cache.feeds}
    state = states["unit:phong-noi-vu"]
    served = feed(cache, "unit", "phong-noi-vu")
    assert (state.etag, state.last_modified, state.size) == (
        served.etag, served.last_modified, len(served.body))
    # A restart serves the same bytes with the same validators.
    again = FeedCache()
    again.refresh(factory, SETTINGS, T0 + timedelta(days=1))
    assert again.feeds == cache.feeds


def test_removed_and_cancelled_stay_30_days_and_last_modified_moves_forward(
        factory: sessionmaker[Session]) -> None:
    apply(factory, config_text(), T0)
    cache = FeedCache()
    cache.refresh(factory, SETTINGS, T0)
    t1 = T0 + timedelta(days=1)
    text = config_text().replace(
        "  - {id: hop, title: Họp giao ban, kind: event, when: 2024-06-10 08:00, "
        "units: [ubnd-huyen]}\n", "")
    text = text.replace("units: [ubnd-cac-xa]}", "units: [ubnd-cac-xa], cancelled: true}")
    apply(factory, text, t1)
    cache.refresh(factory, SETTINGS, t1)
    hop = event_block(text_of(cache, "ubnd-huyen"), "milestone.hop@mocd.local")
    bao_cao = event_block(text_of(cache, "ubnd-xa-a"), "milestone.bao-cao@mocd.local")
    for event in (hop, bao_cao):
        assert "STATUS:CANCELLED\r\n" in event
        assert "SEQUENCE:1\r\n" in event
    lm = feed(cache, "unit", "ubnd-huyen").last_modified
    assert lm == t1.astimezone(UTC)

    later = t1 + timedelta(days=29, hours=23)
    cache.refresh(factory, SETTINGS, later)
    assert "milestone.hop@mocd.local" in text_of(cache, "ubnd-huyen")
    assert feed(cache, "unit", "ubnd-huyen").last_modified == lm

    gone = t1 + timedelta(days=30, minutes=1)
    report = cache.refresh(factory, SETTINGS, gone)
    assert "milestone.hop@mocd.local" not in text_of(cache, "ubnd-huyen")
    assert "milestone.bao-cao@mocd.local" not in text_of(cache, "ubnd-xa-a")
    assert report.changed == 4  # all, ubnd-huyen, ubnd-xa-a, ubnd-xa-b
    # The feed is now empty (no event newer than before), yet its date moved forward.
    moved = feed(cache, "unit", "ubnd-huyen").last_modified
    assert moved == gone.astimezone(UTC).replace(microsecond=0) > lm
    # And a new cache (a restart) keeps it: feed_state remembers.
    restarted = FeedCache()
    restarted.refresh(factory, SETTINGS, gone + timedelta(hours=1))
    assert feed(restarted, "unit", "ubnd-huyen").last_modified == moved


def test_an_event_leaving_a_feed_never_moves_last_modified_back(
        factory: sessionmaker[Session]) -> None:
    apply(factory, config_text(bao_cao_units="[ubnd-xa-a]"), T0)
    t1 = T0 + timedelta(days=1)
    apply(factory, config_text(bao_cao_units="[ubnd-xa-a, ubnd-xa-b]"), t1)  # joins
    cache = FeedCache()
    cache.refresh(factory, SETTINGS, t1)
    before = feed(cache, "unit", "ubnd-xa-b").last_modified
    assert before == t1.astimezone(UTC)
    t2 = t1 + timedelta(days=1)
    apply(factory, config_text(bao_cao_units="[ubnd-xa-a]"), t2)  # leaves xã B's feed
    cache.refresh(factory, SETTINGS, t2)
    assert "bao-cao" not in text_of(cache, "ubnd-xa-b")
    assert feed(cache, "unit", "ubnd-xa-b").last_modified > before


def test_alarms_only_with_feeds_alarms(factory: sessionmaker[Session]) -> None:
    apply(factory, config_text(), T0)
    plain, alarms = FeedCache(), FeedCache()
    plain.refresh(factory, SETTINGS, T0)
    alarms.refresh(factory, Settings(feeds={"alarms": True}), T0)
    assert "BEGIN:VALARM" not in text_of(plain, "phong-noi-vu")
    assert text_of(alarms, "phong-noi-vu").count("BEGIN:VALARM") == 4  # 14d 3d 1d 0d
    check_ics(feed(alarms, "unit", "phong-noi-vu").body)


def test_readers_never_see_a_half_refreshed_cache(factory: sessionmaker[Session],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh in a worker thread, readers in this one: every feed they get is whole
    (its ETag is its body's), and no feed is ever missing, also between the interim swaps
    a big refresh makes (here after every feed)."""
    monkeypatch.setattr(feed_cache, "_BATCH", 1)
    monkeypatch.setattr(feed_cache, "_PUBLISH_EVERY", 1)
    apply(factory, config_text(), T0)
    cache = FeedCache()
    cache.refresh(factory, SETTINGS, T0)
    keys = set(cache.feeds)
    done = threading.Event()
    seen: set[tuple[str, str]] = set()

    def refresh() -> None:
        try:
            for i in range(6):
                now = T0 + timedelta(days=1 + i)
                apply(factory, config_text(ho_so=f"2024-06-{4 + i:02d}"), now)
                cache.refresh(factory, SETTINGS, now)
        finally:
            done.set()

    worker = threading.Thread(target=refresh)
    worker.start()
    while not done.is_set():
        for key in keys:
            rendered = cache.get(key)
            assert rendered is not None, key
            assert rendered.etag == f'"{hashlib.sha256(rendered.body).hexdigest()}"'
            seen.add((key.name, rendered.etag))
    worker.join()
    assert len(seen) > len(keys)  # the readers did see new versions land


# -- the property: random configs, apply → edit → apply ------------------------------------


def _reset(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        for model in (OutboxRow, FeedState, StoredOccurrence, Unit, ConfigRevision):
            session.execute(delete(model))


@st.composite
def moves(draw: st.DrawFn) -> tuple[str, int, int]:
    """Milestones on random days (some timed), and one to move by a non-zero delta."""
    count = draw(st.integers(1, 4))
    lines = []
    for i in range(count):
        day = draw(st.dates(date(2024, 1, 1), date(2025, 12, 31)))
        hour = draw(st.one_of(st.none(), st.integers(7, 16)))
        when = day.isoformat() + ("" if hour is None else f" {hour:02d}:00")
        kind = "event" if hour is not None else draw(st.sampled_from(["deadline", "event"]))
        group = draw(st.sampled_from(["all", "phong-chuyen-mon", "ubnd-cac-xa"]))
        lines.append(f"  - {{id: m{i}, title: {json.dumps(f'Mốc số {i}', ensure_ascii=False)},"
                     f" kind: {kind}, when: {when}, on_non_working_day: keep,"
                     f" units: [{group}]}}\n")
    moved = draw(st.integers(0, count - 1))
    delta = draw(st.integers(-40, 40).filter(bool))
    return UNITS + "milestones:\n" + "".join(lines), moved, delta


def _move(text: str, index: int, delta: int) -> str:
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith(f"  - {{id: m{index},"):
            when = line.split("when: ")[1].split(",")[0]
            day = date.fromisoformat(when[:10]) + timedelta(days=delta)
            line = line.replace(f"when: {when[:10]}", f"when: {day.isoformat()}")
        out.append(line)
    return "".join(out)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(moves())
def test_random_configs_render_the_same_bytes_and_a_move_raises_sequence(
        factory: sessionmaker[Session], case: tuple[str, int, int]) -> None:
    text, index, delta = case
    _reset(factory)  # the store fixture is shared by the examples: start empty each time
    apply(factory, text, T0)
    first = builder_from_database(factory, SETTINGS, T0)
    again = builder_from_database(factory, SETTINGS, T0)
    config = load(text)
    options = FeedOptions.from_settings(SETTINGS)
    alone = builder_from_occurrences(config, expand(config, WINDOW), options, T0)
    for key in first.plans:
        assert first.render(key) == again.render(key) == alone.render(key)
    uid = f"milestone.m{index}@mocd.local"
    t1 = T0 + timedelta(days=1)
    apply(factory, _move(text, index, delta), t1)
    after = unfold(builder_from_database(factory, SETTINGS, t1).render(FeedKey("all")))
    block = event_block(after, uid)  # same UID, one entry
    assert after.count(f"UID:{uid}\r\n") == 1
    assert "SEQUENCE:1\r\n" in block
    assert f"DTSTAMP:{t1.astimezone(UTC):%Y%m%dT%H%M%SZ}\r\n" in block


def test_a_failed_refresh_keeps_serving_and_the_next_one_repairs(
        factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    apply(factory, config_text(), T0)
    cache = FeedCache()
    cache.refresh(factory, SETTINGS, T0)
    t1 = T0 + timedelta(days=1)
    apply(factory, config_text(ho_so="2024-06-04"), t1)

    def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(FeedCache, "_save_states", staticmethod(broken))
    with pytest.raises(OSError, match="disk full"):
        cache.refresh(factory, SETTINGS, t1)
    assert len(cache.feeds) == 6  # still serving
    monkeypatch.undo()
    report = cache.refresh(factory, SETTINGS, t1)
    assert report.rendered == 6  # everything checked again after the failure
    assert "DTSTART;VALUE=DATE:20240604" in text_of(cache, "phong-noi-vu")
    with factory() as session:
        assert session.get(FeedState, "unit:phong-noi-vu") is not None
