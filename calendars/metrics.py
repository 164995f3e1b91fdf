"""``GET /metrics``: Prometheus text exposition format 0.0.4, without a client library.

Two kinds of numbers:

* **Durable counts from the database** — reminders sent, failed and skipped, and the
  pending outbox rows. They survive restarts and are the same on every instance that
  shares a PostgreSQL database (aggregate them with ``max``, not ``sum``). Counting
  them is a scan of the outbox, so it runs in a worker thread at most once per
  ``ttl`` seconds, whatever the scrape rate; scrapes in between get the cached counts.
* **This process's counters** — feed requests by HTTP status, config reloads and
  rejected reloads. They start at 0 with the process, as Prometheus counters may.

The format is small enough to write by hand (``# HELP``, ``# TYPE``, one sample a
line); ``prometheus_client`` would add a global registry for eight numbers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from scheduler.models import OutboxRow

log = logging.getLogger("mocd.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_TTL = 15.0
FEED_STATUSES = (200, 304, 404)  # always exported, so the series exist from the start


@dataclass(frozen=True)
class OutboxCounts:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0


def read_outbox_counts(factory: sessionmaker[Session]) -> OutboxCounts:
    """Reminder rows by final state, and all rows still waiting to be sent: one query."""
    reminders: dict[str, int] = {}
    pending = 0
    with factory() as session:
        rows = session.execute(select(OutboxRow.state, OutboxRow.kind, func.count())
                               .group_by(OutboxRow.state, OutboxRow.kind))
        for state, kind, count in rows:  # a few dozen (state, kind) pairs at most
            if state == "pending":
                pending += count
            if kind == "reminder":
                reminders[state] = reminders.get(state, 0) + count
    return OutboxCounts(sent=reminders.get("sent", 0), failed=reminders.get("failed", 0),
                        skipped=reminders.get("skipped", 0), pending=pending)


@dataclass
class Metrics:
    """The numbers behind ``/metrics``; the server and the daemon update the counters."""

    factory: sessionmaker[Session] | None = None
    ttl: float = DEFAULT_TTL
    clock: Callable[[], float] = time.monotonic
    feed_requests: dict[int, int] = field(default_factory=lambda: dict.fromkeys(FEED_STATUSES,
                                                                                  0))
    config_reloads: int = 0
    config_reload_failures: int = 0
    _outbox: OutboxCounts = field(default_factory=OutboxCounts)
    _read_at: float | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _failing: bool = False

    def count_feed(self, status: int) -> None:
        self.feed_requests[status] = self.feed_requests.get(status, 0) + 1

    def reload_done(self, accepted: bool) -> None:
        """One reload (SIGHUP or a changed file) finished; rejected ones also count as failures."""
        self.config_reloads += 1
        if not accepted:
            self.config_reload_failures += 1

    async def outbox(self) -> OutboxCounts:
        """The cached outbox counts, re-read in a worker thread when older than ``ttl``.

        Concurrent scrapes wait for one read instead of starting their own; when the
        database does not answer, the last counts are kept (``/healthz`` reports it).
        """
        if self.factory is None:
            return self._outbox
        async with self._lock:
            now = self.clock()
            if self._read_at is not None and now - self._read_at < self.ttl:
                return self._outbox
            try:
                self._outbox = await asyncio.to_thread(read_outbox_counts, self.factory)
                self._failing = False
            except SQLAlchemyError as exc:
                if not self._failing:
                    log.warning("metrics: cannot count the outbox: %s",
                                str(exc).splitlines()[0])
                self._failing = True
            self._read_at = now
            return self._outbox

    async def render(self) -> bytes:
        outbox = await self.outbox()
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, int]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {value}" for labels, value in samples)

        metric("mocd_reminders_sent_total", "counter",
               "Reminder emails sent (database-wide, durable).", [("", outbox.sent)])
        metric("mocd_reminders_failed_total", "counter",
               "Reminder emails that failed for good (database-wide, durable).",
               [("", outbox.failed)])
        metric("mocd_reminders_skipped_total", "counter",
               "Reminders missed beyond reminders.catch_up and recorded skipped "
               "(database-wide, durable).", [("", outbox.skipped)])
        metric("mocd_outbox_pending", "gauge",
               "Outbox rows of any kind waiting to be sent (database-wide).",
               [("", outbox.pending)])
        metric("mocd_feed_requests_total", "counter",
               "Feed requests answered by this process, by HTTP status.",
               [(f'{{status="{status}"}}', count)
                for status, count in sorted(self.feed_requests.items())])
        metric("mocd_config_reloads_total", "counter",
               "Config reloads (SIGHUP or a changed file) done by this process.",
               [("", self.config_reloads)])
        metric("mocd_config_reload_failures_total", "counter",
               "Config reloads rejected (invalid config) by this process.",
               [("", self.config_reload_failures)])
        return ("\n".join(out) + "\n").encode("utf-8")
