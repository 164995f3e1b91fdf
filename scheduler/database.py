"""Opening the store: SQLite (WAL, one writer at a time) or PostgreSQL, and migrations.

SQLite gets ``BEGIN IMMEDIATE`` for every transaction so that a claim of due
outbox rows takes the write lock before it reads: two processes can never
claim the same row. PostgreSQL uses ``FOR UPDATE SKIP LOCKED`` instead (see
:mod:`notifications.outbox`).
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from config.errors import RuntimeFailure, UserError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def open_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL and immediate (write-locking) transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                  "isolation_level": None})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    raise UserError(f"database_url: unsupported database '{parsed.get_backend_name()}' "
                    "(use sqlite:///… or postgresql+psycopg://…)")


def connect(url: str) -> Engine:
    """An engine whose database answers, or a one-line RuntimeFailure (exit 3)."""
    try:
        engine = open_engine(url)
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        full = _full_disk(url)
        if full:
            raise RuntimeFailure(f"cannot open the database: the disk holding {full} is "
                                 "full: free some space and start mocd again") from None
        raise RuntimeFailure(f"cannot open the database: {exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0]}") from None
    return engine


def _full_disk(url: str) -> str | None:
    """The directory of a SQLite database whose disk has (almost) no space left: SQLite
    then says only "disk I/O error" (it cannot create its shared-memory file)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    directory = Path(parsed.database).parent
    try:
        return str(directory) if shutil.disk_usage(directory).free < 1024 * 1024 else None
    except OSError:
        return None


def existing_store(url: str) -> Engine | None:
    """The database if it may already hold mocd's data, for commands that only read: None
    for a SQLite file that does not exist (they never create one), else an engine that
    answers (or a one-line RuntimeFailure). The caller disposes of it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and (
            not parsed.database or parsed.database == ":memory:"
            or not Path(parsed.database).is_file()):
        return None
    return connect(url)


StoreTrouble = Literal["busy", "full", "away"]


def store_trouble(exc: BaseException) -> StoreTrouble | None:
    """What a database error means for the daemon, or None for a bug:

    - ``busy``: SQLite is locked by another process past the busy timeout (a backup, an
      admin's ``sqlite3`` shell): wait and try again;
    - ``away``: the server cannot be reached or dropped the connection (PostgreSQL
      restarting): wait and try again;
    - ``full``: the disk is full: stop, saying so (nothing can be recorded).
    """
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "full"
    if not isinstance(exc, SQLAlchemyError):
        return None
    text = str(getattr(exc, "orig", None) or exc).lower()
    if "database or disk is full" in text or "no space left" in text:
        return "full"
    if "database is locked" in text or "database table is locked" in text or (
            "busy" in text and "sqlite" in type(getattr(exc, "orig", exc)).__module__):
        return "busy"
    if isinstance(exc, OperationalError | InterfaceError) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return "away"
    return None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def engine_of(factory: sessionmaker[Session]) -> Engine:
    """The engine a session factory binds to (for Core statements on hot paths)."""
    bind = factory.kw["bind"]
    assert isinstance(bind, Engine)
    return bind


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    with factory() as session, session.begin():
        yield session


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", "scheduler:migrations")
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to the newest migration (``mocd db upgrade``; ``mocd run`` on SQLite),
    or to ``revision``."""
    cfg = alembic_config()
    with engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
        if connection.in_transaction():
            connection.commit()


def has_tables(engine: Engine) -> bool:
    """Whether the database has the store's tables (enough for commands that only read
    occurrences and tokens, which every schema revision has)."""
    return "outbox" in inspect(engine).get_table_names()


def head_revision() -> str:
    """The newest migration this mocd ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at (None: no mocd tables yet)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current(engine: Engine) -> None:
    """A RuntimeFailure (one line, exit 3) unless the schema is at this mocd's newest
    migration: running on an older schema would fail later, mid-work, on a missing column."""
    at, head = schema_revision(engine), head_revision()
    if at == head:
        return
    if at is None:
        raise RuntimeFailure("the database has no mocd tables yet: run `mocd db upgrade` "
                             "(or start `mocd run`)")
    raise RuntimeFailure(f"the database schema is at revision {at}, this mocd needs {head}: "
                         "run `mocd db upgrade`")
