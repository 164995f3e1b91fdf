"""Who may send: proving that the owner of claimed outbox rows is dead.

A claim is a lease (``lease_owner``, ``lease_until``); rows of an owner that crashed
would otherwise wait for their lease to run out. A running ``mocd run`` therefore holds
a lock that dies with its process, and an owner whose lock can be taken is dead:

- **SQLite**: an exclusive ``flock`` on ``<database>.lock`` next to the database file,
  for the daemon's whole life. Only one daemon can run on a SQLite database; every
  claimed row found at start belongs to a dead one.
- **PostgreSQL**: a session-level advisory lock on a connection of its own, keyed by the
  owner's name. Another instance that can take that lock knows the owner's database
  session is gone (the process died, or its connection did).

A clean stop releases the rows itself; the lock only speeds up recovery from a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import zlib
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from config.errors import RuntimeFailure

log = logging.getLogger("mocd.ownership")
_LOCK_CLASS = 0x6D6F6364  # "mocd": the advisory locks of owners (two-key form)


def _owner_key(owner: str) -> int:
    """A signed 32-bit key for an owner name (the second key of the advisory lock)."""
    value = zlib.crc32(owner.encode("utf-8"))
    return value - (1 << 32) if value >= 1 << 31 else value


class OwnerLock:
    """The lock of one running daemon; :meth:`dead` tells which other owners are dead."""

    def __init__(self, engine: Engine, owner: str) -> None:
        self.engine = engine
        self.owner = owner
        self._file: int | None = None
        self._connection: Connection | None = None

    @property
    def exclusive(self) -> bool:
        """True on SQLite: this daemon is the only one, every other owner is dead."""
        return self._file is not None

    def acquire(self) -> None:
        """Take the lock, or a RuntimeFailure naming what holds it."""
        url = make_url(self.engine.url)
        if url.get_backend_name() == "sqlite":
            database = url.database or ""
            if database and database != ":memory:":
                self._lock_file(Path(database + ".lock"))
            return
        self._lock_session()

    def _lock_file(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "?"
            os.close(fd)
            raise RuntimeFailure(
                f"another mocd run (pid {holder}) uses this database: {path} is locked; "
                "one daemon per SQLite database (use PostgreSQL for several)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._file = fd

    def _lock_session(self) -> None:
        try:
            connection = self.engine.connect()
            connection.execute(text("SELECT pg_advisory_lock(:c, :k)"),
                               {"c": _LOCK_CLASS, "k": _owner_key(self.owner)})
            connection.commit()
        except SQLAlchemyError as exc:
            log.warning("no owner lock (crashed claims wait for their leases): %s",
                        str(exc).splitlines()[0])
            return
        self._connection = connection

    def dead(self, owners: set[str]) -> list[str]:
        """The owners among ``owners`` (not this one) that provably no longer run."""
        others = sorted(o for o in owners if o != self.owner)
        if self.exclusive:
            return others
        if self._connection is None or not others:
            return []
        mine = _owner_key(self.owner)
        found = []
        try:
            self._connection.execute(text("SELECT 1"))
            for owner in others:
                key = _owner_key(owner)
                if key == mine:  # a hash collision with ourselves proves nothing
                    continue
                taken = self._connection.scalar(text("SELECT pg_try_advisory_lock(:c, :k)"),
                                                {"c": _LOCK_CLASS, "k": key})
                if taken:
                    self._connection.execute(text("SELECT pg_advisory_unlock(:c, :k)"),
                                             {"c": _LOCK_CLASS, "k": key})
                    found.append(owner)
            self._connection.commit()
        except SQLAlchemyError as exc:  # our own session is gone: our lock with it
            log.warning("the owner lock's connection failed (%s); taking it again",
                        str(exc).splitlines()[0])
            self._drop_connection()
            self._lock_session()
            return []
        return found

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None

    def release(self) -> None:
        self._drop_connection()
        if self._file is not None:
            os.close(self._file)  # closing the descriptor drops the flock
            self._file = None
