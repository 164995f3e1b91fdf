"""The weekly digest (SPEC §5): per unit, its occurrences in the next ``digest.horizon``.

The cron job only queues rows (one per unit with email, keyed by unit and day,
so two instances or a restart queue it once); the dispatcher sends them like
any other outbox row.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from notifications.outbox import insert_new, new_row
from scheduler.database import transaction
from scheduler.models import StoredOccurrence, Unit


def queue_digests(factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """Queue this week's digest rows; returns how many were new."""
    today = now.astimezone(settings.tz).date()
    last = today + settings.digest.horizon - timedelta(days=1)
    with transaction(factory) as session:
        per_unit: dict[str, list[str]] = defaultdict(list)
        rows = session.execute(
            select(StoredOccurrence.uid, StoredOccurrence.data)
            .where(StoredOccurrence.removed_at.is_(None), StoredOccurrence.cancelled.is_(False),
                   StoredOccurrence.first_day <= last, StoredOccurrence.last_day >= today)
            .order_by(StoredOccurrence.first_day, StoredOccurrence.uid))
        for uid, data in rows:
            for unit in data.get("units", []):
                per_unit[unit].append(uid)
        units = [u.id for u in session.scalars(select(Unit)) if u.emails]
        payload: dict[str, object] = {"horizon_days": settings.digest.horizon.days}
        return insert_new(session, [
            new_row(f"digest:{unit}:{today.isoformat()}", "digest", fire_at=now,
                    created_at=now, unit=unit, uids=per_unit.get(unit, []), payload=payload)
            for unit in units])
