"""Every error form of SPEC §4.4, one small test each: what `mocd check` prints for bad input.

Each error is one line `FILE:LINE:COL: PATH: message`, exit code 1, nothing on
stdout and never a traceback. Lines and columns are 1-based and computed by
hand in the comments (a column counts characters, not bytes). A value that is
a list or a mapping is located at its key; one inside a list (no key of its own)
at its first item. An unknown or duplicate key is located at the key itself.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import RunCli, WriteConfig

# Units and groups the files under test refer to; in their own file (read first) so
# that the line numbers in `a.yaml` start at 1 in every test.
UNITS = """\
units:
  - id: phong-noi-vu
    name: Phòng Nội vụ
    email: noivu@bato.example.vn
  - id: phong-dan-toc
    name: Phòng Dân tộc
    email: dantoc@bato.example.vn
  - id: ubnd-xa-ba-dinh
    name: UBND xã Ba Đình
groups:
  - id: phong-chuyen-mon
    name: Các phòng chuyên môn
    members: [phong-noi-vu, phong-dan-toc]
"""


@pytest.fixture
def check(tmp_path: Path, write_config: WriteConfig, run_cli: RunCli):
    """`check({"a.yaml": ...})` → the lines `mocd check` printed, after the common asserts."""

    def run(files: dict[str, str | bytes], *, with_units: bool = True) -> list[str]:
        write_config(tmp_path, {**files, **({"0-units.yaml": UNITS} if with_units else {})})
        code, out, err = run_cli(["check", "--config", "cfg"])
        assert "Traceback" not in err
        assert out == ""
        assert code == 1, err
        return err.splitlines()

    return run


# -- wrong types ----------------------------------------------------------------


def test_a_list_where_text_is_expected(check):
    lines = check({"a.yaml": """
        milestones:
          - id: bao-cao
            title: [Báo cáo, quý III]
            when: 2024-09-30
            lead: phong-noi-vu
    """})
    # line 3 `    title: [...]`: a list is located at its key, column 5
    assert lines == ["cfg/a.yaml:3:5: milestones[0].title: expected text, got a list"]


def test_text_where_a_list_is_expected(check):
    lines = check({"a.yaml": "milestones: bao-cao\n"})
    # `milestones: ` is 12 characters: the value starts in column 13
    assert lines == ["cfg/a.yaml:1:13: milestones: expected a list, got 'bao-cao'"]


def test_text_where_a_mapping_is_expected(check):
    lines = check({"a.yaml": """
        campaigns:
          - id: thi-dua
            title: Thi đua
            period: 2024-04-15
    """})
    # line 4 `    period: 2024-04-15`: 4 spaces + `period: ` → column 13
    assert lines == [
        "cfg/a.yaml:4:13: campaigns[0].period: expected a mapping (key: value), got '2024-04-15'"
    ]


def test_a_mapping_where_a_list_of_ids_is_expected(check):
    lines = check({"a.yaml": """
        anniversaries:
          - id: giai-phong
            title: Ngày giải phóng
            origin: 1972-10-30
            units: {all: yes}
    """})
    assert lines == [
        "cfg/a.yaml:5:5: anniversaries[0].units: expected a list of ids, got a mapping"
    ]


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        # line 6 `      - [vanthu@…]`: 6 + `- ` (2) → the list starts in column 9,
        # its first item in column 10
        ("[vanthu@bato.example.vn]",
         "cfg/a.yaml:6:10: units[0].email[1]: expected text, got a list"),
        # `      - {a: …}`: the mapping's first key `a` is column 10
        ("{a: vanthu@bato.example.vn}",
         "cfg/a.yaml:6:10: units[0].email[1]: expected text, got a mapping"),
        # `      - - vanthu@…`: 6 + `- ` + `- ` (4) → the first item is column 11
        ("- vanthu@bato.example.vn",
         "cfg/a.yaml:6:11: units[0].email[1]: expected text, got a list"),
    ],
    ids=["flow-list", "flow-mapping", "block-list"],
)
def test_a_list_or_mapping_inside_a_list_of_text(check, item, expected):
    lines = check({"a.yaml": f"""
        units:
          - id: phong-tu-phap
            name: Phòng Tư pháp
            email:
              - tuphap@bato.example.vn
              - {item}
    """})
    assert lines == [expected]


def test_an_empty_list_inside_a_list_of_text(check):
    lines = check({"a.yaml": """
        units:
          - id: phong-tu-phap
            name: Phòng Tư pháp
            email:
              - tuphap@bato.example.vn
              - []
    """})
    # line 6 `      - []`: 6 + `- ` (2) → the `[` is column 9
    assert lines == ["cfg/a.yaml:6:9: units[0].email[1]: expected text, got a list"]


def test_an_empty_mapping_first_in_a_list_of_text(check):
    lines = check({"a.yaml": """
        units:
          - id: phong-tu-phap
            name: Phòng Tư pháp
            email:
              - {}
              - tuphap@bato.example.vn
    """})
    assert lines == ["cfg/a.yaml:5:9: units[0].email[0]: expected text, got a mapping"]


def test_every_must_be_a_whole_number(check):
    lines = check({"a.yaml": """
        anniversaries:
          - id: giai-phong
            title: Ngày giải phóng
            origin: 1972-10-30
            every: abc
    """})
    # line 5 `    every: abc`: 4 + `every: ` (7) → column 12
    assert lines == [
        "cfg/a.yaml:5:12: anniversaries[0].every: expected a whole number of 1 or more, got 'abc'"
    ]


# -- impossible dates -----------------------------------------------------------


def test_february_30th_is_not_a_date(check):
    lines = check({"a.yaml": """
        anniversaries:
          - id: giai-phong
            title: Ngày giải phóng
            origin: 2023-02-30
    """})
    # line 4 `    origin: 2023-02-30`: 4 + `origin: ` (8) → column 13
    assert lines == [
        "cfg/a.yaml:4:13: anniversaries[0].origin: "
        "'2023-02-30' is not a date: February 2023 has 28 days"
    ]


def test_month_13_is_not_a_month(check):
    lines = check({"a.yaml": """
        milestones:
          - id: bao-cao
            title: Báo cáo
            when: 2024-13
            lead: phong-noi-vu
    """})
    # line 4 `    when: 2024-13`: 4 + `when: ` (6) → column 11
    assert lines == [
        "cfg/a.yaml:4:11: milestones[0].when: '2024-13' is not a month: there is no month 13"
    ]


def test_february_29th_of_a_common_year(check):
    lines = check({"a.yaml": """
        units:
          - id: phong-tu-phap
            name: Phòng Tư pháp
            until: 2025-02-29
    """})
    # line 4 `    until: 2025-02-29`: 4 + `until: ` (7) → column 12
    assert lines == [
        "cfg/a.yaml:4:12: units[0].until: '2025-02-29' is not a date: February 2025 has 28 days"
    ]


# -- YAML 1.1 quirks do not bite -------------------------------------------------


def test_holidays_no_is_the_text_no_not_false(check):
    lines = check({"a.yaml": """
        calendar:
          holidays: no
    """})
    # line 2 `  holidays: no`: 2 + `holidays: ` (10) → column 13
    assert lines == [
        "cfg/a.yaml:2:13: calendar.holidays: expected 'vn' or 'none', got 'no' "
        "(did you mean 'none'?)"
    ]


def test_no_and_yes_stay_text_as_id_and_title(tmp_path, write_config, run_cli):
    write_config(tmp_path, {"a.yaml": """
        units:
          - id: no
            name: yes
        milestones:
          - id: on
            title: yes
            when: 2024-06-20
            lead: no
    """})
    code, out, err = run_cli(["agenda", "--config", "cfg", "--format", "json",
                              "--from", "2024-06-20", "--to", "2024-06-20"])
    assert (code, err) == (0, "")
    [record] = json.loads(out)
    assert record["uid"] == "milestone.on@mocd.local"
    assert record["title"] == "yes"
    assert record["units"] == ["no"]
    assert record["lead"] == "no"


def test_numbers_and_dates_stay_text_in_titles(tmp_path, write_config, run_cli):
    write_config(tmp_path, {"a.yaml": """
        units:
          - {id: "2024", name: 1e3}
        milestones:
          - {id: m, title: 2024-06-20, when: 2024-06-20, lead: "2024"}
          - {id: n, title: 010, when: 2024-06-20, lead: "2024"}
    """})
    code, out, err = run_cli(["agenda", "--config", "cfg", "--format", "json",
                              "--from", "2024-06-20", "--to", "2024-06-20"])
    assert (code, err) == (0, "")
    assert [r["title"] for r in json.loads(out)] == ["2024-06-20", "010"]


def test_an_escaped_surrogate_pair_is_the_character_it_means(tmp_path, write_config,
                                                              run_cli):
    """JSON-minded authors escape an emoji as a UTF-16 pair; an unpaired one is U+FFFD."""
    write_config(tmp_path, {"a.yaml": r"""
        units:
          - {id: u, name: "Tổ \ud83d\ude42"}
        milestones:
          - {id: m, title: "Hạn \ud83d\ude42 nộp", when: 2024-06-20, lead: u}
          - {id: n, title: "Lẻ \ud83d", when: 2024-06-20, lead: u}
    """})
    code, out, err = run_cli(["agenda", "--config", "cfg", "--format", "json",
                              "--from", "2024-06-20", "--to", "2024-06-20"])
    assert (code, err) == (0, "")
    assert [r["title"] for r in json.loads(out)] == ["Hạn 🙂 nộp", "Lẻ \ufffd"]


# -- unknown keys ---------------------------------------------------------------


def test_unknown_key_suggests_the_known_one(check):
    lines = check({"a.yaml": """
        milestones:
          - id: bao-cao
            titel: Báo cáo
            when: 2024-09-30
            lead: phong-noi-vu
    """})
    # the missing `title` is reported at the milestone (its first key, line 2 column 5),
    # the unknown `titel` at its own key (line 3 column 5)
    assert lines == [
        "cfg/a.yaml:2:5: milestones[0]: missing required key 'title'",
        "cfg/a.yaml:3:5: milestones[0].titel: unknown key 'titel' (did you mean 'title'?)",
    ]


def test_unknown_top_level_key(check):
    lines = check({"a.yaml": "unit:\n  - {id: x, name: X}\n"})
    assert lines == ["cfg/a.yaml:1:1: unit: unknown key 'unit' (did you mean 'units'?)"]


def test_unknown_key_without_a_close_match_lists_the_allowed_keys(check):
    lines = check({"a.yaml": "x:\n  - {id: x, name: X}\n"})
    assert lines == [
        "cfg/a.yaml:1:1: x: unknown key 'x'; allowed: calendar, units, groups, anniversaries, "
        "campaigns, milestones"
    ]


def test_unknown_milestone_key_without_a_close_match(check):
    lines = check({"a.yaml": """
        milestones:
          - id: bao-cao
            title: Báo cáo
            when: 2024-06-20
            lead: phong-noi-vu
            zzz: 1
    """})
    # line 6 `    zzz: 1`: the key is column 5
    assert lines == [
        "cfg/a.yaml:6:5: milestones[0].zzz: unknown key 'zzz'; allowed: id, title, title_en, "
        "kind, when, duration, description, units, lead, cc, submit_to, location, url, "
        "reminders, on_non_working_day, cancelled"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # line 4 `    when: {before: x, day: 3}`: `{` is column 11, `day` column 23
        ("milestones:\n  - id: bao-cao\n    title: Báo cáo\n    when: {before: x, day: 3}\n"
         "    lead: phong-noi-vu\n",
         "cfg/a.yaml:4:23: milestones[0].when.day: unknown key 'day' in a relative date "
         "(did you mean 'days'?); allowed: before, days, weeks, months, years, working_days"),
        # line 3 `    - {from: 2025-01-25, too: 2025-02-02}`: 4 + `- {` (3) + `from: 2025-01-25, `
        # (18) = 25: `too` is column 26
        ("calendar:\n  extra_holidays:\n    - {from: 2025-01-25, too: 2025-02-02}\n",
         "cfg/a.yaml:3:26: calendar.extra_holidays[0].too: unknown key 'too' (did you mean 'to'?)"),
        # line 4 `    origin: {lunar: "2023-01-03", luna: x}`: 4 + `origin: {` (9) +
        # `lunar: "2023-01-03", ` (21) = 34: `luna` is column 35
        ("anniversaries:\n  - id: thanh-lap\n    title: Ngày thành lập\n"
         "    origin: {lunar: \"2023-01-03\", luna: x}\n",
         "cfg/a.yaml:4:35: anniversaries[0].origin.luna: unknown key 'luna' "
         "(did you mean 'lunar'?)"),
    ],
    ids=["date-expression", "holiday-range", "lunar-origin"],
)
def test_unknown_nested_key_points_at_the_key(check, text, expected):
    assert check({"a.yaml": text}) == [expected]


def test_missing_required_keys(check):
    lines = check({"a.yaml": """
        units:
          - id: phong-tu-phap
        milestones:
          - id: bao-cao
            title: Báo cáo
            lead: phong-noi-vu
    """})
    # both at the first key of their mapping: `id` in column 5
    assert lines == [
        "cfg/a.yaml:2:5: units[0]: missing required key 'name'",
        "cfg/a.yaml:4:5: milestones[0]: missing required key 'when'",
    ]


# -- duplicates -----------------------------------------------------------------


def test_duplicate_unit_id_across_two_files(check):
    lines = check({"b.yaml": """
        units:
          - id: phong-noi-vu
            name: Phòng Nội vụ (bản sao)
    """})
    # line 2 `  - id: phong-noi-vu`: 2 + `- id: ` (6) → column 9
    assert lines == [
        "cfg/b.yaml:2:9: units[0].id: duplicate id 'phong-noi-vu': "
        "already a unit in cfg/0-units.yaml at units[0]"
    ]


# A unit and a group share one namespace of ids; the message names the earlier item's kind.
# Line 2 `  - id: …`: 2 + `- id: ` (6) → the id is column 9.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("groups:\n  - id: phong-dan-toc\n    name: Nhóm\n",
         "cfg/b.yaml:2:9: groups[0].id: duplicate id 'phong-dan-toc': "
         "already a unit in cfg/0-units.yaml at units[1]"),
        ("units:\n  - id: phong-chuyen-mon\n    name: Phòng\n",
         "cfg/b.yaml:2:9: units[0].id: duplicate id 'phong-chuyen-mon': "
         "already a group in cfg/0-units.yaml at groups[0]"),
    ],
    ids=["group-after-unit", "unit-after-group"],
)
def test_a_duplicate_id_names_what_the_earlier_one_is(check, text, expected):
    assert check({"b.yaml": text}) == [expected]


def test_duplicate_milestone_id_within_a_campaign(check):
    lines = check({"a.yaml": """
        campaigns:
          - id: thi-dua
            title: Thi đua
            owner: phong-noi-vu
            milestones:
              - id: bao-cao
                title: Báo cáo sơ kết
                when: 2024-06-30
              - id: bao-cao
                title: Báo cáo tổng kết
                when: 2024-12-15
    """})
    # line 9 `      - id: bao-cao`: 6 + `- id: ` (6) → column 13
    assert lines == [
        "cfg/a.yaml:9:13: campaigns[0].milestones[1].id: duplicate id 'bao-cao': "
        "already a milestone in cfg/a.yaml at campaigns[0].milestones[0]"
    ]


def test_same_milestone_id_in_two_campaigns_is_fine(tmp_path, write_config, run_cli):
    campaign = """
          - id: {cid}
            title: Thi đua
            owner: phong-noi-vu
            milestones:
              - {{id: bao-cao, title: Báo cáo, when: 2024-06-28}}
    """
    write_config(tmp_path, {
        "0-units.yaml": UNITS,
        "a.yaml": "campaigns:" + campaign.format(cid="a") + campaign.format(cid="b"),
    })
    code, out, err = run_cli(["check", "--config", "cfg"])
    assert (code, err) == (0, ""), err
    assert out.startswith("cfg: OK")


def test_duplicate_key_in_one_mapping(check):
    lines = check({"a.yaml": """
        units:
          - id: phong-tu-phap
            name: Phòng Tư pháp
            name: Phòng Tư pháp huyện
    """})
    # the second `name`, line 4 column 5
    assert lines == ["cfg/a.yaml:4:5: units[0].name: duplicate key 'name'"]


def test_duplicate_key_in_a_flow_mapping(check):
    lines = check({"a.yaml": "units:\n  - {id: x, name: X, id: y}\n"})
    # `  - {id: x, name: X, id: y}`: the second `id` is column 22
    assert lines == ["cfg/a.yaml:2:22: units[0].id: duplicate key 'id'"]


# -- unknown units and groups ---------------------------------------------------


def test_unknown_units_and_groups_with_suggestions(check):
    lines = check({"a.yaml": """
        campaigns:
          - id: thi-dua
            title: Thi đua
            owner: phong-noi-v
            units: [phong-chuyen-mo, ubnd-xa-ba-dinh]
            milestones:
              - id: ho-so
                title: Hồ sơ khen thưởng
                when: 2024-06-03
                units: [alll]
                lead: phong-dan-tc
                submit_to: phong-noi-vuu
                cc: [ubnd-xa-ba-dih]
    """})
    # columns: line 4 `    owner: ` → 12; line 5 `    units: [` → 13;
    # line 10 `        units: [` → 17; line 11 `        lead: ` → 15;
    # line 12 `        submit_to: ` → 20; line 13 `        cc: [` → 14
    assert lines == [
        "cfg/a.yaml:4:12: campaigns[0].owner: 'phong-noi-v': unknown unit "
        "(did you mean 'phong-noi-vu'?)",
        "cfg/a.yaml:5:13: campaigns[0].units[0]: unknown unit or group 'phong-chuyen-mo' "
        "(did you mean 'phong-chuyen-mon'?)",
        "cfg/a.yaml:10:17: campaigns[0].milestones[0].units[0]: unknown unit or group 'alll' "
        "(did you mean 'all'?)",
        "cfg/a.yaml:11:15: campaigns[0].milestones[0].lead: 'phong-dan-tc': unknown unit "
        "(did you mean 'phong-dan-toc'?)",
        "cfg/a.yaml:12:20: campaigns[0].milestones[0].submit_to: 'phong-noi-vuu': unknown unit "
        "(did you mean 'phong-noi-vu'?)",
        "cfg/a.yaml:13:14: campaigns[0].milestones[0].cc[0]: unknown unit or group "
        "'ubnd-xa-ba-dih' (did you mean 'ubnd-xa-ba-dinh'?)",
    ]


def test_unknown_group_member(check):
    lines = check({"a.yaml": """
        groups:
          - id: ubnd-cac-xa
            name: UBND các xã
            members: [ubnd-xa-ba-dinh, ubnd-xa-ba-din]
    """})
    # line 4 `    members: [ubnd-xa-ba-dinh, ` → 4 + 10 + 17 = 31, so column 32
    assert lines == [
        "cfg/a.yaml:4:32: groups[0].members[1]: 'ubnd-xa-ba-din': unknown unit "
        "(did you mean 'ubnd-xa-ba-dinh'?)"
    ]


def test_a_single_id_may_stand_for_a_list_of_one(tmp_path, write_config, run_cli):
    write_config(tmp_path, {"0-units.yaml": UNITS, "a.yaml": """
        milestones:
          - {id: bao-cao, title: Báo cáo, when: 2024-06-20, units: phong-dan-toc}
    """})
    code, out, err = run_cli(["agenda", "--config", "cfg", "--format", "json",
                              "--from", "2024-06-20", "--to", "2024-06-20"])
    assert (code, err) == (0, "")
    assert json.loads(out)[0]["units"] == ["phong-dan-toc"]


def test_an_unknown_single_id_written_for_a_list_points_at_the_value(check):
    lines = check({"a.yaml": """
        milestones:
          - id: bao-cao
            title: Báo cáo
            when: 2024-06-20
            units: phong-dan-tc
    """})
    # line 5 `    units: ` → 4 + 7 = 11: the value is column 12; there is no list, so no `[0]`
    assert lines == [
        "cfg/a.yaml:5:12: milestones[0].units: unknown unit or group 'phong-dan-tc' "
        "(did you mean 'phong-dan-toc'?)"
    ]


def test_lead_must_be_a_unit_not_a_group(check):
    lines = check({"a.yaml": """
        milestones:
          - id: bao-cao
            title: Báo cáo
            when: 2024-09-30
            lead: phong-chuyen-mon
    """})
    assert lines == [
        "cfg/a.yaml:5:11: milestones[0].lead: 'phong-chuyen-mon': a group; name a unit here"
    ]


# -- references in date expressions ---------------------------------------------

CAMPAIGN = """\
campaigns:
  - id: dhdt-2024
    title: Đại hội đại biểu các dân tộc thiểu số
    owner: phong-noi-vu
    units: [all]
    milestones:
      - id: dai-hoi
        title: Đại hội
        kind: event
        when: 2024-06-20 08:00
"""  # 10 lines; the milestones under test follow from line 11


def test_unknown_reference_suggests_the_milestone(check):
    lines = check({"a.yaml": CAMPAIGN + """\
      - id: ho-so
        title: Hồ sơ khen thưởng
        when: {before: dai-hoi-x, days: 1}
"""})
    # line 13 `        when: {before: dai-hoi-x`: 8 + `when: {before: ` (15) → column 24.
    # (SPEC §4.4's example says `….when: unknown reference …`; the path here goes one step
    # further, to the `before` key whose value is the reference, and so does the column.)
    assert lines == [
        "cfg/a.yaml:13:24: campaigns[0].milestones[1].when.before: "
        "unknown reference 'dai-hoi-x' (did you mean 'dai-hoi'?)"
    ]


def test_unknown_campaign_in_a_cross_campaign_reference(check):
    lines = check({"a.yaml": CAMPAIGN + """\
      - id: ho-so
        title: Hồ sơ khen thưởng
        when: {after: dhdt-2042/dai-hoi, days: 1}
"""})
    # 8 + `when: {after: ` (14) → column 23
    assert lines == [
        "cfg/a.yaml:13:23: campaigns[0].milestones[1].when.after: "
        "unknown campaign 'dhdt-2042' in 'dhdt-2042/dai-hoi' (did you mean 'dhdt-2024'?)"
    ]


def test_unknown_milestone_in_another_campaign(check):
    lines = check({"a.yaml": CAMPAIGN + """\
  - id: tong-ket
    title: Tổng kết
    owner: phong-noi-vu
    milestones:
      - id: bao-cao
        title: Báo cáo tổng kết
        when: {after: dhdt-2024/dai-hoii, days: 30}
"""})
    # line 17, 8 + `when: {after: ` (14) → column 23
    assert lines == [
        "cfg/a.yaml:17:23: campaigns[1].milestones[0].when.after: "
        "unknown reference 'dhdt-2024/dai-hoii' (did you mean 'dai-hoi'?)"
    ]


def test_period_start_of_a_campaign_without_period(check):
    lines = check({"a.yaml": CAMPAIGN + """\
      - id: phat-dong
        title: Phát động
        when: {after: period.start, days: 7}
"""})
    assert lines == [
        "cfg/a.yaml:13:23: campaigns[0].milestones[1].when.after: "
        "'period.start': campaign 'dhdt-2024' has no period"
    ]


def test_unknown_anniversary_reference(check):
    lines = check({"a.yaml": CAMPAIGN + """\
      - id: le-ky-niem
        title: Lễ kỷ niệm
        when: {before: "anniversary:giai-phong:50", days: 0}
anniversaries:
  - id: giai-phong-ba-to
    title: Ngày giải phóng huyện Ba Tơ
    origin: 1972-10-30
"""})
    # 8 + `when: {before: ` (15) → the quote is column 24, the text inside it column 25
    assert lines == [
        "cfg/a.yaml:13:25: campaigns[0].milestones[1].when.before: "
        "unknown anniversary 'giai-phong' (did you mean 'giai-phong-ba-to'?)"
    ]


def test_reference_cycle_of_two(check):
    lines = check({"a.yaml": CAMPAIGN + """\
      - id: a
        title: A
        when: {before: b, days: 1}
      - id: b
        title: B
        when: {after: a, days: 1}
"""})
    # the `when` of a (a mapping: located at its key), line 13 column 9
    assert lines == [
        "cfg/a.yaml:13:9: campaigns[0].milestones[1].when: "
        "reference cycle: dhdt-2024/a → dhdt-2024/b → dhdt-2024/a"
    ]


def test_reference_cycle_of_three(check):
    lines = check({"a.yaml": CAMPAIGN + """\
      - id: x
        title: X
        when: {before: y, days: 1}
      - id: y
        title: Y
        when: {before: z, days: 1}
      - id: z
        title: Z
        when: {after: x, weeks: 1}
"""})
    assert len(lines) == 1
    assert lines[0].startswith("cfg/a.yaml:13:9: campaigns[0].milestones[1].when: reference cycle:")
    assert lines[0].endswith("dhdt-2024/x → dhdt-2024/y → dhdt-2024/z → dhdt-2024/x")


def test_period_referring_to_itself(check):
    lines = check({"a.yaml": """
        campaigns:
          - id: thi-dua
            title: Thi đua
            owner: phong-noi-vu
            period: {start: 2024-04-15, end: {after: period.start, days: 30}}
    """})
    assert len(lines) == 1
    assert lines[0].startswith("cfg/a.yaml:5:")
    assert "campaigns[0].period" in lines[0]
    assert "reference cycle: thi-dua/period → thi-dua/period" in lines[0]


def test_unit_succession_cycle(check):
    lines = check({"a.yaml": """
        units:
          - id: phong-a
            name: Phòng A
            until: 2025-06-30
            successor: phong-b
          - id: phong-b
            name: Phòng B
            until: 2025-06-30
            successor: phong-a
    """})
    # line 5 `    successor: phong-b`: 4 + `successor: ` (11) → column 16
    assert lines == [
        "cfg/a.yaml:5:16: units[0].successor: unit succession forms a cycle: "
        "phong-a → phong-b → phong-a"
    ]


# -- other rules ----------------------------------------------------------------


def test_lunar_origin_that_does_not_exist(check):
    lines = check({"a.yaml": """
        anniversaries:
          - id: ngay-thanh-lap
            title: Ngày thành lập
            origin: {lunar: "2023-01-30"}
    """})
    # month 1 of lunar 2023 (Tết Quý Mão) has 29 days;
    # line 4 `    origin: {lunar: ` → 4 + 16 = 20: the quote is column 21, the text column 22
    assert lines == [
        "cfg/a.yaml:4:22: anniversaries[0].origin.lunar: "
        "lunar 2023-01-30 does not exist: month 1 of 2023 has 29 days"
    ]


def test_a_group_member_that_is_a_group(check):
    lines = check({"a.yaml": """
        groups:
          - id: ubnd-cac-xa
            name: UBND các xã
            members: [ubnd-xa-ba-dinh, phong-chuyen-mon]
    """})
    # line 4 `    members: [ubnd-xa-ba-dinh, ` → 4 + 10 + 17 = 31, so column 32
    assert lines == [
        "cfg/a.yaml:4:32: groups[0].members[1]: 'phong-chuyen-mon': a group; groups list units"
    ]


def test_hour_offsets_need_a_timed_milestone(check):
    lines = check({"a.yaml": """
        milestones:
          - id: bao-cao
            title: Báo cáo
            when: 2024-09-30
            lead: phong-noi-vu
            reminders: [3d, 2h]
    """})
    # line 6 `    reminders: [3d, ` → 4 + 16 = 20: `2h` is column 21
    assert lines == [
        "cfg/a.yaml:6:21: milestones[0].reminders[1]: '2h': hour offsets need a timed milestone "
        "(when: 2024-06-20 08:00)"
    ]


def test_duration_needs_a_start_time(check):
    lines = check({"a.yaml": """
        milestones:
          - id: hoi-nghi
            title: Hội nghị
            kind: event
            when: 2024-06-20
            duration: 4h
            lead: phong-noi-vu
    """})
    assert lines == [
        "cfg/a.yaml:6:15: milestones[0].duration: duration needs a start time "
        "(when: 2024-06-20 08:00)"
    ]


def test_a_deadline_has_no_duration(check):
    lines = check({"a.yaml": """
        milestones:
          - id: nop-ho-so
            title: Nộp hồ sơ
            when: 2024-06-21 17:00
            duration: 4h
            lead: phong-noi-vu
    """})
    # line 5 `    duration: 4h`: 4 + `duration: ` (10) → column 15
    assert lines == [
        "cfg/a.yaml:5:15: milestones[0].duration: a deadline is due at one moment; duration is "
        "for events and periods"
    ]


def test_an_anniversary_takes_no_hour_offsets(check):
    lines = check({"a.yaml": """
        anniversaries:
          - id: giai-phong
            title: Ngày giải phóng
            origin: 1972-10-30
            reminders: [2h]
    """})
    # line 5 `    reminders: [` → 4 + 12 = 16: `2h` is column 17
    assert lines == [
        "cfg/a.yaml:5:17: anniversaries[0].reminders[0]: '2h': an anniversary lasts all day; "
        "use days (e.g. 1d)"
    ]


def test_an_id_with_capitals_and_diacritics_gets_a_slug_suggestion(check):
    lines = check({"a.yaml": """
        units:
          - id: Phòng Nội vụ
            name: Phòng Nội vụ
    """})
    assert lines == [
        "cfg/a.yaml:2:9: units[0].id: 'Phòng Nội vụ' is not a valid id: use lowercase letters, "
        "digits and '-' (e.g. 'phong-noi-vu')"
    ]


def test_all_is_not_a_unit_id(check):
    lines = check({"a.yaml": "units:\n  - id: all\n    name: Tất cả\n"})
    assert lines == ["cfg/a.yaml:2:9: units[0].id: 'all' is reserved for the group of all units"]


def test_a_stand_alone_milestone_needs_units_or_lead(check):
    lines = check({"a.yaml": """
        milestones:
          - id: bao-cao
            title: Báo cáo
            when: 2024-09-30
    """})
    assert lines == [
        "cfg/a.yaml:2:9: milestones[0].id: a stand-alone milestone must name 'units' or 'lead'"
    ]


def test_calendar_in_two_files(check):
    lines = check({
        "a.yaml": "calendar:\n  holidays: vn\n",
        "b.yaml": "# the second calendar\ncalendar:\n  weekend: [sun]\n",
    })
    assert lines == ["cfg/b.yaml:2:1: calendar: calendar is already set in cfg/a.yaml"]


# -- files that are not YAML config ---------------------------------------------


def test_a_file_that_is_not_utf8(check):
    # `Phòng` saved as Latin-1 (Windows-1252): ò is the single byte 0xF2
    raw = "units:\n  - id: phong-tu-phap\n    name: Phòng\n".encode("latin-1")
    lines = check({"a.yaml": raw})
    # line 3 `    name: Ph` is 12 characters: the bad byte is column 13
    assert lines == ["cfg/a.yaml:3:13: (file): not UTF-8 text (byte 0xf2); save the file as UTF-8"]


def test_columns_count_characters_not_bytes(check):
    lines = check({"a.yaml": "units:\n  - {id: x, name: Phòng Tư pháp, emial: a@b.vn}\n"})
    # `  - {id: x, name: Phòng Tư pháp, ` is 33 characters (41 bytes): `emial` is column 34
    assert lines == ["cfg/a.yaml:2:34: units[0].emial: unknown key 'emial' (did you mean 'email'?)"]


def test_a_utf8_byte_order_mark_is_accepted(check):
    raw = "\ufeffunits:\n  - id: x\n    nam: X\n".encode()
    assert check({"a.yaml": raw}) == [
        "cfg/a.yaml:2:5: units[0]: missing required key 'name'",
        "cfg/a.yaml:3:5: units[0].nam: unknown key 'nam' (did you mean 'name'?)",
    ]


def test_a_file_that_is_not_yaml(check):
    lines = check({"a.yaml": """
        units:
          - id: phong-tu-phap
            name: Phòng Tư pháp
           email: tuphap@bato.example.vn
    """})
    assert len(lines) == 1
    assert lines[0].startswith("cfg/a.yaml:4:")  # the badly indented line
    assert ": (file): not valid YAML: " in lines[0]


def test_an_unclosed_flow_list(check):
    [line] = check({"a.yaml": "units: [phong-a, phong-b\nmilestones: []\n"})
    assert line.startswith("cfg/a.yaml:")
    assert ": (file): not valid YAML: " in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a tab after the indenting spaces of line 3 `  \tname: X`: column 3
        ("units:\n  - id: x\n  \tname: X\n", "cfg/a.yaml:3:3:"),
        # a tab alone at the start of line 3: column 1
        ("units:\n  - id: x\n\tname: X\n", "cfg/a.yaml:3:1:"),
    ],
    ids=["after-spaces", "alone"],
)
def test_a_tab_in_the_indentation(check, text, expected):
    assert check({"a.yaml": text}) == [
        f"{expected} (file): a tab indents this line; YAML indents with spaces only"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the second `---` is line 2
        ("units: []\n---\nmilestones: []\n",
         "cfg/a.yaml:2:1: (file): 2 YAML documents ('---'); use one per file"),
        # a leading `---` starts the first document: the second is line 3
        ("---\nunits: []\n---\nmilestones: []\n",
         "cfg/a.yaml:3:1: (file): 2 YAML documents ('---'); use one per file"),
        # a comment first; three documents: reported at the second one, line 3
        ("# c\nunits: []\n---\nmilestones: []\n---\ngroups: []\n",
         "cfg/a.yaml:3:1: (file): 3 YAML documents ('---'); use one per file"),
    ],
    ids=["two", "leading-marker", "three"],
)
def test_a_file_with_several_yaml_documents(check, text, expected):
    assert check({"a.yaml": text}) == [expected]


def test_one_document_with_a_leading_marker_is_fine(tmp_path, write_config, run_cli):
    write_config(tmp_path, {"a.yaml": "---\n" + UNITS})
    code, _, err = run_cli(["check", "--config", "cfg"])
    assert (code, err) == (0, "")


@pytest.mark.parametrize("text", ["", "\n\n", "# chỉ có chú thích\n"], ids=["empty", "blank",
                                                                             "comment"])
def test_an_empty_file(check, text):
    assert check({"a.yaml": text}) == ["cfg/a.yaml:1:1: (file): the file is empty (no YAML data)"]


def test_a_file_whose_top_level_is_a_list(check):
    assert check({"a.yaml": "- id: phong-noi-vu\n  name: Phòng Nội vụ\n"}) == [
        "cfg/a.yaml:1:1: (file): expected a mapping with top-level keys (calendar, units, "
        "groups, anniversaries, campaigns, milestones), got a list"
    ]


# -- directories ----------------------------------------------------------------


def test_an_empty_directory(tmp_path, run_cli):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "README.txt").write_text("not yaml")
    code, out, err = run_cli(["check", "--config", "cfg"])
    assert (code, out) == (1, "")
    assert err == "cfg: no *.yaml or *.yml files in this directory\n"


def test_a_missing_directory(tmp_path, run_cli):
    code, out, err = run_cli(["check", "--config", "khong-co"])
    assert (code, out) == (1, "")
    assert err == "khong-co: config directory not found\n"


def test_yml_files_are_read_too(check):
    lines = check({"b.yml": "units:\n  - id: x\n"})
    assert lines == ["cfg/b.yml:2:5: units[0]: missing required key 'name'"]


# -- all errors in one run ------------------------------------------------------


def test_errors_of_several_files_come_together_sorted_by_file_then_line(check):
    lines = check({
        "b.yaml": """
            units:
              - id: phong-tu-phap
                name: Phòng Tư pháp
                email: [tuphap@]
        """,
        "a.yaml": """
            anniversaries:
              - id: giai-phong
                title: Ngày giải phóng
                origin: 1972-10-30
                every: 0
              - id: Thanh-lap
                title: Ngày thành lập
                origin: 1930-02-03
        """,
        "c.yaml": b"units:\n  - id: phong-y-te\n    name: Ph\xf2ng Y t\xea\n",
    })
    assert lines == [
        "cfg/a.yaml:5:12: anniversaries[0].every: expected a whole number of 1 or more, got '0'",
        "cfg/a.yaml:6:9: anniversaries[1].id: 'Thanh-lap' is not a valid id: use lowercase "
        "letters, digits and '-' (e.g. 'thanh-lap')",
        "cfg/b.yaml:4:13: units[0].email[0]: 'tuphap@' is not an email address",
        "cfg/c.yaml:3:13: (file): not UTF-8 text (byte 0xf2); save the file as UTF-8",
    ]


def test_unit_and_date_reference_errors_come_together(check):
    lines = check({"a.yaml": CAMPAIGN + """\
      - id: ho-so
        title: Hồ sơ
        when: {before: dai-hoii, days: 15}
        lead: phong-noi-v
"""})
    # line 13 `        when: {before: ` → 8 + 15 = 23: column 24; line 14 `        lead: ` → 15
    assert lines == [
        "cfg/a.yaml:13:24: campaigns[0].milestones[1].when.before: "
        "unknown reference 'dai-hoii' (did you mean 'dai-hoi'?)",
        "cfg/a.yaml:14:15: campaigns[0].milestones[1].lead: 'phong-noi-v': unknown unit "
        "(did you mean 'phong-noi-vu'?)",
    ]


def test_reference_errors_of_several_milestones_come_together(check):
    lines = check({"a.yaml": CAMPAIGN + """\
      - id: ho-so
        title: Hồ sơ
        when: {before: dai-hoi, days: 15}
        lead: phong-noi-v
      - id: bao-cao
        title: Báo cáo
        when: {after: dai-hoi, days: 10}
        reminders: [1h]
"""})
    # line 18 `        reminders: [` → 8 + 12 = 20: `1h` is column 21
    assert lines == [
        "cfg/a.yaml:14:15: campaigns[0].milestones[1].lead: 'phong-noi-v': unknown unit "
        "(did you mean 'phong-noi-vu'?)",
        "cfg/a.yaml:18:21: campaigns[0].milestones[2].reminders[0]: '1h': hour offsets need a "
        "timed milestone (when: 2024-06-20 08:00)",
    ]


def test_a_large_config_with_one_error_deep_inside(check):
    lines_out = ["campaigns:"]
    bad_line = 0
    for c in range(250):
        lines_out += [f"  - id: chien-dich-{c}",
                      f"    title: Phong trào thi đua số {c} chào mừng Đại hội Đảng bộ các cấp",
                      "    owner: phong-noi-vu",
                      "    units: [phong-chuyen-mon]",
                      "    milestones:"]
        for m in range(50):
            when = f"2024-{m % 12 + 1:02d}-{m % 28 + 1:02d}"
            if (c, m) == (200, 37):
                when, bad_line = "2024-02-30", len(lines_out) + 3
            lines_out += [f"      - id: moc-{m}",
                          f"        title: Gửi báo cáo kết quả thực hiện nhiệm vụ số {m}",
                          f"        when: {when}"]
    text = "\n".join(lines_out) + "\n"
    assert len(text.encode()) > 1_500_000
    started = time.perf_counter()
    lines = check({"a.yaml": text})
    elapsed = time.perf_counter() - started
    # `        when: ` is 14 characters: the date is column 15
    assert lines == [
        f"cfg/a.yaml:{bad_line}:15: campaigns[200].milestones[37].when: "
        "'2024-02-30' is not a date: February 2024 has 29 days"
    ]
    assert elapsed < 5, f"took {elapsed:.1f}s"


OUTSIDE = "this date falls outside the calendar (years 1 to 9999)"


@pytest.mark.parametrize(
    ("milestone", "expected"),
    [
        # line 13 `        when: {after: …}`: a mapping, located at its key `when`, column 9
        ("when: {after: dai-hoi, years: 10000}",
         f"cfg/a.yaml:13:9: campaigns[0].milestones[1].when: {OUTSIDE}"),
        # 1,000,000 days (about 2738 years) before 2024: before year 1
        ("when: {before: dai-hoi, days: 1000000}",
         f"cfg/a.yaml:13:9: campaigns[0].milestones[1].when: {OUTSIDE}"),
        # line 15 `        duration: ` → 8 + 10 = 18: the value is column 19
        ("kind: event\n        when: 2024-06-20 08:00\n        duration: 99999999999w",
         "cfg/a.yaml:15:19: campaigns[0].milestones[1].duration: that duration is too long"),
        # an event that starts on the last day of 9999 and lasts 2 days; line 14
        # `        when: ` → 8 + 6 = 14: the value is column 15
        ("kind: event\n        when: 9999-12-31 08:00\n        duration: 2d",
         f"cfg/a.yaml:14:15: campaigns[0].milestones[1].when: {OUTSIDE}"),
    ],
    ids=["years", "days", "duration", "end-past-9999"],
)
def test_absurd_amounts_are_config_errors(check, milestone, expected):
    lines = check({"a.yaml": CAMPAIGN + f"""\
      - id: bao-cao
        title: Báo cáo
        {milestone}
"""})
    assert lines == [expected]


def test_a_period_past_year_9999_is_a_config_error(check):
    lines = check({"a.yaml": """
        campaigns:
          - id: thi-dua
            title: Thi đua
            owner: phong-noi-vu
            period: {start: 2024-04-15, end: {after: dai-hoi, years: 8000}}
            milestones:
              - {id: dai-hoi, title: Đại hội, kind: event, when: 2024-06-20}
    """})
    # line 5 `    period: {…}`: a mapping, located at its key `period`, column 5
    assert lines == [f"cfg/a.yaml:5:5: campaigns[0].period: {OUTSIDE}"]
