"""Delivery guarantees of `mocd run` as real processes (SPEC §5 "Delivery", §7).

Every test builds a config of N units with one milestone whose ``1d`` reminder
fired a little while ago (well within ``reminders.catch_up``), applies it to
the daemon's store itself with ``now`` two days back (so the reminder rows
exist as ``pending``: apply never creates rows already past), then starts
``mocd run`` against an aiosmtpd server on 127.0.0.1. The daemon's own apply
sees the same content hash and does nothing; it then catches up: one email
per unit. Crashes, outages, refusals, SIGTERM and two instances must leave
exact delivery counts per recipient.

Waiting for time (leases of 5 minutes, backoff of a minute and more) is
replaced by editing the outbox between daemon runs, as time passing would;
each place says so.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from config.loader import read_documents
from config.settings import ReminderSettings, Settings
from notifications.planning import plan_reminders
from scheduler.apply import apply_revision, content_hash
from scheduler.database import open_engine, session_factory, upgrade
from scheduler.expand import Window, expand_loaded, working_calendar
from scheduler.models import ConfigRevision, OutboxRow
from tests.smtp_server import LocalController
from tests.store import POSTGRES_URL, postgres_schema_url

MOCD = Path(sys.executable).parent / "mocd"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
CONCURRENCY = 4
CONFIG_NAME = "config/plan.yaml"  # what the daemon (cwd = tmp_path) calls the file
ADMIN = "admin@test.example.vn"
UID = "milestone.bao-cao@mocd.local"


def address(i: int) -> str:
    return f"u{i}@test.example.vn"


# --- the config and the store -------------------------------------------------------------


def due_day(now: datetime) -> date:
    """A due day whose 1d reminder (07:30 the day before) fired 5 min to 24 h ago.

    The config's calendar has no weekend and no holidays, so the day before is
    always a working day and the reminder is not moved back.
    """
    local = now.astimezone(VN)
    if local.time() >= datetime(2000, 1, 1, 7, 35).time():
        return local.date() + timedelta(days=1)  # fired today at 07:30
    return local.date()  # fired yesterday at 07:30


def config_yaml(units: int, due: date, comment: str = "") -> str:
    lines = [
        f"# {comment}" if comment else "# mocd delivery tests",
        "calendar: {weekend: [], holidays: none}",
        "groups: [{id: tat-ca, name: Tất cả đơn vị}]",
        "units:",
    ]
    lines += [f"  - {{id: u{i}, name: Đơn vị {i}, email: {address(i)}, groups: [tat-ca]}}"
              for i in range(units)]
    lines += [
        "milestones:",
        f"  - {{id: bao-cao, title: Gửi báo cáo tháng, when: {due.isoformat()},"
        " units: [tat-ca], reminders: [1d]}",
    ]
    return "\n".join(lines) + "\n"


def plan_settings() -> Settings:
    """What the daemon uses for expansion and planning (and so for the content hash)."""
    return Settings(timezone="Asia/Ho_Chi_Minh", uid_domain="mocd.local",
                    reminders=ReminderSettings())


def apply_config(factory: sessionmaker[Session], yaml_text: str, now: datetime) -> str:
    """Apply the config as the daemon would, at ``now``; returns the revision's content hash."""
    settings = plan_settings()
    loaded = read_documents([(CONFIG_NAME, yaml_text.encode())])
    today = datetime.now(VN).date()  # the daemon's window (feeds.past/future) for today
    window = Window(today - settings.feeds.past, today + settings.feeds.future)
    config, occurrences = expand_loaded(loaded, window, settings.uid_domain)
    reminders = plan_reminders(occurrences, config.units, working_calendar(config),
                               settings.reminders, settings.tz)
    real_now = datetime.now(UTC)
    for reminder in reminders:  # due now, and not so long ago that the daemon skips it
        assert real_now - settings.reminders.catch_up < reminder.fire_at < real_now, reminder
    label = f"{window.first}..{window.last}"  # as the daemon names its window
    result = apply_revision(factory, config, occurrences, reminders, settings=settings, now=now,
                            window=label)
    assert result.applied
    return content_hash(config, settings, label)


class Store:
    """The test's own connection to the daemon's database (SQLAlchemy, closed at the end)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = open_engine(url)
        self.factory = session_factory(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def states(self, kind: str | None = "reminder") -> dict[str, int]:
        query = select(OutboxRow.state, func.count()).group_by(OutboxRow.state)
        if kind:
            query = query.where(OutboxRow.kind == kind)
        with self.factory() as session:
            return {state: n for state, n in session.execute(query)}

    def rows(self, kind: str = "reminder") -> list[OutboxRow]:
        with self.factory() as session:
            return list(session.scalars(
                select(OutboxRow).where(OutboxRow.kind == kind).order_by(OutboxRow.id)))

    def change(self, *where: Any, **values: Any) -> int:
        with self.factory() as session, session.begin():
            result = session.execute(update(OutboxRow).where(*where).values(**values))
            return int(getattr(result, "rowcount", 0) or 0)

    def revisions(self) -> list[tuple[str, bool]]:
        with self.factory() as session:
            return [(r.content_hash, r.ok) for r in session.scalars(
                select(ConfigRevision).order_by(ConfigRevision.id))]


# --- the SMTP server ----------------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler recording every message it accepted (with 250), by recipient.

    ``delay`` slows every DATA down (messages in flight for a while); ``refuse``
    answers 550 to those RCPTs; ``defer_once`` answers 451 to the first DATA of
    each recipient list, then accepts.
    """

    delay: float = 0.0
    refuse: set[str] = field(default_factory=set)
    defer_once: bool = False
    received: list[tuple[tuple[str, ...], bytes]] = field(default_factory=list)
    deferred: list[tuple[str, ...]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rcpts = tuple(envelope.rcpt_tos)
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            if self.defer_once and rcpts not in self.deferred:
                self.deferred.append(rcpts)
                return "451 4.3.0 try again later"
            self.received.append((rcpts, envelope.original_content or envelope.content))
        return "250 2.0.0 Ok: queued"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def per_recipient(self) -> Counter[str]:
        with self.lock:
            return Counter(address for rcpts, _ in self.received for address in rcpts)

    def messages_to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            raw = [data for rcpts, data in self.received if address in rcpts]
        found = []
        for data in raw:
            message = email.message_from_bytes(data, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            found.append(message)
        return found


class SmtpServer:
    def __init__(self, box: Mailbox, port: int = 0) -> None:
        self.box = box
        self.controller = LocalController(box, hostname="127.0.0.1", port=port)
        self.controller.start()
        self.port: int = self.controller.port

    def stop(self) -> None:
        self.controller.stop()


def unused_port() -> tuple[socket.socket, int]:
    """A port nobody listens on: bound (so nobody else takes it) but not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


# --- the daemon ---------------------------------------------------------------------------


class Notifications:
    """The systemd side of sd_notify for one daemon: a datagram socket collecting messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def wait_for(self, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(name in m.split("\n") for m in self.messages):
                return
            try:
                self.messages.append(self.sock.recv(4096).decode("utf-8"))
            except TimeoutError:
                continue
        raise AssertionError(f"no {name} from mocd within {timeout} s: {self.messages}")

    def close(self) -> None:
        self.sock.close()


class Daemon:
    """``mocd run`` as a subprocess; stderr goes to a log file."""

    def __init__(self, tmp: Path, name: str, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.name = name
        self.env = env
        self.log = tmp / f"{name}.log"
        self.notify = Notifications(tmp / f"{name}.sock")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.notify.messages.clear()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOCD_")}
        env.update(self.env, NOTIFY_SOCKET=str(self.notify.path))
        with self.log.open("ab") as log:
            log.write(f"--- start {datetime.now(UTC).isoformat()}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [str(MOCD), "run", "--config", "config"], env=env, cwd=self.tmp,
                stdout=subprocess.DEVNULL, stderr=log)

    def ready(self) -> None:
        try:
            self.notify.wait_for("READY=1")
        except AssertionError:
            raise AssertionError(f"{self.name} not ready; log:\n{self.output()}") from None

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8") if self.log.exists() else ""

    def close(self) -> None:
        self.kill()
        self.notify.close()


@dataclass
class World:
    """A temporary config dir and state dir, daemons to start, and the test's store."""

    tmp: Path
    database_url: str
    daemons: list[Daemon] = field(default_factory=list)
    store: Store | None = None

    @property
    def config_dir(self) -> Path:
        return self.tmp / "config"

    def write_config(self, yaml_text: str) -> None:
        self.config_dir.mkdir(exist_ok=True)
        (self.tmp / CONFIG_NAME).write_text(yaml_text, encoding="utf-8")

    def prepare(self, units: int, comment: str = "") -> str:
        """Config on disk and applied (two days back): ``units`` pending, due reminders."""
        assert self.store is not None
        text_ = config_yaml(units, due_day(datetime.now(UTC)), comment)
        self.write_config(text_)
        revision = apply_config(self.store.factory, text_, datetime.now(UTC) - timedelta(days=2))
        assert self.store.states() == {"pending": units}
        return revision

    def daemon(self, port: int, name: str = "mocd", **extra: str) -> Daemon:
        (self.tmp / "empty.toml").write_text("")
        env = {
            "MOCD_STATE_DIR": str(self.tmp / "var"),
            "MOCD_DATABASE_URL": self.database_url,
            "MOCD_MAIL__URL": f"smtp://127.0.0.1:{port}?tls=none&timeout=5",
            "MOCD_MAIL__CONCURRENCY": str(CONCURRENCY),
            "MOCD_SETTINGS": str(self.tmp / "empty.toml"),
            "MOCD_DIGEST__CRON": "",  # no weekly digest in the middle of a count
            "MOCD_HTTP__PORT": "0",  # two instances on one machine
        }
        env.update(extra)
        d = Daemon(self.tmp, name, env)
        self.daemons.append(d)
        return d

    def logs(self) -> str:
        return "\n".join(f"=== {d.name}\n{d.output()}" for d in self.daemons)

    def two_daemons(self, port: int, **extra: str) -> tuple[Daemon, Daemon]:
        """Two instances on the same store, started together and ready."""
        a, b = self.daemon(port, "mocd-a", **extra), self.daemon(port, "mocd-b", **extra)
        a.start()
        b.start()
        a.ready()
        b.ready()
        return a, b

    def all_sent(self, units: int, timeout: float) -> None:
        """Every reminder row sent; then every daemon stopped cleanly."""
        assert self.store is not None
        store = self.store
        wait_until(lambda: store.states() == {"sent": units}, timeout, "every row sent", self)
        time.sleep(0.5)
        for daemon in self.daemons:
            if daemon.process is not None and daemon.process.poll() is None:
                assert daemon.terminate() == 0


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               world: World | None = None, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    logs = world.logs()[-6000:] if world else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'var' / 'mocd.sqlite3'}"
    world = World(tmp_path, url)
    world.store = Store(url)
    upgrade(world.store.engine)  # what `mocd run` does itself on SQLite (a no-op then)
    try:
        yield world
    finally:
        for d in world.daemons:
            d.close()
        world.store.close()


@pytest.fixture
def postgres_world(tmp_path: Path) -> Iterator[World]:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need MOCD_TEST_POSTGRES_URL (.ci/run sets it)")
    schema = f"mocd_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = postgres_schema_url(POSTGRES_URL, schema)
    world = World(tmp_path, url)
    world.store = Store(url)
    try:
        upgrade(world.store.engine)  # `mocd db upgrade`: the daemon does not migrate PostgreSQL
        yield world
    finally:
        for d in world.daemons:
            d.close()
        world.store.close()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def servers() -> Iterator[Callable[..., SmtpServer]]:
    started: list[SmtpServer] = []

    def start(box: Mailbox, port: int = 0) -> SmtpServer:
        server = SmtpServer(box, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def everyone(units: int) -> set[str]:
    return {address(i) for i in range(units)}


# --- 1. a crash -----------------------------------------------------------------------------


def crash_drill(world: World, servers: Callable[..., SmtpServer], units: int, kill_at: int,
                delay: float) -> dict[str, float]:
    """SIGKILL the daemon after ``kill_at`` of ``units`` messages (a slow server), restart
    it and wait for the rest. Nothing may be lost; only what was in flight at the kill (at
    most mail.concurrency) may go twice; the rest must go out within 60 s of the restart,
    with no help (no lease is expired by hand: the restarted daemon proves the old owner
    dead — SQLite: the database lock; PostgreSQL: the owner's advisory lock)."""
    assert world.store is not None
    world.prepare(units)
    box = Mailbox(delay=delay)
    server = servers(box)
    daemon = world.daemon(server.port)
    daemon.start()
    daemon.ready()
    wait_until(lambda: box.count() >= kill_at, 60, f"{kill_at} messages before the crash",
               world)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(timeout=10)
    at_kill = box.count()
    states = world.store.states()
    assert sum(states.values()) == units  # nothing lost
    assert states.get("sent", 0) <= at_kill
    # Claims are small: a few times mail.concurrency, not the whole batch.
    assert states.get("sending", 0) <= 8 * CONCURRENCY, states

    restarted = time.monotonic()
    daemon.start()
    daemon.ready()
    wait_until(lambda: box.count() > at_kill, 60, "the first message after the restart",
               world)
    first = time.monotonic() - restarted
    wait_until(lambda: world.store is not None and world.store.states() == {"sent": units},
               60, "every row sent within 60 s of the restart", world)
    done = time.monotonic() - restarted
    assert daemon.terminate() == 0
    got = box.per_recipient()
    assert set(got) == everyone(units)  # every unit got its reminder...
    twice = sorted(a for a, n in got.items() if n == 2)
    assert max(got.values()) <= 2
    # ...and only what was in flight at the kill (at most mail.concurrency) went twice.
    assert len(twice) <= CONCURRENCY, (at_kill, states, twice)
    assert box.count() == units + len(twice)
    assert "config unchanged" in daemon.output()  # the daemon did not re-plan anything
    figures = {"received_before_kill": at_kill, "sending_at_kill": states.get("sending", 0),
               "first_after_restart_s": round(first, 2), "all_sent_after_restart_s":
               round(done, 2), "duplicates": len(twice)}
    print(f"crash drill: {figures}")
    return figures


@pytest.mark.timeout(180)
def test_after_sigkill_the_rest_goes_out_at_once_and_only_in_flight_ones_twice(
        sqlite_world, servers) -> None:
    figures = crash_drill(sqlite_world, servers, units=120, kill_at=30, delay=0.3)
    assert figures["first_after_restart_s"] < 10  # no lease to wait for


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_after_sigkill_on_postgres_the_dead_owners_rows_are_freed_at_once(
        postgres_world, servers) -> None:
    figures = crash_drill(postgres_world, servers, units=120, kill_at=30, delay=0.3)
    assert figures["first_after_restart_s"] < 10


def test_a_second_daemon_on_one_sqlite_database_is_refused(sqlite_world, servers) -> None:
    world = sqlite_world
    box = Mailbox()
    server = servers(box)
    first = world.daemon(server.port, "first")
    first.start()
    first.ready()
    second = world.daemon(server.port, "second")
    second.start()
    assert second.process is not None
    assert second.process.wait(timeout=30) == 3
    last = second.output().strip().splitlines()[-1]
    assert last.startswith("mocd: another mocd run (pid "), last
    assert "mocd.sqlite3.lock is locked" in last
    assert first.terminate() == 0


# --- 2. an SMTP outage --------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_an_outage_then_a_451_are_retried_and_everything_is_delivered_once(
        sqlite_world, servers) -> None:
    world, units = sqlite_world, 20
    store = world.store
    assert store is not None
    world.prepare(units)
    placeholder, port = unused_port()
    try:
        daemon = world.daemon(port)
        # Phase 1: nobody listens on the port (connection refused).
        daemon.start()
        daemon.ready()
        wait_until(lambda: all(r.state == "pending" and r.attempts == 1 and r.last_error
                               for r in store.rows()), 30, "a failed first attempt", world)
        assert daemon.terminate() == 0
    finally:
        placeholder.close()
    rows = store.rows()
    assert {(r.state, r.attempts) for r in rows} == {("pending", 1)}
    assert all(str(port) in (r.last_error or "") for r in rows), rows[0].last_error
    assert all(r.next_attempt_at > datetime.now(UTC) for r in rows)  # backed off
    refused_error = rows[0].last_error

    def time_passes() -> None:
        # The backoff is 30 s or more: make the retries due now, as time passing would.
        assert store.change(OutboxRow.state == "pending",
                            next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)) == units

    # Phase 2: the server is back but answers 451 to each message once.
    time_passes()
    box = Mailbox(defer_once=True)
    servers(box, port)
    daemon.start()
    daemon.ready()
    wait_until(lambda: all(r.state == "pending" and r.attempts == 2 for r in store.rows()),
               30, "the 451 answers recorded", world)
    assert daemon.terminate() == 0
    rows = store.rows()
    assert {r.last_error for r in rows} == {"451 4.3.0 try again later"}
    assert box.received == []
    assert sorted(box.deferred) == sorted((a,) for a in everyone(units))

    # Phase 3: it accepts.
    time_passes()
    daemon.start()
    daemon.ready()
    wait_until(lambda: store.states() == {"sent": units}, 30, "everything sent", world)
    assert daemon.terminate() == 0
    rows = store.rows()
    assert {(r.state, r.attempts, r.last_error, r.smtp_reply) for r in rows} == {
        ("sent", 3, None, "250 2.0.0 Ok: queued")}
    assert box.per_recipient() == Counter({a: 1 for a in everyone(units)})
    print(f"outage: first error {refused_error!r}; attempts {[r.attempts for r in rows][:3]}…")


# --- 3. a permanent refusal -----------------------------------------------------------------


def test_a_550_fails_that_row_and_the_admin_gets_a_report(sqlite_world, servers) -> None:
    world, units = sqlite_world, 10
    store = world.store
    assert store is not None
    world.prepare(units)
    box = Mailbox(refuse={address(3)})
    server = servers(box)
    daemon = world.daemon(server.port, MOCD_MAIL__ADMIN=ADMIN)
    daemon.start()
    daemon.ready()
    # The report is an outbox row queued by the first dispatch round, due at once.
    wait_until(lambda: len(box.messages_to(ADMIN)) >= 1, 30, "the failure report", world)
    wait_until(lambda: store.states(kind=None) == {"sent": units, "failed": 1}, 10,
               "the report's row sent", world)
    time.sleep(0.5)  # a second report would have gone out by now
    assert daemon.terminate() == 0

    failed = [r for r in store.rows() if r.state == "failed"]
    assert [(r.unit, r.last_error, r.attempts) for r in failed] == [
        ("u3", f"{address(3)}: 550 5.1.1 mailbox unavailable", 1)]
    assert box.per_recipient() == Counter(
        {a: 1 for a in everyone(units) - {address(3)}} | {ADMIN: 1})
    [report] = box.messages_to(ADMIN)
    body = report.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert address(3) in content
    assert "550 5.1.1 mailbox unavailable" in content
    [row] = store.rows("delivery_failure")
    assert (row.state, row.attempts) == ("sent", 1)


# --- 4. two instances on one PostgreSQL database ---------------------------------------------


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_two_daemons_on_one_postgres_send_every_message_once(postgres_world, servers) -> None:
    world, units = postgres_world, 500
    store = world.store
    assert store is not None
    first = world.prepare(units)
    # The due rows exist only because the test applied the config two days back. For
    # the two daemons to really race on applying, the files on disk are a new revision
    # (a comment changed): each tries to apply it; the advisory lock and the content
    # hash must make that happen exactly once.
    second_text = config_yaml(units, due_day(datetime.now(UTC)), "sửa chú thích")
    world.write_config(second_text)
    loaded = read_documents([(CONFIG_NAME, second_text.encode())])
    assert loaded.config is not None
    today = datetime.now(VN).date()
    settings = plan_settings()
    label = f"{today - settings.feeds.past}..{today + settings.feeds.future}"
    second = content_hash(loaded.config, settings, label)
    box = Mailbox()
    server = servers(box)
    a, b = world.two_daemons(server.port)
    world.all_sent(units, 90)

    got = box.per_recipient()
    assert got == Counter({x: 1 for x in everyone(units)})
    assert box.count() == units
    revisions = store.revisions()
    assert revisions == [(first, True), (second, True)]  # the new one recorded once
    applied = [d.name for d in (a, b) if "config applied" in d.output()]
    assert len(applied) == 1, world.logs()
    assert all(r.message_id and r.attempts == 1 for r in store.rows())  # no retries needed
    print(f"two daemons: applied by {applied}; "
          f"sends a/b: {a.output().count('sent reminder:')}/{b.output().count('sent reminder:')}")


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_two_daemons_a_slow_server_and_a_short_lease_send_every_message_once(
        postgres_world, servers) -> None:
    """A server answering in 1.5 s, a 5 s lease, 2 connections per instance: a claim of
    everything due would outlive its lease many times over and the other instance would
    take its rows back. Claims sized to the lease, renewed while they wait, and the
    ownership check before each send keep every message single."""
    world, units = postgres_world, 60
    store = world.store
    assert store is not None
    world.prepare(units)
    box = Mailbox(delay=1.5)
    server = servers(box)
    a, b = world.two_daemons(server.port, MOCD_MAIL__LEASE="5s", MOCD_MAIL__CONCURRENCY="2")
    world.all_sent(units, 180)
    got = box.per_recipient()
    duplicates = box.count() - units
    print(f"two daemons, slow server: {box.count()} emails for {units} reminders "
          f"({duplicates} duplicates); sends a/b: {a.output().count('sent reminder:')}/"
          f"{b.output().count('sent reminder:')}")
    assert got == Counter({x: 1 for x in everyone(units)})
    assert duplicates == 0
    assert "taken back" not in world.logs()


# --- 5. SIGTERM in the middle of a dispatch --------------------------------------------------


@pytest.mark.timeout(180)
def test_sigterm_mid_dispatch_exits_0_and_leaves_nothing_sending(sqlite_world, servers) -> None:
    world, units = sqlite_world, 200
    store = world.store
    assert store is not None
    world.prepare(units)
    box = Mailbox(delay=0.05)
    server = servers(box)
    daemon = world.daemon(server.port)
    daemon.start()
    daemon.ready()
    wait_until(lambda: box.count() >= 20, 30, "20 messages", world)
    assert daemon.process is not None
    at_term = box.count()
    started = time.monotonic()
    assert daemon.terminate(timeout=15) == 0
    took = time.monotonic() - started
    at_exit = box.count()
    states = store.states()
    assert "sending" not in states, states  # leases released (or rows sent)
    assert set(states) <= {"sent", "pending"}
    assert states.get("sent", 0) == at_exit  # each accepted message recorded as sent
    daemon.notify.wait_for("STOPPING=1")

    daemon.start()
    daemon.ready()
    wait_until(lambda: store.states() == {"sent": units}, 60, "everything sent", world)
    assert daemon.terminate() == 0
    assert box.per_recipient() == Counter({a: 1 for a in everyone(units)})
    print(f"sigterm: {at_term} received at SIGTERM, {at_exit} at exit {took:.1f} s later, "
          f"outbox then {states}")


@pytest.mark.timeout(180)
def test_sigterm_stops_claimed_but_unstarted_sends_within_the_grace(
        sqlite_world, servers) -> None:
    """SPEC §7: "SIGTERM: stop claiming, finish in-flight sends (bounded), exit 0".

    A slow server (0.5 s a message, 4 at a time): the 200 claimed rows need ~25 s.
    After SIGTERM only the ≤ 4 messages in flight should finish; the rest of the
    claimed batch goes back to pending, and the process is gone within the 10 s
    grace (STOP_GRACE_SECONDS), not after the whole batch.
    """
    world, units = sqlite_world, 200
    store = world.store
    assert store is not None
    world.prepare(units)
    box = Mailbox(delay=0.5)
    server = servers(box)
    daemon = world.daemon(server.port)
    daemon.start()
    daemon.ready()
    wait_until(lambda: box.count() >= 8, 30, "8 messages", world)
    assert daemon.process is not None
    at_term = box.count()
    daemon.process.send_signal(signal.SIGTERM)
    try:
        code = daemon.process.wait(timeout=12)
    except subprocess.TimeoutExpired:
        daemon.kill()
        pytest.fail(f"still running 12 s after SIGTERM: {at_term} messages then, "
                    f"{box.count()} now, of {units}")
    assert code == 0
    assert box.count() <= at_term + 2 * CONCURRENCY
    states = store.states()
    assert "sending" not in states
    assert states.get("pending", 0) >= units - at_term - 2 * CONCURRENCY


# --- 6. a crash between a permanent failure and its report ------------------------------------


@pytest.mark.timeout(180)
def test_a_crash_after_a_550_does_not_lose_the_admin_report(sqlite_world, servers) -> None:
    world, units = sqlite_world, 200
    store = world.store
    assert store is not None
    world.prepare(units)
    box = Mailbox(delay=0.05, refuse={address(0)})  # u0's row is the first one claimed
    server = servers(box)
    daemon = world.daemon(server.port, MOCD_MAIL__ADMIN=ADMIN)
    daemon.start()
    daemon.ready()
    wait_until(lambda: box.count() >= 50, 30, "50 messages before the crash", world)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(timeout=10)
    [failed] = [r for r in store.rows() if r.state == "failed"]
    assert failed.unit == "u0"  # failed at once, before the crash
    # Leases of the dead instance: expired, as 5 minutes passing would.
    store.change(OutboxRow.state == "sending",
                 lease_until=datetime.now(UTC) - timedelta(seconds=1))
    daemon.start()
    daemon.ready()
    wait_until(lambda: store.states() == {"sent": units - 1, "failed": 1}, 60,
               "every other row sent after the restart", world)
    try:
        wait_until(lambda: bool(box.messages_to(ADMIN)), 5, "the failure report", world)
    finally:
        assert daemon.terminate() == 0
    [report] = box.messages_to(ADMIN)
    body = report.get_body(("plain",))
    assert body is not None
    assert address(0) in body.get_content()
