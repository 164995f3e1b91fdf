"""Every feed of examples/, from the config alone and from a database (SQLite and
PostgreSQL), parsed back by an independent strict parser (``ical``) and compared with
``mocd agenda --format json``: the same UIDs, all-day DTEND the day after the agenda's
inclusive end, a VTIMEZONE for every TZID, 75-octet lines, CRLF."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from calendars.feed_cache import builder_from_config, builder_from_database
from calendars.feed_types import FeedKey
from calendars.feeds import FeedBuilder, naive_feed
from config.loader import read_config
from config.settings import Settings
from scheduler.apply import apply_revision
from scheduler.expand import Window, expand_loaded
from tests.conftest import NOW, RunCli
from tests.test_feeds_render import check_ics

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SETTINGS = Settings()


def agenda(run_cli: RunCli, unit: str | None) -> list[dict[str, object]]:
    args = ["agenda", "--config", str(EXAMPLES), "--format", "json"]
    code, out, err = run_cli([*args, "--unit", unit] if unit else args)
    assert code == 0, err
    records: list[dict[str, object]] = json.loads(out)
    return records


def check_against_agenda(builder: FeedBuilder, run_cli: RunCli) -> int:
    """Every unit feed and the all feed against the agenda; returns the events checked."""
    checked = 0
    for key in builder.plans:
        data = builder.render(key)
        calendar = check_ics(data)
        if key.kind == "campaign":
            continue
        records = agenda(run_cli, key.id if key.kind == "unit" else None)
        assert {e.uid for e in calendar.events} == {r["uid"] for r in records}, key
        by_uid = {r["uid"]: r for r in records}
        for event in calendar.events:
            record = by_uid[event.uid]
            if record["all_day"]:
                assert event.dtstart == date.fromisoformat(str(record["start"]))
                assert event.dtend == date.fromisoformat(str(record["end"])) + timedelta(days=1)
            else:
                assert event.dtstart == datetime.fromisoformat(str(record["start"]))
            checked += 1
    return checked


def test_every_example_feed_from_the_config_alone(run_cli: RunCli) -> None:
    builder = builder_from_config(EXAMPLES, SETTINGS, NOW)
    assert {k.kind for k in builder.plans} == {"all", "campaign", "unit"}
    assert sum(k.kind == "unit" for k in builder.plans) == 32
    assert check_against_agenda(builder, run_cli) > 100
    for key in builder.plans:
        assert builder.render(key) == naive_feed(builder, key)


def test_the_campaign_feed_has_its_occurrences_and_the_celebrated_anniversary() -> None:
    builder = builder_from_config(EXAMPLES, SETTINGS, NOW)
    plan = builder.plans[FeedKey("campaign", "thi-dua-dhdt-ba-to-2024")]
    uids = [i.occurrence.uid for i in plan.items]
    assert "anniversary.giai-phong-huyen-ba-to.52@mocd.local" in uids  # 30/10/2024
    assert all(u.startswith("thi-dua-dhdt-ba-to-2024.") for u in uids if
               not u.startswith("anniversary."))
    assert plan.name.startswith("Phong trào thi đua chào mừng Đại hội")


def apply_examples(factory: sessionmaker[Session]) -> None:
    first, last = SETTINGS.feeds.past, SETTINGS.feeds.future
    today = NOW.date()
    window = Window(today - first, today + last)
    config, occurrences = expand_loaded(read_config(EXAMPLES), window)
    apply_revision(factory, config, occurrences, [], settings=SETTINGS, now=NOW,
                   window=f"{window.first}..{window.last}")


def test_every_example_feed_from_the_database_is_the_configs(
        factory: sessionmaker[Session], run_cli: RunCli) -> None:
    """A freshly applied database gives the same bytes as the config alone (the first
    apply stores a fixed changed_at, the config-only path uses the same)."""
    apply_examples(factory)
    stored = builder_from_database(factory, SETTINGS, NOW)
    alone = builder_from_config(EXAMPLES, SETTINGS, NOW)
    assert stored.plans.keys() == alone.plans.keys()
    for key in stored.plans:
        assert stored.render(key) == alone.render(key), key
    assert check_against_agenda(stored, run_cli) > 100


@pytest.mark.parametrize("day", ["2021-09-01", "2025-07-15"])
def test_example_feeds_on_other_days(day: str) -> None:
    """Other windows: the reform's successors (2025), the Bắc Kạn programme (2021)."""
    now = datetime.combine(date.fromisoformat(day), NOW.timetz())
    builder = builder_from_config(EXAMPLES, SETTINGS, now)
    for key in builder.plans:
        check_ics(builder.render(key))
