#!/usr/bin/env python3
"""Feed serving over HTTP: ``mocd run`` against nginx serving the same bytes, with wrk.

    .venv/bin/python bench/feeds_http.py                 # 3 rounds × 10 s per case (~3 min)
    .venv/bin/python bench/feeds_http.py --quick         # 1 round × 3 s (~30 s)
    .venv/bin/python bench/feeds_http.py --profile       # + cProfile of the daemon under load

The question from issue 4: how many requests per second does the daemon serve for one
unit feed of 500 events, next to nginx serving the same bytes as a static file on the
same machine in the same run (target: mocd / nginx >= 0.5), and how many 304 responses
(``If-None-Match``) per second?

* **mocd**: the real daemon, ``mocd run`` on a generated config (one unit, one campaign of
  ``--events`` timed events with a location and a description, all in the feed window),
  SQLite and the file outbox in a temporary state directory, the HTTP server on a free
  127.0.0.1 port. The feed URL comes from ``mocd tokens list --format json``.
* **nginx**: the bytes mocd served, written to ``feed.ics`` under a temporary root,
  served by ``nginx`` (``sendfile on``, ``access_log off``, ``worker_processes``
  ``--nginx-workers``, default 1: mocd is one process on one core, and wrk needs the
  other core of a 2-core machine).
* **wrk**: ``wrk -t1 -c{--connections} -d{--duration}s`` against each, identity encoding
  (no ``Accept-Encoding``), then with ``If-None-Match: <the ETag>`` for 304s, and for mocd
  also with ``Accept-Encoding: gzip``. Cases alternate mocd / nginx inside each round, and
  the median of the rounds is reported, so load from elsewhere on the machine hits both.

Needs the Debian packages ``wrk`` and ``nginx`` (or ``nginx-light``); this script
installs nothing and stops with the apt line if they are missing. Only 127.0.0.1 is
used; every wrk run is bounded by ``--duration``. Temporary files go to a temporary
directory (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
MOCD = VENV_BIN / "mocd"
APT_LINE = "apt-get install -y wrk nginx-light"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def write_config(directory: Path, events: int) -> None:
    """One unit, one campaign of ``events`` timed events spread over the next 2 years."""
    directory.mkdir(parents=True)
    start = date.today() + timedelta(days=7)
    lines = [
        "units:",
        "  - {id: phong-noi-vu, name: Phòng Nội vụ huyện Ba Tơ, email: noivu@bato.example.vn}",
        "campaigns:",
        "  - id: thi-dua-bench",
        "    title: Phong trào thi đua chào mừng Đại hội đại biểu các dân tộc thiểu số huyện"
        " Ba Tơ lần thứ IV",
        "    document: Kế hoạch số 123/KH-UBND ngày 15/4/2024 của UBND huyện Ba Tơ",
        "    owner: phong-noi-vu",
        "    units: [phong-noi-vu]",
        "    milestones:",
    ]
    for i in range(events):
        day = start + timedelta(days=(i * 730) // events)
        lines += [
            f"      - id: su-kien-{i:03d}",
            f"        title: Hội nghị sơ kết phong trào thi đua đợt {i + 1} — báo cáo kết quả"
            " thực hiện",
            "        kind: event",
            f"        when: {day.isoformat()} 08:00",
            "        duration: 3h",
            "        location: Hội trường UBND huyện Ba Tơ, tỉnh Quảng Ngãi",
            "        description: Các phòng chuyên môn chuẩn bị báo cáo, gửi về Phòng Nội vụ"
            " trước 02 ngày làm việc.",
            "        reminders: []",
        ]
    (directory / "plan.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class WrkResult:
    requests_per_second: float
    transfer_per_second: str
    latency_avg: str
    errors: str


def run_wrk(url: str, duration: float, connections: int, headers: dict[str, str]) -> WrkResult:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "5s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True,
                         timeout=duration + 60).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    transfer = re.search(r"Transfer/sec:\s+(\S+)", out)
    latency = re.search(r"Latency\s+(\S+)", out)
    errors = [line.strip() for line in out.splitlines()
              if "Non-2xx" in line or "Socket errors" in line]
    if rps is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return WrkResult(float(rps.group(1)), transfer.group(1) if transfer else "?",
                     latency.group(1) if latency else "?", "; ".join(errors))


class Mocd:
    def __init__(self, root: Path, events: int, profile: Path | None) -> None:
        self.root = root
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        write_config(root / "config", events)
        (root / "none.toml").write_text("")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MOCD_")}
        self.env.update(MOCD_STATE_DIR=str(root / "var"), MOCD_SETTINGS=str(root / "none.toml"),
                        MOCD_HTTP__PORT=str(self.port), MOCD_PUBLIC_URL=self.base,
                        MOCD_DIGEST__CRON="")
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["run", "--config", str(self.root / "config")]
        if self.profile is None:
            command = [str(MOCD), *args]
        else:  # the daemon's own main under cProfile, written when SIGTERM stops it
            command = [sys.executable, "-c", textwrap.dedent(f"""
                import cProfile, sys
                from scheduler.cli import main
                profile = cProfile.Profile()
                profile.enable()
                try:
                    code = main({args!r})
                finally:
                    profile.disable()
                    profile.dump_stats({str(self.profile)!r})
                sys.exit(code)
                """)]
        self.log = (self.root / "mocd.log").open("wb")
        self.process = subprocess.Popen(command, env=self.env, cwd=self.root,
                                        stdout=subprocess.DEVNULL, stderr=self.log)
        wait_http(f"{self.base}/healthz")

    def feed_url(self) -> str:
        listed = subprocess.run([str(MOCD), "tokens", "list", "--config",
                                 str(self.root / "config"), "--format", "json"],
                                env=self.env, cwd=self.root, capture_output=True, text=True,
                                check=True, timeout=60)
        [record] = json.loads(listed.stdout)
        return str(record["url"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self.log.close()


class Nginx:
    def __init__(self, root: Path, body: bytes, workers: int) -> None:
        self.root = root
        self.port = free_port()
        docroot = root / "www"
        docroot.mkdir(parents=True)
        (docroot / "feed.ics").write_bytes(body)
        for path in (root, docroot):
            path.chmod(0o755)  # the workers run as nobody
        (docroot / "feed.ics").chmod(0o644)
        self.conf = root / "nginx.conf"
        self.conf.write_text(textwrap.dedent(f"""\
            worker_processes {workers};
            daemon off;
            pid {root}/nginx.pid;
            error_log {root}/error.log warn;
            events {{ worker_connections 1024; }}
            http {{
                access_log off;
                sendfile on;
                tcp_nopush on;
                keepalive_requests 100000;
                types {{ text/calendar ics; }}
                client_body_temp_path {root}/tmp;
                proxy_temp_path {root}/tmp;
                fastcgi_temp_path {root}/tmp;
                uwsgi_temp_path {root}/tmp;
                scgi_temp_path {root}/tmp;
                server {{
                    listen 127.0.0.1:{self.port};
                    root {docroot};
                    charset utf-8;
                }}
            }}
            """))
        self.url = f"http://127.0.0.1:{self.port}/feed.ics"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["nginx", "-c", str(self.conf), "-p", str(self.root)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.url)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, dict(reply.headers.items()), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--nginx-workers", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s per case")
    parser.add_argument("--profile", action="store_true",
                        help="run the daemon under cProfile; print the top 25 functions")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3.0
    missing = [tool for tool in ("wrk", "nginx") if shutil.which(tool) is None]
    if missing:
        print(f"bench/feeds_http.py needs {' and '.join(missing)}: {APT_LINE}", file=sys.stderr)
        return 2

    root = Path(tempfile.mkdtemp(prefix="mocd-feeds-http-"))
    root.chmod(0o755)  # nginx's workers (nobody) must reach www/ below it
    profile = root / "mocd.prof" if args.profile else None
    mocd = Mocd(root / "mocd", args.events, profile)
    nginx: Nginx | None = None
    try:
        started = time.monotonic()
        mocd.start()
        startup = time.monotonic() - started
        url = mocd.feed_url()
        status, headers, body = fetch(url)
        if status != 200:
            raise SystemExit(f"mocd answered {status} for the feed URL; see {root}/mocd/mocd.log")
        events = body.count(b"BEGIN:VEVENT")
        etag = headers["ETag"]
        _, gz_headers, gz_body = fetch(url, {"Accept-Encoding": "gzip"})
        nginx = Nginx(root / "nginx", body, args.nginx_workers)
        nginx.start()
        n_status, n_headers, n_body = fetch(nginx.url)
        if (n_status, n_body) != (200, body):
            raise SystemExit("nginx does not serve the same bytes")
        n_etag = n_headers["ETag"]
        if fetch(nginx.url, {"If-None-Match": n_etag})[0] != 304 or \
                fetch(url, {"If-None-Match": etag})[0] != 304:
            raise SystemExit("a conditional request did not get 304")

        cases = [
            ("mocd 200", url, {}),
            ("nginx 200", nginx.url, {}),
            ("mocd 304", url, {"If-None-Match": etag}),
            ("nginx 304", nginx.url, {"If-None-Match": n_etag}),
            ("mocd 200 gzip", url, {"Accept-Encoding": "gzip"}),
        ]
        results: dict[str, list[WrkResult]] = {name: [] for name, _, _ in cases}
        for _round in range(args.rounds):
            for name, target, extra in cases:
                results[name].append(run_wrk(target, args.duration, args.connections, extra))
    finally:
        if nginx is not None:
            nginx.stop()
        mocd.stop()

    median = {name: statistics.median(r.requests_per_second for r in runs)
              for name, runs in results.items()}
    import aiohttp

    print(f"mocd feeds over HTTP — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, aiohttp "
          f"{aiohttp.__version__}, "
          f"{subprocess.run(['nginx', '-v'], capture_output=True, text=True).stderr.strip()}")
    print(f"feed: {events} events, {len(body):,} bytes ({len(gz_body):,} gzip, "
          f"Content-Encoding {gz_headers.get('Content-Encoding')}); daemon ready in "
          f"{startup:.1f} s")
    print(f"wrk -t1 -c{args.connections} -d{args.duration:g}s, median of {args.rounds} "
          f"round(s); nginx worker_processes {args.nginx_workers}")
    print(f"{'case':<16}{'req/s':>12}   runs (req/s)                     latency  transfer")
    for name, runs in results.items():
        each = ", ".join(f"{r.requests_per_second:,.0f}" for r in runs)
        last = runs[-1]
        print(f"{name:<16}{median[name]:>12,.0f}   {each:<32} {last.latency_avg:>8}  "
              f"{last.transfer_per_second:>8}" + (f"  [{last.errors}]" if last.errors else ""))
    ratio_200 = median["mocd 200"] / median["nginx 200"]
    ratio_304 = median["mocd 304"] / median["nginx 304"]
    print(f"ratio mocd / nginx: 200 {ratio_200:.2f} (target >= 0.5), 304 {ratio_304:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "events": events, "bytes": len(body), "gzip_bytes": len(gz_body),
            "connections": args.connections, "duration": args.duration, "rounds": args.rounds,
            "nginx_workers": args.nginx_workers, "median_rps": median,
            "ratio_200": ratio_200, "ratio_304": ratio_304,
            "runs": {name: [asdict(r) for r in runs] for name, runs in results.items()},
        }, indent=2))
    if profile is not None:
        import pstats

        print("\ncProfile of the daemon (whole run, by internal time):")
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(25)
    if args.keep:
        print(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
