"""From the text of a plan to a :class:`~config.importer.model.Draft`: the pure core.

The recognisers each read one thing; this module puts their findings together
the way ``examples/`` does by hand: one campaign with its period, owner,
recipients and milestones, the anniversaries it mentions (and the one it
celebrates), and the units and groups it names, each with a slug id. Unit
names are turned into ids here, once, so that "Phòng Nội vụ" in an assignment,
in "(qua Phòng Nội vụ)" and in "Nơi nhận" is one unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from config.errors import UserError
from config.importer.anniversaries import FoundAnniversary, find_anniversaries
from config.importer.document import DocumentInfo, read_document
from config.importer.folding import fold, make_id, slug
from config.importer.milestones import FoundMilestone, find_milestones
from config.importer.model import (
    TODO_VALUE,
    Draft,
    DraftAnniversary,
    DraftCampaign,
    DraftMilestone,
    DraftPeriod,
    DraftUnit,
    Value,
)
from config.importer.periods import FoundPeriod, find_period, launch_value
from config.importer.source import Quote, SourceText
from config.importer.units import (
    Assignment,
    FoundUnit,
    find_assignments,
    find_recipients,
    is_group,
    owner,
)

RESERVED_IDS = frozenset({"milestone", "anniversary"})


class NothingToImport(UserError):
    """The text holds no plan: no anniversary, no campaign period, no dated milestone."""

    reason = ("no dates to draft from: this does not read like a plan "
              "(no anniversary, campaign period or dated milestone)")


@dataclass
class _Units:
    """Unit and group ids by name, in the order they were first named."""

    locality: str
    units: dict[str, DraftUnit] = field(default_factory=dict)
    groups: dict[str, DraftUnit] = field(default_factory=dict)

    def id_for(self, name: str, *, quote: Quote | None = None, note: str | None = None,
               group: bool | None = None) -> str:
        bare = re.sub(r"\([^)]*\)", " ", name)
        uid = make_id(bare, suffix=self.locality, limit=40)
        if uid in RESERVED_IDS:
            uid += "-1"
        as_group = is_group(name) if group is None else group
        table = self.groups if as_group else self.units
        other = self.units if as_group else self.groups
        if uid in other:
            return uid
        if uid not in table:
            table[uid] = DraftUnit(uid, name, as_group, quote, note)
        return uid


class _Taken(set[str]):
    """Ids given out, and for each base id the next number to try after it."""

    def __init__(self) -> None:
        super().__init__()
        self.next: dict[str, int] = {}


def _unique(base: str, taken: _Taken) -> str:
    # Numbers already tried for this base were taken then and still are: start after
    # them, or a plan with thousands of like items is quadratic.
    candidate, n = base, taken.next.get(base, 2)
    if n > 2:
        candidate = f"{base}-{n}"
        n += 1
    while candidate in taken or candidate in RESERVED_IDS:
        candidate = f"{base}-{n}"
        n += 1
    taken.add(candidate)
    taken.next[base] = n
    return candidate


def _years(doc: DocumentInfo, period: FoundPeriod | None,
           milestones: list[FoundMilestone]) -> tuple[int, int] | None:
    """The campaign's first and last year, for "Hằng năm" items."""
    first = doc.year
    last = None
    if period is not None:
        for value, is_end in ((period.start, False), (period.end, True)):
            m = re.match(r'"?(\d{4})', value.yaml)
            if m:
                if is_end:
                    last = int(m[1])
                else:
                    first = first or int(m[1])
    dated = [int(m[1]) for f in milestones if (m := re.match(r'"?(\d{4})', f.when.yaml))]
    if dated:
        first = min([first or min(dated), *dated]) if first is None else first
        last = max([last or 0, *dated])
    if first is None:
        return None
    return first, max(last or first, first)


def _inferred_period(doc: DocumentInfo, milestones: list[FoundMilestone],
                     src: SourceText) -> DraftPeriod | None:
    """A programme without "Thời gian thi đua": from its date to the end of its last year."""
    years = [int(m[1]) for f in milestones if (m := re.match(r'"?(\d{4})', f.when.yaml))]
    if not years or doc.year is None:
        return None
    if doc.date is not None:
        start = Value(doc.date.isoformat(), todo="suy ra từ ngày ban hành văn bản: kiểm tra lại")
    elif doc.month is not None:
        start = Value(f"{doc.year}-{doc.month:02d}",
                      todo=f"suy ra từ tháng ban hành ({doc.month}/{doc.year}); ngày không "
                      "đọc được: thay bằng ngày cụ thể nếu biết")
    else:
        start = launch_value(doc, "ngày bắt đầu")
    end = Value(f'"{max(years)}"', todo=f"suy ra từ mốc cuối cùng (năm {max(years)}): "
                "văn bản không ghi thời gian của chương trình")
    quotes = doc.quotes[-1:] if doc.quotes else ()
    return DraftPeriod(start, end, tuple(quotes))


def _shift_note(day: date | None) -> tuple[Value | None, str | None]:
    """``previous`` for a span ending on a weekend 31 December: keep the deadline in its year."""
    if day is None or day.weekday() < 5:
        return None, None
    return (Value("previous"),
            f"31/12/{day.year} là ngày nghỉ: mặc định hạn dời sang năm sau; "
            "`previous` giữ hạn trong năm")


def _anniversary(found: FoundAnniversary, aid: str, units: tuple[str, ...]) -> DraftAnniversary:
    notes = [f"TODO: kiểm tra: {p}" for p in found.problems]
    if found.origin is not None:
        origin = Value(found.origin.isoformat())
    else:
        origin = Value(TODO_VALUE, todo=f"ngày gốc (YYYY-MM-DD): văn bản chỉ ghi năm "
                       f"{found.origin_year}")
    if found.n % 5 == 0:
        every = Value("5")
    else:
        every = Value("1", note=f"{found.n} không chia hết cho 5: kỷ niệm hằng năm để lần "
                      f"thứ {found.n} có trên lịch")
    return DraftAnniversary(aid, found.title, origin, every, found.founding, units,
                            found.quotes, tuple(notes))


def draft_plan(text: str, source_name: str, campaign_id: str | None = None) -> Draft:
    """Draft a config from the text of a plan; :class:`NothingToImport` if it holds none."""
    src = SourceText.of(text)
    doc = read_document(src)
    anniversaries = find_anniversaries(src)
    period = find_period(src, doc)
    assignments = find_assignments(src)
    excluded = [span for a in anniversaries for span in a.spans]
    if doc.date_span:
        excluded.append(doc.date_span)
    if period is not None:
        excluded.append(period.span)
    prelim = find_milestones(src, years=None, excluded=excluded, assignments=assignments)
    years = _years(doc, period, [m for m in prelim.milestones if "yearly" not in m.when.yaml])
    found = find_milestones(src, years=years, excluded=excluded, assignments=assignments)
    if not anniversaries and period is None and not found.milestones:
        raise NothingToImport(f"{source_name}: {NothingToImport.reason}")
    locality = slug(doc.locality or "")
    registry = _Units(locality)
    recipients = find_recipients(src, doc.level)
    lead = owner(assignments)
    campaign = _campaign(src, doc, period, found.milestones, anniversaries, recipients,
                         lead, registry, campaign_id, source_name)
    anniversary_units = campaign.units or ("all",)
    taken = _Taken()
    drafted = tuple(_anniversary(a, _unique(a.id, taken), anniversary_units)
                    for a in anniversaries)
    celebrates, note = _celebrated(doc, anniversaries, drafted)
    campaign = DraftCampaign(
        campaign.id, campaign.title, campaign.document, campaign.owner, campaign.units,
        campaign.period, celebrates, campaign.milestones, campaign.quotes, campaign.notes,
        campaign.owner_quote, note)
    return Draft(source_name, campaign, drafted, tuple(registry.units.values()),
                 tuple(registry.groups.values()), tuple(found.unused))


def _celebrated(doc: DocumentInfo, found: list[FoundAnniversary],
                drafted: tuple[DraftAnniversary, ...]) -> tuple[str | None, str | None]:
    """The anniversary named in the title, else the only one the plan names."""
    if doc.title_span is not None:
        a, b = doc.title_span
        for f, d in zip(found, drafted, strict=True):
            if any(a <= s < b for s, _ in f.spans):
                return d.id, None
    if len(drafted) == 1:
        return drafted[0].id, ("TODO: kiểm tra: kế hoạch nhắc tới ngày kỷ niệm này nhưng tên "
                               "kế hoạch không nêu; xóa dòng nếu phong trào không chào mừng nó")
    return None, None


def _campaign_title(doc: DocumentInfo, source_name: str) -> str:
    title = doc.title or ""
    title = re.sub(r"^(?:phát động|phat d\S*ng)\s+", "", title, flags=re.IGNORECASE)
    if re.match(r"(?:thực hiện|thuc hi\S*n|thuwe)\b", fold(title)) and doc.type_name:
        title = f"{doc.type_name} {title[:1].lower()}{title[1:]}"
    title = " ".join(title.split())
    if not title:
        return f"{doc.type_name or 'Kế hoạch'} ({source_name})"
    return title[:1].upper() + title[1:]


def _campaign(src: SourceText, doc: DocumentInfo, period: FoundPeriod | None,
              found: list[FoundMilestone], anniversaries: list[FoundAnniversary],
              recipients: list[FoundUnit], lead: Assignment | None, registry: _Units,
              campaign_id: str | None, source_name: str) -> DraftCampaign:
    units: list[str] = []
    for r in recipients:
        note = "cấp trên: nhận để biết, không phải người nhận nhắc việc" if r.superior else None
        uid = registry.id_for(r.name, quote=r.quote, note=note, group=r.group)
        if not r.superior and uid not in units:
            units.append(uid)
    owner_id = None
    owner_quote = None
    notes: list[str] = []
    if lead is not None:
        owner_id = registry.id_for(lead.lead, quote=lead.quote)
        owner_quote = lead.quote
        for name in lead.supporting:
            uid = registry.id_for(name, quote=lead.quote, note="phối hợp")
            if uid not in units:
                units.append(uid)
    else:
        notes.append("TODO: không tìm thấy đơn vị theo dõi, đôn đốc (owner): thêm `owner:` "
                      "nếu cần")
    if not units:
        notes.append("TODO: không tìm thấy danh sách \"Nơi nhận\": `units: [all]` gửi cho "
                     "mọi đơn vị")
    taken = _Taken()
    milestones: list[DraftMilestone] = []
    draft_period: DraftPeriod | None = None
    if period is not None:
        end = period.end
        if period.event is not None:
            event_id = _unique(make_id(period.event.title, limit=40), taken)
            direction = "after" if period.event_after else "before"
            end = Value(f"{{{direction}: {event_id}, days: {period.event_days}}}",
                        note=f"{'sau khi kết thúc' if period.event_after else 'trước ngày'} "
                        f"{period.event.title}")
            milestones.append(DraftMilestone(
                event_id, period.event.title,
                Value(TODO_VALUE, todo="ngày giờ diễn ra (YYYY-MM-DD HH:MM hoặc YYYY-MM-DD): "
                      "văn bản không ghi"),
                kind="event", quotes=(period.event.quote,)))
        draft_period = DraftPeriod(period.start, end, (period.quote,))
    elif found:
        draft_period = _inferred_period(doc, found, src)
    for f in found:
        shift, shift_note = _shift_note(f.year_end)
        notes_f = [shift_note] if shift_note else []
        milestones.append(DraftMilestone(
            _unique(make_id(f.title, limit=40), taken), f.title, f.when,
            units=tuple(registry.id_for(u, quote=f.quotes[0]) for u in f.units),
            lead=registry.id_for(f.lead, quote=f.quotes[0]) if f.lead else None,
            submit_to=(registry.id_for(f.submit_to, quote=f.quotes[0], group=False)
                       if f.submit_to else None),
            on_non_working_day=shift, quotes=f.quotes, notes=tuple(notes_f)))
    cid = campaign_id or _campaign_id(doc, period, found, anniversaries, source_name)
    return DraftCampaign(
        cid, _campaign_title(doc, source_name),
        Value(doc.describe(), todo=_document_todo(doc)), owner_id,
        tuple(units) or ("all",), draft_period, None, tuple(milestones),
        (*doc.quotes, *([src.quote(*doc.title_span)] if doc.title_span else [])),
        tuple(notes), owner_quote)


def _document_todo(doc: DocumentInfo) -> str | None:
    missing = [what for what, known in (("số", doc.number), ("ngày", doc.date),
                                        ("cơ quan ban hành", doc.issuer)) if not known]
    if not missing:
        return None
    return f"{', '.join(missing)} văn bản không có hoặc không đọc được: bổ sung theo bản gốc"


def _campaign_id(doc: DocumentInfo, period: FoundPeriod | None, found: list[FoundMilestone],
                 anniversaries: list[FoundAnniversary], source_name: str) -> str:
    year = doc.year
    if year is None:
        for text in [*(f.when.yaml for f in found),
                     *([period.end.yaml, period.start.yaml] if period else [])]:
            if m := re.search(r"\d{4}", text):
                year = int(m[0])
                break
    if year is None and anniversaries:
        year = anniversaries[0].origin_year + anniversaries[0].n
    parts = [doc.type_name or "", doc.locality or "", str(year or "")]
    if not doc.type_name or not doc.locality:
        stem = re.sub(r"\.[^.]*$", "", source_name.rsplit("/", 1)[-1])
        return make_id(stem, limit=48) if slug(stem) else make_id(" ".join(parts))
    return make_id(" ".join(parts), limit=48)

