"""The contract between feed rendering (:mod:`calendars.feeds`, :mod:`calendars.feed_cache`)
and the feed server (:mod:`calendars.feed_server`): which feed, and its ready-to-send bytes.

Feeds are rendered once per change and served as bytes; a request never renders.
"""

from __future__ import annotations

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
    """One feed ready to send: the body, its gzip, a strong ETag (quoted, e.g. ``"3f2a…"``)
    and a ``Last-Modified`` (aware UTC, whole seconds) that never moves backwards."""

    body: bytes
    gzip: bytes
    etag: str
    last_modified: datetime


class FeedSource(Protocol):
    """Where the server gets feeds from: a lookup in memory, never a render."""

    def get(self, key: FeedKey) -> RenderedFeed | None: ...
