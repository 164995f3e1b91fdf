"""Hostile config files: bounded cost, one readable line, never a traceback.

What a hostile (or just broken) file in the config directory may cost is bounded: aliases
that expand exponentially, nesting thousands of levels deep, huge files, ids and numbers
no URL or date can hold. ``mocd check`` runs as a real process where memory is measured
(the RSS of that process alone), in-process where only the message matters. The fuzz
test mutates the real ``examples/``: hundreds of cases here, thousands with
``MOCD_FUZZ=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.yaml_reader import MAX_ALIAS_VALUES, MAX_FILE_BYTES
from tests.conftest import RunCli, WriteConfig

MOCD = Path(sys.executable).parent / "mocd"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FUZZ = int(os.environ.get("MOCD_FUZZ", "0") or 0)


def alias_bomb(levels: int = 8, width: int = 10) -> str:
    """``a{i}: &a{i} [*a{i-1} × width]``: 10^8 values from ~500 bytes."""
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def check_process(config: Path) -> tuple[int, str, int, float]:
    """``mocd check`` as its own process: exit code, stderr, peak RSS (kB), seconds.

    The RSS is measured by a small parent process whose only child is mocd, so nothing
    else this test run started counts."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=60)\n"
        "seconds = time.monotonic() - t\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
        "seconds)\n"
        "sys.stdout.write(done.stderr)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCD_")}
    (config.parent / "none.toml").write_text("")
    env["MOCD_SETTINGS"] = str(config.parent / "none.toml")
    done = subprocess.run([sys.executable, "-c", probe, str(MOCD), "check", "--config",
                           str(config)], capture_output=True, text=True, timeout=90, env=env,
                          check=True)
    first, _, stderr = done.stdout.partition("\n")
    code, rss, seconds = first.split()
    return int(code), stderr, int(rss), float(seconds)


# -- aliases ---------------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_at_its_alias_before_it_expands(tmp_path: Path) -> None:
    """Before: 1.26 GB and still growing when a 3 GB limit stopped it (the daemon grew to
    13.5 GB). Now: refused where the expansion passes the budget, in a few MB."""
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "bomb.yaml").write_text(alias_bomb(), encoding="utf-8")
    code, err, rss_kb, seconds = check_process(config)
    assert code == 1, err
    assert err.splitlines() == [
        f"{config}/bomb.yaml:5:45: (file): the aliases (*a3 …) here would expand to more "
        f"than {MAX_ALIAS_VALUES:,} values; write the values out, or name a group of units "
        "instead of repeating a list"]
    assert rss_kb < 300_000, rss_kb  # the interpreter and mocd's imports: ~80 MB
    assert seconds < 10


def test_aliases_within_the_budget_still_work(run_cli: RunCli, write_config: WriteConfig,
                                              tmp_path: Path) -> None:
    write_config(tmp_path, {"a.yaml": """
        units:
          - {id: a, name: A, email: a@x.vn}
          - {id: b, name: B, email: b@x.vn}
        milestones:
          - {id: m1, title: Một, when: 2024-06-20, units: &both [a, b]}
          - {id: m2, title: Hai, when: 2024-06-21, units: *both}
        """})
    code, out, err = run_cli(["agenda", "--config", "cfg", "--format", "json", "--from",
                              "2024-06-20", "--to", "2024-06-21"])
    assert (code, err) == (0, "")
    assert out.count('"units": ["a", "b"]') == 2


# -- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "where"), [
    ("x: " + "[" * 10_000 + "]" * 10_000 + "\n", "1:67"),
    ("x:\n" + "".join("  " * i + "- \n" for i in range(1, 3000)), "65:129"),
], ids=["flow", "block"])
def test_deep_nesting_is_a_positioned_error(run_cli: RunCli, write_config: WriteConfig,
                                            tmp_path: Path, text: str, where: str) -> None:
    """Before: exit 3 with "internal error: <ryml.ryml.ExceptionVisit; proxy of <Swig
    Object …>>" (or a RecursionError while locating it)."""
    write_config(tmp_path, {"deep.yaml": text})
    code, out, err = run_cli(["check", "--config", "cfg"])
    assert (code, out) == (1, "")
    assert err == (f"cfg/deep.yaml:{where}: x: nested more than 64 levels deep (lists in "
                   "lists, or indentation); a mocd file needs at most a few levels\n")


# -- sizes, ids and numbers ----------------------------------------------------------------------


def test_a_huge_file_is_refused_before_it_is_read(run_cli: RunCli, write_config: WriteConfig,
                                                  tmp_path: Path) -> None:
    directory = write_config(tmp_path, {"a.yaml": "units: []\n"})
    with open(directory / "dump.yaml", "wb") as huge:  # sparse: nothing is written
        huge.truncate(MAX_FILE_BYTES + 1)
    started = time.monotonic()
    code, out, err = run_cli(["check", "--config", "cfg"])
    assert time.monotonic() - started < 5
    assert (code, out) == (1, "")
    assert err == ("cfg/dump.yaml:1:1: (file): 50 MB: more than a config may be (50 MB a "
                   "file); split it or move other files out of the directory\n")


UNITS = "units:\n  - {id: a, name: A, email: a@x.vn}\n"


@pytest.mark.parametrize(("line", "message"), [
    ("units:\n  - {id: " + "a" * 100_000 + ", name: A}\n",
     "cfg/a.yaml:2:10: units[0].id: an id of 100,000 characters is too long: at most 100 "
     "(ids are in every feed URL and UID)"),
    (UNITS + "anniversaries:\n  - {id: k, title: K, origin: 1954-06-20, every: " + "9" * 5000
     + ", units: [a]}\n",
     "cfg/a.yaml:4:50: anniversaries[0].every: a number of 5,000 digits is too large"),
    (UNITS + "milestones:\n  - {id: m, title: T, when: 2024-05-01, units: [a], reminders: ["
     + "9" * 5000 + "d]}\n",
     "cfg/a.yaml:4:65: milestones[0].reminders[0]: expected a reminder offset like 14d, 2w, "
     "3wd (working days), 2h or 0d, got '9999999999999999999999999999999999999999… (5,001 "
     "characters)'"),
    (UNITS + "milestones:\n  - {id: m, title: T, when: {before: 2024-05-01, days: " + "9" * 5000
     + "}, units: [a]}\n",
     "cfg/a.yaml:4:56: milestones[0].when.days: a number of 5,000 digits is too large for "
     "days"),
], ids=["long-id", "every", "offset", "days"])
def test_ids_and_numbers_no_url_or_date_can_hold_say_what_is_wrong(
        run_cli: RunCli, write_config: WriteConfig, tmp_path: Path, line: str,
        message: str) -> None:
    write_config(tmp_path, {"a.yaml": line})
    code, out, err = run_cli(["check", "--config", "cfg"])
    assert (code, out) == (1, "")
    assert err == message + "\n"
    assert "set_int_max_str_digits" not in err


# -- fuzzing -----------------------------------------------------------------------------------

EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (position, length to cut, bytes to insert) edits, positions scaled to the file."""
    out = bytearray(data)
    for position, cut, insert in edits:
        at = position % (len(out) + 1)
        out[at:at + cut] = insert
    return bytes(out)


_FRAGMENTS = st.sampled_from([
    b"&a ", b"*a", b"<<: *a", b"[", b"]", b"{", b"}", b": ", b"- ", b"\n  ", b"\t", b"'", b'"',
    b"---\n", b"\xff", b"\xc3", b"9" * 5000, b"0000-00-00", b"2024-02-30", b"no", b"~", b"!!",
    b"%YAML 1.1\n", b"? ", b"|\n", b">-\n", b"#", b"\x00", b"\\ud83d", "Tết".encode(),
])
_EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 40),
                            _FRAGMENTS | st.binary(max_size=12)), min_size=1, max_size=6)


@pytest.mark.timeout(10 * FUZZ or 60)
@settings(max_examples=FUZZ or 150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(name=st.sampled_from(EXAMPLE_FILES), edits=_EDITS)
def test_mutated_examples_are_checked_without_a_traceback(
        run_cli: RunCli, tmp_path_factory: pytest.TempPathFactory, name: str,
        edits: list[tuple[int, int, bytes]]) -> None:
    """Byte-level mutations of the real example files (one file changed, the others as
    they are, so references across files are exercised too): ``check`` says OK or lists
    errors, exit 0 or 1, in bounded time; anything else is a bug."""
    directory = tmp_path_factory.mktemp("fuzz") / "cfg"
    directory.mkdir()
    for example in EXAMPLE_FILES:
        data = (EXAMPLES / example).read_bytes()
        (directory / example).write_bytes(mutate(data, edits) if example == name else data)
    started = time.monotonic()
    code, _, err = run_cli(["check", "--config", str(directory)])
    assert code in (0, 1), err
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    assert time.monotonic() - started < 5


_SCALARS = st.one_of(st.text(max_size=30), st.integers(), st.sampled_from(
    ["2024-06-20", "2024-06-20 08:00", "2024-Q3", "14d", "3wd", "all", "true", "~", ""]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.sampled_from(
                           ["id", "title", "when", "units", "milestones", "campaigns",
                            "reminders", "period", "start", "end", "before", "days", "lead",
                            "yearly", "origin", "every", "groups", "name", "email"]),
                           inner, max_size=5), max_leaves=25)


def to_yaml(value: object, indent: int = 0) -> str:
    """A value as flow YAML (quoted text), to build structurally valid but odd configs."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {to_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_yaml(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


@pytest.mark.timeout(10 * FUZZ or 60)
@settings(max_examples=FUZZ or 150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(top=st.dictionaries(st.sampled_from(["units", "groups", "campaigns", "milestones",
                                            "anniversaries", "calendar", "other"]),
                           _VALUES, min_size=1, max_size=4))
def test_odd_structures_are_checked_without_a_traceback(
        run_cli: RunCli, tmp_path_factory: pytest.TempPathFactory,
        top: dict[str, object]) -> None:
    directory = tmp_path_factory.mktemp("shape") / "cfg"
    directory.mkdir()
    text = "".join(f"{key}: {to_yaml(value)}\n" for key, value in top.items())
    (directory / "a.yaml").write_text(text, encoding="utf-8")
    code, _, err = run_cli(["check", "--config", str(directory)])
    assert code in (0, 1), (text, err)
    assert "Traceback" not in err, (text, err)
    assert "internal error" not in err, (text, err)


def test_an_empty_key_is_an_unknown_key_not_a_crash(run_cli: RunCli, write_config: WriteConfig,
                                                    tmp_path: Path) -> None:
    """Found by the fuzz test: ``: value`` (a key of nothing) crashed while its position
    was looked up."""
    write_config(tmp_path, {"a.yaml": ": x\nunits: []\n"})
    code, out, err = run_cli(["check", "--config", "cfg"])
    assert (code, out) == (1, "")
    assert err.startswith("cfg/a.yaml:1:3: (file): unknown key ''; allowed: calendar, units")
