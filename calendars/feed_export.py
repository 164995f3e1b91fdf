"""``mocd feed`` and ``mocd export-feeds``: which state feeds come from, and static files.

Feeds come from the database when there is one that has been applied (what the daemon
serves), else from the config directory alone; both give the same bytes for the same
state (see :mod:`calendars.feed_cache`). Opening the source never creates a database.

The export writes every feed atomically (a temporary file in the same directory, then
``os.replace``), so a static web server serving the directory never sends half a file;
files whose bytes did not change are not rewritten, so their mtime — the ``Last-Modified``
a static server sends — moves only when the feed changed.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from calendars.agenda_page import AgendaUnit, agenda_view, render_agenda_html
from calendars.feed_cache import builder_from_config, builder_from_database
from calendars.feed_types import FeedKey
from calendars.feeds import SIZE_WARNING, ExtraLines, FeedBuilder
from config.settings import Settings
from scheduler.database import connect, existing_store, has_tables, session_factory
from scheduler.models import ConfigRevision

_SAFE_ID = re.compile(r"[a-z0-9][a-z0-9-]*")  # config ids are slugs: safe as file names


@dataclass(frozen=True)
class FeedSource:
    """The feeds of one state, and where that state came from (for messages)."""

    builder: FeedBuilder
    origin: str  # "database sqlite:///var/mocd.sqlite3" or "config examples"


def applied_database(settings: Settings) -> str | None:
    """The database URL when a database exists and has an applied revision, else None.

    A SQLite file that does not exist is not created; a PostgreSQL server that does not
    answer is a RuntimeFailure (it is configured, so silently using the config instead
    could print an older or newer state than the daemon serves).
    """
    url = settings.effective_database_url
    engine = existing_store(url)
    if engine is None:
        return None
    try:
        if not has_tables(engine):
            return None
        with Session(engine) as session:
            applied = session.scalar(select(ConfigRevision.id).where(
                ConfigRevision.ok.is_(True)).limit(1))
        return url if applied is not None else None
    finally:
        engine.dispose()


def open_feeds(settings: Settings, config_dir: Path, now: datetime, *,
               extra_lines: ExtraLines | None = None) -> FeedSource:
    """The feeds as the daemon would serve them now: from the applied database, else
    from ``config_dir`` alone."""
    url = applied_database(settings)
    if url is None:
        return FeedSource(builder_from_config(config_dir, settings, now,
                                              extra_lines=extra_lines),
                          f"config {config_dir}")
    engine = connect(url)
    try:
        builder = builder_from_database(session_factory(engine), settings, now,
                                        extra_lines=extra_lines)
    finally:
        engine.dispose()
    return FeedSource(builder, f"database {make_url(url).render_as_string(hide_password=True)}")


def feed_path(key: FeedKey) -> str:
    """Where a feed lives in an export, relative: ``units/ID.ics``, ``campaigns/ID.ics``,
    ``all.ics``."""
    if key.kind == "all":
        return "all.ics"
    return f"{'units' if key.kind == 'unit' else 'campaigns'}/{key.id}.ics"


def write_atomic(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` through a temporary file and a rename; False (and the
    file untouched) when it already holds exactly these bytes."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)  # mkstemp makes 0600: the web server must read it
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


@dataclass(frozen=True)
class ExportRow:
    """One line of the index page."""

    key: FeedKey
    name: str
    href: str
    events: int
    size: str
    big: bool


@dataclass(frozen=True)
class ExportReport:
    feeds: int
    written: int  # files whose bytes changed (the rest were left as they were)
    skipped: tuple[str, ...]  # ids that are not safe file names (never from a valid config)
    largest: int
    removed: int = 0  # files of feeds (and agenda pages) that no longer exist


_INDEX_TEXT = {
    "vi": {"title": "Lịch iCalendar của mocd", "all": "Tất cả", "campaigns": "Kế hoạch",
           "units": "Đơn vị", "feed": "Lịch", "file": "Tệp", "events": "Số mục",
           "size": "Dung lượng", "generated": "Tạo lúc", "source": "Nguồn",
           "intro": "Mỗi đơn vị đăng ký (subscribe) tệp .ics của mình trong ứng dụng lịch. "
                    "Trang này dành cho quản trị: không công khai thư mục này.",
           "big": "Tệp tô đỏ lớn hơn 1 MB: Google Lịch có thể bỏ đăng ký; hãy rút ngắn "
                  "feeds.past / feeds.future."},
    "en": {"title": "mocd iCalendar feeds", "all": "All", "campaigns": "Campaigns",
           "units": "Units", "feed": "Feed", "file": "File", "events": "Events",
           "size": "Size", "generated": "Generated", "source": "Source",
           "intro": "Each unit subscribes to its own .ics file in its calendar application. "
                    "This page is for administrators: do not publish this directory.",
           "big": "Files in red are over 1 MB: Google Calendar may drop the subscription; "
                  "shorten feeds.past / feeds.future."},
}


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{max(1, round(n / 1000))} kB"


def render_index(rows: list[ExportRow], *, language: str, generated: datetime,
                 origin: str) -> str:
    """The admin's index page (Jinja2, autoescaped: names come from the config)."""
    env = Environment(loader=PackageLoader("calendars", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    template = env.get_template("index.html.j2")
    return template.render(
        language=language, t=_INDEX_TEXT.get(language, _INDEX_TEXT["vi"]),
        generated=generated.strftime("%Y-%m-%d %H:%M %Z"), source=origin,
        everything=[r for r in rows if r.key.kind == "all"],
        campaigns=[r for r in rows if r.key.kind == "campaign"],
        units=[r for r in rows if r.key.kind == "unit"],
        big=any(r.big for r in rows))


def export_feeds(source: FeedSource, directory: Path, *, language: str, now: datetime,
                 progress: Callable[[int, int], None] | None = None) -> ExportReport:
    """Write every feed of ``source``, a static agenda page per unit (``agenda/{unit}.html``,
    without confirm buttons: a static server cannot take a confirmation) and ``index.html``
    into ``directory``; remove the feeds and pages of units and campaigns that are gone
    (a static server would otherwise keep serving a removed unit's calendar)."""
    builder = source.builder
    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("units", "campaigns", "agenda"):
        (directory / sub).mkdir(exist_ok=True)
    titles = {cid: info.title for cid, info in builder.input.campaigns.items()}
    keys = sorted(builder.plans)
    rows: list[ExportRow] = []
    skipped: list[str] = []
    written = 0
    largest = 0
    for done, key in enumerate(keys, start=1):
        if key.kind != "all" and not _SAFE_ID.fullmatch(key.id):
            skipped.append(key.name)
            continue
        body = builder.render(key)
        largest = max(largest, len(body))
        href = feed_path(key)
        if write_atomic(directory / href, body):
            written += 1
        plan = builder.plans[key]
        rows.append(ExportRow(key, plan.name, href, len(plan.items), _size(len(body)),
                              len(body) > SIZE_WARNING))
        if key.kind == "unit":
            view = agenda_view(AgendaUnit(key.id, plan.name, plan.language),
                               [item.occurrence for item in plan.items if not item.removed],
                               today=now.date(), campaigns=titles, ics_href=f"../{href}")
            write_atomic(directory / "agenda" / f"{key.id}.html",
                         render_agenda_html(view).encode())
        if progress is not None:
            progress(done, len(keys))
    index = render_index(rows, language=language, generated=now, origin=source.origin)
    write_atomic(directory / "index.html", index.encode())
    current = {row.href for row in rows} | {
        f"agenda/{row.key.id}.html" for row in rows if row.key.kind == "unit"}
    removed = 0
    for sub, pattern in (("units", "*.ics"), ("campaigns", "*.ics"), ("agenda", "*.html")):
        for path in (directory / sub).glob(pattern):  # only what an export writes
            if f"{sub}/{path.name}" not in current and path.is_file():
                path.unlink()
                removed += 1
    return ExportReport(len(rows), written, tuple(skipped), largest, removed)
