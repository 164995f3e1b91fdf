"""Feeds ready to serve: loaded from the store, rendered once per change, kept in memory.

:class:`FeedCache` is the :class:`~calendars.feed_types.FeedSource` of the feed server.
The daemon calls :meth:`FeedCache.refresh` after every apply (and at start, and daily, as
cancelled items leave the feeds after 30 days); the server only ever calls
:meth:`FeedCache.get`, which is a dictionary lookup.

A refresh is incremental: occurrence data is loaded only for rows whose ``sequence`` or
``changed_at`` moved, each event is rendered once (:class:`calendars.feeds.EventCache`),
and a feed is re-rendered (joined, hashed, gzipped) only when the list of its events
changed. ``Last-Modified`` never moves backwards: the ``feed_state`` table keeps the last
value of every feed, and a feed whose bytes changed gets a later one even when the change
was an event leaving it (Apple Calendar revalidates by date alone).

The config-only path (:func:`builder_from_config`) goes through the same selection and
rendering as the database path, with every occurrence at ``sequence`` 0 and ``changed_at``
:data:`scheduler.apply.FIRST_LOAD_CHANGED_AT` — exactly what the first apply stores — so
``mocd feed`` prints the same bytes with and without a freshly applied database.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from sqlalchemy import case, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from calendars.feed_types import FeedKey, RenderedFeed
from calendars.feeds import (
    ExtraLines,
    FeedBuilder,
    FeedItem,
    FeedOptions,
    Signature,
    StoreRow,
    UnitInfo,
    build_input,
    select_rows,
    whole_seconds_utc,
)
from config.loader import MilestoneConfig, read_config
from config.settings import Settings
from scheduler.apply import FIRST_LOAD_CHANGED_AT
from scheduler.expand import Window, expand_loaded
from scheduler.models import FeedState, StoredOccurrence, Unit
from scheduler.occurrences import Occurrence, from_record

log = logging.getLogger("mocd.feeds")

# zlib's fast levels (1–3) cost the same, 3 compresses best of them: a 110 kB feed in
# 0.24 ms to 8.8 kB, where the default level 6 takes 0.54 ms for 6.8 kB. After a change to an
# occurrence sent to all, every feed is compressed again, and most requests are 304 anyway.
GZIP_LEVEL = 3
_CHUNK = 400  # UIDs per IN (...) query
_BATCH = 32  # feeds per hashing/gzip task
_PUBLISH_EVERY = 512  # feeds landed between two interim swaps of what is served


def gzip_bytes(body: bytes, level: int = GZIP_LEVEL) -> bytes:
    """gzip with mtime 0 (so equal bodies give equal bytes); zlib releases the GIL."""
    return zlib.compress(body, level=level, wbits=31)


def strong_etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()}"'


def next_last_modified(previous: tuple[str, datetime] | None, etag: str,
                       content_time: datetime, now: datetime) -> datetime:
    """The feed's ``Last-Modified``: never before the previous one, and later than it
    whenever the bytes changed.

    ``content_time`` is the latest ``changed_at`` of the feed's events. When the bytes
    changed but no remaining event is newer (an event left the feed: moved to other units,
    or its 30 days as cancelled are over), the change happened now.
    """
    if previous is None:
        return content_time
    previous_etag, previous_time = previous
    if previous_etag == etag or content_time > previous_time:
        return max(previous_time, content_time)
    return max(previous_time + timedelta(seconds=1), whole_seconds_utc(now))


# -- the two sources: the store and the config alone -------------------------------------


def load_rows(session: Session) -> list[StoreRow]:
    """The columns of every stored occurrence (no JSON): what selection needs."""
    query = select(StoredOccurrence.uid, StoredOccurrence.kind, StoredOccurrence.campaign,
                   StoredOccurrence.first_day, StoredOccurrence.last_day,
                   StoredOccurrence.cancelled, StoredOccurrence.sequence,
                   StoredOccurrence.changed_at, StoredOccurrence.removed_at)
    return [StoreRow(*row) for row in session.execute(query)]


def load_occurrences(session: Session, uids: Sequence[str]) -> dict[str, Occurrence]:
    found: dict[str, Occurrence] = {}
    for start in range(0, len(uids), _CHUNK):
        chunk = uids[start:start + _CHUNK]
        query = select(StoredOccurrence.uid, StoredOccurrence.data).where(
            StoredOccurrence.uid.in_(chunk))
        for uid, data in session.execute(query):
            found[uid] = from_record(data)
    return found


def load_units(session: Session) -> list[UnitInfo]:
    query = select(Unit.id, Unit.name, Unit.language)
    return [UnitInfo(uid, name, language) for uid, name, language in session.execute(query)]


def config_rows(occurrences: Iterable[Occurrence]) -> list[StoreRow]:
    """The rows the first apply of these occurrences stores (sequence 0, fixed time)."""
    return [StoreRow(o.uid, o.kind, o.campaign, o.first, o.last, o.cancelled, 0,
                     FIRST_LOAD_CHANGED_AT) for o in occurrences]


def config_units(config: MilestoneConfig) -> list[UnitInfo]:
    return [UnitInfo(uid, spec.name, spec.language) for uid, spec in config.units.items()]


def builder_from_config(config_dir: Path, settings: Settings, now: datetime, *,
                        extra_lines: ExtraLines | None = None) -> FeedBuilder:
    """The feeds of a config directory alone (no database): ConfigError if it is invalid."""
    options = FeedOptions.from_settings(settings)
    first, last = options.window(now)
    config, occurrences = expand_loaded(read_config(config_dir), Window(first, last),
                                        settings.uid_domain)
    return builder_from_occurrences(config, occurrences, options, now,
                                    extra_lines=extra_lines)


def builder_from_occurrences(config: MilestoneConfig, occurrences: Sequence[Occurrence],
                             options: FeedOptions, now: datetime, *,
                             extra_lines: ExtraLines | None = None) -> FeedBuilder:
    selection = select_rows(config_rows(occurrences), now, options)
    by_uid = {o.uid: o for o in occurrences}
    feed_input = build_input(selection, {uid: by_uid[uid] for uid in selection.needed},
                             config_units(config))
    return FeedBuilder(feed_input, options, extra_lines=extra_lines)


@contextmanager
def _session(source: sessionmaker[Session] | Session) -> Iterator[Session]:
    """A short read transaction of our own, or the caller's session as it is."""
    if isinstance(source, Session):
        yield source
        return
    with source() as session:
        try:
            yield session
        finally:
            session.rollback()  # read only: end the transaction (SQLite: the write lock)


def builder_from_database(source: sessionmaker[Session] | Session, settings: Settings,
                          now: datetime, *,
                          extra_lines: ExtraLines | None = None) -> FeedBuilder:
    """The feeds of the stored state, once (``mocd feed``, ``mocd export-feeds``)."""
    options = FeedOptions.from_settings(settings)
    with _session(source) as session:
        selection = select_rows(load_rows(session), now, options)
        occurrences = load_occurrences(session, selection.needed)
        units = load_units(session)
    return FeedBuilder(build_input(selection, occurrences, units), options,
                       extra_lines=extra_lines)


def render_from_config(config_dir: Path, settings: Settings, now: datetime,
                       keys: Iterable[FeedKey] | None = None) -> dict[FeedKey, bytes]:
    """Feed bytes from the config alone (all feeds, or ``keys``); no database involved."""
    builder = builder_from_config(config_dir, settings, now)
    return {key: builder.render(key) for key in (builder.plans if keys is None else keys)}


# -- the cache the server reads ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What a refresh did (for the log and /metrics)."""

    feeds: int  # feeds served after the refresh
    rendered: int  # feeds whose bytes were rebuilt
    changed: int  # feeds whose bytes differ from before (new ETag)
    events_rendered: int  # VEVENTs rendered by icalendar (the rest were shared or reused)
    occurrences_loaded: int  # occurrence records read from the database
    largest: int  # bytes of the largest feed
    seconds: float


class FeedCache:
    """Every feed as :class:`~calendars.feed_types.RenderedFeed`, for the feed server.

    * ``get(key)`` — the feed, or None for an unknown unit/campaign (a dict lookup; safe
      from the event loop while a refresh runs in a worker thread).
    * ``refresh(source, settings, now)`` — bring the feeds up to date with the store;
      blocking (run it with ``asyncio.to_thread``); concurrent calls are serialised.

    A refresh builds a new dictionary and swaps it in with one assignment: readers see
    the old feeds or the new ones, never a mix, and nothing they hold is ever mutated.
    """

    def __init__(self, *, extra_lines: ExtraLines | None = None,
                 gzip_level: int = GZIP_LEVEL, workers: int | None = None) -> None:
        self._extra_lines = extra_lines
        self._gzip_level = gzip_level
        # Threads hashing and compressing (zlib and hashlib release the GIL).
        self._workers = max(1, workers or min(4, os.cpu_count() or 1))
        self._feeds: Mapping[FeedKey, RenderedFeed] = MappingProxyType({})
        self._lock = threading.Lock()
        # Touched by refresh only (under the lock):
        self._loaded: dict[str, tuple[int, datetime, Occurrence]] = {}
        self._items: dict[str, FeedItem] = {}
        self._signatures: dict[FeedKey, Signature] = {}
        self._builder: FeedBuilder | None = None
        self.last_report: RefreshReport | None = None

    def get(self, key: FeedKey) -> RenderedFeed | None:
        return self._feeds.get(key)

    @property
    def feeds(self) -> Mapping[FeedKey, RenderedFeed]:
        """All feeds (a read-only snapshot: a later refresh swaps in a new one)."""
        return self._feeds

    def refresh(self, source: sessionmaker[Session] | Session, settings: Settings,
                now: datetime) -> RefreshReport:
        """Re-read the store and re-render the feeds whose content changed.

        ``source``: a session factory (reads in one short transaction, writes
        ``feed_state`` in another) or a Session (used as is; the caller commits).
        ``now`` (aware) decides the window and which cancellations are still shown.
        """
        with self._lock:
            try:
                return self._refresh(source, settings, now)
            except BaseException:
                # Some feeds may have been swapped in already: forget what the served
                # ones were made of, so the next refresh re-renders every feed.
                self._signatures = {}
                raise

    def _item(self, row: StoreRow, occurrence: Occurrence) -> FeedItem:
        found = self._items.get(row.uid)
        removed = row.removed_at is not None
        if (found is None or found.occurrence is not occurrence
                or found.sequence != row.sequence or found.changed_at != row.changed_at
                or found.removed != removed):
            found = FeedItem(occurrence, row.sequence, row.changed_at, removed)
        return found

    def _occurrences(self, session: Session, rows: Mapping[str, StoreRow],
                     needed: Sequence[str]) -> tuple[dict[str, Occurrence], int]:
        """Occurrence data for ``needed``, read only where the row moved since last time."""
        stale = [uid for uid in needed
                 if (known := self._loaded.get(uid)) is None
                 or known[:2] != (rows[uid].sequence, rows[uid].changed_at)]
        fresh = load_occurrences(session, stale)
        loaded = {}
        for uid in needed:
            if uid in fresh:
                loaded[uid] = (rows[uid].sequence, rows[uid].changed_at, fresh[uid])
            else:
                loaded[uid] = self._loaded[uid]
        self._loaded = loaded
        return {uid: entry[2] for uid, entry in loaded.items()}, len(fresh)

    def _refresh(self, source: sessionmaker[Session] | Session, settings: Settings,
                 now: datetime) -> RefreshReport:
        started = time.perf_counter()
        options = FeedOptions.from_settings(settings)
        with _session(source) as session:
            rows = load_rows(session)
            selection = select_rows(rows, now, options)
            by_uid = {row.uid: row for row in rows}
            occurrences, loaded = self._occurrences(session, by_uid, selection.needed)
            units = load_units(session)
            states = {key: (etag, last_modified) for key, etag, last_modified in
                      session.execute(select(FeedState.key, FeedState.etag,
                                             FeedState.last_modified))}
        feed_input = build_input(selection, occurrences, units, item=self._item)
        self._items = {item.occurrence.uid: item for item in feed_input.items}
        builder = FeedBuilder(feed_input, options, extra_lines=self._extra_lines,
                              cache=self._builder.cache if self._builder else None)
        events_before = builder.cache.rendered

        level = self._gzip_level

        def finish(batch: list[tuple[FeedKey, bytes]]) -> list[tuple[FeedKey, bytes, str,
                                                                     bytes]]:
            # sha256 and zlib release the GIL: these run beside the joins of the next batch.
            return [(key, body, strong_etag(body), gzip_bytes(body, level))
                    for key, body in batch]

        # ``previous`` is our own copy of what is served: an entry leaves it when its new
        # version lands, so the old bytes can be freed as the refresh goes (with 5,000
        # large feeds, old and new side by side would double the memory).
        previous = dict(self._feeds)
        feeds: dict[FeedKey, RenderedFeed] = {}
        signatures: dict[FeedKey, Signature] = {}
        writes: list[FeedState] = []
        stamp = whole_seconds_utc(now)
        counts = {"rendered": 0, "changed": 0, "unpublished": 0}

        def land(results: list[tuple[FeedKey, bytes, str, bytes]]) -> None:
            for key, body, etag, compressed in results:
                content_time = (builder.content_time(key, signatures[key])
                                or FIRST_LOAD_CHANGED_AT)
                state = states.get(key.name)
                last_modified = next_last_modified(state, etag, content_time, now)
                feeds[key] = RenderedFeed(compressed, etag, last_modified, len(body))
                old = previous.pop(key, None)
                counts["rendered"] += 1
                counts["changed"] += old is None or old.etag != etag
                if state != (etag, last_modified):
                    writes.append(FeedState(key=key.name, etag=etag,
                                            last_modified=last_modified, size=len(body),
                                            updated_at=stamp))
            counts["unpublished"] += len(results)
            if counts["unpublished"] >= _PUBLISH_EVERY:
                # Each feed is whole and independent: serving some new and some old for
                # the length of a refresh is what a client fetching one feed cannot see.
                self._feeds = MappingProxyType({**previous, **feeds})
                counts["unpublished"] = 0

        batch: list[tuple[FeedKey, bytes]] = []
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            futures: deque[Future[list[tuple[FeedKey, bytes, str, bytes]]]] = deque()
            for key in builder.plans:
                signature = builder.signature(key)
                signatures[key] = signature
                old = previous.get(key)
                if old is not None and self._signatures.get(key) == signature:
                    feeds[key] = old
                    continue
                batch.append((key, builder.render(key, signature)))
                if len(batch) == _BATCH:
                    futures.append(pool.submit(finish, batch))
                    batch = []
                    while len(futures) > 2 * self._workers:  # bounded: bodies in flight
                        land(futures.popleft().result())
            if batch:
                futures.append(pool.submit(finish, batch))
            while futures:
                land(futures.popleft().result())
        events_rendered = builder.cache.rendered - events_before
        if writes:
            self._save_states(source, writes)
        builder.cache.sweep()
        self._builder = builder
        self._signatures = signatures
        self._feeds = MappingProxyType(feeds)  # the final swap: removed feeds leave here
        report = RefreshReport(
            feeds=len(feeds), rendered=counts["rendered"], changed=counts["changed"],
            events_rendered=events_rendered, occurrences_loaded=loaded,
            largest=max((f.size for f in feeds.values()), default=0),
            seconds=time.perf_counter() - started)
        self.last_report = report
        return report

    @staticmethod
    def _save_states(source: sessionmaker[Session] | Session, rows: list[FeedState]) -> None:
        """Upsert ``feed_state``; an instance racing us cannot move a date backwards."""
        if isinstance(source, Session):
            _upsert_states(source, rows)
            source.flush()
            return
        with source() as session, session.begin():
            _upsert_states(session, rows)


def _upsert_states(session: Session, rows: list[FeedState]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(FeedState)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[FeedState.key],
        set_={"etag": excluded.etag, "size": excluded.size, "updated_at": excluded.updated_at,
              "last_modified": case(
                  (excluded.last_modified > FeedState.last_modified, excluded.last_modified),
                  else_=FeedState.last_modified)})
    session.execute(statement, [
        {"key": r.key, "etag": r.etag, "last_modified": r.last_modified, "size": r.size,
         "updated_at": r.updated_at} for r in rows])
