"""The ``mocd`` command line (SPEC §8).

Exit codes: 0 ok, 1 invalid input, 2 usage, 3 runtime failure. User errors are
printed as one line each on stderr; a traceback means a bug (or ``--debug``).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from config.errors import RuntimeFailure, UserError, did_you_mean
from config.importer.command import import_command
from config.loader import MilestoneConfig, load_config, read_config
from config.settings import Settings, load_settings
from notifications.planning import PlannedReminder, count_reminders, plan_reminders
from notifications.transport import TransportError
from scheduler.agenda import agenda_json, agenda_text, json_lines, reminder_record, reminders_text
from scheduler.clock import Clock, SystemClock, today
from scheduler.database import (
    connect,
    has_tables,
    require_current,
    session_factory,
    upgrade,
)
from scheduler.dates import DateTextError, parse_date
from scheduler.expand import Window, expand_loaded, working_calendar
from scheduler.models import OUTBOX_STATES, OutboxRow
from scheduler.occurrences import Occurrence

EXIT_RUNTIME = 3


@dataclass
class Context:
    settings_file: Path | None = None
    debug: bool = False
    clock: Clock = field(default_factory=SystemClock)
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.settings_file)
        return self._settings


@dataclass
class Plan:
    """A loaded config and its expansion over a date range (what the listings print)."""

    config: MilestoneConfig
    occurrences: list[Occurrence]
    first: date
    last: date


def _date_option(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return parse_date(value)
    except DateTextError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


def _plan(ctx: Context, config_dir: Path | None, start: str | None, end: str | None) -> Plan:
    settings = ctx.settings
    now = today(ctx.clock, settings.tz)
    first = _date_option(start, "--from") or now - settings.feeds.past
    last = _date_option(end, "--to") or now + settings.feeds.future
    if last < first:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    loaded = read_config(config_dir or settings.config_dir)
    config, occurrences = expand_loaded(loaded, Window(first, last), settings.uid_domain)
    return Plan(config, occurrences, first, last)


def _check_unit(config: MilestoneConfig, unit: str | None) -> None:
    if unit is None or unit in config.units:
        return
    if unit in config.members:
        raise UserError(f"'{unit}' is a group; --unit takes a unit id")
    raise UserError(f"unknown unit '{unit}'{did_you_mean(unit, config.units)}")


def _emit(lines: Iterable[str]) -> None:
    out = sys.stdout
    for line in lines:
        out.write(line)
        out.write("\n")


config_option = click.option(
    "--config", "config_dir", type=click.Path(path_type=Path), default=None,
    help="Directory of milestone YAML files (default: the config_dir setting).",
)
range_options = [
    click.option("--unit", default=None, help="Only what concerns this unit id."),
    click.option("--from", "start", default=None, metavar="YYYY-MM-DD",
                 help="First day (default: today − feeds.past)."),
    click.option("--to", "end", default=None, metavar="YYYY-MM-DD",
                 help="Last day (default: today + feeds.future)."),
    click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                 show_default=True),
]


def with_range(func: Any) -> Any:
    for option in reversed(range_options):
        func = option(func)
    return config_option(func)


def one_feed(func: Any) -> Any:
    """``UNIT | --campaign ID | --all``: the feed a command acts on (``feed``, ``tokens
    rotate``); :func:`_check_one_feed` says when not exactly one is given."""
    func = config_option(func)
    func = click.option("--all", "everything", is_flag=True,
                        help="The feed of every occurrence (its token is the admin's).")(func)
    func = click.option("--campaign", default=None, metavar="ID",
                        help="The feed of this campaign.")(func)
    return click.argument("unit", required=False)(func)


def _check_one_feed(unit: str | None, campaign: str | None, everything: bool) -> None:
    if sum((unit is not None, campaign is not None, everything)) != 1:
        raise click.UsageError("give exactly one of UNIT, --campaign ID or --all")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--settings", "settings_file", type=click.Path(path_type=Path), default=None,
              envvar="MOCD_SETTINGS", help="Settings file (default: /etc/mocd/mocd.toml).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="mocd")
@click.pass_context
def cli(click_ctx: click.Context, settings_file: Path | None, debug: bool) -> None:
    """mocd — deadlines, events and anniversaries of Vietnamese public offices, on time."""
    ctx = click_ctx.ensure_object(Context)
    ctx.settings_file = settings_file
    ctx.debug = debug


@cli.command()
@config_option
@click.pass_obj
def check(ctx: Context, config_dir: Path | None) -> None:
    """Validate the config; print every error as FILE:LINE:COL: PATH: message."""
    settings = ctx.settings
    directory = config_dir or settings.config_dir
    plan = _plan(ctx, directory, None, None)
    _check_delivery(settings)
    calendar = working_calendar(plan.config)
    in_range = list(_selected(plan, None))
    reminders = count_reminders(in_range, plan.config.units, calendar, settings.reminders,
                                settings.tz, plan.first, plan.last)
    c = plan.config
    click.echo(
        f"{directory}: OK — {len(c.files)} files, {len(c.units)} units, {len(c.groups)} groups, "
        f"{len(c.campaigns)} campaigns, {len(c.anniversaries)} anniversaries; "
        f"{len(plan.occurrences)} occurrences; from {plan.first} to {plan.last}: "
        f"{len(in_range)} occurrences, {reminders} reminders"
    )


def _check_delivery(settings: Settings) -> None:
    """What the daemon would refuse at start, found by ``check``: a ``mail.url`` that does
    not parse, a ``mail.password_file`` that cannot be read (when set: under systemd it is
    set in the unit's environment only, so a ``check`` from a shell does not look for the
    service's credential), an email template (``templates_dir``) that does not render."""
    from notifications.mail_url import mail_server
    from notifications.messages import MessageFactory

    if settings.mail.url:
        mail_server(settings.mail)
    problems = MessageFactory(settings, {}).check_templates()
    if problems:
        raise UserError(f"templates_dir {settings.templates_dir}: " + "; ".join(problems))


def _selected(plan: Plan, unit: str | None) -> Iterator[Occurrence]:
    for o in plan.occurrences:
        if not o.overlaps(plan.first, plan.last):
            continue
        if unit is not None and unit not in o.units and unit not in o.cc:
            continue
        yield o


@cli.command()
@with_range
@click.pass_obj
def agenda(ctx: Context, config_dir: Path | None, unit: str | None, start: str | None,
           end: str | None, fmt: str) -> None:
    """List occurrences overlapping a date range (text for people, JSON for scripts)."""
    settings = ctx.settings
    plan = _plan(ctx, config_dir, start, end)
    _check_unit(plan.config, unit)
    selected = _selected(plan, unit)
    if fmt == "json":
        _emit(agenda_json(selected, settings.tz, settings.language))
    else:
        names = {uid: u.name for uid, u in plan.config.units.items()}
        _emit(agenda_text(selected, names, settings.language))


@cli.command()
@with_range
@click.pass_obj
def reminders(ctx: Context, config_dir: Path | None, unit: str | None, start: str | None,
              end: str | None, fmt: str) -> None:
    """List the reminders the config plans (a plan, not a queue: past ones included)."""
    settings = ctx.settings
    first = _date_option(start, "--from")
    last = _date_option(end, "--to")
    # Reminders fire before their occurrence: expand far enough ahead to catch them.
    lookahead = max((o.days for o in (*settings.reminders.deadline, *settings.reminders.event,
                                      *settings.reminders.anniversary)), default=0)
    ahead = None
    if last is not None:
        ahead = (last + timedelta(days=lookahead + 400) if last < date(9998, 1, 1)
                 else date.max).isoformat()
    plan = _plan(ctx, config_dir, start, ahead)
    _check_unit(plan.config, unit)
    planned = plan_reminders(plan.occurrences, plan.config.units, working_calendar(plan.config),
                             settings.reminders, settings.tz)
    lo = first or plan.first
    hi = last or plan.last
    chosen: list[PlannedReminder] = [
        r for r in planned
        if lo <= r.fire_at.date() <= hi and (unit is None or r.unit == unit)
    ]
    if fmt == "json":
        _emit(json_lines(reminder_record(r) for r in chosen))
    else:
        titles = {o.uid: o.title_in(settings.language) for o in plan.occurrences}
        _emit(reminders_text(chosen, titles, settings.language))


@cli.command()
@one_feed
@click.pass_obj
def feed(ctx: Context, unit: str | None, campaign: str | None, everything: bool,
         config_dir: Path | None) -> None:
    """Print a feed (iCalendar) to stdout: UNIT's, a campaign's, or all.

    From the database when the daemon has applied one, else from the config alone; the
    same state gives the same bytes either way, and the bytes the daemon serves (a
    unit's feed carries its confirmation links).
    """
    from calendars.feed_export import open_feeds
    from calendars.feed_types import FeedKey
    from calendars.tokens import derive_key, load_secret
    from notifications.confirmations import CONFIRM_PURPOSE, feed_confirm_lines

    _check_one_feed(unit, campaign, everything)
    settings = ctx.settings
    links = feed_confirm_lines(derive_key(load_secret(settings), CONFIRM_PURPOSE),
                               settings.public_url)
    source = open_feeds(settings, config_dir or settings.config_dir,
                        ctx.clock.now(settings.tz), extra_lines=links)
    plans = source.builder.plans
    if everything:
        key = FeedKey("all")
    elif campaign is not None:
        key = FeedKey("campaign", campaign)
        if key not in plans:
            known = [k.id for k in plans if k.kind == "campaign"]
            raise UserError(f"unknown campaign '{campaign}'{did_you_mean(campaign, known)}")
    else:
        assert unit is not None
        key = FeedKey("unit", unit)
        if key not in plans:
            config = read_config(config_dir or settings.config_dir).config
            if config is not None and unit in config.members:
                raise UserError(f"'{unit}' is a group; its units have feeds, a group has none "
                                "(mocd tokens list prints them)")
            known = [k.id for k in plans if k.kind == "unit"]
            raise UserError(f"unknown unit '{unit}'{did_you_mean(unit, known)}")
    out = sys.stdout.buffer
    out.write(source.builder.render(key))
    out.flush()


@cli.command("export-feeds")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@config_option
@click.pass_obj
def export_feeds(ctx: Context, directory: Path, config_dir: Path | None) -> None:
    """Write every feed into DIRECTORY for a static web server, plus an index.html.

    DIRECTORY/units/UNIT.ics, DIRECTORY/campaigns/ID.ics and DIRECTORY/all.ics, each
    replaced atomically and only when its bytes changed; DIRECTORY/agenda/UNIT.html, a
    page per unit; feeds of units and campaigns no longer in the config are removed.
    """
    from calendars import feed_export

    settings = ctx.settings
    now = ctx.clock.now(settings.tz)
    source = feed_export.open_feeds(settings, config_dir or settings.config_dir, now)
    total = len(source.builder.plans)
    step = max(500, total // 10)

    def progress(done: int, count: int) -> None:
        if count >= 1000 and (done % step == 0 or done == count):
            click.echo(f"export-feeds: {done}/{count} feeds", err=True)

    try:
        report = feed_export.export_feeds(source, directory, language=settings.language,
                                          now=now, progress=progress)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write to {directory}: {exc.strerror or exc}") from None
    for name in report.skipped:
        click.echo(f"export-feeds: skipped {name}: not a safe file name", err=True)
    removed = f", {report.removed} removed" if report.removed else ""
    click.echo(f"{directory}: {report.feeds} feeds from the {source.origin} "
               f"({report.written} changed{removed}), index.html")


def _store(ctx: Context) -> Engine:
    """The configured database, or a one-line runtime failure."""
    return connect(ctx.settings.effective_database_url)


def _current_store(ctx: Context) -> Engine:
    """The configured database with mocd's tables, or a one-line runtime failure."""
    engine = _store(ctx)
    try:
        require_current(engine)
    except RuntimeFailure:
        engine.dispose()
        raise
    return engine


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the store's tables to the newest schema."""
    engine = _store(ctx)
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        raise RuntimeFailure(f"migration failed: {str(exc).splitlines()[0]}") from None
    click.echo(f"database {engine.url.render_as_string(hide_password=True)}: up to date")


@cli.command()
@config_option
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="One line per event on stderr, as text or JSON.")
@click.pass_obj
def run(ctx: Context, config_dir: Path | None, log_format: str) -> None:
    """Run the daemon: apply the config, send due reminders, reload on change or SIGHUP."""
    from scheduler.daemon import Daemon
    from scheduler.logs import setup_logging

    setup_logging(log_format)
    settings = ctx.settings
    daemon = Daemon(settings, config_dir or settings.config_dir, ctx.clock)
    code = asyncio.run(daemon.run())
    if code:
        raise click.exceptions.Exit(code)


@cli.command()
@click.option("--pid", type=int, required=True, help="The daemon's process id ($MAINPID).")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="Seconds to wait for the reload to finish.")
@click.pass_obj
def reload(ctx: Context, pid: int, timeout: float) -> None:
    """Ask a running daemon to reload (SIGHUP) and wait until it has (for ExecReload).

    Exits 1 when the daemon rejected the new config (it keeps the last good one).
    """
    import os
    import signal
    import time

    from scheduler.daemon import read_reloads, reload_file

    path = reload_file(ctx.settings.state_dir)
    before, _ = read_reloads(path)
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise RuntimeFailure(f"cannot signal process {pid}: {exc.strerror}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count, outcome = read_reloads(path)
        if count > before:
            if outcome != "accepted":
                raise UserError("the new config was rejected (see the daemon's log); "
                                "the last good one keeps running")
            click.echo("reloaded")
            return
        time.sleep(0.1)
    raise RuntimeFailure(f"the daemon did not finish reloading within {timeout:.0f} s")


@cli.command("send-test")
@click.argument("address")
@click.pass_obj
def send_test(ctx: Context, address: str) -> None:
    """Send one test email to ADDRESS through the configured transport, now."""
    from notifications.mail_url import open_transport
    from notifications.messages import FailureLine, MessageFactory

    settings = ctx.settings
    now = ctx.clock.now(settings.tz)
    factory = MessageFactory(settings, {})
    try:
        message = factory.delivery_failure_report(
            address, [FailureLine(address, "mocd send-test", "this is a test, nothing failed",
                                  1, False, None, now)],
            key=f"send-test:{address}:{now.isoformat()}", now=now,
            subject="[mocd] test message")
    except ValueError as exc:
        raise UserError(f"'{address}' is not a usable email address: {exc}") from None

    async def deliver() -> str:
        transport = open_transport(settings.mail, settings.state_dir / "outbox")
        try:
            return (await transport.send(message)).reply
        finally:
            await transport.close()

    try:
        reply = asyncio.run(deliver())
    except TransportError as exc:
        raise RuntimeFailure(f"sending failed: {exc.reply}") from None
    click.echo(f"sent to {address}: {reply}")


OUTBOX_FIELDS = ("id", "kind", "unit", "occurrence_uids", "offset", "fire_at", "state",
                 "attempts", "next_attempt_at", "last_error", "smtp_reply", "message_id")


@cli.group(invoke_without_command=True)
@click.option("--state", type=click.Choice(list(OUTBOX_STATES)), default=None,
              help="Only rows in this state.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.pass_context
def outbox(click_ctx: click.Context, state: str | None, fmt: str) -> None:
    """List the outbox (every email mocd will send, sent, or gave up on), by fire time;
    ``mocd outbox retry`` sends failed ones again."""
    if click_ctx.invoked_subcommand is None:
        _list_outbox(click_ctx.obj, state, fmt)


@outbox.command("retry")
@click.option("--unit", default=None, help="Only the rows of this unit id.")
@click.option("--since", default=None, metavar="YYYY-MM-DD",
              help="Only rows due on or after this day.")
@click.pass_obj
def outbox_retry(ctx: Context, unit: str | None, since: str | None) -> None:
    """Queue failed emails again (after fixing what made them fail, e.g. the SMTP
    server): each gets a fresh set of attempts; the running daemon sends them within a
    minute."""
    from notifications.outbox import retry_failed

    settings = ctx.settings
    first = _date_option(since, "--since")
    engine = _current_store(ctx)
    try:
        queued = retry_failed(session_factory(engine), now=ctx.clock.now(settings.tz),
                              unit=unit, since=first, tz=settings.tz)
    finally:
        engine.dispose()
    which = "".join([f" of {unit}" if unit else "", f" due since {first}" if first else ""])
    emails = "email" if queued == 1 else "emails"
    click.echo(f"queued {queued} failed {emails}{which} for another try; the running daemon "
               "sends them within a minute" if queued
               else f"no failed emails{which} to retry")


def _list_outbox(ctx: Context, state: str | None, fmt: str) -> None:
    engine = _current_store(ctx)
    query = select(OutboxRow).order_by(OutboxRow.fire_at, OutboxRow.id)
    if state:
        query = query.where(OutboxRow.state == state)
    tz = ctx.settings.tz
    with Session(engine) as session:
        rows = session.scalars(query.execution_options(yield_per=1000))
        if fmt == "json":
            _emit(json_lines(_outbox_record(row, tz) for row in rows))
            return
        count = 0
        for row in rows:
            count += 1
            when = row.fire_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            what = ",".join(row.occurrence_uids) or "-"
            line = (f"{row.id:>7} {when} {row.state:<9} {row.kind:<12} {row.unit or '-':<24} "
                    f"{row.offset or '':<4} {what}")
            click.echo(line if len(line) <= 120 else line[:119] + "…")
            if row.last_error:
                click.echo(f"{'':>8}{row.last_error}")
        if count == 0:
            click.echo("the outbox is empty" + (f" (state {state})" if state else ""))


@cli.command()
@click.argument("campaign")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text",
              show_default=True, help="csv: UTF-8 with a BOM, for Excel.")
@click.pass_obj
def status(ctx: Context, campaign: str, fmt: str) -> None:
    """Where CAMPAIGN stands: per deadline, which units confirmed, are pending or overdue,
    and what became of the last reminder each was sent (from the daemon's database)."""
    from scheduler.status import (
        campaign_status,
        campaigns,
        status_csv,
        status_records,
        status_text,
    )

    settings = ctx.settings
    engine = _current_store(ctx)
    with Session(engine) as session:
        known = campaigns(session)
        if campaign not in known:
            raise UserError(f"unknown campaign '{campaign}'{did_you_mean(campaign, known)}")
        found = campaign_status(session, campaign,
                                today=ctx.clock.now(settings.tz).date(),
                                language=settings.language)
    if fmt == "json":
        _emit(json_lines(status_records(found, settings.tz)))
    elif fmt == "csv":
        sys.stdout.buffer.write(status_csv(found, settings.tz).encode("utf-8"))
        sys.stdout.flush()
    else:
        _emit(status_text(found, settings.tz, settings.language))


def _outbox_record(row: OutboxRow, tz: ZoneInfo) -> dict[str, Any]:
    record: dict[str, Any] = {name: getattr(row, name) for name in OUTBOX_FIELDS}
    for name in ("fire_at", "next_attempt_at"):
        record[name] = record[name].astimezone(tz).isoformat()
    return record


@cli.group()
def tokens() -> None:
    """Feed URLs with their tokens: list them, rotate one."""


def _token_generations(ctx: Context) -> dict[tuple[str, str], int]:
    """Generations from the database; none yet (no database file, no tables) is all 1."""
    from calendars.tokens import load_generations
    from scheduler.database import existing_store

    engine = existing_store(ctx.settings.effective_database_url)
    if engine is None:
        return {}  # the daemon has not run: every feed is at generation 1
    try:
        return load_generations(session_factory(engine)) if has_tables(engine) else {}
    finally:
        engine.dispose()


@tokens.command("list")
@config_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.pass_obj
def tokens_list(ctx: Context, config_dir: Path | None, fmt: str) -> None:
    """Print every feed URL (units; in text also campaigns, the admin feed, webcal://)."""
    from calendars.tokens import ADMIN_SUBJECT, FeedTokens, Scope, feed_url, webcal_url

    settings = ctx.settings
    config = load_config(config_dir or settings.config_dir)
    registry = FeedTokens.from_settings(settings, _token_generations(ctx))

    def url(scope: Scope, subject: str) -> str:
        return feed_url(settings.public_url, scope, subject, registry.token(scope, subject))

    units = sorted(config.units)
    if fmt == "json":
        _emit(json_lines({"unit": unit, "url": url("unit", unit)} for unit in units))
        return

    def block(title: str, link: str) -> Iterator[str]:
        yield f"  {title}"
        yield f"    {link}"
        yield f"    {webcal_url(link)}"

    lines = [f"Units ({len(units)}):"]
    for unit in units:
        lines.extend(block(f"{unit} — {config.units[unit].name}", url("unit", unit)))
    lines.append(f"Campaigns ({len(config.campaigns)}):")
    for campaign in sorted(config.campaigns):
        lines.extend(block(f"{campaign} — {config.campaigns[campaign].title}",
                           url("campaign", campaign)))
    lines.append("Everything (admin):")
    lines.extend(block("all", url("admin", ADMIN_SUBJECT)))
    _emit(lines)


@tokens.command("rotate")
@one_feed
@click.pass_obj
def tokens_rotate(ctx: Context, unit: str | None, campaign: str | None, everything: bool,
                  config_dir: Path | None) -> None:
    """Give UNIT's feed a new token; the old URL stops working (within a minute on a
    running daemon)."""
    from calendars.tokens import ADMIN_SUBJECT, FeedTokens, Scope, feed_url, rotate, webcal_url

    _check_one_feed(unit, campaign, everything)
    settings = ctx.settings
    config = load_config(config_dir or settings.config_dir)
    scope: Scope
    if unit is not None:
        scope, subject = "unit", unit
        _check_unit(config, unit)
    elif campaign is not None:
        scope, subject = "campaign", campaign
        if campaign not in config.campaigns:
            raise UserError(f"unknown campaign '{campaign}'"
                            f"{did_you_mean(campaign, config.campaigns)}")
    else:
        scope, subject = "admin", ADMIN_SUBJECT
    engine = _store(ctx)
    try:
        if engine.dialect.name == "sqlite":
            upgrade(engine)  # SQLite belongs to this instance, as in `mocd run`
        else:
            require_current(engine)
        factory = session_factory(engine)
        generation = rotate(factory, scope, subject, ctx.clock.now(settings.tz))
    finally:
        engine.dispose()
    registry = FeedTokens.from_settings(settings, {(scope, subject): generation})
    link = feed_url(settings.public_url, scope, subject, registry.token(scope, subject))
    click.echo(f"new feed URL of {subject} (token generation {generation}); the old one no "
               "longer works:")
    click.echo(f"  {link}")
    click.echo(f"  {webcal_url(link)}")


cli.add_command(import_command)  # mocd import FILE (issue 6)


def main(argv: list[str] | None = None, clock: Clock | None = None) -> int:
    """Entry point: run the CLI, turn user errors into one-line messages and exit codes."""
    ctx = Context(clock=clock or SystemClock())
    # Expansion allocates millions of small objects that all live to the end: with the
    # default thresholds the collector rescans them again and again (~40% of the time
    # on a national config). Collect far less often; cycles are still collected.
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1000)
    try:
        return _run(ctx, argv)
    finally:
        gc.set_threshold(*thresholds)


def _run(ctx: Context, argv: list[str] | None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, obj=ctx, standalone_mode=False, prog_name="mocd")
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        click.echo("mocd: aborted", err=True)
        return 1
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else _command_path(argv)
        click.echo(f"{command}: {exc.format_message()} (see '{command} --help')", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"mocd: {exc.format_message()}", err=True)
        return exc.exit_code
    except UserError as exc:
        if debug:
            raise
        plain = "\n" in str(exc) or ":" in str(exc)
        click.echo(f"mocd: {exc}" if isinstance(exc, RuntimeFailure) or not plain else str(exc),
                   err=True)
        return exc.exit_code
    except BrokenPipeError:
        sys.stderr.close()  # `mocd agenda | head`: the reader left; not an error
        return 0
    except Exception as exc:
        if debug:
            raise
        click.echo(f"mocd: internal error: {exc!r} (run with --debug for the traceback)",
                   err=True)
        return EXIT_RUNTIME
    return 0


def _command_path(argv: list[str] | None) -> str:
    """``mocd agenda`` for errors click raises before it has a command context."""
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if a in cli.commands), None)
    return f"mocd {command}" if command else "mocd"


def entry() -> None:
    sys.exit(main())
