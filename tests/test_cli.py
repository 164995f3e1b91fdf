"""The `mocd` command line (SPEC §8): check, agenda and reminders, exit codes, errors.

"Today" is Saturday 2024-06-01 (the injected clock of `run_cli`), so the
default range is 2023-06-02 … 2034-05-30 (today − 365 d … today + 3650 d).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import NOW, RunCli, WriteConfig

CONFIG = """\
units:
  - id: phong-noi-vu
    name: Phòng Nội vụ
    email: noivu@bato.example.vn
  - id: phong-dan-toc
    name: Phòng Dân tộc
    email: [dantoc@bato.example.vn]
    groups: [phong-chuyen-mon]
  - id: ubnd-xa-ba-dinh
    name: UBND xã Ba Đình                    # no email: feed only, no reminders
groups:
  - id: phong-chuyen-mon
    name: Các phòng chuyên môn
anniversaries:
  - id: giai-phong
    title: Ngày giải phóng huyện Ba Tơ
    origin: 1972-10-30
    units: [all]
campaigns:
  - id: dhdt-2024
    title: Phong trào thi đua chào mừng Đại hội đại biểu các dân tộc thiểu số huyện Ba Tơ lần thứ IV
    owner: phong-noi-vu
    units: [all]
    period: {start: 2024-04-15, end: {before: dai-hoi, days: 1}}
    milestones:
      - id: dai-hoi
        title: Đại hội đại biểu các dân tộc thiểu số huyện Ba Tơ lần thứ IV
        kind: event
        when: 2024-06-20 08:00
        duration: 4h
      - id: ho-so-khen-thuong
        title: Gửi hồ sơ đề nghị khen thưởng về UBND huyện (qua Phòng Nội vụ) kèm theo
          báo cáo thành tích của các tập thể và cá nhân tiêu biểu trong phong trào thi đua
        when: {before: dai-hoi, days: 15, working_days: true}
        units: [phong-chuyen-mon, ubnd-xa-ba-dinh]
        lead: phong-noi-vu
        submit_to: phong-noi-vu
        reminders: [7d, 2d, 0d]
milestones:
  - id: nop-bao-cao
    title: Nộp báo cáo tháng 5
    when: 2024-06-01                         # a Saturday: due Monday 2024-06-03
    units: [phong-noi-vu]
  - id: bao-cao-thang-5
    title: Báo cáo thống kê tháng 5
    when: 2024-06-03
    units: [phong-dan-toc]
  - id: bao-cao-quy-3
    title: Báo cáo quý III
    when: 2022-Q3                            # due Friday 2022-09-30
    units: [phong-dan-toc]
"""

KEYS = ["uid", "title", "kind", "start", "end", "all_day", "due", "campaign", "units", "lead",
        "anniversary", "window"]
ALL_UNITS = ["phong-dan-toc", "phong-noi-vu", "ubnd-xa-ba-dinh"]


@pytest.fixture
def cli(tmp_path: Path, write_config: WriteConfig, run_cli: RunCli) -> RunCli:
    """`run_cli` on CONFIG: `cli("agenda", "--from", ...)` adds `--config cfg`."""
    write_config(tmp_path, {"a.yaml": CONFIG})

    def run(*args: str, now: datetime = NOW) -> tuple[int, str, str]:
        return run_cli([*args, "--config", "cfg"], now=now)

    return run


def agenda(cli: RunCli, *args: str) -> list[dict]:
    code, out, err = cli("agenda", "--format", "json", *args)
    assert (code, err) == (0, ""), err
    return json.loads(out)


def uids(records: list[dict]) -> list[str]:
    return [r["uid"].removesuffix("@mocd.local") for r in records]


# -- check ----------------------------------------------------------------------


def test_check_a_valid_config(cli):
    code, out, err = cli("check")
    assert (code, err) == (0, "")
    # occurrences in all: period, dai-hoi, ho-so, 3 stand-alone, and the anniversaries of
    # the default range N=55 (2027) and N=60 (2032): 8. In the range 2023-06-02 …
    # 2034-05-30: all but bao-cao-quy-3 (due 2022-09-30): 7. Reminders of those 7 that
    # fire in the range (units with email: 2): period 2×2 (7d, 1d) + dai-hoi 2×2
    # + ho-so 3×2 ([7d, 2d, 0d]) + nop-bao-cao 3 (14d, 3d, 0d: 1d and 3d before Monday
    # 2024-06-03 both fire on Friday: one) + bao-cao-thang-5 3 + two anniversaries 3×2
    # each (90d, 30d, 7d) = 32 (bao-cao-quy-3's 4 fire in 2022, outside the range)
    assert out == (
        "cfg: OK — 1 files, 3 units, 1 groups, 1 campaigns, 1 anniversaries; "
        "8 occurrences; from 2023-06-02 to 2034-05-30: 7 occurrences, 32 reminders\n"
    )


def test_check_renders_every_template_and_names_the_broken_file(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    templates = tmp_path / "templates"
    (templates / "en").mkdir(parents=True)
    (templates / "en" / "digest.txt.j2").write_text(
        "Hello {{ recipient.name }}\n{{ no_such_variable }}\n", encoding="utf-8")
    monkeypatch.setenv("MOCD_TEMPLATES_DIR", str(templates))
    code, out, err = cli("check")
    assert (code, out) == (1, "")
    assert err == (f"templates_dir {templates}: template {templates}/en/digest.txt.j2:2: "
                   "UndefinedError: 'no_such_variable' is undefined\n")


def test_check_validates_mail_url(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCD_MAIL__URL", "smpt://mail.example.vn")
    code, out, err = cli("check")
    assert (code, out) == (1, "")
    assert err.startswith("mail.url: unknown scheme 'smpt' (use smtp:// or smtps://")
    assert err.count("\n") == 1


def test_check_reads_mail_password_file_when_it_is_set(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCD_MAIL__URL", "smtp://mocd@mail.example.vn:587")
    missing = tmp_path / "credentials" / "smtp-password"
    monkeypatch.setenv("MOCD_MAIL__PASSWORD_FILE", str(missing))
    code, out, err = cli("check")
    assert (code, out) == (1, "")
    assert err == f"mail.password_file: {missing}: no such file\n"

    missing.parent.mkdir()
    missing.write_text("mật khẩu\n", encoding="utf-8")
    code, out, err = cli("check")
    assert (code, err) == (0, "")
    assert "mật khẩu" not in out


# -- agenda --format json ---------------------------------------------------------


def test_agenda_json_is_the_contract_of_spec_8(cli):
    records = agenda(cli, "--from", "2022-01-01", "--to", "2024-12-31")
    dhdt = "dhdt-2024"
    assert records == [
        {"uid": "milestone.bao-cao-quy-3@mocd.local", "title": "Báo cáo quý III",
         "kind": "deadline", "start": "2022-09-30", "end": "2022-09-30", "all_day": True,
         "due": "2022-09-30", "campaign": None, "units": ["phong-dan-toc"], "lead": None,
         "anniversary": None, "window": ["2022-07-01", "2022-09-30"]},
        {"uid": "anniversary.giai-phong.50@mocd.local",
         "title": "Kỷ niệm 50 năm Ngày giải phóng huyện Ba Tơ (30/10/1972 - 30/10/2022)",
         "kind": "anniversary", "start": "2022-10-30", "end": "2022-10-30", "all_day": True,
         "due": None, "campaign": None, "units": ALL_UNITS, "lead": None,
         "anniversary": {"id": "giai-phong", "n": 50, "class": "tron"}, "window": None},
        {"uid": f"{dhdt}.period@mocd.local",
         "title": "Phong trào thi đua chào mừng Đại hội đại biểu các dân tộc thiểu số huyện "
                  "Ba Tơ lần thứ IV",
         "kind": "period", "start": "2024-04-15", "end": "2024-06-19", "all_day": True,
         "due": None, "campaign": dhdt, "units": ALL_UNITS, "lead": "phong-noi-vu",
         "anniversary": None, "window": None},
        # 15 working days before Thursday 2024-06-20 (SPEC §4.1)
        {"uid": f"{dhdt}.ho-so-khen-thuong@mocd.local",
         "title": "Gửi hồ sơ đề nghị khen thưởng về UBND huyện (qua Phòng Nội vụ) kèm theo báo "
                  "cáo thành tích của các tập thể và cá nhân tiêu biểu trong phong trào thi đua",
         "kind": "deadline", "start": "2024-05-30", "end": "2024-05-30", "all_day": True,
         "due": "2024-05-30", "campaign": dhdt, "units": ALL_UNITS, "lead": "phong-noi-vu",
         "anniversary": None, "window": None},
        # same start: by uid
        {"uid": "milestone.bao-cao-thang-5@mocd.local", "title": "Báo cáo thống kê tháng 5",
         "kind": "deadline", "start": "2024-06-03", "end": "2024-06-03", "all_day": True,
         "due": "2024-06-03", "campaign": None, "units": ["phong-dan-toc"], "lead": None,
         "anniversary": None, "window": None},
        {"uid": "milestone.nop-bao-cao@mocd.local", "title": "Nộp báo cáo tháng 5",
         "kind": "deadline", "start": "2024-06-03", "end": "2024-06-03", "all_day": True,
         "due": "2024-06-03", "campaign": None, "units": ["phong-noi-vu"], "lead": None,
         "anniversary": None, "window": None},
        {"uid": f"{dhdt}.dai-hoi@mocd.local",
         "title": "Đại hội đại biểu các dân tộc thiểu số huyện Ba Tơ lần thứ IV",
         "kind": "event", "start": "2024-06-20T08:00:00+07:00",
         "end": "2024-06-20T12:00:00+07:00", "all_day": False, "due": None, "campaign": dhdt,
         "units": ALL_UNITS, "lead": "phong-noi-vu", "anniversary": None, "window": None},
    ]


def test_agenda_json_keys_in_contract_order(cli):
    code, out, _ = cli("agenda", "--format", "json", "--from", "2022-01-01", "--to", "2034-12-31")
    assert code == 0
    objects: list[list[str]] = []  # the key order of every JSON object, inner ones first
    records = json.loads(out, object_pairs_hook=lambda pairs: objects.append(
        [k for k, _ in pairs]))
    # 7 occurrences of 2022-2024 (see above) and the anniversaries of 2027 and 2032
    assert len(records) == 9
    assert objects.count(KEYS) == 9
    assert objects.count(["id", "n", "class"]) == 3
    assert len(objects) == 12


def test_agenda_json_sorted_by_start_then_uid(cli):
    records = agenda(cli, "--from", "2022-01-01", "--to", "2034-12-31")
    assert [(r["start"], r["uid"]) for r in records] == sorted(
        (r["start"], r["uid"]) for r in records)
    # anniversaries of `every: 5` (the default): 2022 (50), 2027 (55), 2032 (60)
    assert [r["anniversary"]["n"] for r in records if r["anniversary"]] == [50, 55, 60]
    assert [r["anniversary"]["class"] for r in records if r["anniversary"]] == [
        "tron", "le5", "tron"]


def test_from_to_select_overlapping_occurrences_inclusively(cli):
    # the period ends on 2024-06-19, the congress starts on 2024-06-20
    assert uids(agenda(cli, "--from", "2024-06-19", "--to", "2024-06-20")) == [
        "dhdt-2024.period", "dhdt-2024.dai-hoi"]
    assert uids(agenda(cli, "--from", "2024-06-20", "--to", "2024-06-20")) == [
        "dhdt-2024.dai-hoi"]
    assert uids(agenda(cli, "--from", "2024-06-21", "--to", "2024-06-30")) == []
    # a range inside the period selects it
    assert uids(agenda(cli, "--from", "2024-05-01", "--to", "2024-05-02")) == ["dhdt-2024.period"]


def test_unit_filter(cli):
    # ubnd-xa-ba-dinh is in `all` and in the units of ho-so-khen-thuong
    assert uids(agenda(cli, "--unit", "ubnd-xa-ba-dinh", "--from", "2024-01-01",
                       "--to", "2024-12-31")) == [
        "dhdt-2024.period", "dhdt-2024.ho-so-khen-thuong", "dhdt-2024.dai-hoi"]
    # phong-dan-toc through the group phong-chuyen-mon
    assert uids(agenda(cli, "--unit", "phong-dan-toc", "--from", "2024-05-30",
                       "--to", "2024-06-03")) == [
        "dhdt-2024.period", "dhdt-2024.ho-so-khen-thuong", "milestone.bao-cao-thang-5"]


def test_unknown_unit_is_an_error_with_a_suggestion(cli):
    code, out, err = cli("agenda", "--unit", "phong-noi-v")
    assert (code, out) == (1, "")
    assert err == "mocd: unknown unit 'phong-noi-v' (did you mean 'phong-noi-vu'?)\n"


@pytest.mark.parametrize("command", ["agenda", "reminders"])
def test_a_group_is_not_a_unit_for_the_unit_filter(cli, command):
    code, out, err = cli(command, "--unit", "phong-chuyen-mon")
    assert (code, out) == (1, "")
    assert err == "mocd: 'phong-chuyen-mon' is a group; --unit takes a unit id\n"


# -- deadlines with a time, deadline windows, units with `since` -----------------------


def _agenda_of(tmp_path: Path, write_config: WriteConfig, run_cli: RunCli, text: str,
               first: str, last: str) -> list[dict]:
    write_config(tmp_path, {"a.yaml": text})
    code, out, err = run_cli(["agenda", "--config", "cfg", "--format", "json",
                              "--from", first, "--to", last])
    assert (code, err) == (0, "")
    return json.loads(out)


def test_a_deadline_with_a_time_is_due_at_that_moment(tmp_path, write_config, run_cli):
    [record] = _agenda_of(tmp_path, write_config, run_cli, """\
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ}
milestones:
  - {id: han, title: Hạn nộp, when: 2024-06-21 17:00, lead: phong-noi-vu}
""", "2024-06-01", "2024-06-30")
    assert {k: record[k] for k in ("kind", "start", "end", "all_day", "due", "window")} == {
        "kind": "deadline", "start": "2024-06-21T17:00:00+07:00",
        "end": "2024-06-21T17:00:00+07:00", "all_day": False, "due": "2024-06-21",
        "window": None}


def test_a_timed_deadline_on_a_saturday_moves_to_monday_at_the_same_time(tmp_path, write_config,
                                                                         run_cli):
    [record] = _agenda_of(tmp_path, write_config, run_cli, """\
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ}
milestones:
  - {id: han, title: Hạn nộp, when: 2024-06-22 17:00, lead: phong-noi-vu}
""", "2024-06-01", "2024-06-30")
    assert (record["start"], record["end"], record["due"]) == (
        "2024-06-24T17:00:00+07:00", "2024-06-24T17:00:00+07:00", "2024-06-24")


def test_a_deadline_between_two_relative_dates_has_a_window(tmp_path, write_config, run_cli):
    records = _agenda_of(tmp_path, write_config, run_cli, """\
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ}
campaigns:
  - id: dh
    title: Đại hội
    owner: phong-noi-vu
    milestones:
      - {id: ev, title: Đại hội, kind: event, when: 2024-06-20 08:00}
      - id: ho-so
        title: Hồ sơ
        when: {start: {before: ev, days: 10}, end: {before: ev, days: 1}}
""", "2024-06-01", "2024-06-30")
    # 10 days before Thursday 2024-06-20 is Monday 2024-06-10; 1 day before, Wednesday 06-19
    assert [(r["uid"], r["start"], r["due"], r["window"]) for r in records] == [
        ("dh.ho-so@mocd.local", "2024-06-19", "2024-06-19", ["2024-06-10", "2024-06-19"]),
        ("dh.ev@mocd.local", "2024-06-20T08:00:00+07:00", None, None),
    ]


def test_a_unit_since_a_day_receives_only_occurrences_from_that_day(tmp_path, write_config,
                                                                    run_cli):
    records = _agenda_of(tmp_path, write_config, run_cli, """\
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ}
  - {id: phong-moi, name: Phòng mới, since: 2024-07-02}
milestones:
  - {id: truoc, title: Trước, when: 2024-07-01, units: [all]}
  - {id: ngay-dau, title: Ngày đầu, when: 2024-07-02, units: [all]}
  - {id: sau, title: Sau, when: 2024-07-03, units: [phong-moi]}
""", "2024-07-01", "2024-07-31")
    assert [(r["uid"].split("@")[0], r["units"]) for r in records] == [
        ("milestone.truoc", ["phong-noi-vu"]),
        ("milestone.ngay-dau", ["phong-moi", "phong-noi-vu"]),  # `since` is inclusive
        ("milestone.sau", ["phong-moi"]),
    ]


# -- usage errors (exit 2): one line ------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2024-13-01"],
     "Invalid value for --from: '2024-13-01' is not a date: there is no month 13"),
    (["--from", "20/6/2024"],
     "Invalid value for --from: expected a date like 2024-06-20, got '20/6/2024'"),
    (["--to", "2024-02-30"],
     "Invalid value for --to: '2024-02-30' is not a date: February 2024 has 29 days"),
    (["--from", "2024-06-20", "--to", "2024-06-19"],
     "Invalid value for --to: --to is before --from"),
    (["--format", "xml"],
     "Invalid value for '--format': 'xml' is not one of 'text', 'json'."),
    (["--bogus"], "No such option '--bogus'."),
])
def test_bad_options_are_usage_errors(cli, args, message):
    # one line: `{command path}: {click's message} (see '{command path} --help')`
    code, out, err = cli("agenda", *args)
    assert (code, out) == (2, "")
    assert err == f"mocd agenda: {message} (see 'mocd agenda --help')\n"


def test_bad_from_says_what_is_wrong(cli):
    for command in ("agenda", "reminders"):
        code, out, err = cli(command, "--from", "2024-02-30")
        assert (code, out) == (2, "")
        assert err == (f"mocd {command}: Invalid value for --from: '2024-02-30' is not a date: "
                       f"February 2024 has 29 days (see 'mocd {command} --help')\n")


def test_unknown_command_is_a_usage_error(run_cli):
    code, out, err = run_cli(["bogus"])
    assert (code, out) == (2, "")
    assert err == "mocd: No such command 'bogus'. (see 'mocd --help')\n"


def test_unknown_global_option_and_extra_argument(run_cli):
    assert run_cli(["--bogus", "check"]) == (
        2, "", "mocd: No such option '--bogus'. (see 'mocd --help')\n")
    assert run_cli(["check", "extra"]) == (
        2, "", "mocd check: Got unexpected extra argument (extra) (see 'mocd check --help')\n")


def test_an_option_without_its_value_names_the_subcommand(run_cli):
    code, out, err = run_cli(["agenda", "--from"])
    assert (code, out) == (2, "")
    assert err == ("mocd agenda: Option '--from' requires an argument. "
                   "(see 'mocd agenda --help')\n")


def test_other_click_errors_are_one_line(cli, monkeypatch):
    import click

    def fail(*args: object, **kwargs: object) -> None:
        raise click.ClickException("something went wrong")

    monkeypatch.setattr("scheduler.cli.read_config", fail)
    assert cli("agenda") == (1, "", "mocd: something went wrong\n")


# -- the default range comes from the injected clock --------------------------------

EDGES = """\
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ}
milestones:
  - {id: truoc, title: T, kind: event, when: 2023-06-01, lead: phong-noi-vu}
  - {id: dau, title: D, kind: event, when: 2023-06-02, lead: phong-noi-vu}
  - {id: cuoi, title: C, kind: event, when: 2034-05-30, lead: phong-noi-vu}
  - {id: sau, title: S, kind: event, when: 2034-05-31, lead: phong-noi-vu}
"""


def test_default_range_is_today_minus_365_to_today_plus_3650(tmp_path, write_config, run_cli):
    write_config(tmp_path, {"a.yaml": EDGES})
    assert date(2024, 6, 1) - timedelta(days=365) == date(2023, 6, 2)
    assert date(2024, 6, 1) + timedelta(days=3650) == date(2034, 5, 30)
    code, out, err = run_cli(["agenda", "--config", "cfg", "--format", "json"])
    assert (code, err) == (0, "")
    assert uids(json.loads(out)) == ["milestone.dau", "milestone.cuoi"]


def test_today_is_the_local_date_of_the_clock(tmp_path, write_config, run_cli):
    write_config(tmp_path, {"a.yaml": EDGES})
    # 2024-05-31 20:00 UTC is already 2024-06-01 03:00 in Hà Nội
    code, out, _ = run_cli(["check", "--config", "cfg"],
                           now=datetime(2024, 5, 31, 20, 0, tzinfo=UTC))
    assert code == 0
    # in range: dau and cuoi (truoc is the day before, sau the day after); no email: no reminders
    assert out == ("cfg: OK — 1 files, 1 units, 0 groups, 0 campaigns, 0 anniversaries; "
                   "4 occurrences; from 2023-06-02 to 2034-05-30: 2 occurrences, 0 reminders\n")
    # 2024-05-31 16:59 UTC is 23:59 in Hà Nội: one day earlier, so truoc is in, cuoi out
    code, out, _ = run_cli(["check", "--config", "cfg"],
                           now=datetime(2024, 5, 31, 16, 59, tzinfo=UTC))
    assert code == 0
    assert out == ("cfg: OK — 1 files, 1 units, 0 groups, 0 campaigns, 0 anniversaries; "
                   "4 occurrences; from 2023-06-01 to 2034-05-29: 2 occurrences, 0 reminders\n")
    code, out, _ = run_cli(["agenda", "--config", "cfg", "--format", "json"],
                           now=datetime(2024, 5, 31, 16, 59, tzinfo=UTC))
    assert uids(json.loads(out)) == ["milestone.truoc", "milestone.dau"]


# -- reminders --------------------------------------------------------------------


def test_reminders_json(cli):
    code, out, err = cli("reminders", "--format", "json", "--from", "2024-05-20",
                         "--to", "2024-05-30")
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert all(list(row) == ["uid", "unit", "offset", "fire_at"] for row in rows)
    ho_so = "dhdt-2024.ho-so-khen-thuong@mocd.local"
    assert rows == [
        # 14 days before Monday 2024-06-03: two occurrences at the same time, by uid
        {"uid": "milestone.bao-cao-thang-5@mocd.local", "unit": "phong-dan-toc",
         "offset": "14d", "fire_at": "2024-05-20T07:30:00+07:00"},
        {"uid": "milestone.nop-bao-cao@mocd.local", "unit": "phong-noi-vu",
         "offset": "14d", "fire_at": "2024-05-20T07:30:00+07:00"},
        # due Thursday 2024-05-30, reminders [7d, 2d, 0d]; ubnd-xa-ba-dinh has no email
        {"uid": ho_so, "unit": "phong-dan-toc", "offset": "7d",
         "fire_at": "2024-05-23T07:30:00+07:00"},
        {"uid": ho_so, "unit": "phong-noi-vu", "offset": "7d",
         "fire_at": "2024-05-23T07:30:00+07:00"},
        {"uid": ho_so, "unit": "phong-dan-toc", "offset": "2d",
         "fire_at": "2024-05-28T07:30:00+07:00"},
        {"uid": ho_so, "unit": "phong-noi-vu", "offset": "2d",
         "fire_at": "2024-05-28T07:30:00+07:00"},
        {"uid": ho_so, "unit": "phong-dan-toc", "offset": "0d",
         "fire_at": "2024-05-30T07:30:00+07:00"},
        {"uid": ho_so, "unit": "phong-noi-vu", "offset": "0d",
         "fire_at": "2024-05-30T07:30:00+07:00"},
    ]


def test_reminders_sorted_and_without_units_lacking_email(cli):
    rows = json.loads(cli("reminders", "--format", "json")[1])
    assert rows
    assert [(r["fire_at"], r["uid"], r["unit"]) for r in rows] == sorted(
        (r["fire_at"], r["uid"], r["unit"]) for r in rows)
    assert {r["unit"] for r in rows} == {"phong-dan-toc", "phong-noi-vu"}


def test_reminders_unit_filter(cli):
    rows = json.loads(cli("reminders", "--format", "json", "--unit", "phong-noi-vu",
                          "--from", "2024-05-20", "--to", "2024-05-30")[1])
    assert [(r["uid"].split("@")[0], r["offset"]) for r in rows] == [
        ("milestone.nop-bao-cao", "14d"), ("dhdt-2024.ho-so-khen-thuong", "7d"),
        ("dhdt-2024.ho-so-khen-thuong", "2d"), ("dhdt-2024.ho-so-khen-thuong", "0d")]
    assert {r["unit"] for r in rows} == {"phong-noi-vu"}
    code, out, _ = cli("reminders", "--format", "json", "--unit", "ubnd-xa-ba-dinh")
    assert (code, json.loads(out)) == (0, [])
    code, out, err = cli("reminders", "--unit", "ubnd-xa-ba-din")
    assert (code, out) == (1, "")
    assert err == "mocd: unknown unit 'ubnd-xa-ba-din' (did you mean 'ubnd-xa-ba-dinh'?)\n"


def test_reminders_fire_before_the_range_end_of_their_occurrence(cli):
    # --from/--to select by the day a reminder fires, not by the occurrence's day: the
    # 7d reminder of the congress (2024-06-20) fires on Thursday 2024-06-13
    rows = json.loads(cli("reminders", "--format", "json", "--from", "2024-06-13",
                          "--to", "2024-06-13")[1])
    assert {(r["uid"].split("@")[0], r["offset"]) for r in rows} == {("dhdt-2024.dai-hoi", "7d")}


@pytest.mark.parametrize("command", ["reminders", "agenda"])
def test_a_range_up_to_year_9999(tmp_path, write_config, run_cli, command):
    write_config(tmp_path, {"a.yaml": """\
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ, email: noivu@bato.example.vn}
anniversaries:
  - {id: thanh-lap, title: Ngày thành lập, origin: 2000-01-01, units: [all]}
"""})
    code, out, err = run_cli([command, "--config", "cfg", "--format", "json",
                              "--from", "2024-01-01", "--to", "9999-12-31"])
    assert (code, err) == (0, "")
    # every 5 years from N=25 (2025) to N=7995 (9995-01-01; N=8000 would be in year 10000)
    found = uids(json.loads(out))
    assert found[0] == "anniversary.thanh-lap.25"
    assert found[-1] == "anniversary.thanh-lap.7995"
    assert len(set(found)) == (7995 - 25) // 5 + 1


def test_an_anniversary_in_year_9999_is_listed(tmp_path, write_config, run_cli):
    write_config(tmp_path, {"a.yaml": """\
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ}
anniversaries:
  - {id: thanh-lap, title: Ngày thành lập, origin: 2004-01-01, units: [all]}
"""})
    code, out, err = run_cli(["agenda", "--config", "cfg", "--format", "json",
                              "--from", "9990-01-01", "--to", "9999-12-31"])
    assert (code, err) == (0, "")
    # 2004 + 7990 = 9994, 2004 + 7995 = 9999
    assert uids(json.loads(out)) == ["anniversary.thanh-lap.7990", "anniversary.thanh-lap.7995"]


def test_reminders_of_a_date_in_year_1(tmp_path, write_config, run_cli):
    write_config(tmp_path, {"a.yaml": """\
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ, email: noivu@bato.example.vn}
milestones:
  - {id: m, title: M, when: 0001-01-01, lead: phong-noi-vu}
"""})
    code, _, err = run_cli(["reminders", "--config", "cfg", "--format", "json",
                            "--from", "2024-01-01", "--to", "2024-12-31"])
    # a valid config: skipping the reminders that cannot fire, or a config error (exit 1),
    # but not an internal error
    assert "internal error" not in err
    assert code in (0, 1)


# -- agenda as text ---------------------------------------------------------------


def test_text_agenda_vietnamese(cli):
    code, out, err = cli("agenda", "--from", "2024-05-01", "--to", "2024-06-30")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert [line for line in lines if line.startswith("Tháng")] == [
        "Tháng 4/2024", "Tháng 5/2024", "Tháng 6/2024"]
    assert "  Thứ Năm, 30/5/2024  · Hạn chót  [dhdt-2024]" in lines
    assert "  Thứ Hai, 03/6/2024  · Hạn chót" in lines  # day padded, month not
    assert "  Thứ Năm, 20/6/2024 08:00–12:00  · Sự kiện  [dhdt-2024]" in lines
    assert "  Thứ Hai, 15/4/2024 → Thứ Tư, 19/6/2024  · Giai đoạn  [dhdt-2024]" in lines
    # the long title is wrapped, not cut
    title = " ".join(line.strip() for line in lines[lines.index(
        "  Thứ Năm, 30/5/2024  · Hạn chót  [dhdt-2024]") + 1:][:2])
    assert title.startswith("Gửi hồ sơ đề nghị khen thưởng")
    assert title.endswith("tiêu biểu trong phong trào thi đua")
    assert "    Chủ trì: Phòng Nội vụ" in lines
    assert "    Gửi về: Phòng Nội vụ" in lines


def test_text_agenda_window_of_a_quarter(cli):
    _, out, _ = cli("agenda", "--from", "2022-09-01", "--to", "2022-09-30")
    assert out.splitlines()[:5] == [
        "Tháng 9/2022",
        "────────────",
        "  Thứ Sáu, 30/9/2022  · Hạn chót",
        "    Báo cáo quý III",
        "    Thời gian: Thứ Sáu, 01/7/2022 → Thứ Sáu, 30/9/2022",
    ]


def test_text_agenda_english(cli, monkeypatch):
    monkeypatch.setenv("MOCD_LANGUAGE", "en")
    code, out, _ = cli("agenda", "--from", "2024-06-01", "--to", "2024-06-30")
    assert code == 0
    lines = out.splitlines()
    assert "June 2024" in lines
    assert "  Thursday, 20 June 2024 08:00–12:00  · Event  [dhdt-2024]" in lines
    assert "  Monday, 3 June 2024  · Deadline" in lines
    assert "    Lead: Phòng Nội vụ" in lines
    assert all(len(line) <= 80 for line in lines)


def test_text_agenda_empty_range(cli):
    assert cli("agenda", "--from", "2030-01-01", "--to", "2030-01-31")[1] == (
        "Không có mục nào trong khoảng thời gian này.\n")


def test_text_agenda_long_names_stay_within_80_columns(tmp_path, write_config, run_cli):
    long_name = "Ban Chỉ đạo phong trào thi đua yêu nước và công tác khen thưởng"
    units = "".join(
        f"  - {{id: don-vi-{i}, name: {long_name} số {i}, email: dv{i}@x.example.vn}}\n"
        for i in range(12))
    write_config(tmp_path, {"a.yaml": f"""\
units:
{units}milestones:
  - id: tong-ket
    title: {"Tổng kết, đánh giá kết quả thực hiện phong trào thi đua " * 4}
    when: {{start: 2024-07-01, end: 2024-09-30}}
    units: [all]
    lead: don-vi-0
    submit_to: don-vi-1
  - id: hoi-nghi
    title: Hội nghị
    kind: event
    when: 2024-09-30 08:00
    duration: 2d
    units: [all]
"""})
    code, out, err = run_cli(["agenda", "--config", "cfg", "--from", "2024-09-01",
                              "--to", "2024-12-31"])
    assert (code, err) == (0, "")
    too_long = [line for line in out.splitlines() if len(line) > 80]
    assert too_long == []
    assert "(+" in out  # the unit list is shortened: "(+N khác)"


def test_text_reminders_stay_within_80_columns(cli):
    code, out, _ = cli("reminders", "--from", "2024-05-01", "--to", "2024-06-30")
    assert code == 0
    lines = out.splitlines()
    assert "Thứ Năm, 23/5/2024" in lines
    assert all(len(line) <= 80 for line in lines)


def test_text_agenda_english_long_dates_within_80_columns(tmp_path, write_config, run_cli,
                                                          monkeypatch):
    monkeypatch.setenv("MOCD_LANGUAGE", "en")
    write_config(tmp_path, {"a.yaml": """\
units:
  - {id: phong-noi-vu, name: Phòng Nội vụ}
milestones:
  - {id: tap-huan, title: Tập huấn, kind: event, when: 2026-09-16 08:00, duration: 7d4h,
     lead: phong-noi-vu}
  - {id: tap-huan-2, title: Tập huấn 2, kind: event, when: 2026-09-16 08:00, duration: 7d4h,
     lead: phong-noi-vu, cancelled: true}
campaigns:
  - id: chien-dich-thi-dua-yeu-nuoc
    title: Thi đua
    owner: phong-noi-vu
    milestones:
      - {id: th, title: Tập huấn 3, kind: event, when: 2026-09-16 08:00, duration: 7d4h}
"""})
    code, out, err = run_cli(["agenda", "--config", "cfg", "--from", "2026-09-01",
                              "--to", "2026-09-30"])
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [line for line in lines if len(line) > 80] == []
    # The dates alone are 73 columns; the kind label and campaign tag do not fit after
    # them, so they go on the next line, indented by 6 spaces; no part is ever split.
    dates = "  Wednesday, 16 September 2026 08:00 → Wednesday, 23 September 2026 12:00"
    assert len(dates) == 73
    assert [(line, lines[i + 1]) for i, line in enumerate(lines) if line == dates] == [
        (dates, "      · Event  [chien-dich-thi-dua-yeu-nuoc]"),
        (dates, "      · Event (cancelled)"),
        (dates, "      · Event"),
    ]


# -- errors: one line, exit codes --------------------------------------------------


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom")


def test_internal_error_is_one_line_without_debug(cli, monkeypatch):
    monkeypatch.setattr("scheduler.cli.expand_loaded", _boom)
    code, out, err = cli("agenda")
    assert (code, out) == (3, "")
    assert err == ("mocd: internal error: RuntimeError('boom') "
                   "(run with --debug for the traceback)\n")


def test_internal_error_propagates_with_debug(tmp_path, write_config, run_cli, monkeypatch):
    write_config(tmp_path, {"a.yaml": CONFIG})
    monkeypatch.setattr("scheduler.cli.read_config", _boom)
    with pytest.raises(RuntimeError, match="boom"):
        run_cli(["--debug", "agenda", "--config", "cfg"])


def test_config_errors_are_not_internal_errors(tmp_path, write_config, run_cli):
    write_config(tmp_path, {"a.yaml": "units: [\n"})
    for command in ("check", "agenda", "reminders"):
        code, out, err = run_cli([command, "--config", "cfg"])
        assert (code, out) == (1, ""), command
        assert err.startswith("cfg/a.yaml:")
        assert "internal error" not in err


# -- the installed console script --------------------------------------------------


def _mocd(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCD_")}
    (tmp_path / "empty.toml").write_text("")
    env["MOCD_SETTINGS"] = str(tmp_path / "empty.toml")
    script = Path(sys.executable).parent / "mocd"
    return subprocess.run([str(script), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def test_console_script(tmp_path, write_config):
    write_config(tmp_path, {"a.yaml": CONFIG, "b.yaml": "milestones: [\n"})
    helped = _mocd(tmp_path, "--help")
    assert helped.returncode == 0
    for command in ("check", "agenda", "reminders"):
        assert command in helped.stdout
    failed = _mocd(tmp_path, "check", "--config", "cfg")
    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr.startswith("cfg/b.yaml:")
    assert "Traceback" not in failed.stderr
    (tmp_path / "cfg" / "b.yaml").unlink()
    checked = _mocd(tmp_path, "check", "--config", "cfg")
    assert (checked.returncode, checked.stderr) == (0, "")
    assert checked.stdout.startswith("cfg: OK")


def test_console_script_debug_shows_the_traceback(tmp_path, write_config):
    write_config(tmp_path, {"a.yaml": CONFIG})
    code = ("import sys, scheduler.cli as c\n"
            "def boom(*a, **k): raise RuntimeError('boom')\n"
            "assert hasattr(c, 'expand_loaded')\n"
            "c.expand_loaded = boom\n"
            "sys.argv[1:] = {args!r}\n"
            "c.entry()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCD_")}
    env["MOCD_SETTINGS"] = str(tmp_path / "empty.toml")
    (tmp_path / "empty.toml").write_text("")
    plain, debug = (
        subprocess.run([sys.executable, "-c", code.format(args=args)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=30, check=False)
        for args in (["agenda", "--config", "cfg"], ["--debug", "agenda", "--config", "cfg"])
    )
    assert (plain.returncode, plain.stdout) == (3, "")
    assert plain.stderr == ("mocd: internal error: RuntimeError('boom') "
                            "(run with --debug for the traceback)\n")
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "RuntimeError: boom" in debug.stderr
