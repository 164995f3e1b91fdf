"""Where a campaign stands (issue 5): per deadline, which units confirmed, which are
pending, which are overdue, and what became of the last reminder each was sent.

The lead's view of "who has not submitted yet": ``mocd status CAMPAIGN`` prints it (text,
JSON or CSV for Excel) and the status page of the HTTP server shows it. Read from the
store only: the occurrences as last applied, the confirmations, the outbox.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from notifications.confirmations import standing
from notifications.planning import PLANNED_KINDS, key_prefix
from scheduler.models import OutboxRow, StoredOccurrence, Unit
from scheduler.occurrences import from_record

UnitState = Literal["confirmed", "pending", "overdue"]
CSV_FIELDS = ("uid", "title", "due", "unit", "unit_name", "state", "confirmed_at",
              "confirmed_by", "last_reminder", "last_reminder_at")


@dataclass(frozen=True, slots=True)
class UnitStatus:
    unit: str
    name: str
    state: UnitState
    confirmed_at: datetime | None
    confirmed_by: str | None  # the name the person gave on the confirm page
    last_reminder: Literal["sent", "failed"] | None  # the latest reminder or overdue notice
    last_reminder_at: datetime | None  # when it was sent (or last tried)


@dataclass(frozen=True, slots=True)
class DeadlineStatus:
    uid: str
    title: str
    due: date
    lead: str | None
    units: tuple[UnitStatus, ...]

    @property
    def counts(self) -> dict[UnitState, int]:
        found: dict[UnitState, int] = {"confirmed": 0, "pending": 0, "overdue": 0}
        for unit in self.units:
            found[unit.state] += 1
        return found


def campaigns(session: Session) -> list[str]:
    """Ids of the campaigns the store knows (for did-you-mean)."""
    return sorted(c for c in session.scalars(
        select(StoredOccurrence.campaign).distinct()
        .where(StoredOccurrence.campaign.is_not(None))) if c)


def campaign_status(session: Session, campaign: str, *, today: date, language: str = "vi"
                    ) -> list[DeadlineStatus]:
    """Every current deadline of ``campaign``, by due date: each unit that must do it (the
    workers, :attr:`~scheduler.occurrences.Occurrence.workers`) and its state —
    ``confirmed``, ``overdue`` once the due day has passed, else ``pending``."""
    stored = session.scalars(
        select(StoredOccurrence)
        .where(StoredOccurrence.campaign == campaign, StoredOccurrence.kind == "deadline",
               StoredOccurrence.removed_at.is_(None), StoredOccurrence.cancelled.is_(False))
        .order_by(StoredOccurrence.due, StoredOccurrence.uid)).all()
    occurrences = [from_record(row.data) for row in stored]
    done = standing(session, [o.uid for o in occurrences])
    names: dict[str, str] = {
        unit: name for unit, name in session.execute(select(Unit.id, Unit.name))}
    last = _last_reminders(session, [o.uid for o in occurrences])
    result = []
    for o in occurrences:
        assert o.due is not None
        units = []
        for unit in o.workers:
            confirmation = done.get(o.uid, {}).get(unit)
            state: UnitState = ("confirmed" if confirmation else "overdue" if today > o.due
                                else "pending")
            reminder, reminder_at = last.get((o.uid, unit), (None, None))
            units.append(UnitStatus(
                unit, names.get(unit, unit), state,
                confirmation.at if confirmation else None,
                confirmation.by if confirmation else None, reminder, reminder_at))
        result.append(DeadlineStatus(o.uid, o.title_in(language), o.due, o.lead, tuple(units)))
    return result


def _last_reminders(session: Session, uids: Sequence[str]
                    ) -> dict[tuple[str, str], tuple[Literal["sent", "failed"], datetime]]:
    """(uid, unit) → the state and time of its latest sent or failed reminder/notice."""
    found: dict[tuple[str, str], tuple[Literal["sent", "failed"], datetime]] = {}
    for start in range(0, len(uids), 200):
        chunk = uids[start:start + 200]
        prefixes = [key_prefix(kind, uid) for uid in chunk for kind in PLANNED_KINDS]
        rows = session.execute(
            select(OutboxRow.occurrence_uids, OutboxRow.unit, OutboxRow.state,
                   OutboxRow.fire_at, OutboxRow.sent_at)
            .where(OutboxRow.kind.in_(PLANNED_KINDS),
                   OutboxRow.state.in_(("sent", "failed")),
                   or_(*(OutboxRow.idempotency_key.startswith(p, autoescape=True)
                         for p in prefixes))))
        for occurrence_uids, unit, state, fire_at, sent_at in rows:
            if unit is None or not occurrence_uids:
                continue
            uid = occurrence_uids[0]
            when = sent_at or fire_at
            previous = found.get((uid, unit))
            if previous is None or when > previous[1]:
                found[(uid, unit)] = ("sent" if state == "sent" else "failed", when)
    return found


# --- output -----------------------------------------------------------------------------------


def _iso(moment: datetime | None, tz: ZoneInfo) -> str | None:
    return moment.astimezone(tz).isoformat(timespec="seconds") if moment else None


def status_records(statuses: Iterable[DeadlineStatus], tz: ZoneInfo) -> Iterator[dict[str, Any]]:
    """JSON objects: one per deadline, its units inside."""
    for s in statuses:
        yield {"uid": s.uid, "title": s.title, "due": s.due.isoformat(), "lead": s.lead,
               "counts": s.counts,
               "units": [{"unit": u.unit, "name": u.name, "state": u.state,
                          "confirmed_at": _iso(u.confirmed_at, tz),
                          "confirmed_by": u.confirmed_by,
                          "last_reminder": u.last_reminder,
                          "last_reminder_at": _iso(u.last_reminder_at, tz)}
                         for u in s.units]}


def status_csv(statuses: Iterable[DeadlineStatus], tz: ZoneInfo) -> str:
    """One row per (deadline, unit), with a UTF-8 BOM so that Excel reads Vietnamese right
    (the caller writes it as UTF-8); CRLF as RFC 4180 says."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for s in statuses:
        for u in s.units:
            writer.writerow([s.uid, s.title, s.due.isoformat(), u.unit, u.name, u.state,
                             _iso(u.confirmed_at, tz) or "", u.confirmed_by or "",
                             u.last_reminder or "",
                             _iso(u.last_reminder_at, tz) or ""])
    return "\ufeff" + out.getvalue()


_STATE_VI = {"confirmed": "đã xác nhận", "pending": "chưa xác nhận", "overdue": "QUÁ HẠN"}
_STATE_EN = {"confirmed": "confirmed", "pending": "pending", "overdue": "OVERDUE"}


def status_text(statuses: Sequence[DeadlineStatus], tz: ZoneInfo, language: str = "vi"
                ) -> Iterator[str]:
    """For people: each deadline, then one line per unit."""
    labels = _STATE_EN if language == "en" else _STATE_VI
    if not statuses:
        yield ("(no deadlines)" if language == "en" else "(không có hạn chót nào)")
    for s in statuses:
        c = s.counts
        yield (f"{s.due:%d/%m/%Y}  {s.title}  [{c['confirmed']}/{len(s.units)} "
               + ("confirmed]" if language == "en" else "đã xác nhận]"))
        for u in s.units:
            detail = []
            if u.confirmed_at:
                by = f" ({u.confirmed_by})" if u.confirmed_by else ""
                detail.append(f"{u.confirmed_at.astimezone(tz):%d/%m/%Y %H:%M}{by}")
            if u.last_reminder:
                assert u.last_reminder_at is not None
                word = {"sent": "nhắc đã gửi" if language != "en" else "reminder sent",
                        "failed": "nhắc GỬI LỖI" if language != "en" else "reminder FAILED"}
                detail.append(f"{word[u.last_reminder]} "
                              f"{u.last_reminder_at.astimezone(tz):%d/%m/%Y %H:%M}")
            yield f"    {labels[u.state]:<14} {u.name} ({u.unit})" + (
                f"  — {'; '.join(detail)}" if detail else "")
