"""Messages ready for the wire: :class:`OutgoingMessage` and the MIME writer behind it.

mocd's own emails all have one shape (SPEC §5): ``multipart/alternative`` (text/plain, then
text/html, UTF-8), wrapped with an ``.ics`` attachment in ``multipart/mixed`` when there is
one. Writing that shape directly costs a small fraction of building an
:class:`email.message.EmailMessage` with ``policy.default`` and flattening it again for
SMTP, which parses and refolds every header and was three quarters of mocd's CPU per
email (bench/dispatch.py). The bytes are 7-bit (base64 for non-ASCII bodies, RFC 2047
encoded-words in headers, written by :mod:`notifications.messages`), so they go to any
server unchanged, with or without 8BITMIME, and are produced once per message.

Anything else that has to be sent (tests, tools) can still be built as an ``EmailMessage``
and turned into an :class:`OutgoingMessage` with :func:`from_email`: transports take only
this one type.
"""

from __future__ import annotations

import base64
import copy
import email.policy
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.headerregistry import AddressHeader
from email.message import EmailMessage, Message
from email.utils import getaddresses

from notifications.transport import PermanentError

__all__ = ["Attachment", "OutgoingMessage", "compose", "from_email", "message_recipients",
           "message_sender"]

_MAX_7BIT_LINE = 998  # RFC 5322 §2.1.1


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message as it is sent: the envelope, and the exact bytes (CRLF line ends).

    ``smtputf8`` says that the envelope or a header needs the SMTPUTF8 extension (never
    for mocd's own messages; possible for one built elsewhere, see :func:`from_email`).
    """

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str = ""
    subject: str = ""
    smtputf8: bool = False

    def parsed(self) -> EmailMessage:
        """The message parsed back with ``policy.default`` (for tests and inspection)."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment: its bytes, already encoded as base64 lines (see :func:`base64_lines`),
    since the same ``.ics`` goes into many messages and is encoded once."""

    content_type: str  # with parameters, e.g. 'text/calendar; charset="utf-8"; method=PUBLISH'
    filename: str
    encoded: bytes


def base64_lines(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, each ending with CRLF (RFC 2045 §6.8)."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _text_part(subtype: str, text: str, boundary: str) -> bytes:
    """A text part in canonical form (CRLF line breaks): 7bit when it is short-lined ASCII
    that cannot be mistaken for a boundary, else base64 of the UTF-8."""
    body = "\r\n".join(text.splitlines()) + "\r\n"
    if (body.isascii() and boundary not in body
            and all(len(line) <= _MAX_7BIT_LINE for line in body.split("\r\n"))):
        return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: 7bit\r\n\r\n" + body).encode("ascii")
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n").encode("ascii") + base64_lines(
                body.encode("utf-8"))


def compose(headers: Sequence[tuple[str, str]], text: str, html: str,
            attachment: Attachment | None, *, key: str) -> bytes:
    """The bytes of one mocd email.

    ``headers`` are (name, value) pairs whose values are 7-bit text, possibly folded with
    ``"\\n "`` (as :mod:`notifications.messages` writes them); they come first, then
    ``MIME-Version`` and the content headers. ``key`` (the outbox idempotency key) makes the
    boundaries, so the same message is the same bytes. A boundary starts with ``=_``, which
    base64 cannot produce, and 7-bit parts are checked not to contain it.
    """
    seed = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    alternative = f"=_mocd_{seed}_alt"
    mixed = f"=_mocd_{seed}_mix"
    for name, value in headers:
        if not (name + value).isascii() or "\r" in value or "\n" in value.replace("\n ", ""):
            raise ValueError(f"header {name} is not one line of 7-bit text")
    head = "".join(f"{name}: {value}\r\n".replace("\n ", "\r\n ") for name, value in headers)
    alt_body = b"".join((
        f"--{alternative}\r\n".encode("ascii"), _text_part("plain", text, alternative),
        f"\r\n--{alternative}\r\n".encode("ascii"), _text_part("html", html, alternative),
        f"\r\n--{alternative}--\r\n".encode("ascii")))
    if attachment is None:
        return b"".join((
            head.encode("ascii"), b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative;\r\n boundary="{alternative}"\r\n\r\n'
            .encode("ascii"), alt_body))
    return b"".join((
        head.encode("ascii"), b"MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/mixed;\r\n boundary="{mixed}"\r\n\r\n'.encode("ascii"),
        f"--{mixed}\r\n".encode("ascii"),
        f'Content-Type: multipart/alternative;\r\n boundary="{alternative}"\r\n\r\n'
        .encode("ascii"), alt_body,
        f"\r\n--{mixed}\r\n".encode("ascii"),
        f"Content-Type: {attachment.content_type}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{attachment.filename}"\r\n\r\n'
        .encode("ascii"), attachment.encoded,
        f"\r\n--{mixed}--\r\n".encode("ascii")))


# --- any EmailMessage ---------------------------------------------------------------------

# What cannot appear in a mailbox on an SMTP command line (outside a quoted local part).
_UNSAFE_ADDRESS = re.compile(r'[\s<>"]')
_QUOTED_LOCAL_PART = re.compile(r'^"(?:[^"\\\r\n]|\\.)*"')


def _addresses(message: Message, names: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for name in names:
        for value in message.get_all(name, []):
            if isinstance(value, AddressHeader):  # email.policy.default messages
                found.extend(address.addr_spec for address in value.addresses)
            else:  # compat32 messages: plain strings
                found.extend(addr for _, addr in getaddresses([str(value)]))
    return [address for address in found if address and address != "<>"]


def check_address(address: str, role: str) -> str:
    """``address`` if it can be put on an SMTP command line, else a PermanentError."""
    unquoted = _QUOTED_LOCAL_PART.sub("", address, count=1)
    if _UNSAFE_ADDRESS.search(unquoted) or any(ord(ch) < 32 for ch in address):
        raise PermanentError(f"malformed {role} address {address!r}")
    return address


def message_recipients(message: Message) -> tuple[str, ...]:
    """The envelope recipients: every address of To, Cc and Bcc, once each, in order.

    Raises :class:`PermanentError` when there is none or one cannot be sent.
    """
    recipients = tuple(dict.fromkeys(_addresses(message, ("To", "Cc", "Bcc"))))
    if not recipients:
        raise PermanentError("the message has no To, Cc or Bcc address")
    return tuple(check_address(address, "recipient") for address in recipients)


def message_sender(message: Message) -> str:
    """The envelope sender (``MAIL FROM``): the ``Sender`` header, else the first ``From``."""
    found = _addresses(message, ("Sender",)) or _addresses(message, ("From",))
    if not found:
        raise PermanentError("the message has no From address")
    return check_address(found[0], "sender")



def _content_key(message: EmailMessage) -> bytes:
    """Headers and decoded contents of every part, without the MIME boundaries."""
    digest = hashlib.sha256()
    for part in message.walk():
        for name, value in part.items():
            if part.is_multipart() and name.lower() == "content-type":
                value = part.get_content_type()
            digest.update(f"{name}: {value}\n".encode("utf-8", "surrogateescape"))
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            digest.update(payload if isinstance(payload, bytes) else b"")
        digest.update(b"\0")
    return digest.digest()


def from_email(message: EmailMessage) -> OutgoingMessage:
    """Any ``EmailMessage`` as an :class:`OutgoingMessage`.

    The envelope comes from the headers (``Sender`` or the first ``From``; every address of
    To, Cc and Bcc, once each); Bcc is not transmitted. Bodies are made 7-bit; headers that
    RFC 2047 cannot carry (a non-ASCII Message-ID) and non-ASCII addresses set ``smtputf8``.
    Boundaries are derived from the content, so the same message gives the same bytes.
    Raises :class:`PermanentError` for a message that cannot be sent (no or a malformed
    address).
    """
    sender = message_sender(message)
    recipients = message_recipients(message)
    outgoing = copy.deepcopy(message)
    del outgoing["Bcc"]
    del outgoing["Resent-Bcc"]
    seed = _content_key(message).hex()[:24]
    for i, part in enumerate(p for p in outgoing.walk() if p.is_multipart()):
        part.set_boundary(f"=_mocd_{seed}_{i}")
    utf8 = not (sender + "".join(recipients)).isascii()
    policy = (email.policy.SMTPUTF8 if utf8 else email.policy.SMTP).clone(cte_type="7bit")
    try:
        data = _flatten(outgoing, policy)
    except UnicodeEncodeError:  # a header RFC 2047 cannot carry
        utf8 = True
        data = _flatten(outgoing, email.policy.SMTPUTF8.clone(cte_type="7bit"))
    return OutgoingMessage(sender, recipients, data, str(message.get("Message-ID") or ""),
                           " ".join(str(message.get("Subject") or "").split()), utf8)


def _flatten(message: EmailMessage, policy: email.policy.EmailPolicy[EmailMessage]) -> bytes:
    with io.BytesIO() as buffer:
        BytesGenerator(buffer, policy=policy).flatten(message)
        return buffer.getvalue()
