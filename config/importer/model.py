"""The draft config: what the recognisers found, ready to be written as YAML.

Every drafted item keeps the :class:`~config.importer.source.Quote` of the lines
it came from and the notes and TODOs the writer turns into comments. A
:class:`Value` is one YAML value as it will be written; values the importer
cannot know are written ``TODO`` (``TODO_VALUE``) so that ``mocd check`` rejects
the draft until the admin has filled them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from config.importer.source import Quote

TODO_VALUE = "TODO"


@dataclass(frozen=True)
class Value:
    """A YAML value as written (``2023-Q3``, ``{start: 2023-Q3, end: 2023-Q4}``, ``TODO``).

    ``todo`` says why the admin must look at it; ``note`` explains it without
    asking for anything.
    """

    yaml: str
    todo: str | None = None
    note: str | None = None

    @property
    def unknown(self) -> bool:
        """True when the value holds a ``TODO`` placeholder the admin must replace."""
        return TODO_VALUE in self.yaml


@dataclass(frozen=True)
class DraftUnit:
    id: str
    name: str
    group: bool = False
    quote: Quote | None = None
    note: str | None = None


@dataclass(frozen=True)
class DraftAnniversary:
    id: str
    title: str
    origin: Value
    every: Value
    founding: bool
    units: tuple[str, ...]
    quotes: tuple[Quote, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DraftMilestone:
    id: str
    title: str
    when: Value
    kind: Literal["deadline", "event", "period"] = "deadline"
    units: tuple[str, ...] = ()
    lead: str | None = None
    submit_to: str | None = None
    on_non_working_day: Value | None = None
    quotes: tuple[Quote, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DraftPeriod:
    start: Value
    end: Value
    quotes: tuple[Quote, ...] = ()


@dataclass(frozen=True)
class DraftCampaign:
    id: str
    title: str
    document: Value
    owner: str | None
    units: tuple[str, ...]
    period: DraftPeriod | None
    celebrates: str | None
    milestones: tuple[DraftMilestone, ...]
    quotes: tuple[Quote, ...] = ()
    notes: tuple[str, ...] = ()
    owner_quote: Quote | None = None
    celebrates_note: str | None = None


@dataclass(frozen=True)
class Draft:
    """Everything drafted from one plan."""

    source_name: str
    campaign: DraftCampaign | None
    anniversaries: tuple[DraftAnniversary, ...] = ()
    units: tuple[DraftUnit, ...] = ()
    groups: tuple[DraftUnit, ...] = ()
    unused_dates: tuple[Quote, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def milestones(self) -> tuple[DraftMilestone, ...]:
        return self.campaign.milestones if self.campaign else ()

    def values(self) -> list[Value]:
        """Every date value of the draft, in the order the writer emits them."""
        out: list[Value] = []
        if self.campaign is not None:
            if self.campaign.period is not None:
                out += [self.campaign.period.start, self.campaign.period.end]
            out += [m.when for m in self.campaign.milestones]
        out += [a.origin for a in self.anniversaries]
        return out

    @property
    def todo_values(self) -> int:
        """How many ``TODO`` placeholders the admin must replace before ``mocd check``."""
        return sum(v.unknown for v in self.values())
