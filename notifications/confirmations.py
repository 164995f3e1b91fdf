"""Completion confirmations (SPEC §5): the signed link in every deadline email, and what a
confirmation does to the outbox.

A link is ``/confirm/{token}``; the token carries the occurrence UID and the unit, signed
with HMAC-SHA-256 under a key derived from the deployment's secret
(:func:`calendars.tokens.derive_key` with :data:`CONFIRM_PURPOSE`), so a unit can only
confirm for itself and a modified token is worthless. It does not expire by itself: the
server accepts it until the occurrence's day + :data:`LINK_VALIDITY`.

Confirming cancels the unit's open reminders and overdue notices of that occurrence (with
:data:`CONFIRMED` as the reason); undoing within :data:`UNDO_WINDOW` puts them back. The
lead's own reminders list who is still pending (the dispatcher reads :func:`confirmed`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifications.planning import PLANNED_KINDS, key_prefix
from scheduler.database import transaction
from scheduler.models import Confirmation, OutboxRow
from scheduler.occurrences import Occurrence

CONFIRM_PURPOSE = "confirm-link"
UNDO_WINDOW = timedelta(hours=24)
LINK_VALIDITY = timedelta(days=90)  # after the occurrence's day
CONFIRMED = "the unit confirmed completion"  # last_error of the rows a confirmation cancels
_MAC_BYTES = 16  # 128 bits
_MAX_TOKEN = 1500  # longer is not a token of ours: refuse before decoding


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.digest(key, b"confirm\0" + payload, "sha256")[:_MAC_BYTES]


def confirm_token(key: bytes, uid: str, unit: str) -> str:
    """The token of (occurrence, unit): URL-safe, stable (the same link in every email)."""
    payload = f"{uid}\n{unit}".encode()
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def read_confirm_token(key: bytes, token: str) -> tuple[str, str] | None:
    """(uid, unit) of a genuine token, else None (forged, modified, truncated, garbage)."""
    if len(token) > _MAX_TOKEN or token.count(".") != 1:
        return None
    encoded, signature = token.split(".")
    try:
        payload = _unb64(encoded)
        mac = _unb64(signature)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(mac, _mac(key, payload)):
        return None
    if encoded != _b64(payload) or signature != _b64(mac):  # one spelling per token
        return None
    try:
        uid, unit = payload.decode("utf-8").split("\n")
    except (UnicodeDecodeError, ValueError):
        return None
    return uid, unit


_FEED_LABEL = {"vi": "Xác nhận hoàn thành", "en": "Confirm completion"}


def feed_confirm_lines(key: bytes, public_url: str
                       ) -> Callable[[Occurrence, str | None, str], list[str]]:
    """The per-unit DESCRIPTION line of a feed (``calendars.feeds.ExtraLines``): the link
    that confirms a deadline, for the units that must do it (the same link as in its
    emails). Campaign and ``all`` feeds (no unit) and anything but a live deadline get
    none."""
    base = public_url.rstrip("/")

    def lines(o: Occurrence, unit: str | None, language: str) -> list[str]:
        if unit is None or o.kind != "deadline" or o.cancelled or not o.is_worker(unit):
            return []
        label = _FEED_LABEL.get(language, _FEED_LABEL["vi"])
        return [f"{label}: {base}/confirm/{confirm_token(key, o.uid, unit)}"]

    return lines


def link_valid(day: date, today: date) -> bool:
    """Whether a link for an occurrence of ``day`` is still honoured."""
    return today <= day + LINK_VALIDITY


@dataclass(frozen=True)
class ConfirmOutcome:
    """``already``: it was confirmed before (at ``confirmed_at``) and nothing changed."""

    confirmed_at: datetime
    already: bool
    cancelled: int  # outbox rows cancelled by this confirmation


def _open_rows(uid: str, unit: str) -> list[ColumnElement[bool]]:
    """The unit's reminder and overdue rows of one occurrence (by their key's prefix)."""
    return [OutboxRow.unit == unit,
            or_(*(OutboxRow.idempotency_key.startswith(key_prefix(kind, uid, unit),
                                                        autoescape=True)
                  for kind in PLANNED_KINDS))]


def confirm(factory: sessionmaker[Session], uid: str, unit: str, *, now: datetime,
            by: str | None = None, address: str | None = None) -> ConfirmOutcome:
    """Record that ``unit`` completed occurrence ``uid``; idempotent."""
    with transaction(factory) as session:
        row = session.get(Confirmation, (uid, unit), with_for_update=True)
        if row is not None and row.undone_at is None:
            return ConfirmOutcome(row.confirmed_at, already=True, cancelled=0)
        if row is None:
            row = Confirmation(occurrence_uid=uid, unit=unit, confirmed_at=now)
            session.add(row)
        row.confirmed_at, row.undone_at = now, None
        row.confirmed_by = (by or "").strip()[:200] or None
        row.address = (address or "")[:100] or None
        result = session.execute(
            update(OutboxRow).where(*_open_rows(uid, unit),
                                    OutboxRow.state.in_(("pending", "failed")))
            .values(state="cancelled", last_error=CONFIRMED))
        return ConfirmOutcome(now, already=False,
                              cancelled=int(getattr(result, "rowcount", 0) or 0))


def undo(factory: sessionmaker[Session], uid: str, unit: str, *, now: datetime) -> bool:
    """Take a confirmation back (within :data:`UNDO_WINDOW` of it); the rows it cancelled
    are pending again (catch-up rules apply to those whose time has passed). False when
    there is nothing to undo or it is too late."""
    with transaction(factory) as session:
        row = session.get(Confirmation, (uid, unit), with_for_update=True)
        if row is None or row.undone_at is not None or now - row.confirmed_at > UNDO_WINDOW:
            return False
        row.undone_at = now
        session.execute(
            update(OutboxRow).where(*_open_rows(uid, unit), OutboxRow.state == "cancelled",
                                    OutboxRow.last_error == CONFIRMED)
            .values(state="pending", last_error=None))
        return True


@dataclass(frozen=True, slots=True)
class Standing:
    """A confirmation in force: when, and who the person said they were (may be None)."""

    at: datetime
    by: str | None


def standing(session: Session, uids: Iterable[str]) -> dict[str, dict[str, Standing]]:
    """uid → unit → its confirmation, for the standing (not undone) confirmations of
    ``uids``."""
    found: dict[str, dict[str, Standing]] = {}
    wanted = list(dict.fromkeys(uids))
    for start in range(0, len(wanted), 500):
        rows = session.execute(
            select(Confirmation.occurrence_uid, Confirmation.unit, Confirmation.confirmed_at,
                   Confirmation.confirmed_by)
            .where(Confirmation.occurrence_uid.in_(wanted[start:start + 500]),
                   Confirmation.undone_at.is_(None)))
        for uid, unit, at, by in rows:
            found.setdefault(uid, {})[unit] = Standing(at, by)
    return found


def confirmed(session: Session, uids: Iterable[str]) -> dict[str, dict[str, datetime]]:
    """uid → unit → when it confirmed, for the standing confirmations of ``uids``."""
    return {uid: {unit: s.at for unit, s in units.items()}
            for uid, units in standing(session, uids).items()}
