"""The confirm page (issue 5, SPEC §5): ``/confirm/{token}``, one button, POST.

Pure parts only — the form nonce, the view model and the rendering; the HTTP handler that
reads the store and calls :func:`notifications.confirmations.confirm` is in
:mod:`calendars.pages`.

**Why a form nonce.** The token in the URL is the capability: it names one occurrence and
one unit and is signed, so whoever holds the link may confirm, and a cross-site forger
would need the link first. What the token does not tell is whether a person pressed the
button: mail scanners and link previewers follow links (GET never changes anything), and
some also send a bare POST to a URL they found. So the form carries a nonce,
``HMAC(K_form, token ‖ issued)`` with ``issued`` the time the page was rendered: a POST
must come from a page the server rendered for *this* token within
:data:`FORM_VALIDITY`. It needs no server state and no cookie, holds across instances
sharing the ``secret_key``, and does not depend on ``Origin``/``Referer`` headers, which
privacy settings strip and reverse proxies rewrite. A stale or missing nonce changes
nothing and gets the page again with a fresh form (403), so an old tab costs one more tap.
Pages also forbid framing (``frame-ancestors 'none'``: no clickjacking of the one button)
and send no ``Referer`` (the token must not leak to other sites).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from calendars.agenda_page import (
    days_text,
    long_day,
    moment_text,
    page_language,
    page_template,
)
from notifications.confirmations import UNDO_WINDOW

FORM_PURPOSE = "page-form"  # calendars.tokens.derive_key(secret, FORM_PURPOSE)
FORM_VALIDITY = timedelta(hours=24)
FORM_SKEW = timedelta(minutes=5)  # instances' clocks may differ a little
_NONCE_BYTES = 16

State = Literal["open", "overdue", "confirmed"]
Notice = Literal["confirmed", "already", "undone", "too_late", "stale"]


# -- the form nonce -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormNonce:
    issued: int  # Unix seconds when the page was rendered
    nonce: str


def _nonce(key: bytes, token: str, issued: int) -> str:
    digest = hmac.new(key, f"confirm-form\0{token}\0{issued}".encode(),
                      hashlib.sha256).digest()[:_NONCE_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def form_nonce(key: bytes, token: str, now: datetime) -> FormNonce:
    """The nonce a page rendered ``now`` for ``token`` carries in its forms."""
    issued = int(now.timestamp())
    return FormNonce(issued, _nonce(key, token, issued))


def check_nonce(key: bytes, token: str, issued: str, nonce: str, now: datetime) -> bool:
    """Whether a POSTed (issued, nonce) pair was made here for ``token``, and is fresh."""
    if not issued.isascii() or not issued.isdigit() or len(issued) > 12 or len(nonce) > 64:
        return False
    age = now.timestamp() - int(issued)
    if not -FORM_SKEW.total_seconds() <= age <= FORM_VALIDITY.total_seconds():
        return False
    return hmac.compare_digest(_nonce(key, token, int(issued)).encode("ascii"),
                               nonce.encode("utf-8", "surrogateescape"))


# -- the view -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfirmationState:
    """The standing confirmation of (occurrence, unit), as the store has it."""

    confirmed_at: datetime
    confirmed_by: str | None = None


@dataclass(frozen=True, slots=True)
class ConfirmView:
    language: Literal["vi", "en"]
    unit_name: str
    title: str
    campaign: str | None
    due: str
    state: State
    state_text: str
    can_confirm: bool
    can_undo: bool
    undo_hint: str
    notice: str | None
    notice_kind: Literal["ok", "info", "warn"]
    form: FormNonce


CONFIRM_TEXT: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Xác nhận hoàn thành", "details": "Thông tin", "unit": "Đơn vị",
        "milestone": "Nhiệm vụ", "campaign": "Thuộc", "due": "Hạn hoàn thành",
        "state": "Tình trạng", "by": "Người xác nhận",
        "by_hint": "Họ tên, chức vụ (không bắt buộc).",
        "confirm": "Xác nhận đã hoàn thành", "undo": "Hoàn tác",
        "open": "Chưa xác nhận hoàn thành", "overdue": "QUÁ HẠN {d}, chưa xác nhận",
        "confirmed_state": "Đã xác nhận hoàn thành lúc {at}", "by_whom": " ({by})",
        "undo_hint": "Bấm nhầm? Có thể hoàn tác đến {until}.",
        "n_confirmed": "Đã xác nhận lúc {at}. Đơn vị sẽ không nhận thêm lời nhắc cho "
                       "nhiệm vụ này.",
        "n_already": "Đã xác nhận trước đó, lúc {at}. Không có gì thay đổi.",
        "n_undone": "Đã hoàn tác xác nhận. Các lời nhắc còn lại sẽ tiếp tục được gửi.",
        "n_too_late": "Không thể hoàn tác: chỉ hoàn tác được trong 24 giờ sau khi xác nhận.",
        "n_stale": "Trang đã quá cũ nên chưa có gì thay đổi. Vui lòng bấm lại nút bên dưới.",
        "footer": "Trang do hệ thống nhắc việc mocd tạo. Chỉ đơn vị nhận được đường dẫn này "
                  "mới xác nhận được.",
    },
    "en": {
        "title": "Confirm completion", "details": "Details", "unit": "Unit",
        "milestone": "Milestone", "campaign": "Part of", "due": "Due",
        "state": "Status", "by": "Confirmed by",
        "by_hint": "Name and position (optional).",
        "confirm": "Confirm completion", "undo": "Undo",
        "open": "Not confirmed yet", "overdue": "OVERDUE by {d}, not confirmed",
        "confirmed_state": "Confirmed at {at}", "by_whom": " ({by})",
        "undo_hint": "Pressed by mistake? You can undo until {until}.",
        "n_confirmed": "Confirmed at {at}. The unit gets no more reminders for this "
                       "milestone.",
        "n_already": "Already confirmed on {at}. Nothing changed.",
        "n_undone": "The confirmation was undone. The remaining reminders will be sent.",
        "n_too_late": "Cannot undo: a confirmation can only be undone within 24 hours.",
        "n_stale": "This page was too old, so nothing changed. Please press the button "
                   "again.",
        "footer": "A page of the mocd reminder system. Only the unit this link was sent to "
                  "can confirm.",
    },
}

_NOTICE_KIND: dict[Notice, Literal["ok", "info", "warn"]] = {
    "confirmed": "ok", "already": "info", "undone": "info", "too_late": "warn",
    "stale": "warn"}


def confirm_view(*, language: str | None, unit_name: str, title: str, due: date,
                 campaign: str | None, confirmation: ConfirmationState | None,
                 now: datetime, tz: ZoneInfo, form: FormNonce,
                 notice: Notice | None = None) -> ConfirmView:
    """The page for one (occurrence, unit) in its current state, after ``notice``."""
    lang = page_language(language)
    t = CONFIRM_TEXT[lang]
    today = now.astimezone(tz).date()
    at = moment_text(confirmation.confirmed_at, tz, lang) if confirmation else ""
    state: State
    if confirmation is not None:
        state = "confirmed"
        state_text = t["confirmed_state"].format(at=at) + (
            t["by_whom"].format(by=confirmation.confirmed_by)
            if confirmation.confirmed_by else "")
    elif due < today:
        state, state_text = "overdue", t["overdue"].format(d=days_text((today - due).days, lang))
    else:
        state, state_text = "open", t["open"]
    until = confirmation.confirmed_at + UNDO_WINDOW if confirmation else None
    can_undo = until is not None and now <= until
    return ConfirmView(
        language=lang, unit_name=unit_name, title=title, campaign=campaign,
        due=long_day(due, lang), state=state, state_text=state_text,
        can_confirm=confirmation is None, can_undo=can_undo,
        undo_hint=t["undo_hint"].format(until=moment_text(until, tz, lang)) if until else "",
        notice=t[f"n_{notice}"].format(at=at) if notice else None,
        notice_kind=_NOTICE_KIND[notice] if notice else "info", form=form)


def render_confirm_html(view: ConfirmView) -> str:
    return page_template("confirm.html.j2").render(
        view=view, t=CONFIRM_TEXT[view.language], language=view.language)
