"""``mocd feed`` and ``mocd export-feeds``: config alone, or the applied database, the same
bytes for the same state; one-line errors; atomic static files and an escaped index."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.settings import Settings
from scheduler.apply import apply_revision
from scheduler.database import open_engine, session_factory, upgrade
from scheduler.expand import Window, expand
from tests.conftest import NOW, RunCli, WriteConfig
from tests.engine import UNITS, load
from tests.test_feeds_render import check_ics, unfold

CONFIG = UNITS + """
campaigns:
  - id: thi-dua-2024
    title: Thi đua <chào mừng> & "Đại hội"
    owner: phong-noi-vu
    units: [ubnd-cac-xa]
    period: {start: 2024-05-01, end: 2024-06-30}
    milestones:
      - {id: ho-so, title: Gửi hồ sơ, when: 2024-06-14, submit_to: phong-noi-vu}
milestones:
  - {id: hop, title: Họp giao ban, kind: event, when: 2024-06-10 08:00, units: [ubnd-huyen]}
"""


@pytest.fixture
def cfg(tmp_path: Path, write_config: WriteConfig) -> Path:
    return write_config(tmp_path, {"plan.yaml": CONFIG})


def feed(run_cli: RunCli, *args: str) -> bytes:
    code, out, err = run_cli(["feed", *args])
    assert (code, err) == (0, "")
    return out.encode()


def test_feed_prints_a_units_a_campaigns_and_all(run_cli: RunCli, cfg: Path) -> None:
    unit = feed(run_cli, "ubnd-xa-a", "--config", "cfg")
    check_ics(unit)
    assert b"\r\nX-WR-CALNAME:UBND x\xc3\xa3 A\r\n" in unit
    assert "UID:thi-dua-2024.ho-so@mocd.local" in unfold(unit)
    assert "milestone.hop@mocd.local" not in unfold(unit)
    campaign = unfold(feed(run_cli, "--campaign", "thi-dua-2024", "--config", "cfg"))
    assert "UID:thi-dua-2024.period@mocd.local" in campaign
    assert "milestone.hop" not in campaign
    everything = unfold(feed(run_cli, "--all", "--config", "cfg"))
    assert everything.count("BEGIN:VEVENT") == 3


def test_feed_errors_are_one_line(run_cli: RunCli, cfg: Path) -> None:
    assert run_cli(["feed", "ubnd-xa-aa", "--config", "cfg"]) == (
        1, "", "mocd: unknown unit 'ubnd-xa-aa' (did you mean 'ubnd-xa-a'?)\n")
    assert run_cli(["feed", "--campaign", "thi-dua-2025", "--config", "cfg"]) == (
        1, "", "mocd: unknown campaign 'thi-dua-2025' (did you mean 'thi-dua-2024'?)\n")
    for args in ([], ["ubnd-xa-a", "--all"], ["--all", "--campaign", "thi-dua-2024"]):
        code, out, err = run_cli(["feed", *args, "--config", "cfg"])
        assert (code, out) == (2, "")
        assert err == ("mocd feed: give exactly one of UNIT, --campaign ID or --all "
                       "(see 'mocd feed --help')\n")


def test_feed_from_the_database_is_the_same_bytes(run_cli: RunCli, cfg: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    database = cfg.parent / "state" / "mocd.sqlite3"
    monkeypatch.setenv("MOCD_DATABASE_URL", f"sqlite:///{database}")
    alone = {args: feed(run_cli, *args, "--config", "cfg")
             for args in (("ubnd-xa-a",), ("ubnd-huyen",), ("--all",))}
    assert not database.exists()  # looking for a database never creates one
    engine = open_engine(f"sqlite:///{database}")
    upgrade(engine)
    assert feed(run_cli, "ubnd-xa-a", "--config", "cfg") == alone[("ubnd-xa-a",)]  # not applied
    config = load(CONFIG)
    apply_revision(session_factory(engine), config, expand(config, Window(
        NOW.date().replace(year=2023), NOW.date().replace(year=2034))), [],
        settings=Settings(), now=NOW)
    engine.dispose()
    for args, data in alone.items():
        # From the database now: the config directory is not even read.
        assert feed(run_cli, *args, "--config", "nowhere") == data


def test_export_feeds_writes_every_feed_atomically_with_an_index(run_cli: RunCli,
                                                                cfg: Path) -> None:
    code, out, err = run_cli(["export-feeds", "site", "--config", "cfg"])
    assert (code, err) == (0, "")
    assert out == "site: 7 feeds from the config cfg (7 changed), index.html\n"
    site = cfg.parent / "site"
    names = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    units = ["phong-dan-toc", "phong-noi-vu", "ubnd-huyen", "ubnd-xa-a", "ubnd-xa-b"]
    assert names == sorted(["all.ics", "campaigns/thi-dua-2024.ics", "index.html",
                            *(f"units/{u}.ics" for u in units),
                            *(f"agenda/{u}.html" for u in units)])
    agenda = (site / "agenda" / "ubnd-xa-a.html").read_text()
    assert 'href="../units/ubnd-xa-a.ics"' in agenda  # subscribe to the file next to it
    assert "/confirm/" not in agenda  # a static server cannot take a confirmation
    # A static file anyone may fetch carries no confirmation link; the daemon's feed
    # behind the unit's token (and `mocd feed`) does.
    exported = (site / "units" / "ubnd-xa-a.ics").read_bytes()
    served = feed(run_cli, "ubnd-xa-a", "--config", "cfg")
    assert b"/confirm/" not in exported
    assert b"/confirm/" in served.replace(b"\r\n ", b"")
    assert exported.count(b"BEGIN:VEVENT") == served.count(b"BEGIN:VEVENT")
    assert (site / "all.ics").stat().st_mode & 0o777 == 0o644
    index = (site / "index.html").read_text()
    assert "Thi đua &lt;chào mừng&gt; &amp; &#34;Đại hội&#34;" in index
    assert '<a href="campaigns/thi-dua-2024.ics">' in index
    for path in site.rglob("*.ics"):
        check_ics(path.read_bytes())

    # Again: nothing changed, nothing rewritten (a static server's Last-Modified stays).
    stamp = (site / "all.ics").stat().st_mtime_ns
    os.utime(site / "all.ics", ns=(stamp - 10**9, stamp - 10**9))
    code, out, _ = run_cli(["export-feeds", "site", "--config", "cfg"])
    assert out == "site: 7 feeds from the config cfg (0 changed), index.html\n"
    assert (site / "all.ics").stat().st_mtime_ns == stamp - 10**9
    assert not [p for p in site.rglob("*.tmp")]


def test_export_feeds_removes_the_feeds_of_a_removed_unit(run_cli: RunCli, cfg: Path) -> None:
    site = cfg.parent / "site"
    assert run_cli(["export-feeds", "site", "--config", "cfg"])[0] == 0
    (site / "units" / "notes.txt").write_text("the admin's own file")
    plan = cfg / "plan.yaml"
    plan.write_text(plan.read_text().replace(
        "  - {id: ubnd-xa-b, name: UBND xã B, groups: [ubnd-cac-xa]}\n", ""))
    code, out, _ = run_cli(["export-feeds", "site", "--config", "cfg"])
    assert code == 0
    assert "2 removed" in out  # the feed and the agenda page
    assert not (site / "units" / "ubnd-xa-b.ics").exists()
    assert not (site / "agenda" / "ubnd-xa-b.html").exists()
    assert (site / "units" / "ubnd-xa-a.ics").exists()
    assert (site / "units" / "notes.txt").exists()  # not an export's file: left alone


def test_a_group_has_no_feed_of_its_own(run_cli: RunCli, cfg: Path) -> None:
    code, out, err = run_cli(["feed", "ubnd-cac-xa", "--config", "cfg"])
    assert (code, out) == (1, "")
    assert err == ("mocd: 'ubnd-cac-xa' is a group; its units have feeds, a group has none "
                   "(mocd tokens list prints them)\n")


def test_export_feeds_into_a_file_is_a_runtime_error(run_cli: RunCli, cfg: Path) -> None:
    (cfg.parent / "taken").write_text("")
    code, out, err = run_cli(["export-feeds", "taken/site", "--config", "cfg"])
    assert (code, out) == (3, "")
    assert err.startswith("mocd: cannot write to taken/site: ")
    assert err.count("\n") == 1


def test_an_invalid_config_is_reported_as_by_check(run_cli: RunCli, tmp_path: Path,
                                                   write_config: WriteConfig) -> None:
    write_config(tmp_path, {"a.yaml": "units:\n  - {id: x, name: X, mail: a@b.vn}\n"})
    code, out, err = run_cli(["feed", "x", "--config", "cfg"])
    assert (code, out) == (1, "")
    assert err == "cfg/a.yaml:2:22: units[0].mail: unknown key 'mail' (did you mean 'email'?)\n"
