"""How a message leaves mocd: the transport extension point.

A transport either delivers (some or all recipients accepted), or raises a
classified error: :class:`TransientError` (retry later with backoff: 4xx,
connection refused, timeouts) or :class:`PermanentError` (5xx: retrying will
not help). Recipients refused one by one while others were accepted are
reported in :attr:`Delivery.refused`. One module per implementation:
:mod:`notifications.smtp` (aiosmtplib) and :mod:`notifications.eml_files`
(``.eml`` files in ``{state_dir}/outbox/`` when no ``mail.url`` is set).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from notifications.mime import OutgoingMessage


@dataclass(frozen=True)
class Delivery:
    """What the server (or the file system) said about one message."""

    reply: str  # the server's final reply, or the path of the written file
    accepted: tuple[str, ...] = ()
    refused: Mapping[str, str] = field(default_factory=dict)  # address → permanent reply


class TransportError(Exception):
    """Sending failed; ``reply`` is what the server said (or the local error)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class TransientError(TransportError):
    """Worth retrying later: 4xx, connection refused or reset, timeouts."""


class PermanentError(TransportError):
    """Not worth retrying: 5xx for the whole message, a malformed address."""


class Transport(Protocol):
    async def send(self, message: OutgoingMessage) -> Delivery:
        """Deliver ``message`` to its envelope recipients, or raise a TransportError."""
        ...

    async def close(self) -> None:
        """Close pooled connections; the transport may not be used afterwards."""
        ...
