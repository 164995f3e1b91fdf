#!/usr/bin/env python3
"""How long re-rendering every feed takes after one config change, vs plain icalendar.

    .venv/bin/python bench/feeds_render.py                  # 5,000 units, ~100 events each
    .venv/bin/python bench/feeds_render.py --scenario issue # 5,000 units, ~270 events each
    .venv/bin/python bench/feeds_render.py --quick          # 500 units, a few seconds

It generates the config (``gen_config.SCENARIOS``) into ``bench/out/feeds-SCENARIO``,
expands it for "today" = 2026-01-15, applies it to a fresh SQLite file (occurrences and
units only: planning millions of reminder rows is the apply benchmark's business, not
this one's) and measures :meth:`calendars.feed_cache.FeedCache.refresh` — read the store,
render the events, join, hash and gzip the feeds, write ``feed_state``:

* **cold**: the first refresh, every feed and every event rendered;
* **after one change**, twice: the date of the occurrence with the most recipients moves
  (it is in every unit's feed: the worst case, the issue's "< 5 s"), then the date of an
  occurrence with a median number of recipients (a typical edit);
* **nothing changed**: a refresh with nothing to do (the daily housekeeping).

Each change is applied (``apply_revision``) before the refresh; only the refresh is timed.

The **baseline** is the obvious renderer: one icalendar ``Calendar`` per feed with every
event added, ``to_ical()`` once (:func:`calendars.feeds.naive_feed`, which the tests prove
byte-identical to ours). It takes minutes for 5,000 feeds, so it runs on a sample of unit
feeds (every 50th) and is extrapolated by the number of events (a feed's cost is its
events): ``estimated = sample seconds × all events in all feeds / events in the sample``.
It builds bytes only — no store, no hashing, no gzip — so the ratio flatters it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen_config  # noqa: E402  (bench/ is not a package)

from calendars.feed_cache import GZIP_LEVEL, FeedCache, builder_from_database  # noqa: E402
from calendars.feed_types import FeedKey  # noqa: E402
from calendars.feeds import FeedOptions, naive_feed  # noqa: E402
from config.loader import read_config  # noqa: E402
from config.settings import Settings  # noqa: E402
from notifications.confirmations import feed_confirm_lines  # noqa: E402
from scheduler.apply import apply_revision  # noqa: E402
from scheduler.database import open_engine, session_factory, upgrade  # noqa: E402
from scheduler.expand import Window, expand_loaded  # noqa: E402
from scheduler.occurrences import Occurrence  # noqa: E402

VN = ZoneInfo("Asia/Ho_Chi_Minh")
TODAY = datetime(2026, 1, 15, 9, 0, tzinfo=VN)


@dataclass
class Step:
    name: str
    seconds: float
    feeds_rendered: int
    events_rendered: int
    occurrences_loaded: int


@dataclass
class Result:
    scenario: str
    units: int
    feeds: int
    occurrences_shown: int
    events_in_feeds: int  # sum over all feeds (an occurrence counts once per feed)
    events_per_unit_feed: float
    apply_seconds: float
    steps: list[Step]
    baseline_sample_feeds: int
    baseline_sample_events: int
    baseline_sample_seconds: float
    baseline_estimated_seconds: float
    body_bytes: int
    gzip_bytes: int
    gzip_level: int
    largest_feed: int
    peak_rss_mb: float
    python: str
    cpus: int


def moved(o: Occurrence, days: int) -> Occurrence:
    """The occurrence as if its date had been edited ``days`` later in the YAML."""
    return replace(o, span=o.span.shifted(days),
                   due=o.due + timedelta(days=days) if o.due else None)


def apply(factory: object, config: object, occurrences: list[Occurrence], settings: Settings,
          now: datetime, label: str) -> float:
    started = time.perf_counter()
    apply_revision(factory, config, occurrences, [], settings=settings, now=now,  # type: ignore[arg-type]
                   window=label)
    return time.perf_counter() - started


def refresh(cache: FeedCache, factory: object, settings: Settings, now: datetime,
            name: str) -> Step:
    report = cache.refresh(factory, settings, now)  # type: ignore[arg-type]
    return Step(name, report.seconds, report.rendered, report.events_rendered,
                report.occurrences_loaded)


def run(scenario: str, params: gen_config.Params, out: Path, sample_every: int,
        workers: int | None, gzip_level: int, no_links: bool = False) -> Result:
    directory = out / f"feeds-{scenario}"
    gen_config.generate(params, directory)
    settings = Settings()
    options = FeedOptions.from_settings(settings)
    first, last = options.window(TODAY)
    config, occurrences = expand_loaded(read_config(directory), Window(first, last))
    with tempfile.TemporaryDirectory() as temporary:
        engine = open_engine(f"sqlite:///{temporary}/mocd.sqlite3")
        upgrade(engine)
        factory = session_factory(engine)
        apply_seconds = apply(factory, config, occurrences, settings, TODAY, "first")
        # As the daemon runs it: unit feeds carry their confirmation links.
        links = None if no_links else feed_confirm_lines(b"k" * 32, settings.public_url)
        cache = FeedCache(workers=workers, gzip_level=gzip_level, extra_lines=links)
        steps = [refresh(cache, factory, settings, TODAY, "cold: every feed, every event")]

        shown = [o for o in occurrences if o.overlaps(first, last) and not o.cancelled]
        widest = max(shown, key=lambda o: (len(o.units), o.uid))
        by_size = sorted(shown, key=lambda o: (len(o.units), o.uid))
        typical = by_size[len(by_size) // 2]
        now = TODAY
        current = list(occurrences)
        for label, target in (("widest", widest), ("typical", typical)):
            now += timedelta(minutes=5)
            current = [moved(o, 1) if o.uid == target.uid else o for o in current]
            apply(factory, config, current, settings, now, label)
            steps.append(refresh(cache, factory, settings, now,
                                 f"after one change: {label} occurrence moved "
                                 f"({len(target.units) + len(target.cc)} recipients)"))
        now += timedelta(minutes=5)
        steps.append(refresh(cache, factory, settings, now, "nothing changed"))

        builder = builder_from_database(factory, settings, now)
        units = sorted(k for k in builder.plans if k.kind == "unit")
        sample = units[::sample_every]
        sample_events = sum(len(builder.plans[k].items) for k in sample)
        started = time.perf_counter()
        for key in sample:
            data = naive_feed(builder, key)
            assert data == builder.render(key), key  # the baseline builds the same bytes
        sample_seconds = time.perf_counter() - started
        all_events = sum(len(p.items) for p in builder.plans.values())
        feeds = cache.feeds
        result = Result(
            scenario=scenario, units=len(units), feeds=len(feeds),
            occurrences_shown=len(builder.plans[FeedKey("all")].items),
            events_in_feeds=all_events,
            events_per_unit_feed=statistics.fmean(len(builder.plans[k].items) for k in units),
            apply_seconds=apply_seconds, steps=steps,
            baseline_sample_feeds=len(sample), baseline_sample_events=sample_events,
            baseline_sample_seconds=sample_seconds,
            baseline_estimated_seconds=sample_seconds * all_events / max(1, sample_events),
            body_bytes=sum(f.size for f in feeds.values()),
            gzip_bytes=sum(len(f.gzip) for f in feeds.values()), gzip_level=gzip_level,
            largest_feed=max(f.size for f in feeds.values()),
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            python=platform.python_version(), cpus=os.cpu_count() or 1)
        engine.dispose()
    return result


def print_result(r: Result) -> None:
    print(f"\n== {r.scenario}: {r.units:,} units, {r.feeds:,} feeds, {r.occurrences_shown:,} "
          f"occurrences in the window, {r.events_per_unit_feed:.0f} events per unit feed "
          f"({r.events_in_feeds:,} in all feeds)")
    print(f"   apply (occurrences only, not timed below): {r.apply_seconds:.2f} s")
    print(f"   {'refresh':<62} {'seconds':>8} {'feeds':>6} {'events':>7} {'loaded':>7}")
    for s in r.steps:
        print(f"   {s.name:<62} {s.seconds:>8.2f} {s.feeds_rendered:>6} "
              f"{s.events_rendered:>7} {s.occurrences_loaded:>7}")
    worst = r.steps[1].seconds
    print(f"   naive icalendar, {r.baseline_sample_feeds} unit feeds sampled "
          f"({r.baseline_sample_events:,} events): {r.baseline_sample_seconds:.2f} s "
          f"→ estimated for all feeds: {r.baseline_estimated_seconds:.1f} s")
    print(f"   ratio baseline / re-render after the widest change: "
          f"{r.baseline_estimated_seconds / worst:.0f}×  (target for the re-render: < 5 s)")
    print(f"   feeds in memory: {r.gzip_bytes / 1e6:.0f} MB of gzip (level {r.gzip_level}; the "
          f"{r.body_bytes / 1e6:.0f} MB of bodies are not kept); largest feed "
          f"{r.largest_feed / 1e3:.0f} kB")
    print(f"   peak RSS of the whole benchmark {r.peak_rss_mb:.0f} MB; Python {r.python}, "
          f"{r.cpus} CPUs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(gen_config.SCENARIOS), default="feeds")
    parser.add_argument("--quick", action="store_true", help="500 units (the quick scenario)")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--sample-every", type=int, default=50,
                        help="baseline: render every Nth unit feed the naive way")
    parser.add_argument("--workers", type=int, default=None,
                        help="threads hashing and gzipping (FeedCache's default: CPUs, ≤ 4)")
    parser.add_argument("--gzip-level", type=int, default=GZIP_LEVEL,
                        help=f"FeedCache's gzip level (default {GZIP_LEVEL})")
    parser.add_argument("--no-confirm-links", action="store_true",
                        help="unit feeds without the confirmation links the daemon adds")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    scenario = "quick" if args.quick else args.scenario
    params = gen_config.SCENARIOS[scenario]
    if scenario == "quick":
        params = replace(params, audience="wide", campaigns=10, anniversaries=40)
    result = run(scenario, params, args.out, args.sample_every, args.workers, args.gzip_level,
                 args.no_confirm_links)
    print_result(result)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
