"""Loading a config directory: every ``*.yaml``/``*.yml`` file, validated and merged.

Problems are collected, not raised one by one: ``mocd check`` must show every
error of every file in one run. Positions are looked up only for the errors
there are (see :mod:`config.yaml_reader`).
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from config.errors import (
    ConfigError,
    Diagnostic,
    PathPart,
    UserError,
    did_you_mean,
    format_path,
)
from config.schema import (
    AnniversarySpec,
    CalendarSpec,
    CampaignSpec,
    FileSpec,
    GroupSpec,
    MilestoneSpec,
    UnitSpec,
)
from config.yaml_reader import MAX_FILE_BYTES, locate, parse_yaml
from scheduler.expressions import At, describe

ALL = "all"
RESERVED_CAMPAIGN_IDS = frozenset({"milestone", "anniversary"})
MAX_CONFIG_BYTES = 200 * 1024 * 1024  # a national config is ~18 MB


@dataclass(frozen=True)
class Source:
    """Where a config object was written: the file and the YAML path inside it."""

    file: str
    path: tuple[PathPart, ...]

    def problem(self, message: str, *sub: PathPart, at_key: bool = False) -> Diagnostic:
        return Diagnostic(self.file, (*self.path, *sub), message, at_key=at_key)


@dataclass
class MilestoneConfig:
    """The merged, validated config of a directory: what the date engine expands."""

    calendar: CalendarSpec
    units: dict[str, UnitSpec]
    groups: dict[str, GroupSpec]
    anniversaries: dict[str, AnniversarySpec]
    campaigns: dict[str, CampaignSpec]
    milestones: dict[str, MilestoneSpec]  # stand-alone, outside any campaign
    sources: dict[tuple[str, ...], Source] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    members: dict[str, frozenset[str]] = field(default_factory=dict)  # group (and `all`) → units

    def source(self, *key: str) -> Source:
        return self.sources[key]

    def locate(self, diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
        return locate_in_files(diagnostics, self.files)

    def resolve_units(self, ids: Iterable[str]) -> frozenset[str]:
        """Unit ids with groups (and `all`) expanded."""
        result: set[str] = set()
        for item in ids:
            if item in self.members:
                result |= self.members[item]
            else:
                result.add(item)
        return frozenset(result)


def locate_in_files(diagnostics: Iterable[Diagnostic],
                    files: Mapping[str, bytes]) -> list[Diagnostic]:
    """Fill in line/column from the files' bytes (one re-parse per file that has errors)."""
    by_file: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        by_file.setdefault(d.file, []).append(d)
    out: list[Diagnostic] = []
    for name, items in by_file.items():
        out.extend(locate(items, files[name]) if name in files else items)
    return out


def display_name(path: Path) -> str:
    """A path as short as it can be: relative when under the working directory."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def config_files(directory: Path) -> list[Path]:
    if not directory.exists():
        raise UserError(f"{display_name(directory)}: config directory not found")
    if not directory.is_dir():
        raise UserError(f"{display_name(directory)}: not a directory")
    files = sorted(
        p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
    )
    if not files:
        raise UserError(f"{display_name(directory)}: no *.yaml or *.yml files in this directory")
    return files


@dataclass
class Loaded:
    """A config with the problems found so far.

    ``config`` is None when a file could not be parsed or validated; otherwise the
    date engine can still run and add its own problems (unknown references,
    cycles), so that one ``mocd check`` reports every error.
    """

    config: MilestoneConfig | None
    problems: list[Diagnostic]
    files: Mapping[str, bytes]

    def error(self, more: Iterable[Diagnostic] = ()) -> ConfigError:
        return ConfigError(locate_in_files([*self.problems, *more], self.files))


def load_config(directory: Path) -> MilestoneConfig:
    """Read, validate and merge a directory, or raise ConfigError listing every problem."""
    loaded = read_config(directory)
    if loaded.problems or loaded.config is None:
        raise loaded.error()
    return loaded.config


def read_config(directory: Path) -> Loaded:
    """Read, validate and merge a directory, keeping the problems for the caller.

    A file over :data:`~config.yaml_reader.MAX_FILE_BYTES` is refused before it is read,
    and so is everything once the files read reach :data:`MAX_CONFIG_BYTES`: a file
    dropped into the directory by mistake (a database dump, a log) must not take the
    daemon's memory."""
    documents: list[tuple[str, bytes]] = []
    problems: list[Diagnostic] = []
    total = 0
    for path in config_files(directory):
        name = display_name(path)
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES or total + size > MAX_CONFIG_BYTES:
                limit = (f"{MAX_FILE_BYTES // 1048576} MB a file" if size > MAX_FILE_BYTES
                         else f"{MAX_CONFIG_BYTES // 1048576} MB for the whole directory")
                problems.append(Diagnostic(name, (), f"{size / 1048576:.0f} MB: more than a "
                                           f"config may be ({limit}); split it or move "
                                           "other files out of the directory", 1, 1))
                continue
            documents.append((name, path.read_bytes()))
            total += size
        except OSError as exc:
            problems.append(Diagnostic(name, (), f"cannot read: {exc.strerror}", 1, 1))
    return read_documents(documents, problems)


def load_documents(documents: Iterable[tuple[str, bytes]]) -> MilestoneConfig:
    """Validate and merge named YAML documents, or raise ConfigError."""
    loaded = read_documents(documents)
    if loaded.problems or loaded.config is None:
        raise loaded.error()
    return loaded.config


def read_documents(documents: Iterable[tuple[str, bytes]],
                   problems: list[Diagnostic] | None = None) -> Loaded:
    """Validate and merge named YAML documents (the files of a directory, in order)."""
    problems = [] if problems is None else problems
    parsed: list[tuple[str, FileSpec]] = []
    raw_files: dict[str, bytes] = {}
    for name, raw in documents:
        try:
            document = parse_yaml(raw, name)
        except ConfigError as exc:
            problems.extend(exc.diagnostics)
            continue
        raw_files[name] = document.raw
        spec = _validate_file(name, document.data, problems)
        if spec is not None:
            parsed.append((name, spec))
    schema_failed = bool(problems)
    config = _merge(parsed, raw_files, problems)
    if not schema_failed:
        # A file that failed validation contributes nothing, so references into it would
        # be reported as unknown: check references only once every file is valid.
        _check_references(config, problems)
    return Loaded(None if schema_failed else config, problems, raw_files)


def _validate_file(name: str, data: Any, problems: list[Diagnostic]) -> FileSpec | None:
    if data is None:
        problems.append(Diagnostic(name, (), "the file is empty (no YAML data)", 1, 1))
        return None
    if not isinstance(data, dict):
        problems.append(
            Diagnostic(
                name, (), f"expected a mapping with top-level keys "
                f"({', '.join(FileSpec.model_fields)}), got {describe(data)}", 1, 1,
            )
        )
        return None
    try:
        return FileSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(_diagnostic(name, error) for error in exc.errors())
        return None


def _model_at(loc: tuple[PathPart, ...]) -> type[BaseModel] | None:
    """The schema model a pydantic error location points into (for key suggestions)."""
    model: Any = FileSpec
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _unwrap(info.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (tuple, list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _unwrap(arg)
            if isinstance(found, type) and issubclass(found, BaseModel):
                return found
    return annotation


def _diagnostic(name: str, error: ErrorDetails) -> Diagnostic:
    loc = tuple(error["loc"])
    kind = error["type"]
    given = error.get("input")
    if kind == "mocd":
        context = error.get("ctx") or {}
        return Diagnostic(name, (*loc, *context.get("subpath", ())), error["msg"],
                          at_key=bool(context.get("at_key")))
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(loc[:-1])
        known = model.model_fields.keys() if model else ()
        aliases = [f.alias or k for k, f in model.model_fields.items()] if model else []
        hint = did_you_mean(key, [*known, *aliases])
        if not hint and aliases:
            hint = f"; allowed: {', '.join(aliases)}"
        return Diagnostic(name, loc, f"unknown key '{key}'{hint}", at_key=True)
    if kind == "missing":
        return Diagnostic(name, loc[:-1], f"missing required key '{loc[-1]}'", at_key=True)
    if kind == "literal_error":
        expected = (error.get("ctx") or {}).get("expected", "")
        choices = [c.strip(" '") for c in str(expected).replace(" or ", ",").split(",")]
        hint = did_you_mean(str(given), choices) if isinstance(given, str) else ""
        return Diagnostic(name, loc, f"expected {expected}, got {describe(given)}{hint}")
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return Diagnostic(name, loc, f"expected a mapping (key: value), got {describe(given)}")
    if kind in ("tuple_type", "list_type"):
        return Diagnostic(name, loc, f"expected a list, got {describe(given)}")
    return Diagnostic(name, loc, error["msg"])


def _merge(
    parsed: list[tuple[str, FileSpec]], files: dict[str, bytes], problems: list[Diagnostic]
) -> MilestoneConfig:
    calendar: CalendarSpec | None = None
    config = MilestoneConfig(CalendarSpec(), {}, {}, {}, {}, {}, files=files)
    seen: dict[tuple[str, str], tuple[Source, str]] = {}

    def claim(namespace: str, ident: str, source: Source, what: str) -> bool:
        if ident == ALL and namespace == "unit":
            problems.append(source.problem(f"'{ALL}' is reserved for the group of all units", "id"))
            return False
        found = seen.get((namespace, ident))
        if found is not None:
            earlier, earlier_what = found
            problems.append(
                source.problem(
                    f"duplicate id '{ident}': already a {earlier_what} in {earlier.file} "
                    f"at {format_path(earlier.path)}",
                    "id",
                )
            )
            return False
        seen[(namespace, ident)] = (source, what)
        return True

    for name, spec in parsed:
        if spec.calendar is not None:
            if calendar is not None:
                first = config.source("calendar")
                problems.append(
                    Diagnostic(name, ("calendar",), f"calendar is already set in {first.file}",
                               at_key=True)
                )
            else:
                calendar = spec.calendar
                config.sources[("calendar",)] = Source(name, ("calendar",))
        # (YAML key, namespace of its ids, what an item is, where it goes)
        tables: list[tuple[str, str, str, dict[str, Any], tuple[Any, ...]]] = [
            ("units", "unit", "unit", config.units, spec.units),
            ("groups", "unit", "group", config.groups, spec.groups),  # share the unit ids
            ("anniversaries", "anniversary", "anniversary", config.anniversaries,
             spec.anniversaries),
        ]
        for key, namespace, what, target, items in tables:
            for i, item in enumerate(items):
                src = Source(name, (key, i))
                if claim(namespace, item.id, src, what):
                    target[item.id] = item
                    config.sources[(what, item.id)] = src
        for i, campaign in enumerate(spec.campaigns):
            src = Source(name, ("campaigns", i))
            if campaign.id in RESERVED_CAMPAIGN_IDS:
                problems.append(src.problem(
                    f"'{campaign.id}' is reserved (it starts the UIDs of stand-alone milestones "
                    "and anniversaries); choose another campaign id", "id"))
                continue
            if not claim("campaign", campaign.id, src, "campaign"):
                continue
            config.campaigns[campaign.id] = campaign
            config.sources[("campaign", campaign.id)] = src
            for j, milestone in enumerate(campaign.milestones):
                msrc = Source(name, ("campaigns", i, "milestones", j))
                if milestone.id == "period":
                    problems.append(msrc.problem(
                        "'period' is reserved for the campaign's own period; choose another id",
                        "id"))
                    continue
                if claim(f"milestone:{campaign.id}", milestone.id, msrc, "milestone"):
                    config.sources[("milestone", campaign.id, milestone.id)] = msrc
        for i, milestone in enumerate(spec.milestones):
            src = Source(name, ("milestones", i))
            if claim("milestone", milestone.id, src, "milestone"):
                config.milestones[milestone.id] = milestone
                config.sources[("milestone", "", milestone.id)] = src
    if calendar is not None:
        config.calendar = calendar
    members: dict[str, set[str]] = {g: set(spec.members) for g, spec in config.groups.items()}
    for unit in config.units.values():
        for group_id in unit.groups:
            members.setdefault(group_id, set()).add(unit.id)
    config.members = {g: frozenset(m) for g, m in members.items() if g in config.groups}
    config.members[ALL] = frozenset(config.units)
    return config


def _check_references(config: MilestoneConfig, problems: list[Diagnostic]) -> None:
    units = config.units
    targets = set(units) | set(config.groups) | {ALL}

    def unit_ref(src: Source, value: str | None, *sub: PathPart) -> None:
        if value is not None and value not in units:
            kind = "a group; name a unit here" if value in config.groups else "unknown unit"
            hint = "" if value in config.groups else did_you_mean(value, units)
            problems.append(src.problem(f"'{value}': {kind}{hint}", *sub))

    def target_refs(src: Source, values: Iterable[str], key: str) -> None:
        for i, value in enumerate(values):
            if value not in targets:
                problems.append(
                    src.problem(f"unknown unit or group '{value}'{did_you_mean(value, targets)}",
                                key, i)
                )

    for uid, unit in units.items():
        src = config.source("unit", uid)
        unit_ref(src, unit.parent, "parent")
        unit_ref(src, unit.successor, "successor")
        for i, group in enumerate(unit.groups):
            if group not in config.groups:
                problems.append(
                    src.problem(f"unknown group '{group}'{did_you_mean(group, config.groups)}",
                                "groups", i)
                )
        if unit.successor is not None and unit.until is None:
            problems.append(src.problem("a successor needs 'until' (the day the unit ceased)",
                                        "successor"))
    _check_succession(config, problems)
    for gid, group_spec in config.groups.items():
        src = config.source("group", gid)
        for i, member in enumerate(group_spec.members):
            if member not in units:
                what = ("a group; groups list units" if member in config.groups
                        else f"unknown unit{did_you_mean(member, units)}")
                problems.append(src.problem(f"'{member}': {what}", "members", i))
    for aid, anniversary in config.anniversaries.items():
        src = config.source("anniversary", aid)
        target_refs(src, anniversary.units, "units")
        for i, offset in enumerate(anniversary.reminders or ()):
            if offset.unit == "h":
                problems.append(src.problem(f"'{offset.text}': an anniversary lasts all day; "
                                            "use days (e.g. 1d)", "reminders", i))
    for cid, campaign in config.campaigns.items():
        src = config.source("campaign", cid)
        unit_ref(src, campaign.owner, "owner")
        target_refs(src, campaign.units, "units")
        if campaign.celebrates is not None and campaign.celebrates not in config.anniversaries:
            problems.append(
                src.problem(
                    f"unknown anniversary '{campaign.celebrates}'"
                    f"{did_you_mean(campaign.celebrates, config.anniversaries)}",
                    "celebrates",
                )
            )
        for milestone in campaign.milestones:
            key = ("milestone", cid, milestone.id)
            if key in config.sources:
                _check_milestone(config.sources[key], milestone, unit_ref, target_refs, problems)
    for mid, milestone in config.milestones.items():
        src = config.source("milestone", "", mid)
        _check_milestone(src, milestone, unit_ref, target_refs, problems)
        if not milestone.units and milestone.lead is None:
            problems.append(
                src.problem("a stand-alone milestone must name 'units' or 'lead'", "id")
            )


def _check_milestone(src: Source, milestone: MilestoneSpec, unit_ref: Any, target_refs: Any,
                     problems: list[Diagnostic]) -> None:
    unit_ref(src, milestone.lead, "lead")
    unit_ref(src, milestone.submit_to, "submit_to")
    target_refs(src, milestone.units or (), "units")
    target_refs(src, milestone.cc, "cc")
    if milestone.reminders and not isinstance(milestone.when, At):
        for i, offset in enumerate(milestone.reminders):
            if offset.unit == "h":
                problems.append(
                    src.problem(f"'{offset.text}': hour offsets need a timed milestone "
                                "(when: 2024-06-20 08:00)", "reminders", i)
                )
    if milestone.duration is not None and milestone.kind == "deadline":
        problems.append(src.problem("a deadline is due at one moment; duration is for events "
                                    "and periods", "duration"))
    elif milestone.duration is not None and not isinstance(milestone.when, At):
        problems.append(src.problem("duration needs a start time (when: 2024-06-20 08:00)",
                                    "duration"))


def _check_succession(config: MilestoneConfig, problems: list[Diagnostic]) -> None:
    reported: set[str] = set()
    for start in config.units:
        chain = [start]
        current = config.units[start].successor
        while current is not None and current in config.units:
            if current in chain:
                cycle = [*chain[chain.index(current):], current]
                if not reported & set(cycle):
                    problems.append(
                        config.source("unit", start).problem(
                            "unit succession forms a cycle: " + " → ".join(cycle), "successor"
                        )
                    )
                    reported.update(cycle)
                break
            chain.append(current)
            current = config.units[current].successor


def successor_on(config: MilestoneConfig, unit: str, day: Any) -> str | None:
    """The unit that receives an occurrence of ``day`` in place of ``unit`` (SPEC §4.3)."""
    seen = set()
    current: str | None = unit
    while current is not None and current not in seen:
        seen.add(current)
        spec = config.units.get(current)
        if spec is None or spec.until is None or day <= spec.until:
            return current
        current = spec.successor
    return None


def unit_names(config: MilestoneConfig) -> Mapping[str, str]:
    return {uid: u.name for uid, u in config.units.items()}
