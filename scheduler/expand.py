"""Expansion: the config in, dated occurrences out (SPEC §4.1–§4.3). Pure.

Milestones may count from other milestones, campaign periods and anniversaries;
those references form a graph that is evaluated depth-first with memoisation,
so each milestone is dated once and a cycle is reported with the ids in it.
Everything is linear in the number of occurrences: no loop walks the days of
the window.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from config.errors import ConfigError, Diagnostic, PathPart, did_you_mean
from config.loader import Loaded, MilestoneConfig, Source, successor_on
from config.schema import CampaignSpec, MilestoneSpec
from scheduler.anniversaries import (
    anniversary_day,
    anniversary_numbers,
    decree_145_class,
    lunar_yearly,
    origin_date,
    title_en,
    title_vi,
)
from scheduler.dates import Span, add_months
from scheduler.expressions import (
    DEFAULT_EVENT_LENGTH,
    At,
    Between,
    DateExpr,
    Fixed,
    LunarYearly,
    Monthly,
    Quarterly,
    Ref,
    Relative,
    Yearly,
    recurrence_instances,
)
from scheduler.lunar import NonexistentLunarDate
from scheduler.occurrences import AnniversaryInfo, Occurrence
from scheduler.working_days import WorkingCalendar

Instance = tuple[str | None, Span]  # (period key of a recurrence, span)
Node = tuple[str, str, str]  # ("m", campaign or "", milestone) | ("p", campaign, "")


@dataclass(frozen=True)
class Window:
    """The inclusive date range anniversaries are expanded in (they never end)."""

    first: date
    last: date


class _Failed(Exception):
    """An expression could not be dated; its problem is already recorded."""


def working_calendar(config: MilestoneConfig) -> WorkingCalendar:
    spec = config.calendar
    extra: dict[date, str] = {}
    for holiday in spec.extra_holidays:
        day = holiday.start
        while day <= (holiday.to or holiday.start):
            extra[day] = holiday.name or "Ngày nghỉ"
            day += timedelta(days=1)
    return WorkingCalendar(
        weekend=spec.weekend,
        official_holidays=spec.holidays == "vn",
        extra_holidays=extra,
        working_days=spec.working_days,
    )


class Expander:
    def __init__(self, config: MilestoneConfig, calendar: WorkingCalendar, uid_domain: str,
                 problems: Iterable[Diagnostic] = ()) -> None:
        self.config = config
        self.calendar = calendar
        self.domain = uid_domain
        self.problems: list[Diagnostic] = list(problems)
        self._memo: dict[Node, list[Instance] | None] = {}
        self._visiting: list[Node] = []
        self._windows: dict[tuple[Node, str | None], tuple[date, date]] = {}
        self._recipient_cache: dict[tuple[object, ...], tuple[str, ...]] = {}
        # Who receives what changes only on the days units start (since) or stop (the
        # day after until); between two such days the recipients of a target list are
        # the same, so the cache is keyed by that stretch, not by the day.
        boundaries = {u.since for u in config.units.values() if u.since is not None}
        boundaries |= {u.until + timedelta(days=1) for u in config.units.values()
                       if u.until is not None and u.until < date.max}
        self._boundaries = sorted(boundaries)
        self._dated_units = bool(self._boundaries)
        self._specs: dict[Node, MilestoneSpec] = {
            ("m", "", mid): m for mid, m in config.milestones.items()}
        for cid, campaign in config.campaigns.items():
            for m in campaign.milestones:
                if ("milestone", cid, m.id) in config.sources:  # not a rejected duplicate
                    self._specs.setdefault(("m", cid, m.id), m)

    # -- the reference graph -------------------------------------------------

    def _source(self, node: Node) -> Source:
        if node[0] == "p":
            return self.config.source("campaign", node[1])
        return self.config.source("milestone", node[1], node[2])

    def _label(self, node: Node) -> str:
        if node[0] == "p":
            return f"{node[1]}/period"
        return f"{node[1]}/{node[2]}" if node[1] else node[2]

    def instances(self, node: Node) -> list[Instance] | None:
        """The final dates of a milestone or period (None when it cannot be dated)."""
        if node in self._memo:
            return self._memo[node]
        if node in self._visiting:
            cycle = [*self._visiting[self._visiting.index(node):], node]
            names = " → ".join(self._label(n) for n in cycle)
            where = ("period",) if node[0] == "p" else ("when",)
            self.problems.append(self._source(node).problem(f"reference cycle: {names}", *where))
            for member in cycle:
                self._memo[member] = None
            return None
        self._visiting.append(node)
        try:
            result: list[Instance] | None = (
                self._period(node[1]) if node[0] == "p" else self._dated_milestone(node)
            )
        except _Failed:
            result = None
        except (OverflowError, ValueError) as exc:  # date arithmetic past year 1 or 9999
            if not isinstance(exc, OverflowError) and "out of range" not in str(exc):
                raise
            where = ("period",) if node[0] == "p" else ("when",)
            self.problems.append(self._source(node).problem(
                "this date falls outside the calendar (years 1 to 9999)", *where))
            result = None
        finally:
            self._visiting.pop()
        self._memo.setdefault(node, result)
        return self._memo[node]

    def _period(self, campaign_id: str) -> list[Instance]:
        campaign = self.config.campaigns[campaign_id]
        assert campaign.period is not None
        src = self.config.source("campaign", campaign_id)
        start = self._single(campaign.period.start, campaign_id, src, ("period", "start"))
        end = self._single(campaign.period.end, campaign_id, src, ("period", "end"))
        if end.last < start.first:
            self._fail(src, f"the period ends ({end.last}) before it starts ({start.first})",
                       "period", "end")
        return [(None, Span(start.first, end.last))]

    def _dated_milestone(self, node: Node) -> list[Instance]:
        milestone = self._specs[node]
        src = self._source(node)
        raw = self._evaluate(milestone.when, node[1] or None, src, ("when",),
                             milestone.duration or DEFAULT_EVENT_LENGTH)
        shift = milestone.on_non_working_day or ("next" if milestone.kind == "deadline" else "keep")
        out: list[Instance] = []
        for key, span in raw:
            if milestone.kind == "deadline":
                # A deadline is the single day (or moment) it is due; a written span
                # is kept as its window.
                if span.first != span.last:
                    self._windows[(node, key)] = (span.first, span.last)
                due = self._move(span.last, shift)
                if span.start_at is not None:
                    moment = datetime.combine(due, span.start_at.time())
                    span = Span(due, due, moment, moment)
                else:
                    span = Span.day(due)
            else:
                moved = self._move(span.first, shift)
                if moved != span.first:
                    span = span.shifted((moved - span.first).days)
            out.append((key, span))
        return out

    def _move(self, day: date, shift: str) -> date:
        if shift == "next":
            return self.calendar.next_working_day(day)
        if shift == "previous":
            return self.calendar.previous_working_day(day)
        return day

    # -- date expressions ----------------------------------------------------

    def _fail(self, src: Source, message: str, *path: PathPart) -> None:
        self.problems.append(src.problem(message, *path))
        raise _Failed

    def _single(self, expr: DateExpr, campaign: str | None, src: Source,
                path: tuple[PathPart, ...]) -> Span:
        found = self._evaluate(expr, campaign, src, path, DEFAULT_EVENT_LENGTH)
        if len(found) != 1:
            self._fail(src, "must be a single date, but its reference recurs", *path)
        return found[0][1]

    def _evaluate(self, expr: DateExpr, campaign: str | None, src: Source,
                  path: tuple[PathPart, ...], length: timedelta) -> list[Instance]:
        if isinstance(expr, Fixed):
            return [(None, expr.span)]
        if isinstance(expr, At):
            return [(None, Span.timed(expr.start, length))]
        if isinstance(expr, Between):
            start = self._single(expr.start, campaign, src, (*path, "start"))
            end = self._single(expr.end, campaign, src, (*path, "end"))
            if end.last < start.first:
                self._fail(src, f"the range ends ({end.last}) before it starts ({start.first})",
                           *path)
            return [(None, Span(start.first, end.last))]
        if isinstance(expr, Relative):
            return [(key, Span.day(self._count(expr, span)))
                    for key, span in self._reference(expr.ref, campaign, src,
                                                     (*path, expr.direction))]
        if isinstance(expr, LunarYearly):
            return [(str(year), Span.day(lunar_yearly(year, expr.month, expr.day)))
                    for year in range(expr.first, expr.last + 1)]
        if isinstance(expr, Yearly | Monthly | Quarterly):
            return [(key, span) for key, span in recurrence_instances(expr)]
        raise TypeError(expr)

    def _count(self, expr: Relative, span: Span) -> date:
        sign = -1 if expr.direction == "before" else 1
        base = span.first if expr.direction == "before" else span.last
        if expr.working_days:
            return self.calendar.add_working_days(base, sign * expr.days)
        day = add_months(base, sign * (12 * expr.years + expr.months))
        return day + sign * timedelta(days=expr.days, weeks=expr.weeks)

    def _reference(self, ref: Ref, campaign: str | None, src: Source,
                   path: tuple[PathPart, ...]) -> list[Instance]:
        config = self.config
        if ref.anniversary is not None:
            spec = config.anniversaries.get(ref.anniversary)
            if spec is None:
                self._fail(src, f"unknown anniversary '{ref.anniversary}'"
                           f"{did_you_mean(ref.anniversary, config.anniversaries)}", *path)
                raise AssertionError  # unreachable: _fail raises
            assert ref.n is not None
            return [(None, Span.day(anniversary_day(spec.origin, ref.n)))]
        target = ref.campaign or campaign
        if ref.campaign is not None and ref.campaign not in config.campaigns:
            self._fail(src, f"unknown campaign '{ref.campaign}' in '{ref.text}'"
                       f"{did_you_mean(ref.campaign, config.campaigns)}", *path)
        if ref.period_edge is not None:
            if target is None:
                self._fail(src, f"'{ref.text}': a stand-alone milestone has no period; "
                           "write CAMPAIGN/period.start", *path)
            assert target is not None
            if config.campaigns[target].period is None:
                self._fail(src, f"'{ref.text}': campaign '{target}' has no period", *path)
            found = self.instances(("p", target, ""))
            if found is None:
                raise _Failed
            span = found[0][1]
            edge = span.first if ref.period_edge == "start" else span.last
            return [(None, Span.day(edge))]
        assert ref.milestone is not None
        node: Node = ("m", target or "", ref.milestone)
        if node not in self._specs:
            ids = ([m.id for m in config.campaigns[target].milestones] if target
                   else list(config.milestones))
            self._fail(src, f"unknown reference '{ref.text}'{did_you_mean(ref.milestone, ids)}",
                       *path)
        found = self.instances(node)
        if found is None:
            raise _Failed
        return found

    # -- occurrences ---------------------------------------------------------

    def _recipients(self, targets: Iterable[str], lead: str | None, day: date,
                    exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
        targets = tuple(targets)
        stretch = bisect.bisect_right(self._boundaries, day)
        key = (targets, lead, stretch, exclude)
        cached = self._recipient_cache.get(key)
        if cached is None:
            ids = set(self.config.resolve_units(targets))
            if lead is not None:
                ids.add(lead)
            if self._dated_units:
                ids = {s for u in ids if (s := successor_on(self.config, u, day)) is not None
                       and self._exists_on(s, day)}
            cached = tuple(sorted(ids.difference(exclude)))
            self._recipient_cache[key] = cached
        return cached

    def _exists_on(self, unit: str, day: date) -> bool:
        spec = self.config.units.get(unit)
        return spec is None or spec.since is None or spec.since <= day

    def _lead(self, lead: str | None, day: date) -> str | None:
        if lead is None or not self._dated_units:
            return lead
        return successor_on(self.config, lead, day)

    def _milestone_occurrences(self, campaign: CampaignSpec | None,
                               milestone: MilestoneSpec) -> list[Occurrence]:
        cid = campaign.id if campaign else ""
        found = self.instances(("m", cid, milestone.id))
        if not found:
            return []
        targets = milestone.units if milestone.units is not None else (
            campaign.units if campaign else ())
        lead = milestone.lead or (campaign.owner if campaign else None)
        prefix = f"{cid}.{milestone.id}" if campaign else f"milestone.{milestone.id}"
        out = []
        for key, span in found:
            day = span.first
            units = self._recipients(targets, lead, day)
            out.append(Occurrence(
                uid=f"{prefix}.{key}@{self.domain}" if key else f"{prefix}@{self.domain}",
                title=milestone.title,
                title_en=milestone.title_en,
                kind=milestone.kind,
                span=span,
                units=units,
                due=day if milestone.kind == "deadline" else None,
                window=self._windows.get((("m", cid, milestone.id), key)),
                campaign=campaign.id if campaign else None,
                milestone=milestone.id,
                key=key,
                lead=self._lead(lead, day),
                cc=self._recipients(milestone.cc, None, day, units) if milestone.cc else (),
                submit_to=self._lead(milestone.submit_to, day),
                reminders=milestone.reminders,
                description=milestone.description,
                location=milestone.location,
                url=milestone.url or (campaign.url if campaign else ""),
                document=campaign.document if campaign else "",
                celebrates=campaign.celebrates if campaign else None,
                cancelled=milestone.cancelled,
            ))
        return out

    def _period_occurrence(self, campaign: CampaignSpec) -> Occurrence | None:
        found = self.instances(("p", campaign.id, ""))
        if not found:
            return None
        span = found[0][1]
        return Occurrence(
            uid=f"{campaign.id}.period@{self.domain}",
            title=campaign.title,
            title_en=campaign.title_en,
            kind="period",
            span=span,
            units=self._recipients(campaign.units, campaign.owner, span.first),
            campaign=campaign.id,
            lead=self._lead(campaign.owner, span.first),
            description=campaign.description,
            url=campaign.url,
            document=campaign.document,
            celebrates=campaign.celebrates,
        )

    def _anniversaries(self, window: Window) -> list[Occurrence]:
        out = []
        for aid, spec in self.config.anniversaries.items():
            origin = origin_date(spec.origin)
            for n in anniversary_numbers(spec.origin, spec.every, window.first, window.last):
                try:
                    day = anniversary_day(spec.origin, n)
                except NonexistentLunarDate as exc:  # outside the lunar table's years
                    self.problems.append(
                        self.config.source("anniversary", aid).problem(str(exc), "origin"))
                    break
                cls = decree_145_class(n)
                out.append(Occurrence(
                    uid=f"anniversary.{aid}.{n}@{self.domain}",
                    title=title_vi(spec.title, n, origin, day),
                    title_en=title_en(spec.title_en or spec.title, n, origin, day),
                    kind="anniversary",
                    span=Span.day(day),
                    units=self._recipients(spec.units, None, day),
                    anniversary=AnniversaryInfo(aid, n, cls, origin, spec.founding),
                    reminders=spec.reminders,
                    description=spec.description,
                    location=spec.location,
                    url=spec.url,
                ))
        return out

    def expand(self, window: Window) -> list[Occurrence]:
        occurrences: list[Occurrence] = []
        for campaign in self.config.campaigns.values():
            if campaign.period is not None and (period := self._period_occurrence(campaign)):
                occurrences.append(period)
            for milestone in campaign.milestones:
                if ("m", campaign.id, milestone.id) in self._specs:
                    occurrences.extend(self._milestone_occurrences(campaign, milestone))
        for milestone in self.config.milestones.values():
            occurrences.extend(self._milestone_occurrences(None, milestone))
        occurrences.extend(self._anniversaries(window))
        if self.problems:
            raise ConfigError(self.config.locate(self.problems))
        occurrences.sort(key=Occurrence.sort_key)
        return occurrences


def expand(config: MilestoneConfig, window: Window, uid_domain: str = "mocd.local",
           calendar: WorkingCalendar | None = None) -> list[Occurrence]:
    """Every occurrence of the config, sorted by start then UID; ConfigError if undatable."""
    return Expander(config, calendar or working_calendar(config), uid_domain).expand(window)


def expand_loaded(loaded: Loaded, window: Window,
                  uid_domain: str = "mocd.local") -> tuple[MilestoneConfig, list[Occurrence]]:
    """Expand a config read with its problems, reporting the loader's and the engine's together.

    A config whose files all validated is expanded even when it has other
    problems (unknown units, say), so that date problems show in the same run.
    """
    if loaded.config is None:
        raise loaded.error()
    config = loaded.config
    expander = Expander(config, working_calendar(config), uid_domain, loaded.problems)
    return config, expander.expand(window)
