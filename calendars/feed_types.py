"""The contract between feed rendering (:mod:`calendars.feeds`, :mod:`calendars.feed_cache`)
and the feed server (:mod:`calendars.feed_server`): which feed, and its ready-to-send bytes.

Feeds are rendered once per change and served as bytes; a request never renders.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

FeedKind = Literal["unit", "campaign", "all"]


@dataclass(frozen=True, slots=True, order=True)
class FeedKey:
    """A unit's feed (``unit``, unit id), a campaign's (``campaign``, campaign id) or all."""

    kind: FeedKind
    id: str = "all"

    @property
    def name(self) -> str:
        """Stable text form (``unit:phong-noi-vu``, ``campaign:thi-dua-2023``, ``all:all``)."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class RenderedFeed:
    """One feed ready to send: its gzip, a strong ETag of the body (quoted, e.g.
    ``"3f2a…"``), a ``Last-Modified`` (aware UTC, whole seconds) that never moves backwards,
    and the body's size.

    Only the gzip is kept in memory: every calendar client asks for gzip, and a feed's
    gzip is about a tenth of its body (5,000 units × 270 events: 1.4 GB of bodies against
    0.1 GB of gzip). :attr:`body` decompresses it for the rare client without gzip (the
    server keeps the last few it needed).
    """

    gzip: bytes
    etag: str
    last_modified: datetime
    size: int

    @property
    def body(self) -> bytes:
        return gzip.decompress(self.gzip)


class FeedSource(Protocol):
    """Where the server gets feeds from: a lookup in memory, never a render."""

    def get(self, key: FeedKey) -> RenderedFeed | None: ...
