"""A database that is locked by another program, or a disk that is full, while ``mocd run``
serves: the daemon waits (``/healthz`` says it is degraded) and loses nothing, or stops
with one line. Real processes, a real SQLite file, a real aiosmtpd; the full disk is a
2 MB tmpfs (skipped where mounting one is not allowed).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.database import upgrade
from tests import test_delivery_guarantees as guarantees
from tests.test_delivery_guarantees import (
    Mailbox,
    Store,
    World,
    config_yaml,
    due_day,
    wait_until,
)

servers = guarantees.servers  # the fixtures: an aiosmtpd server, a SQLite world
sqlite_world = guarantees.sqlite_world


def healthz(port: int) -> tuple[int, dict[str, object], float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    return status, json.loads(body), time.monotonic() - started


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.timeout(180)
def test_a_database_locked_for_40_s_is_waited_for_and_nothing_is_lost(
        sqlite_world: World, servers) -> None:
    """Before: the daemon exited 3 with "internal error: database is locked". Another
    program holds the write lock (``BEGIN EXCLUSIVE``) for 40 s, longer than SQLite's
    30 s busy timeout, while a reminder comes due; the daemon keeps serving, reports
    itself degraded, and sends the reminder once the lock is gone."""
    world = sqlite_world
    assert world.store is not None
    world.write_config(config_yaml(1, due_day(datetime.now(UTC)) + timedelta(days=30)))
    box = Mailbox()
    server = servers(box)
    port = free_port()
    daemon = world.daemon(server.port, MOCD_HTTP__PORT=str(port))
    daemon.start()
    daemon.ready()
    assert healthz(port)[0] == 200

    database = world.tmp / "var" / "mocd.sqlite3"
    blocker = sqlite3.connect(database, isolation_level=None, timeout=30)
    blocker.execute("BEGIN EXCLUSIVE")
    # The reminder comes due inside the blocker's transaction: visible when it commits.
    now = datetime.now(UTC)
    blocker.execute(
        "INSERT INTO outbox (idempotency_key, kind, unit, occurrence_uids, offset, fire_at, "
        "state, attempts, next_attempt_at, payload, created_at) VALUES ('reminder:x:u0:1d', "
        "'reminder', 'u0', '[\"milestone.bao-cao@mocd.local\"]', '1d', ?, 'pending', 0, ?, "
        "'{}', ?)", [(now - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S.%f")] * 3)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)  # a reload and a dispatch round, both blocked
    locked_at = time.monotonic()
    slowest, degraded = 0.0, False
    while time.monotonic() - locked_at < 40:
        status, report, seconds = healthz(port)
        slowest = max(slowest, seconds)
        degraded = degraded or (status == 503 and report["status"] == "degraded")
        assert daemon.process.poll() is None, daemon.output()[-3000:]
        time.sleep(0.5)
    blocker.execute("COMMIT")
    blocker.close()
    wait_until(lambda: box.count() == 1, 60, "the reminder after the lock", world)
    wait_until(lambda: healthz(port)[0] == 200, 30, "healthy again", world)
    assert daemon.terminate() == 0
    assert degraded, "healthz never said degraded"
    assert slowest < 1, slowest
    assert box.per_recipient() == Counter({"u0@test.example.vn": 1})
    log = daemon.output()
    assert "the database is locked by another program" in log
    assert "the database answers again" in log
    assert "Traceback" not in log


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with one file (returned, to free the space)."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


@pytest.mark.timeout(180)
def test_a_disk_that_fills_up_stops_the_daemon_with_one_line_and_loses_nothing(
        tmp_path: Path, tiny_disk: Path, servers) -> None:
    """Before: "Future exception was never retrieved" and a traceback. The state
    directory is on a 4 MB disk that fills up while the daemon runs; a reload then has
    nowhere to write."""
    url = f"sqlite:///{tiny_disk / 'mocd.sqlite3'}"
    world = World(tmp_path, url)
    world.store = Store(url)
    upgrade(world.store.engine)
    world.store.close()
    try:
        later = due_day(datetime.now(UTC)) + timedelta(days=30)
        world.write_config(config_yaml(3, later))
        box = Mailbox()
        server = servers(box)
        daemon = world.daemon(server.port, MOCD_STATE_DIR=str(tiny_disk))
        daemon.start()
        daemon.ready()
        filler = fill(tiny_disk)
        world.write_config(config_yaml(3, later + timedelta(days=1), "sửa ngày"))  # a reload
        assert daemon.process is not None
        code = daemon.process.wait(timeout=60)
        log = daemon.output()
        assert code == 3, log[-3000:]
        last = log.strip().splitlines()[-1]
        assert last.startswith("mocd: the disk holding the database is full"), last
        assert "Future exception was never retrieved" not in log
        assert "Traceback" not in log

        daemon.notify.wait_for("STOPPING=1")
        daemon.start()  # still full: refused at once, saying why
        assert daemon.process.wait(timeout=60) == 3
        last = daemon.output().strip().splitlines()[-1]
        assert last.startswith("mocd: "), last
        assert "is full" in last, last
        assert "free some space" in last, last

        filler.unlink()  # space again: the edit is applied, nothing was lost
        daemon.notify.wait_for("STOPPING=1")  # the last run's messages, read before the next
        daemon.start()
        daemon.ready()
        assert daemon.terminate() == 0
        store = Store(url)
        try:
            states = store.states()
            rows = store.rows()
        finally:
            store.close()
        assert states == {"pending": 3, "cancelled": 3}  # re-planned for the new day
        assert {r.idempotency_key.rsplit(":", 1)[1] for r in rows if r.state == "pending"} == {
            (later + timedelta(days=1)).isoformat()}
    finally:
        for d in world.daemons:
            d.close()
