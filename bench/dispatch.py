#!/usr/bin/env python3
"""How fast ``Dispatcher.run_once`` sends, and how fast ``mocd run`` starts on a big outbox.

    .venv/bin/python bench/dispatch.py              # 10,000 reminders, 1,000,000 rows (~3 min)
    .venv/bin/python bench/dispatch.py --quick      # 1,000 reminders, 100,000 rows (~40 s)
    .venv/bin/python bench/dispatch.py --quick --profile   # + cProfile of one dispatch

Two questions from the issue, each answered next to a baseline measured in the same run:

* **dispatch**: 10,000 due reminders for 10,000 units (a config applied with
  ``apply_revision``; each unit gets one reminder, so one email), sent by
  ``Dispatcher.run_once`` with ``SmtpTransport(concurrency=4)`` and a ``FixedClock`` at
  the fire time, to aiosmtpd on 127.0.0.1. The SMTP server runs in its own process (this
  script with ``--smtp-server``), so its CPU does not share the client's GIL; it counts
  the messages and their bytes and does not parse them. Baseline: the same 10,000
  ``EmailMessage`` objects, built beforehand with ``MessageFactory.reminder``, sent with
  bare aiosmtplib over 4 persistent connections (4 workers on one queue). Reported:
  messages/s of both and the ratio mocd / raw (target >= 0.8), and where mocd's CPU goes
  (database calls in worker threads, message building, flattening, the rest of the
  event loop). The config has one milestone per 10 units (``--audience spread``): with
  one milestone to ``all`` (``--audience all``) every email's .ics lists all 10,000
  unit names (330 kB an email), so the run would take many minutes; what one such email
  costs, by the number of units, is measured on a sample instead.
* **startup**: ``mocd run --config DIR`` as a child process (``MOCD_STATE_DIR``,
  ``MOCD_DATABASE_URL``, ``MOCD_SETTINGS`` = an empty file, ``NOTIFY_SOCKET`` = a
  datagram socket bound here): seconds from spawn to ``READY=1`` and peak RSS (VmHWM
  just before SIGTERM, once the daemon is idle), on SQLite with 1,000,000 outbox rows
  (half ``sent`` in the past, half ``pending`` in the future; targets < 2 s, < 200 MB),
  next to the same start with an empty outbox. The config is small (10 units, one
  milestone) and already applied, as on a restart; a second run edits it (a new
  revision), which makes the apply diff the outbox. The daemon's start-up steps are also
  timed one by one in this process, to find any that grows with the outbox.

Nothing here changes mocd: it imports the package installed in the venv. Temporary
files go to a temporary directory (``--keep`` keeps it). Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import logging
import os
import platform
import pstats
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

VN = ZoneInfo("Asia/Ho_Chi_Minh")
APPLIED = datetime(2024, 5, 1, 9, 0, tzinfo=VN)  # the config is applied then ...
FIRE = datetime(2024, 5, 23, 7, 30, tzinfo=VN)  # ... and the 7d reminder of 30/5 fires here
DOMAIN = "bench.example.vn"


# -- the SMTP server (a child process) -------------------------------------------------


def serve_smtp() -> None:
    """aiosmtpd on 127.0.0.1, port chosen by the OS, printed on stdout.

    Reads commands on stdin, one a line: ``stats`` answers ``COUNT BYTES CPU_SECONDS``
    (messages and bytes of DATA accepted so far, this process's CPU time); end of input
    stops it.
    """
    import logging

    from aiosmtpd.smtp import SMTP

    logging.getLogger("mail.log").setLevel(logging.CRITICAL)

    class Counter:
        count = 0
        size = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.count += 1
            self.size += len(envelope.original_content or b"")
            return "250 2.0.0 Ok: queued"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handler = Counter()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="bench-smtp", auth_require_tls=False),
            "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip() == b"stats":
                print(handler.count, handler.size, time.process_time(), flush=True)
        server.close()

    asyncio.run(main())


class SmtpServer:
    """The server process, seen from here."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--smtp-server"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=_clean_env())
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stats(self) -> tuple[int, int, float]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        count, size, cpu = self.proc.stdout.readline().split()
        return int(count), int(size), float(cpu)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- helpers ----------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MOCD_")}


def versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for dist in ("aiosmtplib", "aiosmtpd", "SQLAlchemy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            parts.append(f"{dist} {metadata.version(dist)}")
    parts.append(f"SQLite {sqlite3.sqlite_version}")
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                "--untracked-files=no", "--", "scheduler", "notifications",
                                "config", "calendars"],
                               capture_output=True, text=True, check=False).stdout.strip()
        if head:
            parts.append(f"mocd {head}{' + uncommitted changes' if dirty else ''}")
    except OSError:
        pass
    return ", ".join(parts)


def mocd_command() -> list[str]:
    script = Path(sys.executable).parent / "mocd"
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "from scheduler.cli import entry; entry()"]


def copy_db(source: Path, target: Path) -> None:
    """A SQLite file whose connections are all closed (so no -wal file is left)."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (target.parent / (target.name + suffix)).unlink()
    if (source.parent / (source.name + "-wal")).exists():
        raise RuntimeError(f"{source} still has a -wal file: a connection is open")
    shutil.copyfile(source, target)


def production_gc() -> None:
    """The thresholds ``mocd`` sets for every command (scheduler.cli.main), `run` included."""
    gc.set_threshold(100_000, 50, 1000)


# -- dispatch: setup --------------------------------------------------------------------


def units_yaml(n: int, prefix: str = "u") -> str:
    lines = ["units:"]
    lines += [f'  - {{id: {prefix}{i}, name: "Đơn vị số {i}", email: {prefix}{i}@{DOMAIN}}}'
              for i in range(n)]
    return "\n".join(lines) + "\n"


def milestones_yaml(n: int, audience: str) -> str:
    """Milestones due 2024-05-30 with a 7d reminder, so that each of the ``n`` units gets
    exactly one reminder: ``spread``: one milestone per 10 units; ``all``: one milestone
    to ``all`` (the .ics of every email then lists all ``n`` unit names)."""
    title = "Báo cáo sơ kết phong trào thi đua 6 tháng đầu năm 2024"
    if audience == "all":
        return ("milestones:\n"
                f'  - {{id: bao-cao-so-ket, title: "{title}", when: 2024-05-30, '
                "units: [all], reminders: [7d]}\n")
    lines = ["milestones:"]
    for j in range(0, n, PER_MILESTONE):
        units = ", ".join(f"u{i}" for i in range(j, min(n, j + PER_MILESTONE)))
        lines.append(f'  - {{id: bao-cao-{j // PER_MILESTONE}, title: "{title} (cụm '
                     f'{j // PER_MILESTONE + 1})", when: 2024-05-30, units: [{units}], '
                     "reminders: [7d]}")
    return "\n".join(lines) + "\n"


PER_MILESTONE = 10


@dataclass
class Prepared:
    master: Path  # the applied store, copied before each run
    settings: Any
    names: dict[str, str]
    occurrences: list[Any]
    reminders: list[Any]
    load_s: float
    apply_s: float


def load_bench_config(n: int, audience: str) -> tuple[Any, list[Any], list[Any], Any]:
    """(config, occurrences, planned reminders, settings) for ``n`` units."""
    from config.loader import load_documents
    from config.settings import Settings
    from notifications.planning import plan_reminders
    from scheduler.expand import Window, expand, working_calendar

    settings = Settings(mail={"admin": f"admin@{DOMAIN}", "concurrency": 4,
                              "sender": f"mocd <mocd@{DOMAIN}>"})
    config = load_documents([("units.yaml", units_yaml(n).encode()),
                             ("milestones.yaml", milestones_yaml(n, audience).encode())])
    occurrences = expand(config, Window(date(2024, 1, 1), date(2024, 12, 31)))
    reminders = plan_reminders(occurrences, config.units, working_calendar(config),
                               settings.reminders, VN)
    return config, occurrences, reminders, settings


def prepare_dispatch(n: int, audience: str, concurrency: int, work: Path) -> Prepared:
    """Apply a config of ``n`` units (see milestones_yaml), as the daemon would."""
    from scheduler.apply import apply_revision
    from scheduler.database import open_engine, session_factory, upgrade

    start = time.perf_counter()
    config, occurrences, reminders, settings = load_bench_config(n, audience)
    settings = settings.model_copy(update={"mail": settings.mail.model_copy(
        update={"concurrency": concurrency})})
    load_s = time.perf_counter() - start
    if len(reminders) != n or any(r.fire_at != FIRE for r in reminders):
        raise SystemExit(f"unexpected reminders planned: {len(reminders)}, {reminders[:3]}")
    master = work / "dispatch-master.sqlite3"
    engine = open_engine(f"sqlite:///{master}")
    upgrade(engine)
    start = time.perf_counter()
    result = apply_revision(session_factory(engine), config, occurrences, reminders,
                            settings=settings, now=APPLIED)
    apply_s = time.perf_counter() - start
    engine.dispose()
    assert result.reminders_added == n, result.summary
    names = {uid: u.name for uid, u in config.units.items()}
    return Prepared(master, settings, names, occurrences, reminders, load_s, apply_s)


def build_messages(settings: Any, names: dict[str, str], occurrences: list[Any],
                   reminders: list[Any], factory: Any = None) -> list[Any]:
    """The same messages run_once builds: one reminder per unit, same key, same clock."""
    from notifications.messages import MessageFactory, Recipient, ReminderItem

    factory = factory or MessageFactory(settings, names)
    by_uid = {o.uid: o for o in occurrences}
    messages = []
    for r in reminders:
        occurrence = by_uid[r.uid]
        recipient = Recipient(r.unit, names[r.unit], (f"{r.unit}@{DOMAIN}",), "vi")
        item = ReminderItem(occurrence, r.offset.text, (occurrence.day - FIRE.date()).days)
        key = f"reminder:{r.uid}:{r.unit}:{r.offset.text}"
        messages.append(factory.reminder(recipient, [item], key=key, now=FIRE))
    return messages


@dataclass
class Audience:
    units: int
    build: float  # seconds per message
    size: float  # bytes per message, as sent


def cost_by_audience(sizes: list[int], sample: int) -> list[Audience]:
    """One milestone to ``all`` of N units: what one reminder email costs to build, and
    weighs, as N grows (the .ics DESCRIPTION lists every unit's name)."""
    from notifications.messages import MessageFactory

    found = []
    for n in sizes:
        config, occurrences, reminders, settings = load_bench_config(n, "all")
        names = {uid: u.name for uid, u in config.units.items()}
        factory = MessageFactory(settings, names)
        chosen = reminders[:sample]
        build_messages(settings, names, occurrences, chosen[:2], factory)  # compile templates
        gc.collect()
        start = time.perf_counter()
        messages = build_messages(settings, names, occurrences, chosen, factory)
        per = (time.perf_counter() - start) / len(chosen)
        size = sum(len(m.data) for m in messages) / len(messages)
        found.append(Audience(n, per, size))
    return found


# -- dispatch: the two senders ----------------------------------------------------------


@dataclass
class Run:
    who: str
    messages: int
    wall: float
    cpu: float  # this process, all threads
    server_cpu: float
    server_count: int
    server_bytes: int

    @property
    def rate(self) -> float:
        return self.messages / self.wall


async def _send_raw(messages: list[Any], port: int, concurrency: int) -> int:
    """``messages``: EmailMessages (sent with ``send_message``, which flattens them) or
    OutgoingMessages (their bytes sent with ``sendmail``)."""
    from aiosmtplib import SMTP

    pending = iter(messages)

    async def worker() -> int:
        client = SMTP(hostname="127.0.0.1", port=port, local_hostname="bench-client",
                      start_tls=False, timeout=30)
        await client.connect()
        sent = 0
        try:
            for message in pending:  # one shared iterator: a work queue for the workers
                if isinstance(message, EmailMessage):
                    await client.send_message(message)
                else:
                    await client.sendmail(message.sender, message.recipients, message.data)
                sent += 1
        finally:
            await client.quit()
        return sent

    return sum(await asyncio.gather(*(worker() for _ in range(concurrency))))


def run_raw(who: str, messages: list[Any], server: SmtpServer, concurrency: int) -> Run:
    count0, bytes0, server0 = server.stats()
    gc.collect()
    start, cpu0 = time.perf_counter(), time.process_time()
    sent = asyncio.run(_send_raw(messages, server.port, concurrency))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    count1, bytes1, server1 = server.stats()
    assert sent == len(messages)
    return Run(who, sent, wall, cpu, server1 - server0, count1 - count0, bytes1 - bytes0)


@dataclass
class Part:
    calls: int = 0
    wall: float = 0.0
    cpu: float = 0.0


class Instruments:
    """Times (wall and thread CPU) of the dispatcher's parts, with an optional cProfile.

    The database calls run in worker threads (``asyncio.to_thread``): cProfile only sees
    the thread that enabled it, so with ``profile`` each worker thread gets its own
    profiler around those calls, and the profiles are merged at the end.
    """

    def __init__(self, profile: bool) -> None:
        self.parts: dict[str, Part] = {}
        self.lock = threading.Lock()
        self.profile = profile
        self.local = threading.local()
        self.profilers: list[cProfile.Profile] = []
        self.restore: list[tuple[Any, str, Any]] = []

    def _timed(self, name: str, fn: Callable[..., Any], in_thread: bool) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            profiler = None
            if self.profile and in_thread:
                profiler = getattr(self.local, "profiler", None)
                if profiler is None:
                    profiler = self.local.profiler = cProfile.Profile()
                    with self.lock:
                        self.profilers.append(profiler)
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            if profiler is not None:
                profiler.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                if profiler is not None:
                    profiler.disable()
                wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
                with self.lock:
                    part = self.parts.setdefault(name, Part())
                    part.calls += 1
                    part.wall += wall
                    part.cpu += cpu

        return wrapper

    def patch(self, owner: Any, attr: str, name: str, *, in_thread: bool) -> None:
        original = getattr(owner, attr)
        self.restore.append((owner, attr, original))
        setattr(owner, attr, self._timed(name, original, in_thread))

    def __enter__(self) -> Instruments:
        import scheduler.dispatcher
        from scheduler.dispatcher import Dispatcher

        d = scheduler.dispatcher
        self.patch(d, "release_expired", "release_expired", in_thread=True)
        self.patch(d, "claim_due", "claim_due", in_thread=True)
        self.patch(Dispatcher, "_context", "_context (units, occurrences)", in_thread=True)
        self.patch(d, "record", "record outcomes (group commit)", in_thread=True)
        self.patch(Dispatcher, "_build", "build message (_build)", in_thread=False)
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, attr, original in reversed(self.restore):
            setattr(owner, attr, original)


@contextlib.contextmanager
def daemon_logging(path: Path) -> Iterator[logging.Handler]:
    """Logging as ``mocd run`` sets it up (INFO, one text line per event: the dispatcher
    logs every email sent), written to ``path`` instead of stderr."""
    from scheduler.logs import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    with open(path, "a", encoding="utf-8") as stream:
        stderr, sys.stderr = sys.stderr, stream
        try:
            setup_logging("text")
        finally:
            sys.stderr = stderr
        try:
            yield root.handlers[0]
        finally:
            root.handlers[:], level = saved
            root.setLevel(level)


@dataclass
class MocdRun(Run):
    parts: dict[str, Part] = field(default_factory=dict)
    loop_cpu: float = 0.0  # the event loop's thread
    profile: pstats.Stats | None = None


def run_mocd(p: Prepared, server: SmtpServer, concurrency: int, work: Path,
             profile: bool = False) -> MocdRun:
    from notifications.mail_url import MailServer
    from notifications.messages import MessageFactory
    from notifications.outbox import counts
    from notifications.smtp import SmtpTransport
    from scheduler.clock import FixedClock
    from scheduler.database import open_engine, session_factory
    from scheduler.dispatcher import Dispatcher, DispatchReport

    db = work / "dispatch-run.sqlite3"
    copy_db(p.master, db)
    engine = open_engine(f"sqlite:///{db}")
    factory = session_factory(engine)
    messages = MessageFactory(p.settings, p.names)
    loop_profiler = cProfile.Profile() if profile else None

    async def run() -> tuple[DispatchReport, float, float, float]:
        transport = SmtpTransport(MailServer("127.0.0.1", server.port, "none", timeout=30),
                                  concurrency, local_hostname="bench-client")
        dispatcher = Dispatcher(factory, transport, messages, p.settings, FixedClock(FIRE),
                                owner="bench")
        try:
            if loop_profiler is not None:
                loop_profiler.enable()
            start, cpu0, loop0 = time.perf_counter(), time.process_time(), time.thread_time()
            report = await dispatcher.run_once()
            wall = time.perf_counter() - start
            cpu, loop_cpu = time.process_time() - cpu0, time.thread_time() - loop0
            if loop_profiler is not None:
                loop_profiler.disable()
        finally:
            await transport.close()
        return report, wall, cpu, loop_cpu

    count0, bytes0, server0 = server.stats()
    gc.collect()
    with Instruments(profile) as instruments, daemon_logging(work / "dispatch.log") as handler:
        instruments.patch(handler, "emit", "log lines (INFO, as in mocd run)", in_thread=False)
        report, wall, cpu, loop_cpu = asyncio.run(run())
    count1, bytes1, server1 = server.stats()
    state = counts(factory)
    engine.dispose()
    n = len(p.reminders)
    if (report.sent, report.messages, report.failed) != (n, n, 0) or state != {"sent": n}:
        raise SystemExit(f"mocd did not send everything: {report} {state}")
    stats = None
    if loop_profiler is not None:
        stats = pstats.Stats(loop_profiler)
        for thread_profiler in instruments.profilers:
            stats.add(thread_profiler)
    return MocdRun("mocd run_once", report.messages, wall, cpu, server1 - server0,
                   count1 - count0, bytes1 - bytes0, instruments.parts, loop_cpu, stats)


# -- startup ------------------------------------------------------------------------------


SMALL_UNITS = 10


def small_config(directory: Path, title: str) -> Path:
    """10 units, one milestone 60 days from today: ~40 pending reminders, applies fast."""
    directory.mkdir(parents=True, exist_ok=True)
    due = date.today() + timedelta(days=60)
    (directory / "units.yaml").write_text(units_yaml(SMALL_UNITS, "s"), encoding="utf-8")
    (directory / "milestones.yaml").write_text(
        "milestones:\n"
        f'  - {{id: bao-cao-quy, title: "{title}", when: {due.isoformat()}, units: [all]}}\n',
        encoding="utf-8")
    return directory


def bulk_outbox(db: Path, rows: int) -> float:
    """``rows`` reminder rows in one transaction: half ``sent`` in the past, half ``pending``
    in the future; 1,000 units × rows/1,000 occurrences. The columns are written as
    SQLAlchemy writes them (UTC, naive ``YYYY-MM-DD HH:MM:SS.ffffff`` text, JSON text)."""
    per = 1000
    occurrences = max(1, rows // per)
    now = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    half = occurrences // 2
    fire = []
    for j in range(occurrences):  # past ones over 2 years, future ones over 1 year
        if j < half:
            moment = now - timedelta(days=730) + timedelta(days=729 * j / max(1, half))
        else:
            moment = now + timedelta(days=1) + timedelta(days=364 * (j - half) / max(
                1, occurrences - half))
        fire.append(moment.strftime(fmt))
    created = (now - timedelta(days=800)).strftime(fmt)

    def generate() -> Iterator[tuple[Any, ...]]:
        for i in range(rows):
            j, unit = divmod(i, per)
            uid = f"milestone.bulk-{j}@mocd.local"
            sent = j < half
            yield (f"reminder:{uid}:u{unit}:7d", "reminder", f"u{unit}", f'["{uid}"]', "7d",
                   fire[j], "sent" if sent else "pending", 1 if sent else 0, fire[j],
                   "250 2.0.0 Ok: queued" if sent else None,
                   f"<{i:032x}@mocd.local>" if sent else None, "{}", created,
                   fire[j] if sent else None)

    start = time.perf_counter()
    connection = sqlite3.connect(db, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")  # no 400 MB WAL for one big write
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-262144")
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO outbox (idempotency_key, kind, unit, occurrence_uids, offset, fire_at,"
            " state, attempts, next_attempt_at, smtp_reply, message_id, payload, created_at,"
            " sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", generate())
        connection.execute("COMMIT")
        connection.execute("ANALYZE")  # harmless; mocd never runs it, so drop the stats again
        connection.execute("DROP TABLE IF EXISTS sqlite_stat1")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
    return time.perf_counter() - start


def proc_status(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` field in bytes (VmHWM, VmRSS)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def proc_cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@dataclass
class Start:
    name: str
    rows: int
    ready: float = 0.0  # seconds from spawn to READY=1
    rss_ready: int = 0  # VmRSS at READY=1
    hwm: int = 0  # VmHWM once idle, before SIGTERM
    log: str = ""


def start_daemon(name: str, rows: int, config_dir: Path, state_dir: Path, db: Path,
                 work: Path) -> Start:
    """Spawn ``mocd run``, wait for READY=1 on our notify socket, then for it to go idle."""
    result = Start(name, rows)
    settings_file = work / "empty.toml"
    settings_file.touch()
    notify_path = work / "notify.sock"
    with contextlib.suppress(FileNotFoundError):
        notify_path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(0.05)
    env = _clean_env()
    env.pop("WATCHDOG_USEC", None)
    env.update(MOCD_STATE_DIR=str(state_dir), MOCD_DATABASE_URL=f"sqlite:///{db}",
               MOCD_SETTINGS=str(settings_file), NOTIFY_SOCKET=str(notify_path))
    log_path = work / f"daemon-{name.replace(' ', '-')}.log"
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen([*mocd_command(), "run", "--config", str(config_dir)],
                                env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            while True:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    if proc.poll() is not None:
                        raise RuntimeError(f"mocd run exited ({proc.returncode}) before "
                                           f"READY=1:\n{log_path.read_text()[-3000:]}") from None
                    if time.perf_counter() - start > 300:
                        raise RuntimeError("no READY=1 after 300 s") from None
                    continue
                if b"READY=1" in data.split(b"\n"):
                    result.ready = time.perf_counter() - start
                    break
            result.rss_ready = proc_status(proc.pid, "VmRSS")
            # Idle: no CPU used for 0.5 s (the first dispatch and arming are done).
            ticks, quiet, deadline = proc_cpu_ticks(proc.pid), 0, time.perf_counter() + 20
            while quiet < 2 and time.perf_counter() < deadline:
                time.sleep(0.25)
                now_ticks = proc_cpu_ticks(proc.pid)
                quiet = quiet + 1 if now_ticks == ticks else 0
                ticks = now_ticks
            result.hwm = proc_status(proc.pid, "VmHWM")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            sock.close()
            notify_path.unlink()
    result.log = log_path.read_text(encoding="utf-8", errors="replace")
    if code != 0:
        raise RuntimeError(f"mocd run exited with {code}:\n{result.log[-3000:]}")
    return result


@dataclass
class Step:
    name: str
    seconds: float
    note: str = ""


def startup_steps(db: Path, state_dir: Path, config_dir: Path) -> list[Step]:
    """``Daemon.run``'s steps before READY=1 (and the first dispatch after it), one by one."""
    from config.settings import Settings
    from notifications.eml_files import EmlFileTransport
    from notifications.messages import MessageFactory
    from notifications.outbox import next_due, note_dispatch
    from scheduler.clock import SystemClock
    from scheduler.daemon import Daemon
    from scheduler.dispatcher import Dispatcher

    settings = Settings(state_dir=state_dir, database_url=f"sqlite:///{db}")
    daemon = Daemon(settings, config_dir, SystemClock())
    steps: list[Step] = []

    def timed(name: str, fn: Callable[[], Any], note: Callable[[Any], str] = str) -> Any:
        start = time.perf_counter()
        value = fn()
        steps.append(Step(name, time.perf_counter() - start, note(value)))
        return value

    factory = timed("open_store (engine, alembic upgrade)", daemon.open_store, lambda _: "")
    timed("apply_config (read, expand, plan, apply)", daemon.apply_config,
          lambda _: "applied" if daemon.last_apply and daemon.last_apply.applied
          else "unchanged revision: no diff")
    timed("note_dispatch (late reminders)", lambda: note_dispatch(
        factory, now=daemon.now(), owner="bench", catch_up=settings.reminders.catch_up),
        lambda r: f"{r.skipped + r.held} rows skipped or held")
    names = timed("_unit_names", daemon._unit_names, lambda d: f"{len(d)} units")
    timed("next_due (arm)", lambda: next_due(factory), lambda d: f"next {d}")
    dispatcher = Dispatcher(factory, EmlFileTransport(state_dir / "outbox"),
                            MessageFactory(settings, names), settings, daemon.clock, "bench")
    timed("first run_once (after READY)", lambda: asyncio.run(dispatcher.run_once()),
          lambda r: f"{r.claimed} claimed")
    assert daemon.engine is not None
    assert daemon.owner_lock is not None
    daemon.owner_lock.release()  # the next step opens the same database
    daemon.engine.dispose()
    return steps


def profile_apply(db: Path, state_dir: Path, config_dir: Path, top: int) -> str:
    """cProfile of ``Daemon.apply_config`` for an edited config on the big outbox."""
    from config.settings import Settings
    from scheduler.clock import SystemClock
    from scheduler.daemon import Daemon

    settings = Settings(state_dir=state_dir, database_url=f"sqlite:///{db}")
    daemon = Daemon(settings, config_dir, SystemClock())
    daemon.open_store()
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(daemon.apply_config)
    wall = time.perf_counter() - start
    assert daemon.engine is not None
    assert daemon.owner_lock is not None
    assert daemon.last_apply is not None
    daemon.owner_lock.release()
    daemon.engine.dispose()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)

    def cumulative(file: str, function: str) -> tuple[int, float]:
        found = [(v[1], v[3]) for k, v in stats.stats.items()  # type: ignore[attr-defined]
                 if k[0].endswith(file) and k[2] == function]
        return (sum(n for n, _ in found), sum(t for _, t in found))

    _, diff = cumulative("scheduler/apply.py", "reminders")
    statements, sql_s = cumulative("sqlalchemy/engine/base.py", "_execute_context")
    summary = daemon.last_apply.summary
    head = (f"apply_config of the edited config, in this process: {wall:.2f} s under cProfile"
            f"; {summary}\n  of which _Apply.reminders {diff:.2f} s (set-based: a temporary "
            f"table of the planned reminders, then one UPDATE re-arms moved rows and one "
            f"cancels the {summary.get('reminders_cancelled', 0):,} rows no longer planned);"
            f" {statements:,} SQL statements in the whole apply took {sql_s:.2f} s\n")
    stats.sort_stats("cumulative").print_stats(top)
    return head + _trim_profile(out.getvalue())


def _trim_profile(text: str) -> str:
    """pstats output without its preamble, paths shortened to the package."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    prefixes = sorted({str(Path(p)) + "/" for p in sys.path if p}, key=len, reverse=True)
    out = []
    for line in lines[start:]:
        for prefix in prefixes:  # site-packages/…, the stdlib, then the project
            line = line.replace(prefix, "")
        out.append(line.replace(str(ROOT) + "/", ""))
    return "\n".join(out).rstrip()


# -- report -------------------------------------------------------------------------------


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def print_dispatch(p: Prepared, raws: list[Run], wires: list[Run], mocds: list[MocdRun],
                   build_s: float, size: float, args: argparse.Namespace) -> dict[str, Any]:
    n = len(p.reminders)
    raw = min(raws, key=lambda r: r.wall)
    wire = min(wires, key=lambda r: r.wall)
    mocd = min(mocds, key=lambda r: r.wall)
    shape = (f"one milestone per {PER_MILESTONE} units" if args.audience == "spread"
             else "one milestone to all")
    print(f"\n== dispatch: {n:,} due reminders for {n:,} units ({shape}) → aiosmtpd in its "
          f"own process, concurrency {args.concurrency}, best of {len(raws)} run(s) each")
    print(f"   setup: config load+expand+plan {p.load_s:.2f} s, apply_revision {p.apply_s:.2f} s"
          f" → {n:,} pending rows; one email per unit, {size / 1e3:.1f} kB on average")
    print(f"   {'sender':<18}{'msgs/s':>8}{'wall':>9}{'client CPU':>12}{'µs CPU/msg':>12}"
          f"{'server CPU':>12}{'server got':>12}{'MB':>7}")
    for r in (raw, wire, mocd):
        print(f"   {r.who:<18}{r.rate:>8,.0f}{r.wall:>8.2f}s{r.cpu:>11.2f}s"
              f"{r.cpu / r.messages * 1e6:>12,.0f}{r.server_cpu:>11.2f}s{r.server_count:>12,}"
              f"{r.server_bytes / 1e6:>7.1f}")
    ratio = mocd.rate / raw.rate
    wire_ratio = mocd.rate / wire.rate
    print(f"   ratio mocd / raw send_message: {ratio:.2f}   (target ≥ 0.8: "
          f"{'met' if ratio >= 0.8 else 'NOT met'})")
    print(f"   ratio mocd / raw sendmail of the same bytes (no flattening; the wire's floor): "
          f"{wire_ratio:.2f}")
    if len(raws) > 1:
        print("   every run, msgs/s: raw send_message "
              + ", ".join(f"{r.rate:,.0f}" for r in raws)
              + "; raw sendmail " + ", ".join(f"{r.rate:,.0f}" for r in wires)
              + "; mocd " + ", ".join(f"{r.rate:,.0f}" for r in mocds))
    print(f"   building the {n:,} messages alone (MessageFactory.reminder, for the raw run): "
          f"{build_s:.2f} s = {build_s / n * 1e6:,.0f} µs/msg")
    print("\n   where mocd's client CPU goes (best run; CPU = the thread's CPU time, wall = "
          "summed over the calls)")
    print(f"   {'part':<40}{'calls':>7}{'wall':>9}{'CPU':>9}{'µs CPU/msg':>12}   thread")
    db_cpu = loop_parts = 0.0
    for name, part in mocd.parts.items():
        in_thread = name.startswith(("release", "claim", "_context", "record"))
        if in_thread:
            db_cpu += part.cpu
        else:
            loop_parts += part.cpu
        print(f"   {name:<40}{part.calls:>7,}{part.wall:>8.2f}s{part.cpu:>8.2f}s"
              f"{part.cpu / n * 1e6:>12,.0f}   {'worker (to_thread)' if in_thread else 'loop'}")
    rest = mocd.loop_cpu - loop_parts
    other = mocd.cpu - mocd.loop_cpu - db_cpu
    print(f"   {'rest of the loop (aiosmtplib, asyncio)':<40}{'':>7}{'':>9}{rest:>8.2f}s"
          f"{rest / n * 1e6:>12,.0f}   loop")
    print(f"   {'other (threads outside the calls)':<40}{'':>7}{'':>9}{other:>8.2f}s"
          f"{other / n * 1e6:>12,.0f}")
    print(f"   {'total':<40}{'':>7}{mocd.wall:>8.2f}s{mocd.cpu:>8.2f}s"
          f"{mocd.cpu / n * 1e6:>12,.0f}   (raw aiosmtplib: {raw.cpu / n * 1e6:,.0f})")
    return {"reminders": n, "audience": args.audience, "concurrency": args.concurrency,
            "message_bytes": size, "raw": [asdict(r) for r in raws],
            "raw_sendmail": [asdict(r) for r in wires], "ratio_sendmail": wire_ratio,
            "mocd": [{k: v for k, v in asdict(r).items() if k != "profile"} for r in mocds],
            "ratio": ratio, "build_seconds": build_s}


def print_audiences(audiences: list[Audience]) -> None:
    print("\n== one reminder email of a milestone to `all` of N units (sample of 20 emails)")
    print(f"   {'N units':>8}{'kB/email':>10}{'ms to build':>13}   {'N emails (one per unit)':<s}")
    for a in audiences:
        print(f"   {a.units:>8,}{a.size / 1e3:>10.1f}{a.build * 1e3:>13.2f}   "
              f"{a.units * a.size / 1e6:>9,.0f} MB, {a.units * a.build:>7,.1f} s to build")


def print_startup(starts: list[Start], steps: dict[str, list[Step]], bulk_s: float,
                  rows: int, db_bytes: int) -> None:
    print(f"\n== startup: `mocd run` on SQLite, config of {SMALL_UNITS} units × 1 milestone; "
          f"targets < 2 s to READY=1, < 200 MB peak RSS")
    print(f"   {rows:,} outbox rows inserted in {bulk_s:.1f} s (sqlite3 executemany, one "
          f"transaction); database {mb(db_bytes)}")
    print(f"   {'case':<46}{'rows':>11}{'READY=1':>10}{'RSS@READY':>11}{'peak RSS':>10}"
          f"   vs targets")
    base = next((s for s in starts if s.rows == 0 and "restart" in s.name), None)
    for s in starts:
        verdict = ""
        if s.rows:
            ok_t = "ok" if s.ready < 2 else "OVER"
            ok_m = "ok" if s.hwm < 200e6 else "OVER"
            verdict = f"{ok_t}, {ok_m}"
            if base is not None:
                verdict += (f"  (Δ vs empty: {s.ready - base.ready:+.2f} s, "
                            f"{(s.hwm - base.hwm) / 1e6:+.0f} MB)")
        print(f"   {s.name:<46}{s.rows:>11,}{s.ready:>9.2f}s{mb(s.rss_ready):>11}"
              f"{mb(s.hwm):>10}   {verdict}")
    for name, lst in steps.items():
        print(f"\n   the steps of the start, in this process: {name}")
        for step in lst:
            print(f"     {step.name:<44}{step.seconds:>8.3f} s   {step.note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1,000 reminders and 100,000 outbox rows (a smoke run)")
    parser.add_argument("--reminders", type=int, default=None, help="default 10,000")
    parser.add_argument("--rows", type=int, default=None, help="outbox rows, default 1,000,000")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--audience", choices=("spread", "all"), default="spread",
                        help="spread: one milestone per 10 units (default); all: one "
                        "milestone to all units (each email then lists them all)")
    parser.add_argument("--repeat", type=int, default=0,
                        help="dispatch runs of each sender, alternating, best kept "
                        "(default 2 up to 2,000 reminders, else 1)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one mocd dispatch (event loop + worker threads)")
    parser.add_argument("--top", type=int, default=30, help="profile lines to print")
    parser.add_argument("--skip-dispatch", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--smtp-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smtp_server:
        serve_smtp()
        return 0
    n = args.reminders or (1000 if args.quick else 10_000)
    rows = args.rows if args.rows is not None else (100_000 if args.quick else 1_000_000)
    for key in [k for k in os.environ if k.startswith("MOCD_")]:
        del os.environ[key]  # Settings() here must be the defaults, like the daemon's
    production_gc()

    print(f"mocd dispatch/startup benchmark — {time.strftime('%Y-%m-%d %H:%M %Z')}, "
          f"{os.cpu_count()} CPUs, {versions()}")
    work = Path(tempfile.mkdtemp(prefix="mocd-dispatch-bench-"))
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "versions": versions()}
    try:
        if not args.skip_dispatch:
            results["dispatch"] = dispatch_section(args, n, work)
        if not args.skip_startup:
            results["startup"] = startup_section(rows, work)
    finally:
        if args.keep:
            print(f"\n(kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str))
    return 0


def dispatch_section(args: argparse.Namespace, n: int, work: Path) -> dict[str, Any]:
    server = SmtpServer()
    try:
        p = prepare_dispatch(n, args.audience, args.concurrency, work)
        repeat = args.repeat or (2 if n <= 2000 else 1)
        raws: list[Run] = []
        wires: list[Run] = []
        mocds: list[MocdRun] = []
        build_s = float("inf")
        for _ in range(repeat):
            # Fresh messages for every raw run, never flattened before: a message that was
            # flattened once flattens ~25 % faster the next time, and mocd's are fresh.
            messages: list[Any] = []
            gc.collect()
            start = time.perf_counter()
            messages = build_messages(p.settings, p.names, p.occurrences, p.reminders)
            build_s = min(build_s, time.perf_counter() - start)
            emails = [m.parsed() for m in messages]  # the same messages as EmailMessages
            raws.append(run_raw("raw send_message", emails, server, args.concurrency))
            wires.append(run_raw("raw sendmail", messages, server, args.concurrency))
            messages, emails = [], []
            mocds.append(run_mocd(p, server, args.concurrency, work))
        size = raws[0].server_bytes / raws[0].server_count
        for r in (*raws, *wires, *mocds):
            if r.server_count != n:
                raise SystemExit(f"{r.who}: the server counted {r.server_count}, not {n}")
        result = print_dispatch(p, raws, wires, mocds, build_s, size, args)
        if args.profile:
            profiled = run_mocd(p, server, args.concurrency, work, profile=True)
            assert profiled.profile is not None
            out = io.StringIO()
            profiled.profile.stream = out  # type: ignore[attr-defined]
            profiled.profile.sort_stats("tottime").print_stats(args.top)
            print(f"\n== cProfile of one mocd dispatch (event loop + worker threads merged; "
                  f"{profiled.wall:.2f} s under the profiler), by own time")
            print(_trim_profile(out.getvalue()))
            out = io.StringIO()
            profiled.profile.stream = out  # type: ignore[attr-defined]
            profiled.profile.sort_stats("cumulative").print_stats(
                r"dispatcher|outbox|messages|ics_attachment|smtp\.py|database", 25)
            print("\n   cumulative, mocd's own functions:")
            print(_trim_profile(out.getvalue()))
    finally:
        server.stop()
    sizes = [10, 100, 1000] + ([] if args.quick else [10_000])
    audiences = cost_by_audience(sizes, 20)
    print_audiences(audiences)
    result["by_audience"] = [asdict(a) for a in audiences]
    return result


def startup_section(rows: int, work: Path) -> dict[str, Any]:
    config_dir = small_config(work / "config", "Báo cáo công tác quý")
    edited_dir = small_config(work / "config-edited", "Báo cáo công tác quý (sửa tên)")
    state_a, state_b, state_c = (work / "state-empty", work / "state-big", work / "state-edit")
    db_a = state_a / "mocd.sqlite3"
    starts: list[Start] = []
    # A: a new store (migration + first apply), then a restart on it: the empty baseline.
    starts.append(start_daemon("first start, new store", 0, config_dir, state_a, db_a, work))
    restarts = [start_daemon("restart, empty outbox", 0, config_dir, state_a, db_a, work)
                for _ in range(2)]
    starts.append(min(restarts, key=lambda s: s.ready))
    starts[-1].hwm = max(s.hwm for s in restarts)
    # B: the same store plus `rows` outbox rows; C: a copy of B for the edited config.
    db_b, db_c = state_b / "mocd.sqlite3", state_c / "mocd.sqlite3"
    state_b.mkdir(parents=True, exist_ok=True)
    state_c.mkdir(parents=True, exist_ok=True)
    copy_db(db_a, db_b)
    bulk_s = bulk_outbox(db_b, rows)
    db_bytes = db_b.stat().st_size
    copy_db(db_b, db_c)
    big = [start_daemon("restart, config unchanged", rows, config_dir, state_b, db_b, work)
           for _ in range(2)]
    starts.append(min(big, key=lambda s: s.ready))
    starts[-1].hwm = max(s.hwm for s in big)
    starts.append(start_daemon("start after a config edit (apply diffs)", rows, edited_dir,
                               state_c, db_c, work))
    steps = {
        "empty outbox, config unchanged": startup_steps(db_a, state_a, config_dir),
        f"{rows:,} rows, config unchanged": startup_steps(db_b, state_b, config_dir),
    }
    print_startup(starts, steps, bulk_s, rows, db_bytes)
    # Last, as it changes B: the edited config applied in this process, profiled.
    print("\n   " + profile_apply(db_b, state_b, edited_dir, 14).replace("\n", "\n   "))
    # B now has the 500k unplanned rows cancelled, as after any first edit: a second edit
    # is the everyday case (a title or a date changed, a handful of reminders re-planned).
    again = small_config(work / "config-edited-2", "Báo cáo công tác quý (sửa lần 2)")
    starts.append(start_daemon("a later edit (nothing left to cancel)", rows, again,
                               state_b, db_b, work))
    print_startup(starts[-1:], {}, bulk_s, rows, db_bytes)
    return {"rows": rows, "bulk_insert_seconds": bulk_s, "db_bytes": db_bytes,
            "starts": [{k: v for k, v in asdict(s).items() if k != "log"} for s in starts],
            "steps": {k: [asdict(s) for s in v] for k, v in steps.items()}}


if __name__ == "__main__":
    sys.exit(main())
