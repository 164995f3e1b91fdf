#!/usr/bin/env python3
"""How long ``mocd agenda --format json`` takes on big configs, and where the time goes.

    .venv/bin/python bench/expand_bench.py            # both scenarios + linearity (~2 min)
    .venv/bin/python bench/expand_bench.py --quick    # small sizes (~10 s)
    .venv/bin/python bench/expand_bench.py --profile national   # + cProfile top functions

For each scenario (see ``gen_config.SCENARIOS``) it generates the config into
``bench/out/SCENARIO`` (git-ignored) and measures:

* the command itself, in a child process: wall time and peak RSS of
  ``mocd agenda --config DIR --from 2025-01-01 --to 2034-12-31 --format json > /dev/null``;
* the same work in this process, phase by phase, each next to a *baseline* in the
  same run (what the underlying library needs for the same input, so a reviewer
  can compare ratios across machines):

  ========== ============================================= ==============================
  phase      measured                                      baseline
  ========== ============================================= ==============================
  read       ``config.yaml_reader.read_yaml_file``, per     ``ryml.parse_in_arena`` +
             file                                           ``ryml.emit_json`` + ``json.loads``
  schema     ``FileSpec.model_validate`` of the read data   pydantic models of the same
                                                            shape, every leaf ``Any``
  load       ``config.loader.load_config`` (read, schema,   read + schema baselines
             merge, reference checks)
  expand     ``scheduler.expand.expand`` over the window    building the same Occurrence
                                                            objects from their fields + sort
  render     ``scheduler.agenda.agenda_json`` written to    one ``json.dumps`` per record
             /dev/null                                      (as the CLI), of the same records
  ========== ============================================= ==============================

* linearity: expansion of the national scenario at 1×, 2× and 4× its milestones,
  as µs per occurrence (flat = linear); and of the issue scenario over a 1-, 10-
  and 150-year window (only anniversaries depend on the window: flat µs per
  occurrence means no loop over the days of the window).

Times are the best of ``--repeat`` runs (1 for the big scenario). Nothing here
changes mocd: it imports the package installed in the venv (``pip install -e``).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import gc
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import time
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import gen_config  # noqa: E402  (bench/ is not a package)

FIRST = date(2025, 1, 1)
LAST = date(2034, 12, 31)
DOMAIN = "mocd.local"
T = TypeVar("T")


# -- helpers -------------------------------------------------------------------


def best(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The best wall time of ``repeat`` calls, and the last result."""
    elapsed = float("inf")
    result: Any = None
    for _ in range(max(1, repeat)):
        result = None  # free the previous result before measuring again
        gc.collect()
        start = time.perf_counter()
        result = fn()
        elapsed = min(elapsed, time.perf_counter() - start)
    return elapsed, result


# Runs one command with stdout to /dev/null and prints "wall_seconds max_rss_kb status".
# A child's ru_maxrss starts at its parent's peak RSS (Linux carries the parent's
# high-water mark through fork/vfork + exec), and this benchmark grows to GBs: so
# commands are started from this small interpreter, never from the benchmark itself.
_TIMER = """
import os, sys, time
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=[
    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def child(argv: list[str]) -> tuple[float, int, int]:
    """Run a command with stdout to /dev/null: (wall seconds, peak RSS bytes, exit status)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCD_")}
    done = subprocess.run([sys.executable, "-S", "-c", _TIMER, *argv], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        sys.stderr.write(done.stderr)
        return 0.0, 0, done.returncode or 1
    wall, rss_kb, status = done.stdout.split()
    if int(status) != 0:
        sys.stderr.write(done.stderr)
    return float(wall), int(rss_kb) * 1024, int(status)


def mocd_command() -> list[str]:
    script = Path(sys.executable).parent / "mocd"
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "from scheduler.cli import entry; entry()"]


def fmt_s(seconds: float) -> str:
    return f"{seconds:8.3f} s" if seconds < 100 else f"{seconds:8.1f} s"


def fmt_mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


# -- baselines -----------------------------------------------------------------


def raw_yaml(raw: bytes) -> Any:
    """The floor of reading: rapidyaml parse, its JSON emitter, the C JSON decoder."""
    import ryml

    tree = ryml.parse_in_arena(raw)
    return json.loads(ryml.emit_json(tree))


def raw_model(model: type[Any], cache: dict[type[Any], type[Any]] | None = None) -> type[Any]:
    """A pydantic model of the same shape as ``model`` (same keys, aliases, defaults,
    nesting, ``extra="forbid"``) whose leaves are ``Any``: pydantic-core's own cost for
    this data, without mocd's Python validators (dates, slugs, date expressions)."""
    from pydantic import BaseModel, ConfigDict, Field, create_model

    cache = {} if cache is None else cache
    if model in cache:
        return cache[model]

    def convert(annotation: Any) -> Any:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return raw_model(annotation, cache)
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple[convert(args[0]), ...]  # type: ignore[misc]
        if origin in (typing.Union, types.UnionType):
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if models:
                return convert(models[0]) | None
        return Any

    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        default = ... if info.is_required() else info.default
        # a field with its own validator (Slug, When, Emails…) takes anything
        annotation = Any if info.metadata else convert(info.annotation)
        fields[name] = (annotation, Field(default, alias=info.alias))
    config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    mirrored = create_model(f"Raw{model.__name__}", __config__=config, **fields)
    cache[model] = mirrored
    return mirrored


# -- one scenario ----------------------------------------------------------------


@dataclass
class Row:
    phase: str
    seconds: float
    baseline: float | None = None
    baseline_what: str = ""


@dataclass
class Result:
    name: str
    params: dict[str, Any]
    yaml_bytes: int = 0
    files: int = 0
    milestones: int = 0
    occurrences: int = 0  # expanded (all dates, any window)
    selected: int = 0  # overlapping the window: the records printed
    recipients: int = 0  # unit ids in the printed records
    json_bytes: int = 0
    cli_wall: float = 0.0
    cli_rss: int = 0
    startup_wall: float = 0.0
    startup_rss: int = 0
    raw_child_rss: int = 0
    rows: list[Row] = field(default_factory=list)

    def row(self, phase: str) -> Row:
        return next(r for r in self.rows if r.phase == phase)


class _Sink(io.TextIOBase):
    """Counts what is written, like ``> /dev/null`` but measurable."""

    def __init__(self) -> None:
        self.devnull = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
        self.chars = 0

    def write(self, s: str) -> int:
        self.chars += len(s)
        return self.devnull.write(s)

    def close(self) -> None:
        self.devnull.close()
        super().close()


def measure_in_process(directory: Path, result: Result, repeat: int) -> None:
    """The phases of ``mocd agenda --format json`` in this process, with their baselines."""
    from config.loader import config_files, display_name
    from config.schema import FileSpec
    from config.yaml_reader import parse_yaml

    raws = [(display_name(p), p.read_bytes()) for p in config_files(directory)]

    # read: mocd's reader (scalars kept as text, duplicate keys checked) vs the libraries.
    # Cheap phases get at least 3 runs: the first run of a process pays its page faults.
    # Baselines run first, while nothing big is alive: with the garbage collector on, a
    # full collection walks every live object, so a phase is slower next to a big heap.
    cheap = max(3, repeat)
    t_raw, _ = best(lambda: [raw_yaml(raw) for _, raw in raws], cheap)
    t_read, docs = best(lambda: [parse_yaml(raw, name) for name, raw in raws], cheap)
    result.rows.append(Row("read YAML", t_read, t_raw, "ryml parse+emit_json+json.loads"))

    # schema: the strict models vs the same shape with Any leaves
    datas = [d.data for d in docs]
    docs.clear()
    floor = raw_model(FileSpec)
    t_floor, _ = best(lambda: [floor.model_validate(d) for d in datas], cheap)
    t_schema, specs = best(lambda: [FileSpec.model_validate(d) for d in datas], cheap)
    result.milestones = sum(len(c.milestones) for s in specs for c in s.campaigns) + sum(
        len(s.milestones) for s in specs)
    specs.clear()
    datas.clear()
    result.rows.append(Row("schema (pydantic)", t_schema, t_floor, "same models, Any leaves"))
    _measure_rest(directory, result, repeat, t_raw, t_floor)


def _measure_rest(directory: Path, result: Result, repeat: int, t_raw: float,
                  t_floor: float) -> None:
    from zoneinfo import ZoneInfo

    from config.loader import load_config
    from scheduler.agenda import agenda_json, agenda_record
    from scheduler.expand import Window, expand
    from scheduler.occurrences import Occurrence

    # load: the whole of load_config (reads the files too)
    t_load, config = best(lambda: load_config(directory), repeat)
    result.rows.append(Row("load_config total", t_load, t_raw + t_floor,
                           "read + schema baselines"))

    # expand, vs building the same occurrences from their fields and sorting them
    window = Window(FIRST, LAST)
    t_expand, occurrences = best(lambda: expand(config, window, DOMAIN), repeat)
    result.occurrences = len(occurrences)
    names = [f.name for f in dataclasses.fields(Occurrence)]

    def rebuild() -> list[Any]:
        out = [Occurrence(*[getattr(o, f) for f in names]) for o in occurrences]
        out.sort(key=Occurrence.sort_key)
        return out

    t_rebuild, _ = best(rebuild, repeat)
    result.rows.append(Row("expand", t_expand, t_rebuild, "same Occurrences built + sorted"))

    # render: what the CLI writes (agenda_json line by line), vs json.dumps of the records
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    selected = [o for o in occurrences if o.overlaps(FIRST, LAST)]
    result.selected = len(selected)

    def render() -> int:
        sink = _Sink()
        for line in agenda_json(iter(selected), tz, "vi"):
            sink.write(line)
            sink.write("\n")
        sink.close()
        return sink.chars

    t_render, _ = best(render, repeat)
    records = [agenda_record(o, tz, "vi") for o in selected if not o.cancelled]
    result.recipients = sum(len(r["units"]) for r in records)

    def dumps() -> int:  # the serialisation alone: one json.dumps per record, as the CLI
        sink = _Sink()
        for record in records:
            sink.write(json.dumps(record, ensure_ascii=False))
            sink.write("\n")
        sink.close()
        return sink.chars

    t_dumps, _ = best(dumps, repeat)
    result.json_bytes = sum(len(json.dumps(r, ensure_ascii=False).encode()) + 4 for r in records)
    result.rows.append(Row("render JSON", t_render, t_dumps, "json.dumps of each same record"))
    total = t_load + t_expand + t_render
    result.rows.append(Row("in-process total", total, t_raw + t_floor + t_rebuild + t_dumps,
                           "sum of the baselines"))


def run_scenario(name: str, params: gen_config.Params, out: Path, repeat: int,
                 cli: bool = True) -> Result:
    directory = out / name
    stats = gen_config.generate(params, directory)
    result = Result(name, dataclasses.asdict(params), yaml_bytes=stats.bytes, files=stats.files)
    if cli:
        argv = [*mocd_command(), "agenda", "--config", str(directory), "--from", FIRST.isoformat(),
                "--to", LAST.isoformat(), "--format", "json"]
        result.startup_wall, result.startup_rss, _ = child(
            [sys.executable, "-c", "import scheduler.cli"])
        result.cli_wall, result.cli_rss, status = child(argv)
        if status != 0:
            raise SystemExit(f"{' '.join(argv)} failed with exit status {status}")
        _, result.raw_child_rss, _ = child([sys.executable, __file__, "--raw-child",
                                            str(directory)])
    measure_in_process(directory, result, repeat)
    gc.collect()
    return result


def raw_child(directory: Path) -> None:
    """The memory floor: the CLI's imports plus every file read raw and kept."""
    import scheduler.cli  # noqa: F401  (same imports as the command)

    kept = [raw_yaml(p.read_bytes()) for p in sorted(directory.glob("*.y*ml"))]
    assert kept


# -- linearity ---------------------------------------------------------------------


@dataclass
class Step:
    factor: int
    milestones: int
    occurrences: int
    load: float
    expand: float
    expand_nogc: float = 0.0


def linearity(base: gen_config.Params, out: Path, factors: Iterable[int]) -> list[Step]:
    from config.loader import load_config
    from scheduler.expand import Window, expand

    steps = []
    top = max(factors)
    for factor in factors:
        params = replace(base, campaigns=max(1, base.campaigns * factor // top))
        directory = out / f"linearity-{factor}x"
        stats = gen_config.generate(params, directory)
        runs = 1 if params.campaigns >= 2000 else 3  # small sizes are noisy: best of 3
        t_load, config = best(lambda d=directory: load_config(d), runs)
        t_expand, occurrences = best(lambda c=config: expand(c, Window(FIRST, LAST), DOMAIN),
                                     runs)
        occurrences = []
        gc.collect()
        gc.disable()  # the algorithm alone: a full collection may or may not land in a run
        try:
            t_nogc, occurrences = best(
                lambda c=config: expand(c, Window(FIRST, LAST), DOMAIN), runs)
        finally:
            gc.enable()
        steps.append(Step(factor, stats.milestones, len(occurrences), t_load, t_expand, t_nogc))
        del config, occurrences
        gc.collect()
    return steps


def window_scaling(directory: Path) -> list[Step]:
    """Expand one config over longer and longer windows (factor = years)."""
    from config.loader import load_config
    from scheduler.expand import Window, expand

    config = load_config(directory)
    steps = []
    for first, last in ((date(2025, 1, 1), date(2025, 12, 31)), (FIRST, LAST),
                        (date(1951, 1, 1), date(2100, 12, 31))):
        t_expand, occurrences = best(
            lambda f=first, la=last: expand(config, Window(f, la), DOMAIN), 3)
        occurrences = []
        gc.collect()
        gc.disable()
        try:
            t_nogc, occurrences = best(
                lambda f=first, la=last: expand(config, Window(f, la), DOMAIN), 3)
        finally:
            gc.enable()
        steps.append(Step(last.year - first.year + 1, 0, len(occurrences), 0.0, t_expand,
                          t_nogc))
        occurrences = []
    return steps


# -- report ----------------------------------------------------------------------


def versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for dist in ("pydantic", "pydantic-core", "rapidyaml", "holidays"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            parts.append(f"{dist} {metadata.version(dist)}")
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                "--untracked-files=no", "--",
                                "scheduler", "config"], capture_output=True, text=True,
                               check=False).stdout.strip()
        if head:
            parts.append(f"mocd {head}{' + uncommitted changes' if dirty else ''}")
    except OSError:
        pass
    return ", ".join(parts)


def print_result(r: Result) -> None:
    p = r.params
    print(f"\n== {r.name}: {p['units']:,} units, {p['groups']} groups, {p['campaigns']:,} campaigns"
          f" × {p['milestones']} milestones, {p['anniversaries']} anniversaries "
          f"({p['audience']} audience)")
    print(f"   YAML {fmt_mb(r.yaml_bytes)} in {r.files} files; {r.milestones:,} milestones → "
          f"{r.occurrences:,} occurrences, {r.selected:,} in {FIRST}..{LAST}; "
          f"{r.recipients:,} recipient ids; JSON {fmt_mb(r.json_bytes)}")
    print(f"   {'phase':<20}{'time':>11}  {'baseline':>11}  {'ratio':>7}   baseline is")
    for row in r.rows:
        ratio = f"{row.seconds / row.baseline:6.1f}×" if row.baseline else ""
        base = fmt_s(row.baseline) if row.baseline is not None else ""
        print(f"   {row.phase:<20}{fmt_s(row.seconds):>11}  {base:>11}  {ratio:>7}   "
              f"{row.baseline_what}")
    if r.selected:
        per = r.row("in-process total").seconds / r.selected * 1e6
        print(f"   {'per record':<20}{per:9.1f} µs  (in-process total / records printed)")
    if r.cli_wall:
        inproc = r.row("in-process total").seconds
        print(f"   {'CLI wall':<20}{fmt_s(r.cli_wall):>11}  {fmt_s(r.startup_wall + inproc):>11}"
              f"  {r.cli_wall / (r.startup_wall + inproc):6.1f}×   "
              f"startup ({r.startup_wall:.2f} s) + in-process total")
        print(f"   {'CLI peak RSS':<20}{r.cli_rss / 1e6:8.0f} MB  {r.raw_child_rss / 1e6:8.0f} MB"
              f"  {r.cli_rss / r.raw_child_rss:6.1f}×   imports + raw YAML data "
              f"(imports alone: {r.startup_rss / 1e6:.0f} MB)")


def print_linearity(steps: list[Step]) -> None:
    print("\n== linearity (national scenario scaled; flat µs/occurrence = linear)")
    print(f"   {'size':>5} {'milestones':>11} {'occurrences':>12} {'load':>10} {'expand':>10}"
          f" {'load µs/milestone':>18} {'expand µs/occ':>14} {'same, gc off':>13}")
    for s in steps:
        print(f"   {s.factor:>4}× {s.milestones:>11,} {s.occurrences:>12,} {fmt_s(s.load):>10}"
              f" {fmt_s(s.expand):>10} {s.load / s.milestones * 1e6:>18.1f}"
              f" {s.expand / s.occurrences * 1e6:>14.1f}"
              f" {s.expand_nogc / s.occurrences * 1e6:>13.1f}")
    if len(steps) >= 2:
        first, last = steps[0], steps[-1]
        growth = (last.expand_nogc / last.occurrences) / (first.expand_nogc / first.occurrences)
        print(f"   expand µs/occurrence (gc off) at {last.factor}× / at {first.factor}×: "
              f"{growth:.2f} (1.0 = linear; {last.factor / first.factor:.0f} = quadratic)")


def print_window(steps: list[Step], issue: Result | None) -> None:
    print("\n== window (issue scenario without since/until units; only anniversaries depend "
          "on the window)")
    print(f"   {'years':>5} {'occurrences':>12} {'expand':>10} {'expand µs/occ':>14}"
          f" {'same, gc off':>13} {'µs per added occ':>17}")
    previous: Step | None = None
    for s in steps:
        added = ""
        if previous is not None:  # the marginal cost of what the longer window adds
            cost = s.expand_nogc - previous.expand_nogc
            added = f"{cost / max(1, s.occurrences - previous.occurrences) * 1e6:.1f}"
        print(f"   {s.factor:>5} {s.occurrences:>12,} {fmt_s(s.expand):>10}"
              f" {s.expand / s.occurrences * 1e6:>14.1f}"
              f" {s.expand_nogc / s.occurrences * 1e6:>13.1f} {added:>17}")
        previous = s
    if issue is not None and len(steps) >= 2 and issue.occurrences:
        with_dated = issue.row("expand").seconds / issue.occurrences * 1e6
        plain = steps[1].expand / steps[1].occurrences * 1e6
        print(f"   units with since/until: expand {with_dated:.1f} µs/occ with them "
              f"(issue scenario above) vs {plain:.1f} without: {with_dated / plain:.1f}×")


def profile(name: str, params: gen_config.Params, out: Path, top: int) -> None:
    from scheduler.cli import main

    directory = out / name
    gen_config.generate(params, directory)
    argv = ["agenda", "--config", str(directory), "--from", FIRST.isoformat(),
            "--to", LAST.isoformat(), "--format", "json"]
    profiler = cProfile.Profile()
    saved = sys.stdout
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    try:
        profiler.runcall(main, argv)
    finally:
        sys.stdout.close()
        sys.stdout = saved
    print(f"\n== cProfile of `mocd agenda` on {name} (cumulative; profiling slows it ~2×)")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, not minutes)")
    parser.add_argument("--scenario", action="append", choices=("issue", "national"),
                        help="run only this scenario (repeatable)")
    parser.add_argument("--repeat", type=int, default=0,
                        help="runs per phase, best kept (default 3 small, 1 national)")
    parser.add_argument("--no-linearity", action="store_true")
    parser.add_argument("--profile", choices=("issue", "national"), default=None,
                        help="also print the cProfile top functions of this scenario")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where configs go")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--raw-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_child is not None:
        raw_child(args.raw_child)
        return 0

    scenarios = dict(gen_config.SCENARIOS)
    scenarios.pop("quick")
    if args.quick:
        scenarios = {
            "issue": replace(scenarios["issue"], units=500, groups=20, anniversaries=40),
            "national": replace(scenarios["national"], units=500, groups=20, campaigns=400,
                                anniversaries=40),
        }
    chosen = args.scenario or list(scenarios)
    print(f"mocd agenda benchmark — {time.strftime('%Y-%m-%d %H:%M %Z')}, "
          f"{os.cpu_count()} CPUs, {versions()}")
    print(f"window {FIRST}..{LAST}; times are best of --repeat runs; ratio = time / baseline")
    results = []
    for name in chosen:
        params = scenarios[name]
        repeat = args.repeat or (1 if params.campaigns >= 2000 else 3)
        result = run_scenario(name, params, args.out, repeat)
        print_result(result)
        results.append(result)
    steps: list[Step] = []
    windows: list[Step] = []
    if not args.no_linearity:
        steps = linearity(scenarios["national"], args.out, (1, 2, 4))
        print_linearity(steps)
        plain = replace(scenarios["issue"], ceased=0, created=0)
        gen_config.generate(plain, args.out / "issue-plain")
        windows = window_scaling(args.out / "issue-plain")
        print_window(windows, next((r for r in results if r.name == "issue"), None))
    if args.profile:
        profile(args.profile, scenarios[args.profile], args.out, 30)
    if args.json:
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "versions": versions(),
            "scenarios": [dataclasses.asdict(r) for r in results],
            "linearity": [dataclasses.asdict(s) for s in steps],
            "window": [dataclasses.asdict(s) for s in windows],
        }, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
