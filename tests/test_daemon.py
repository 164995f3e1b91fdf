"""`mocd run` as a real process: systemd notify, signals, the file outbox, reloads.

Each test starts the console script with its own state directory (SQLite, .eml
outbox) and a real unix datagram socket as $NOTIFY_SOCKET.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

MOCD = Path(sys.executable).parent / "mocd"

# Far enough ahead that nothing fires during a test, near enough to be planned now
# (the outbox holds what fires within scheduler.apply.PLANNING_HORIZON).
DUE = (datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")) + timedelta(days=200)).date()
CONFIG = f"""\
units:
  - {{id: phong-noi-vu, name: Phòng Nội vụ, email: noivu@huyen.example.vn}}
milestones:
  - {{id: ho-so, title: Gửi hồ sơ đề nghị khen thưởng, when: {DUE}, units: [phong-noi-vu],
     reminders: [7d]}}
"""


class Notifications:
    """The systemd side of sd_notify: a datagram socket that collects what mocd says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, field: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(field in m.split("\n") for m in self.messages):
                return
            try:
                self.messages.append(self.sock.recv(4096).decode("utf-8"))
            except TimeoutError:
                continue
        raise AssertionError(f"no {field} from mocd within {timeout} s: {self.messages}")


class Daemon:
    """``mocd run`` as a child process on ``tmp/config``, state in ``tmp/var``.

    ``port`` 0 lets the daemon take a free port (runs never collide on 8470); a test that
    fetches from the daemon gives a known free port, which is also its public URL.
    """

    def __init__(self, tmp: Path, notify: Notifications, port: int = 0) -> None:
        self.tmp = tmp
        self.config = tmp / "config"
        self.state = tmp / "var"
        self.notify = notify
        self.port = port
        self.log = tmp / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOCD_")}
        env.update(MOCD_STATE_DIR=str(self.state), NOTIFY_SOCKET=str(self.notify.path),
                   MOCD_SETTINGS=str(self.tmp / "none.toml"), MOCD_HTTP__PORT=str(self.port))
        if self.port:
            env["MOCD_PUBLIC_URL"] = f"http://127.0.0.1:{self.port}"
        (self.tmp / "none.toml").write_text("")
        return env

    def mocd(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another ``mocd`` command beside the daemon, with its settings."""
        done = self.mocd_bytes(*args)
        return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(),
                                           done.stderr.decode())

    def mocd_bytes(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        env = self.env()
        env.pop("NOTIFY_SOCKET")
        return subprocess.run([str(MOCD), *args], env=env, cwd=self.tmp, capture_output=True,
                              timeout=60, check=False)

    def start(self) -> None:
        env = self.env()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(MOCD), "run", "--config", str(self.config)], env=env, cwd=self.tmp,
                stdout=subprocess.DEVNULL, stderr=log)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    notify = Notifications(tmp_path / "notify.sock")
    d = Daemon(tmp_path, notify)
    d.config.mkdir()
    (d.config / "plan.yaml").write_text(CONFIG, encoding="utf-8")
    yield d
    if d.process is not None and d.process.poll() is None:
        d.process.kill()
        d.process.wait()
    notify.sock.close()


def test_ready_then_sigterm_exits_0_and_says_stopping(daemon: Daemon) -> None:
    daemon.start()
    daemon.notify.wait_for("READY=1")
    status = [m for m in daemon.notify.messages if "STATUS=" in m]
    assert "đang chạy" in status[0]  # UTF-8 survives (the sdnotify package would drop it)
    assert daemon.stop() == 0
    daemon.notify.wait_for("STOPPING=1")
    assert "stopped" in daemon.output()


def test_a_due_reminder_is_written_to_the_file_outbox_once(daemon: Daemon) -> None:
    daemon.start()
    daemon.notify.wait_for("READY=1")
    assert daemon.stop() == 0
    # Make the planned reminder due a minute ago (as if its day had come).
    due = (datetime.now(UTC) - timedelta(minutes=1)).replace(tzinfo=None).isoformat(" ")
    with sqlite3.connect(daemon.state / "mocd.sqlite3") as db:
        assert db.execute("UPDATE outbox SET fire_at = ?, next_attempt_at = ? "
                          "WHERE kind = 'reminder'", (due, due)).rowcount == 1
    daemon.notify.messages.clear()
    daemon.start()
    daemon.notify.wait_for("READY=1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not list((daemon.state / "outbox").glob("*.eml")):
        time.sleep(0.2)
    assert daemon.stop() == 0
    files = list((daemon.state / "outbox").glob("*.eml"))
    assert len(files) == 1
    with sqlite3.connect(daemon.state / "mocd.sqlite3") as db:
        assert db.execute("SELECT state, smtp_reply FROM outbox WHERE kind = 'reminder'"
                          ).fetchall() == [("sent", str(files[0]))]


def test_an_invalid_config_on_reload_keeps_the_last_good_one(daemon: Daemon) -> None:
    daemon.start()
    daemon.notify.wait_for("READY=1")
    (daemon.config / "broken.yaml").write_text("units:\n  - id: Sai Id\n", encoding="utf-8")
    daemon.notify.messages.clear()
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("RELOADING=1")
    daemon.notify.wait_for("READY=1")
    assert daemon.process.poll() is None  # still running
    assert daemon.stop() == 0
    log = daemon.output()
    assert "config error: " in log
    assert "broken.yaml:2:9: units[0].id: 'Sai Id' is not a valid id" in log
    with sqlite3.connect(daemon.state / "mocd.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM outbox WHERE state = 'pending' "
                          "AND kind = 'reminder'").fetchone() == (
            1,)  # the last good config's reminder is still planned


def test_mocd_reload_waits_for_the_reload_and_reports_a_rejected_config(daemon: Daemon) -> None:
    """What `ExecReload=` runs: systemd 252 cannot wait for a reload by itself."""
    daemon.start()
    daemon.notify.wait_for("READY=1")
    assert daemon.process is not None
    env = daemon.env()
    env.pop("NOTIFY_SOCKET")
    reload = [str(MOCD), "reload", "--pid", str(daemon.process.pid), "--timeout", "30"]
    done = subprocess.run(reload, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "reloaded\n", "")
    (daemon.config / "broken.yaml").write_text("units: [1, 2\n", encoding="utf-8")
    done = subprocess.run(reload, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1
    assert "rejected" in done.stderr
    assert daemon.process.poll() is None
    assert daemon.stop() == 0


def test_a_template_that_does_not_render_stops_the_start_with_one_line(daemon: Daemon) -> None:
    templates = daemon.tmp / "templates"
    (templates / "vi").mkdir(parents=True)
    (templates / "vi" / "reminder.html.j2").write_text("<p>{{ items[0].titel }}</p>\n",
                                                       encoding="utf-8")
    (daemon.tmp / "none.toml").write_text("")
    env = daemon.env() | {"MOCD_TEMPLATES_DIR": str(templates)}
    env.pop("NOTIFY_SOCKET")
    done = subprocess.run([str(MOCD), "run", "--config", str(daemon.config)], env=env,
                          cwd=daemon.tmp, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"templates_dir {templates}: template {templates}/vi/reminder.html.j2:1: "
        "UndefinedError: 'dict object' has no attribute 'titel'")
    assert not (daemon.state / "mocd.sqlite3").exists()  # refused before touching the store


def test_a_missing_password_file_stops_the_start_with_one_line(daemon: Daemon) -> None:
    missing = daemon.tmp / "credentials" / "smtp-password"
    env = daemon.env() | {"MOCD_MAIL__URL": "smtp://mocd@127.0.0.1:9?tls=none",
                          "MOCD_MAIL__PASSWORD_FILE": str(missing)}
    env.pop("NOTIFY_SOCKET")
    done = subprocess.run([str(MOCD), "run", "--config", str(daemon.config)], env=env,
                          cwd=daemon.tmp, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"mail.password_file: {missing}: no such file")
    assert not (daemon.state / "mocd.sqlite3").exists()  # refused before touching the store
