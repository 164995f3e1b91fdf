"""Settings (SPEC §3): ``mocd.toml`` plus ``MOCD_*`` environment variables; env wins.

Every setting has a working default, so ``mocd run --config examples/`` needs
no file at all. This one schema drives the defaults, the validation and the
README's table.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from config.errors import UserError, did_you_mean, format_path
from scheduler.dates import DateTextError, parse_duration, parse_time_of_day
from scheduler.offsets import Offset, parse_offset

DEFAULT_SETTINGS_FILE = Path("/etc/mocd/mocd.toml")


def _offsets(value: Any) -> Any:
    if isinstance(value, str):  # MOCD_REMINDERS__DEADLINE=14d,3d
        value = [part for part in value.replace("[", "").replace("]", "").split(",") if part]
    if isinstance(value, list | tuple):
        return tuple(
            v if isinstance(v, Offset) else parse_offset(str(v).strip(" '\"")) for v in value
        )
    return value


def _addresses(value: Any) -> Any:
    """IP addresses, from a list or comma-separated text (MOCD_HTTP__TRUSTED_PROXIES)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        try:
            return tuple(str(ipaddress.ip_address(str(v).strip())) for v in value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    return value


def _from_text(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A validator that parses text with one of the config's parsers (TOML may give objects)."""

    def validate(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse(value)
            except DateTextError as exc:
                raise ValueError(str(exc)) from None
        return value

    return validate


_duration = _from_text(parse_duration)
_time_of_day = _from_text(parse_time_of_day)


def _seconds(value: Any) -> Any:
    """A short duration: ``45s``, ``45`` (seconds) or anything :func:`_duration` takes."""
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("s")
        if text.isdigit():
            return timedelta(seconds=int(text))
    return _duration(value)


# NoDecode: `MOCD_REMINDERS__DEADLINE=14d,3d` is parsed by _offsets, not as JSON first.
Offsets = Annotated[tuple[Offset, ...], NoDecode, BeforeValidator(_offsets)]
Duration = Annotated[timedelta, BeforeValidator(_duration)]
TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8470, ge=0, le=65535)
    public_feeds: bool = False
    # Reverse proxies whose X-Forwarded-For is believed (the client address recorded with
    # a confirmation); empty: the TCP peer is the client, whatever the headers say.
    trusted_proxies: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_addresses)] = ()
    # A connection that sends no complete request for this long is closed (a silent or
    # slow client, an idle keep-alive): held connections must not exhaust the process.
    timeout: Annotated[timedelta, BeforeValidator(_seconds)] = timedelta(seconds=15)
    # Open connections at most; one more gets "503, try again" and is closed at once.
    max_connections: int = Field(500, ge=10, le=100_000)

    @field_validator("timeout")
    @classmethod
    def _sane_timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError("must be between 1s and 1h")
        return value


def _optional_path(value: Any) -> Any:
    """Empty text (TOML ``""``, ``MOCD_MAIL__PASSWORD_FILE=``) is no path, not ``.``."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


class MailSettings(_Section):
    url: str = ""
    # A file holding the SMTP password (the systemd unit passes a credential,
    # $CREDENTIALS_DIRECTORY/smtp-password): the settings file then holds none. It is
    # read when the transport is opened (notifications.mail_url.mail_server).
    password_file: Annotated[Path | None, BeforeValidator(_optional_path)] = None
    sender: str = "mocd <mocd@localhost>"
    admin: str = ""
    concurrency: int = Field(4, ge=1, le=64)
    rate_per_minute: int = Field(0, ge=0)
    max_attempts: int = Field(8, ge=1)
    # How long a claim of outbox rows lasts without renewal: the daemon renews it every
    # quarter of it while the rows wait or are sent; a crashed instance's rows are free
    # again after it at the latest (at once when its death is provable).
    lease: Annotated[timedelta, BeforeValidator(_seconds)] = timedelta(seconds=60)

    @field_validator("lease")
    @classmethod
    def _sane_lease(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=5) <= value <= timedelta(hours=1):
            raise ValueError("must be between 5s and 1h")
        return value


class ReminderSettings(_Section):
    time_of_day: TimeOfDay = time(7, 30)
    deadline: Offsets = (parse_offset("14d"), parse_offset("3d"), parse_offset("1d"),
                         parse_offset("0d"))
    event: Offsets = (parse_offset("7d"), parse_offset("1d"))
    anniversary: Offsets = (parse_offset("90d"), parse_offset("30d"), parse_offset("7d"))
    catch_up: Duration = timedelta(days=2)
    overdue: Offsets = (parse_offset("1d"), parse_offset("7d"))

    def defaults_for(self, kind: str) -> tuple[Offset, ...]:
        """Default offsets per occurrence kind; a campaign period counts as an event."""
        if kind == "deadline":
            return self.deadline
        if kind == "anniversary":
            return self.anniversary
        return self.event


class DigestSettings(_Section):
    cron: str = "30 7 * * mon"  # empty: no weekly digest
    horizon: Duration = timedelta(days=14)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if value.strip():
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value)
            except ValueError as exc:
                raise ValueError(f"'{value}' is not a crontab expression: {exc}") from None
        return value


# An RFC 5545 DURATION (REFRESH-INTERVAL has no years or months): PT6H, P1D, P1W, P1DT2H30M.
_RFC5545_DURATION = re.compile(
    r"P(?:(?P<w>\d+)W|(?:(?P<d>\d+)D)?(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?"
    r"(?:(?P<s>\d+)S)?)?)")


def parse_refresh(text: str) -> timedelta:
    """``feeds.refresh`` as a positive timedelta; ValueError for anything else."""
    match = _RFC5545_DURATION.fullmatch(text.strip().upper().removeprefix("+"))
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"'{text}' is not a duration such as PT6H, P1D or P1W")
    parts = {name: int(value or 0) for name, value in match.groupdict().items()}
    duration = timedelta(weeks=parts["w"], days=parts["d"], hours=parts["h"],
                         minutes=parts["m"], seconds=parts["s"])
    if duration <= timedelta(0):
        raise ValueError(f"'{text}' must be longer than zero")
    return duration


class FeedSettings(_Section):
    past: Duration = timedelta(days=365)
    future: Duration = timedelta(days=3650)
    refresh: str = "PT6H"  # as written: REFRESH-INTERVAL, X-PUBLISHED-TTL, Cache-Control
    alarms: bool = False

    @field_validator("refresh")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_refresh(value)
        return value

    @property
    def refresh_interval(self) -> timedelta:
        return parse_refresh(self.refresh)


_settings_file: ContextVar[Path | None] = ContextVar("mocd_settings_file", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MOCD_",
        env_nested_delimiter="__",
        extra="ignore",  # other MOCD_* variables (MOCD_SETTINGS, test switches) are not settings
        frozen=True,
    )

    config_dir: Path = Path("/etc/mocd/milestones")
    state_dir: Path = Path("./var")
    database_url: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"
    language: Literal["vi", "en"] = "vi"
    public_url: str = "http://127.0.0.1:8470"
    uid_domain: str = "mocd.local"
    templates_dir: Path | None = None
    # Empty: {state_dir}/secret.key (created on first use). Set it (the same value) when
    # several instances share one database, so they derive the same feed tokens.
    secret_key: SecretStr = SecretStr("")
    http: HttpSettings = HttpSettings()
    mail: MailSettings = MailSettings()
    reminders: ReminderSettings = ReminderSettings()
    digest: DigestSettings = DigestSettings()
    feeds: FeedSettings = FeedSettings()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'") from None
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if text and len(text.strip()) < 32:
            raise ValueError("too short: give at least 32 characters "
                             "(e.g. the output of `openssl rand -hex 32`)")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir}/mocd.sqlite3"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _settings_file.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def settings_path(explicit: Path | None) -> Path | None:
    """``--settings``, else ``MOCD_SETTINGS``, else ``/etc/mocd/mocd.toml`` if present."""
    if explicit is not None:
        return explicit
    env = os.environ.get("MOCD_SETTINGS")
    if env:
        return Path(env)
    return DEFAULT_SETTINGS_FILE if DEFAULT_SETTINGS_FILE.is_file() else None


@contextmanager
def _reading(path: Path | None) -> Iterator[None]:
    token = _settings_file.set(path)
    try:
        yield
    finally:
        _settings_file.reset(token)


def load_settings(explicit: Path | None = None, **overrides: Any) -> Settings:
    """Settings from file + env (+ overrides from the command line), or a one-line UserError."""
    path = settings_path(explicit)
    if path is not None and not path.is_file():
        raise UserError(f"{path}: settings file not found")
    where = f"{path} (or MOCD_* environment)" if path else "settings (MOCD_* environment)"
    if path is not None:
        _check_top_level_keys(path, str(path))
    try:
        with _reading(path):
            return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: not valid TOML: {exc}") from None
    except SettingsError as exc:  # an environment value that is not valid JSON for its type
        raise UserError(f"settings: {exc}") from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown setting"
            problems.append(f"{format_path(error['loc'])}: {message}")
        raise UserError(f"{where}: " + "; ".join(problems)) from None


def _check_top_level_keys(path: Path, where: str) -> None:
    """Top-level keys are not forbidden by the model (env has other MOCD_* names): check here."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: not valid TOML: {exc}") from None
    unknown = [key for key in data if key not in Settings.model_fields]
    if unknown:
        raise UserError("; ".join(
            f"{where}: {key}: unknown setting{did_you_mean(key, Settings.model_fields)}"
            for key in unknown))
