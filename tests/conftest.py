"""Shared helpers for the CLI-level tests: a config directory and an in-process ``mocd``.

``run_cli`` runs in ``tmp_path`` with every ``MOCD_*`` variable removed and no
``/etc/mocd/mocd.toml`` fallback, so file names in messages are short
(``cfg/a.yaml``) and nothing from the machine leaks in.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.store import engine, factory  # noqa: F401 - store fixtures for every test

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2024, 6, 1, 9, 0, tzinfo=TZ)  # a Saturday; "today" for run_cli

WriteConfig = Callable[..., Path]
RunCli = Callable[..., tuple[int, str, str]]


def _write_config(base: Path, files: dict[str, str | bytes], name: str = "cfg") -> Path:
    """Create ``base/name`` holding ``files``; text is dedented (a leading newline dropped)."""
    directory = base / name
    directory.mkdir(parents=True, exist_ok=True)
    for filename, content in files.items():
        if isinstance(content, str):
            content = textwrap.dedent(content).removeprefix("\n").encode()
        (directory / filename).write_bytes(content)
    return directory


@pytest.fixture
def write_config() -> WriteConfig:
    """``write_config(tmp_path, {"a.yaml": "..."})`` → the config directory ``tmp_path/cfg``."""
    return _write_config


@pytest.fixture
def mocd_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ``MOCD_*`` variables, no system settings file, and ``tmp_path`` as the cwd."""
    import os

    import config.settings

    for key in list(os.environ):
        if key.startswith("MOCD_"):
            monkeypatch.delenv(key)
    monkeypatch.setattr(config.settings, "DEFAULT_SETTINGS_FILE", tmp_path / "no-mocd.toml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def run_cli(mocd_env: Path, capsys: pytest.CaptureFixture[str]) -> RunCli:
    """``run_cli(["check", "--config", "cfg"])`` → ``(exit_code, stdout, stderr)``."""
    from scheduler.cli import main
    from scheduler.clock import FixedClock

    def run(args: list[str], now: datetime = NOW) -> tuple[int, str, str]:
        capsys.readouterr()  # drop anything printed before
        code = main(list(args), clock=FixedClock(now))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly when the real-browser tests of the pages were skipped (no Chromium)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "NO BROWSER" in str(getattr(r, "longrepr", ""))]
    if skipped:
        terminalreporter.write_sep("!", f"{len(skipped)} BROWSER TESTS SKIPPED: Chromium or "
                                   "chromedriver not found; run `make browser`", red=True,
                                   bold=True)
