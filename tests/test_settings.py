"""Settings (SPEC §3): defaults, `mocd.toml`, `MOCD_*` variables (env wins), errors in one line.

Every test runs with the `mocd_env` fixture: no `MOCD_*` variables and no
`/etc/mocd/mocd.toml` fallback, whatever the machine has.
"""

from __future__ import annotations

import json
from datetime import time, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

import config.settings
from config.errors import UserError
from config.settings import Settings, load_settings
from scheduler.offsets import parse_offset
from tests.conftest import RunCli, WriteConfig

pytestmark = pytest.mark.usefixtures("mocd_env")


def offsets(*texts: str) -> tuple:
    return tuple(parse_offset(t) for t in texts)


def write(tmp_path: Path, text: str, name: str = "mocd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def where(path: Path) -> str:
    """The prefix of a settings error when a file is read (the value may come from either)."""
    return f"{path} (or MOCD_* environment)"


def error_of(*args: object) -> str:
    with pytest.raises(UserError) as caught:
        load_settings(*args)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- defaults ---------------------------------------------------------------------


def test_every_default_of_spec_3():
    s = load_settings()
    assert s.config_dir == Path("/etc/mocd/milestones")
    assert s.state_dir == Path("./var")
    assert s.effective_database_url == "sqlite:///var/mocd.sqlite3"
    assert s.timezone == "Asia/Ho_Chi_Minh"
    assert s.language == "vi"
    assert s.public_url == "http://127.0.0.1:8470"
    assert s.uid_domain == "mocd.local"
    assert (s.http.host, s.http.port, s.http.public_feeds) == ("127.0.0.1", 8470, False)
    assert s.mail.url == ""
    assert s.mail.password_file is None
    assert s.mail.sender == "mocd <mocd@localhost>"
    assert s.mail.admin == ""
    assert s.mail.concurrency == 4
    assert s.mail.rate_per_minute == 0
    assert s.mail.max_attempts == 8
    assert s.reminders.time_of_day == time(7, 30)
    assert s.reminders.deadline == offsets("14d", "3d", "1d", "0d")
    assert s.reminders.event == offsets("7d", "1d")
    assert s.reminders.anniversary == offsets("90d", "30d", "7d")
    assert s.reminders.catch_up == timedelta(days=2)
    assert s.reminders.overdue == offsets("1d", "7d")
    assert s.digest.cron == "30 7 * * mon"
    assert s.digest.horizon == timedelta(days=14)
    assert s.feeds.past == timedelta(days=365)
    assert s.feeds.future == timedelta(days=3650)
    assert s.feeds.refresh == "PT6H"
    assert s.feeds.alarms is False


def test_database_url_follows_state_dir(tmp_path):
    s = load_settings(write(tmp_path, 'state_dir = "/var/lib/mocd"\n'))
    assert s.effective_database_url == "sqlite:////var/lib/mocd/mocd.sqlite3"
    s = load_settings(write(tmp_path, 'database_url = "postgresql+psycopg://mocd@db/mocd"\n'))
    assert s.effective_database_url == "postgresql+psycopg://mocd@db/mocd"


# -- file and environment ---------------------------------------------------------


def test_values_from_a_toml_file(tmp_path):
    s = load_settings(write(tmp_path, """\
language = "en"
uid_domain = "bato.gov.vn"

[mail]
url = "smtp://mocd:secret@mail.bato.gov.vn:587?tls=starttls"
concurrency = 2

[reminders]
time_of_day = "08:00"
deadline = ["7d", "2wd", "0d"]

[feeds]
past = "30d"
alarms = true
"""))
    assert (s.language, s.uid_domain) == ("en", "bato.gov.vn")
    assert s.mail.url == "smtp://mocd:secret@mail.bato.gov.vn:587?tls=starttls"
    assert s.mail.concurrency == 2
    assert s.mail.sender == "mocd <mocd@localhost>"  # the rest of a section keeps its defaults
    assert s.reminders.time_of_day == time(8, 0)
    assert s.reminders.deadline == offsets("7d", "2wd", "0d")
    assert s.reminders.event == offsets("7d", "1d")
    assert s.feeds.past == timedelta(days=30)
    assert s.feeds.alarms is True


def test_environment_nests_with_double_underscore(monkeypatch):
    monkeypatch.setenv("MOCD_MAIL__URL", "smtps://mail.example.vn")
    monkeypatch.setenv("MOCD_HTTP__PORT", "9000")
    monkeypatch.setenv("MOCD_LANGUAGE", "en")
    s = load_settings()
    assert s.mail.url == "smtps://mail.example.vn"
    assert s.mail.sender == "mocd <mocd@localhost>"
    assert s.http.port == 9000
    assert s.http.host == "127.0.0.1"
    assert s.language == "en"


def test_environment_wins_over_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, '[mail]\nurl = "smtp://from-file"\nadmin = "admin@file.vn"\n')
    monkeypatch.setenv("MOCD_MAIL__URL", "smtp://from-env")
    s = load_settings(path)
    assert s.mail.url == "smtp://from-env"
    assert s.mail.admin == "admin@file.vn"  # the file still counts for what env leaves alone


def test_mail_password_file_from_the_file_or_the_environment(tmp_path, monkeypatch):
    path = write(tmp_path, '[mail]\npassword_file = "/etc/mocd/smtp-password"\n')
    assert load_settings(path).mail.password_file == Path("/etc/mocd/smtp-password")
    # How deploy/mocd.service sets it (%d is $CREDENTIALS_DIRECTORY):
    monkeypatch.setenv("MOCD_MAIL__PASSWORD_FILE", "/run/credentials/mocd.service/smtp-password")
    assert load_settings(path).mail.password_file == Path(
        "/run/credentials/mocd.service/smtp-password")
    # Empty is none (not the current directory), from the file or the environment; the
    # file is not read when the settings are (a missing one is the transport's error).
    monkeypatch.setenv("MOCD_MAIL__PASSWORD_FILE", "")
    assert load_settings(path).mail.password_file is None
    monkeypatch.delenv("MOCD_MAIL__PASSWORD_FILE")
    assert load_settings(write(tmp_path, '[mail]\npassword_file = ""\n')).mail.password_file is None


@pytest.mark.parametrize("value", ['["14d", "3d"]', '["14d","3d"]', "14d,3d", "14d, 3d"],
                         ids=["json", "json-tight", "comma", "comma-space"])
def test_offsets_from_the_environment(monkeypatch, value):
    monkeypatch.setenv("MOCD_REMINDERS__DEADLINE", value)
    assert load_settings().reminders.deadline == offsets("14d", "3d")


def test_a_bad_offset_from_the_environment(monkeypatch):
    monkeypatch.setenv("MOCD_REMINDERS__DEADLINE", "14d,3x")
    assert error_of() == (
        "settings (MOCD_* environment): reminders.deadline: expected a reminder offset like 14d, "
        "2w, 3wd (working days), 2h or 0d, got '3x'"
    )


@pytest.mark.parametrize("name", ["MOCD_HTTP", "MOCD_REMINDERS"])
def test_an_environment_value_that_is_not_json(monkeypatch, name):
    # a whole section from one variable must be JSON
    monkeypatch.setenv(name, "{port")
    field = name.removeprefix("MOCD_").lower()
    assert error_of() == (
        f'settings: error parsing value for field "{field}" from source "EnvSettingsSource"'
    )


def test_mocd_settings_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MOCD_SETTINGS", str(write(tmp_path, 'uid_domain = "from-env-path"\n')))
    assert load_settings().uid_domain == "from-env-path"


def test_an_explicit_file_wins_over_mocd_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MOCD_SETTINGS", str(write(tmp_path, 'uid_domain = "a"\n', "a.toml")))
    assert load_settings(write(tmp_path, 'uid_domain = "b"\n', "b.toml")).uid_domain == "b"


def test_the_system_file_is_used_only_if_present(tmp_path, monkeypatch):
    system = tmp_path / "etc-mocd.toml"
    monkeypatch.setattr(config.settings, "DEFAULT_SETTINGS_FILE", system)
    assert load_settings().uid_domain == "mocd.local"
    write(tmp_path, 'uid_domain = "from-etc"\n', system.name)
    assert load_settings().uid_domain == "from-etc"


# -- errors: one line each ----------------------------------------------------------


def test_missing_file():
    assert error_of(Path("khong-co.toml")) == "khong-co.toml: settings file not found"


def test_invalid_toml(tmp_path):
    message = error_of(write(tmp_path, "[mail\nurl = 1\n"))
    assert message.startswith(f"{tmp_path / 'mocd.toml'}: not valid TOML: ")
    assert "line 1" in message


def test_unknown_key_in_a_section(tmp_path):
    message = error_of(write(tmp_path, '[mail]\nurl = ""\nsendr = "x@y.vn"\n'))
    assert message == f"{where(tmp_path / 'mocd.toml')}: mail.sendr: unknown setting"


def test_unknown_top_level_key(tmp_path):
    # only the file can hold it (other MOCD_* variables are not settings): no "or environment"
    message = error_of(write(tmp_path, 'languag = "en"\n'))
    assert message == (f"{tmp_path / 'mocd.toml'}: languag: unknown setting "
                       "(did you mean 'language'?)")


def test_unknown_section(tmp_path):
    message = error_of(write(tmp_path, '[reminder]\ndeadline = ["1d"]\n'))
    assert message == (f"{tmp_path / 'mocd.toml'}: reminder: unknown setting "
                       "(did you mean 'reminders'?)")


def test_several_unknown_top_level_keys(tmp_path):
    path = write(tmp_path, 'languag = "en"\nzzz = 1\n')
    assert error_of(path) == (f"{path}: languag: unknown setting (did you mean 'language'?); "
                              f"{path}: zzz: unknown setting")


def test_bad_offset_in_reminders_deadline(tmp_path):
    message = error_of(write(tmp_path, '[reminders]\ndeadline = ["14d", "3x"]\n'))
    assert message == (
        f"{where(tmp_path / 'mocd.toml')}: reminders.deadline: expected a reminder offset like "
        "14d, 2w, 3wd (working days), 2h or 0d, got '3x'"
    )


@pytest.mark.parametrize(("text", "expected"), [
    ('language = "fr"\n', "language: Input should be 'vi' or 'en'"),
    ('timezone = "Asia/Ha_Noi"\n', "timezone: unknown time zone 'Asia/Ha_Noi'"),
    ('[http]\nport = 99999\n', "http.port: Input should be less than or equal to 65535"),
    ('[reminders]\ntime_of_day = "7h30"\n',
     "reminders.time_of_day: expected a time of day like 07:30, got '7h30'"),
    ('[feeds]\npast = "1y"\n',
     "feeds.past: expected a duration like 4h, 90m, 1h30m or 2d, got '1y'"),
    ('[feeds]\nrefresh = "6h"\n',
     "feeds.refresh: '6h' is not a duration such as PT6H, P1D or P1W"),
    ('[feeds]\nrefresh = "PT0S"\n', "feeds.refresh: 'PT0S' must be longer than zero"),
], ids=["language", "timezone", "port", "time-of-day", "duration", "refresh", "refresh-zero"])
def test_bad_values(tmp_path, text, expected):
    assert error_of(write(tmp_path, text)) == f"{where(tmp_path / 'mocd.toml')}: {expected}"


@pytest.mark.parametrize(("text", "seconds"), [
    ("PT6H", 6 * 3600), ("p1d", 86400), ("P1W", 7 * 86400), ("P1DT2H30M", 95400),
    ("PT90S", 90)])
def test_feed_refresh_is_an_rfc5545_duration(text, seconds):
    assert Settings(feeds={"refresh": text}).feeds.refresh_interval.total_seconds() == seconds


@pytest.mark.parametrize("bad", ["6h", "P", "PT", "P1M", "P1Y", "PT0S", "P1H", "-PT1H", ""])
def test_feed_refresh_refuses_what_rfc5545_or_common_sense_does_not_allow(bad):
    with pytest.raises(ValidationError, match="refresh"):
        Settings(feeds={"refresh": bad})


def test_trusted_proxies_from_the_environment(monkeypatch):
    monkeypatch.setenv("MOCD_HTTP__TRUSTED_PROXIES", "127.0.0.1, ::1")
    assert load_settings(None).http.trusted_proxies == ("127.0.0.1", "::1")
    monkeypatch.setenv("MOCD_HTTP__TRUSTED_PROXIES", "nginx.local")
    with pytest.raises(UserError, match="trusted_proxies"):
        load_settings(None)


def test_bad_value_from_the_environment(monkeypatch):
    monkeypatch.setenv("MOCD_HTTP__PORT", "abc")
    assert error_of() == ("settings (MOCD_* environment): http.port: Input should be a valid "
                          "integer, unable to parse string as an integer")


def test_bad_value_from_the_environment_with_a_settings_file(tmp_path, monkeypatch):
    path = write(tmp_path, '[http]\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("MOCD_HTTP__PORT", "abc")
    assert error_of(path) == (f"{where(path)}: http.port: Input should be a valid integer, "
                              "unable to parse string as an integer")


def test_several_problems_in_one_line(tmp_path):
    path = write(tmp_path, '[mail]\nconcurrency = 0\n[feeds]\nfuture = "x"\n')
    assert error_of(path) == (
        f"{where(path)}: mail.concurrency: Input should be greater than or equal to 1; "
        "feeds.future: expected a duration like 4h, 90m, 1h30m or 2d, got 'x'"
    )


# -- through the command line ---------------------------------------------------------

CONFIG = """\
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ, email: noivu@bato.example.vn}
milestones:
  - {id: bao-cao, title: Báo cáo, when: 2024-06-20, lead: phong-noi-vu, reminders: [1d]}
"""


def test_cli_settings_file_missing(run_cli):
    code, out, err = run_cli(["--settings", "khong-co.toml", "check", "--config", "cfg"])
    assert (code, out, err) == (1, "", "khong-co.toml: settings file not found\n")


def test_cli_settings_invalid_toml(tmp_path, run_cli):
    write(tmp_path, "language = \n")
    code, out, err = run_cli(["--settings", "mocd.toml", "check", "--config", "cfg"])
    assert (code, out) == (1, "")
    assert err.startswith("mocd.toml: not valid TOML: ")
    assert err.count("\n") == 1


def test_cli_uses_the_settings_file(tmp_path, write_config: WriteConfig, run_cli: RunCli):
    write_config(tmp_path, {"a.yaml": CONFIG})
    write(tmp_path, 'uid_domain = "bato.gov.vn"\n[reminders]\ntime_of_day = "08:15"\n')
    code, out, err = run_cli(["--settings", "mocd.toml", "reminders", "--config", "cfg",
                              "--format", "json"])
    assert (code, err) == (0, "")
    assert '"uid": "milestone.bao-cao@bato.gov.vn"' in out
    assert '"fire_at": "2024-06-19T08:15:00+07:00"' in out


def test_cli_mocd_settings_and_environment(tmp_path, write_config: WriteConfig,
                                           run_cli: RunCli, monkeypatch):
    write_config(tmp_path, {"a.yaml": CONFIG})
    monkeypatch.setenv("MOCD_SETTINGS", str(write(tmp_path, '[feeds]\npast = "30d"\n')))
    monkeypatch.setenv("MOCD_FEEDS__FUTURE", "10d")
    code, out, _ = run_cli(["check", "--config", "cfg"])
    assert code == 0
    # today is 2024-06-01: from 2024-06-01 − 30 d to 2024-06-01 + 10 d; bao-cao (2024-06-20)
    # is past the range
    assert out == ("cfg: OK — 1 files, 1 units, 0 groups, 0 campaigns, 0 anniversaries; "
                   "1 occurrences; from 2024-05-02 to 2024-06-11: 0 occurrences, 0 reminders\n")


def test_cli_bad_setting_is_one_line(run_cli, monkeypatch):
    monkeypatch.setenv("MOCD_LANGUAGE", "fr")
    code, out, err = run_cli(["check", "--config", "cfg"])
    assert (code, out) == (1, "")
    assert err == "settings (MOCD_* environment): language: Input should be 'vi' or 'en'\n"


def test_cli_environment_value_that_is_not_json_is_one_line(run_cli, monkeypatch):
    monkeypatch.setenv("MOCD_HTTP", "{port")
    code, out, err = run_cli(["check", "--config", "cfg"])
    assert (code, out) == (1, "")
    assert err == 'settings: error parsing value for field "http" from source "EnvSettingsSource"\n'


def test_cli_comma_separated_offsets_from_the_environment(tmp_path, write_config: WriteConfig,
                                                           run_cli: RunCli, monkeypatch):
    write_config(tmp_path, {"a.yaml": CONFIG.replace(", reminders: [1d]", "")})
    monkeypatch.setenv("MOCD_REMINDERS__DEADLINE", "14d,3d")
    code, out, err = run_cli(["reminders", "--config", "cfg", "--format", "json"])
    assert (code, err) == (0, "")
    # 14 days before Thursday 2024-06-20 is Thursday 06-06; 3 days before, Monday 06-17
    assert [(r["offset"], r["fire_at"]) for r in json.loads(out)] == [
        ("14d", "2024-06-06T07:30:00+07:00"), ("3d", "2024-06-17T07:30:00+07:00")]


def test_the_defaults_need_no_file():
    assert load_settings() == Settings()
