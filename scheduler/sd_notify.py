"""systemd's notify protocol, written by hand in UTF-8.

The ``sdnotify`` package encodes latin-1 and silently drops a message with
Vietnamese text in ``STATUS=``, so ``READY=1`` in the same datagram never
arrives and systemd kills the service at its start timeout.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("mocd.systemd")


def notify(*fields: str) -> bool:
    """Send ``READY=1``, ``STATUS=…`` etc. to ``$NOTIFY_SOCKET``; False when not under systemd."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode("utf-8"))
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", path, exc)
        return False
    return True


def reloading() -> bool:
    """``RELOADING=1`` with the monotonic timestamp systemd 253+ expects (older ones ignore it)."""
    now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={now_usec}")


def watchdog_interval() -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds (how often to ping), or None when not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
