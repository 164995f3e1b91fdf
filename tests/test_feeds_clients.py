"""The feeds as a calendar client reads them: Mozilla Thunderbird's own parser, ical.js.

Thunderbird's calendar parses subscriptions with ical.js (``tests/clients``, installed by
``make test`` with ``npm ci``). Every feed of ``examples/`` goes through it in Node, and
what it resolves — UIDs, all-day dates with the exclusive end, timed starts through the
feed's VTIMEZONE — must be what ``mocd agenda`` says. Skipped, loudly, when Node or the
package is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from calendars.feed_cache import builder_from_config
from tests.conftest import NOW, RunCli
from tests.test_feeds_examples import EXAMPLES, SETTINGS, agenda

CLIENTS = Path(__file__).resolve().parent / "clients"
NODE = shutil.which("node")
HAVE_ICALJS = (CLIENTS / "node_modules" / "ical.js" / "package.json").is_file()

pytestmark = pytest.mark.skipif(
    NODE is None or not HAVE_ICALJS,
    reason="NOT CHECKED WITH THUNDERBIRD'S PARSER: node or tests/clients/node_modules/ical.js "
           "is missing (make test runs `npm ci` in tests/clients)")


def parse_with_icaljs(files: list[Path]) -> dict[str, dict[str, object]]:
    assert NODE is not None
    done = subprocess.run([NODE, str(CLIENTS / "icaljs_check.mjs"), *map(str, files)],
                          capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, dict[str, object]] = json.loads(done.stdout)
    return parsed


def test_thunderbird_reads_every_example_feed_as_the_agenda_says(
        run_cli: RunCli, tmp_path: Path) -> None:
    builder = builder_from_config(EXAMPLES, SETTINGS, NOW)
    files = {}
    for key in builder.plans:
        path = tmp_path / f"{key.kind}-{key.id}.ics"
        path.write_bytes(builder.render(key))
        files[key] = path
    parsed = parse_with_icaljs(list(files.values()))
    checked = 0
    for key, path in files.items():
        feed = parsed[str(path)]
        assert feed["method"] == "PUBLISH"
        assert feed["name"]
        events = feed["events"]
        assert isinstance(events, list)
        if key.kind == "campaign":
            assert events
            continue
        by_uid = {str(r["uid"]): r for r in agenda(run_cli, key.id if key.kind == "unit"
                                                    else None)}
        assert {e["uid"] for e in events} == set(by_uid), key
        for event in events:
            record = by_uid[event["uid"]]
            assert event["summary"] == record["title"]
            if record["all_day"]:
                assert event["all_day"] is True
                assert date.fromisoformat(event["start"]) == date.fromisoformat(
                    str(record["start"]))
                # Exclusive end: Thunderbird shows the event up to the agenda's last day.
                assert date.fromisoformat(event["end"]) == date.fromisoformat(
                    str(record["end"])) + timedelta(days=1)
            else:
                start = datetime.fromisoformat(event["start"].replace("Z", "+00:00"))
                assert start == datetime.fromisoformat(str(record["start"])).astimezone(UTC)
            assert event["status"] == "CONFIRMED"
            checked += 1
    assert checked > 100


def test_vietnamese_text_survives_folding_in_thunderbirds_parser(tmp_path: Path) -> None:
    builder = builder_from_config(EXAMPLES, SETTINGS, NOW)
    key = next(k for k in builder.plans if k.kind == "all")
    data = builder.render(key)
    assert any(len(line) == 75 for line in data.split(b"\r\n"))  # folding happened
    path = tmp_path / "all.ics"
    path.write_bytes(data)
    events = parse_with_icaljs([path])[str(path)]["events"]
    assert isinstance(events, list)
    titles = {e["summary"] for e in events}
    assert any("Kỷ niệm 90 năm Ngày truyền thống Đảng bộ tỉnh Lạng Sơn" in t for t in titles)
    assert all("\ufffd" not in (e["description"] or "") for e in events)
