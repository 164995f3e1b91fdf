"""``mocd run``: the lifecycle of the daemon (SPEC §7).

An explicit run state; signal handlers only set flags (events) that the main
loop acts on. APScheduler (memory job store) is only the clock: one date job
armed at the next due outbox row, re-armed after every dispatch and apply, and
a safety interval job. The outbox is the truth.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from calendars.feed_server import FeedService, Health
from calendars.metrics import Metrics
from calendars.tokens import derive_key, load_secret
from config.errors import ConfigError, RuntimeFailure, UserError
from config.loader import read_config
from config.settings import Settings
from notifications.confirmations import CONFIRM_PURPOSE, feed_confirm_lines
from notifications.digest import queue_digests
from notifications.mail_url import open_transport
from notifications.messages import MessageFactory
from notifications.outbox import insert_new, new_row, next_due, release_owned
from notifications.planning import planned_emails
from notifications.transport import Transport
from scheduler import sd_notify
from scheduler.apply import ApplyResult, apply_revision, record_rejected
from scheduler.clock import Clock
from scheduler.database import (
    connect,
    require_current,
    session_factory,
    store_trouble,
    transaction,
    upgrade,
)
from scheduler.dates import format_duration
from scheduler.dispatcher import Dispatcher, DispatchReport
from scheduler.expand import Window, expand_loaded, working_calendar
from scheduler.logs import LoopErrors
from scheduler.ownership import OwnerLock

log = logging.getLogger("mocd.daemon")
SAFETY_INTERVAL = timedelta(seconds=60)
STORE_BACKOFF = (1, 2, 5, 10, 30)  # seconds between tries while the database is busy or away
_T = TypeVar("_T")
STOP_GRACE_SECONDS = 10.0


def reload_file(state_dir: Path) -> Path:
    return state_dir / "reloads"


def read_reloads(path: Path) -> tuple[int, str]:
    """(number of finished reloads, "accepted"/"rejected" for the last), (0, "") if none."""
    try:
        count, outcome = path.read_text().split()
        return int(count), outcome
    except (OSError, ValueError):
        return 0, ""


class RunState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RELOADING = "reloading"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Daemon:
    def __init__(self, settings: Settings, config_dir: Path, clock: Clock) -> None:
        self.settings = settings
        self.config_dir = config_dir
        self.clock = clock
        self.state = RunState.STARTING
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.stop_requested = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.wake = asyncio.Event()
        self.digest_due = asyncio.Event()
        self.housekeeping_due = asyncio.Event()
        self.engine: Engine | None = None
        self.factory: sessionmaker[Session] | None = None
        self.dispatcher: Dispatcher | None = None
        self.last_apply: ApplyResult | None = None
        self.last_dispatch: datetime | None = None
        self.metrics = Metrics()
        self.feeds: FeedService | None = None  # the HTTP server and feed upkeep (issue 4)
        self.scheduler: AsyncIOScheduler | None = None
        self.owner_lock: OwnerLock | None = None
        self.store_waiting: str | None = None  # why the daemon waits for the database
        self._store_failures = 0
        self._health: tuple[float, bool, str | None] | None = None
        self._probing = False

    def now(self) -> datetime:
        return self.clock.now(self.settings.tz)

    # -- start -----------------------------------------------------------------

    def open_store(self) -> sessionmaker[Session]:
        """Connect, take the owner lock (on SQLite: refuse a second daemon on the same
        database, see :mod:`scheduler.ownership`), then migrate or check the schema."""
        engine = connect(self.settings.effective_database_url)
        lock = OwnerLock(engine, self.owner)
        try:
            lock.acquire()
        except RuntimeFailure:
            engine.dispose()
            raise
        self.owner_lock = lock
        if engine.dialect.name == "sqlite":
            self._upgrade_waiting(engine)  # SQLite belongs to this instance: migrate it
        else:
            require_current(engine)
        self.engine = engine
        self.factory = session_factory(engine)
        return self.factory

    def _upgrade_waiting(self, engine: Engine) -> None:
        """Migrate, waiting (about 5 minutes, with backoff) while another program holds
        SQLite's write lock: the start then goes on instead of failing."""
        for delay in (*STORE_BACKOFF, *[STORE_BACKOFF[-1]] * 8):
            try:
                upgrade(engine)
                return
            except Exception as exc:
                if store_trouble(exc) != "busy" or self.stop_requested.is_set():
                    raise
                log.warning("the database is locked by another program (%s): retrying "
                            "the start in %d s", str(exc).splitlines()[0], delay)
                time.sleep(delay)
        upgrade(engine)

    def apply_config(self) -> bool:
        """Load, expand and apply the config; False (and reported) when it is invalid."""
        assert self.factory is not None
        now = self.now()
        today = now.date()
        window = Window(today - self.settings.feeds.past, today + self.settings.feeds.future)
        try:
            loaded = read_config(self.config_dir)
            config, occurrences = expand_loaded(loaded, window, self.settings.uid_domain)
        except ConfigError as exc:
            self.reject(exc)
            return False
        except UserError as exc:
            log.error("config rejected: %s", exc)
            return False
        reminders = planned_emails(occurrences, config.units, working_calendar(config),
                                   self.settings.reminders, self.settings.tz)
        result = apply_revision(self.factory, config, occurrences, reminders,
                                settings=self.settings, now=now,
                                window=f"{window.first}..{window.last}")
        self.last_apply = result
        if result.reminders_late or result.reminders_too_late:
            items = "the config's first load" if result.first_load else "new or moved items"
            log.info("catch-up of %s: %d reminders whose time has passed are sent now; %d "
                     "whose time passed longer than reminders.catch_up (%s) ago, or after "
                     "their item was over, are not sent", items, result.reminders_late,
                     result.reminders_too_late,
                     format_duration(self.settings.reminders.catch_up))
        if self.feeds is not None:  # tokens for new units/campaigns, re-rendered feeds
            self.feeds.after_apply(config.units, config.campaigns, now, result.revision_id)
        if result.applied:
            log.info("config applied (revision %s): %s", result.revision_id, result.summary)
        else:
            log.info("config unchanged (revision %s already applied)", result.revision_id)
        return True

    def reject(self, exc: ConfigError) -> None:
        assert self.factory is not None
        lines = [d.format() for d in exc.diagnostics]
        for line in lines:
            log.error("config error: %s", line)
        revision = hashlib.sha256("\n".join(lines).encode()).hexdigest()
        now = self.now()
        record_rejected(self.factory, revision=revision, errors="\n".join(lines), now=now)
        if not self.settings.mail.admin:
            return
        with transaction(self.factory) as session:  # the same errors are reported once
            insert_new(session, [new_row(
                f"config_error:{revision}", "config_error", fire_at=now, created_at=now,
                payload={"errors": lines, "config_dir": str(self.config_dir)})])

    def housekeeping(self) -> None:
        """Daily: re-apply (anniversaries enter the window, and reminders the planning
        horizon, as days pass). Leases and late reminders are dealt with every dispatch
        round (:meth:`Dispatcher.run_once`)."""
        assert self.factory is not None
        self.apply_config()  # the window moves with today, even when the files do not
        log.info("housekeeping done")

    def record_reload(self, accepted: bool) -> None:
        """Count finished reloads in ``{state_dir}/reloads`` (what ``mocd reload`` waits for).

        systemd 252 (Debian 12) has no ``notify-reload``: ``ExecReload`` must itself
        wait until the reload is done, and it can only see files and signals.
        """
        self.metrics.reload_done(accepted)
        path = reload_file(self.settings.state_dir)
        count, _ = read_reloads(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(f"{count + 1} {'accepted' if accepted else 'rejected'}\n")
        temporary.replace(path)

    # -- the clock -------------------------------------------------------------

    def arm(self, scheduler: AsyncIOScheduler) -> None:
        """One date job at the next due row (APScheduler is the clock, not the queue)."""
        assert self.factory is not None
        due = next_due(self.factory)
        if due is None:
            with suppress(Exception):
                scheduler.remove_job("next-due")
            return
        run_at = max(due, self.now().astimezone(UTC))
        scheduler.add_job(self.wake.set, "date", run_date=run_at, id="next-due",
                          replace_existing=True, misfire_grace_time=None, coalesce=True)

    # -- run -------------------------------------------------------------------

    def request_stop(self) -> None:
        """SIGTERM/SIGINT: set flags only. The dispatcher starts no new send from here on."""
        self.stop_requested.set()
        if self.dispatcher is not None:
            self.dispatcher.claiming = False

    def install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)

    async def watch_config(self) -> None:
        from watchfiles import awatch

        stop = asyncio.Event()
        self._watch_stop = stop
        try:
            async for _changes in awatch(self.config_dir, stop_event=stop, debounce=500,
                                         recursive=False):
                self.reload_requested.set()
        except (OSError, RuntimeError) as exc:  # e.g. inotify limits: SIGHUP still works
            log.warning("not watching %s (%s); reload with SIGHUP", self.config_dir, exc)

    def check_templates(self) -> None:
        """Every template renders against a sample (an override naming a variable that
        does not exist is found now, not when a unit's email is due), else a UserError."""
        problems = MessageFactory(self.settings, {}, self.settings.templates_dir
                                  ).check_templates()
        if problems:
            raise UserError(f"templates_dir {self.settings.templates_dir}: "
                            + "; ".join(problems))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(LoopErrors())
        self.install_signals(loop)
        await asyncio.to_thread(self.check_templates)
        # Before the store: a bad mail.url or unreadable mail.password_file stops the start
        # (a file is read: off the loop; nothing is connected until the first send).
        transport = await asyncio.to_thread(
            open_transport, self.settings.mail, self.settings.state_dir / "outbox")
        factory = await asyncio.to_thread(self.open_store)
        self.metrics.factory = factory
        secret = await asyncio.to_thread(load_secret, self.settings)  # a file: off the loop
        confirm_key = derive_key(secret, CONFIRM_PURPOSE)
        self.feeds = self.feed_service(factory, confirm_key)
        if not await self._with_store(self.apply_config) and self.last_apply is None:
            log.warning("starting without a valid config: only what is already in the outbox "
                        "is sent until the config is fixed")
        await self.feeds.start()  # listening before READY; a port in use stops here
        names = await asyncio.to_thread(self._unit_names)
        self.dispatcher = Dispatcher(factory, transport, MessageFactory(
            self.settings, names, self.settings.templates_dir), self.settings, self.clock,
            self.owner, confirm_key=confirm_key,
            owner_lock=self.owner_lock, admin_spool=self.settings.state_dir / "outbox")
        scheduler = AsyncIOScheduler(timezone=self.settings.tz)
        scheduler.add_job(self.wake.set, "interval", seconds=SAFETY_INTERVAL.total_seconds(),
                          id="safety", misfire_grace_time=None, coalesce=True)
        if self.settings.digest.cron:
            scheduler.add_job(self.digest_due.set,
                              CronTrigger.from_crontab(self.settings.digest.cron,
                                                       timezone=self.settings.tz),
                              id="digest", misfire_grace_time=3600, coalesce=True)
        scheduler.add_job(self.housekeeping_due.set,
                          CronTrigger(hour=3, minute=17, timezone=self.settings.tz),
                          id="housekeeping", misfire_grace_time=3600, coalesce=True)
        interval = sd_notify.watchdog_interval()
        if interval:
            scheduler.add_job(sd_notify.notify, "interval", args=["WATCHDOG=1"],
                              seconds=interval, id="watchdog", misfire_grace_time=None,
                              coalesce=True)
        feeds_sync = asyncio.create_task(self.feeds.watch(self.stop_requested))
        self.scheduler = scheduler
        scheduler.start()
        watcher = asyncio.create_task(self.watch_config())
        self.state = RunState.RUNNING
        self.wake.set()  # catch up at once
        sd_notify.notify("READY=1", f"STATUS=mocd: đang chạy, cấu hình {self.config_dir}")
        log.info("running: config %s, database %s, owner %s", self.config_dir,
                 self.engine.url.render_as_string(hide_password=True) if self.engine else "-",
                 self.owner)
        try:
            await self._loop(scheduler, factory)
        finally:
            feeds_sync.cancel()
            with suppress(asyncio.CancelledError):
                await feeds_sync
            await self._stop(scheduler, factory, transport, watcher)
        return 0

    # -- feeds, health -----------------------------------------------------------

    def feed_service(self, factory: sessionmaker[Session],
                     confirm_key: bytes | None = None) -> FeedService:
        """The HTTP server and the upkeep of tokens and feeds: the server reads the feeds
        from the :class:`~calendars.feed_cache.FeedCache`, which re-renders what changed
        after every apply (and when another instance applied a revision). Per-unit feeds
        carry the unit's confirmation links (``confirm_key``)."""
        from calendars.feed_cache import FeedCache

        cache = FeedCache(extra_lines=None if confirm_key is None else feed_confirm_lines(
            confirm_key, self.settings.public_url))
        return FeedService(self.settings, factory, self.metrics, self.health, source=cache,
                           refresh=lambda: cache.refresh(factory, self.settings, self.now()),
                           clock=self.clock)

    def _probe_database(self) -> tuple[bool, str | None]:
        """One read: the applied revision's hash (or ``SELECT 1``), on a raw driver
        connection without a transaction: the store's sessions begin with SQLite's
        ``BEGIN IMMEDIATE``, which would wait for the write lock another program holds,
        and a health check must say so at once, not wait with the rest."""
        assert self.engine is not None
        revision = self.last_apply.revision_id if self.last_apply else None
        query = ("SELECT 1" if revision is None else
                 f"SELECT content_hash FROM config_revisions WHERE id = {int(revision)}")
        try:
            connection = self.engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute(query)
                row = cursor.fetchone()
            finally:
                connection.close()
        except Exception as exc:  # any driver error means "not reachable" here
            log.warning("health: the database does not answer: %s", str(exc).splitlines()[0])
            return False, None
        return True, (str(row[0]) if revision is not None and row else None)

    async def health(self) -> Health:
        """``/healthz``: the database is probed at most once a second (a flood of probes
        must not become a flood of queries), with a 3 s limit."""
        loop = asyncio.get_running_loop()
        cached = self._health
        if cached is not None and (loop.time() - cached[0] < 1.0 or self._probing):
            database, revision_hash = cached[1], cached[2]  # one probe at a time
        else:
            self._probing = True
            try:
                database, revision_hash = await asyncio.wait_for(
                    asyncio.to_thread(self._probe_database), 3.0)
            except TimeoutError:
                database, revision_hash = False, None
            finally:
                self._probing = False
            self._health = (loop.time(), database, revision_hash)
        scheduler = (self.scheduler is not None and self.scheduler.running
                     and self.state in (RunState.RUNNING, RunState.RELOADING))
        return Health(database=database, scheduler=scheduler, last_dispatch=self.last_dispatch,
                      revision_id=self.last_apply.revision_id if self.last_apply else None,
                      revision_hash=revision_hash, state=self.state.value,
                      waiting=self.store_waiting)

    def _unit_names(self) -> dict[str, str]:
        assert self.factory is not None
        from scheduler.models import Unit

        with self.factory() as session:
            return {u.id: u.name for u in session.scalars(select(Unit))}

    async def _loop(self, scheduler: AsyncIOScheduler, factory: sessionmaker[Session]) -> None:
        """Wait for an event, act on it; a database that is busy or away is waited for
        (:meth:`_store_failed`) and the interrupted step tried again."""
        while not self.stop_requested.is_set():
            waiters = [asyncio.create_task(e.wait()) for e in
                       (self.stop_requested, self.reload_requested, self.wake, self.digest_due,
                        self.housekeeping_due)]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if self.stop_requested.is_set():
                break
            try:
                if not await self._round(scheduler, factory):
                    break
            except Exception as exc:
                if not await self._store_failed(exc):
                    raise
                continue
            self._store_answers()

    async def _round(self, scheduler: AsyncIOScheduler, factory: sessionmaker[Session]
                     ) -> bool:
        """Act on the events that are set; False when a stop cut a dispatch short."""
        await self._step(self.reload_requested, self._reload)
        await self._step(self.housekeeping_due,
                         lambda: asyncio.to_thread(self.housekeeping))
        await self._step(self.digest_due, lambda: self._digest(factory))
        if self.wake.is_set():
            self.wake.clear()
            try:
                report = await self._dispatch()
            except BaseException:
                self.wake.set()
                raise
            if report is None:
                return False
            self.last_dispatch = self.now()
            if report.claimed:
                log.info("dispatched: %d sent, %d to retry, %d failed (%d emails)",
                         report.sent, report.retried, report.failed, report.messages)
        await asyncio.to_thread(self.arm, scheduler)
        return True

    @staticmethod
    async def _step(event: asyncio.Event, action: Callable[[], Awaitable[object]]) -> None:
        """Run ``action`` when ``event`` is set; a failure sets it again (tried later)."""
        if not event.is_set():
            return
        event.clear()
        try:
            await action()
        except BaseException:
            event.set()
            raise

    async def _reload(self) -> None:
        assert self.dispatcher is not None
        self.state = RunState.RELOADING
        sd_notify.reloading()
        try:
            accepted = await asyncio.to_thread(self.apply_config)
            await asyncio.to_thread(self.record_reload, accepted)
            self.dispatcher.messages.names = await asyncio.to_thread(self._unit_names)
        finally:
            self.state = RunState.RUNNING
            sd_notify.notify("READY=1")
        self.wake.set()

    async def _digest(self, factory: sessionmaker[Session]) -> None:
        queued = await asyncio.to_thread(queue_digests, factory, self.settings, self.now())
        log.info("weekly digest: %d emails queued", queued)
        self.wake.set()

    async def _store_failed(self, exc: BaseException) -> bool:
        """A database error: wait and let the step be tried again (True), stop with one
        line on a full disk (:class:`RuntimeFailure`), or False for anything else (a bug).

        Nothing is lost meanwhile: rows are changed in transactions, outcomes of sent
        emails are kept and written once the database answers (the dispatcher's
        recorder retries), and ``/healthz`` says the daemon is waiting.
        """
        trouble = store_trouble(exc)
        if trouble is None:
            return False
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        if trouble == "full":
            raise RuntimeFailure(f"the disk holding the database is full ({reason}): free "
                                 "some space and start mocd again; nothing was lost") from None
        delay = STORE_BACKOFF[min(self._store_failures, len(STORE_BACKOFF) - 1)]
        self._store_failures += 1
        waiting = ("the database is locked by another program" if trouble == "busy"
                   else "the database does not answer")
        if self.store_waiting != waiting or self._store_failures % 10 == 1:
            log.warning("%s (%s): retrying in %d s; reminders wait, nothing is lost",
                        waiting, reason, delay)
        self.store_waiting = waiting
        with suppress(TimeoutError):
            await asyncio.wait_for(self.stop_requested.wait(), delay)
        self.wake.set()
        return True

    def _store_answers(self) -> None:
        if self.store_waiting is not None:
            log.info("the database answers again after %d tries", self._store_failures)
        self.store_waiting = None
        self._store_failures = 0

    async def _with_store(self, action: Callable[[], _T]) -> _T:
        """``action`` in a worker thread, waited for while the database is busy or away
        (at start, before the loop runs)."""
        while True:
            try:
                result = await asyncio.to_thread(action)
            except Exception as exc:
                if self.stop_requested.is_set() or not await self._store_failed(exc):
                    raise
                continue
            self._store_answers()
            return result

    async def _dispatch(self) -> DispatchReport | None:
        """One dispatch round; on a stop request, in-flight sends get a bounded grace."""
        assert self.dispatcher is not None
        task = asyncio.create_task(self.dispatcher.run_once())
        stopper = asyncio.create_task(self.stop_requested.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
            if not done:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
                log.warning("sends still in flight after %.0f s were abandoned; their rows "
                            "return to pending", STOP_GRACE_SECONDS)
                return None
        return task.result()

    async def _stop(self, scheduler: AsyncIOScheduler, factory: sessionmaker[Session],
                    transport: Transport, watcher: asyncio.Task[None]) -> None:
        self.state = RunState.STOPPING
        sd_notify.notify("STOPPING=1")
        if self.dispatcher is not None:
            self.dispatcher.claiming = False
        scheduler.shutdown(wait=False)
        if self.feeds is not None:  # close the listeners, let in-flight responses finish
            await self.feeds.stop()
        stop = getattr(self, "_watch_stop", None)
        if stop is not None:
            stop.set()
        watcher.cancel()
        with suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(watcher, STOP_GRACE_SECONDS)
        try:
            released = await asyncio.to_thread(release_owned, factory, owner=self.owner)
        except Exception as exc:  # a full disk, a locked database: the leases run out
            log.warning("claimed rows not given back (%s): they are free when their leases "
                        "run out", str(exc).splitlines()[0])
        else:
            if released:
                log.info("released %d claimed rows", released)
        with suppress(Exception):
            await asyncio.wait_for(transport.close(), STOP_GRACE_SECONDS)
        if self.owner_lock is not None:
            self.owner_lock.release()
        if self.engine is not None:
            self.engine.dispose()
        self.state = RunState.STOPPED
        log.info("stopped")
