"""Logging for the daemon: stderr, one line per event, text or JSON (``--log-format``).

No line carries a secret: the tokens in the paths of feeds, confirmation links, status
and agenda pages are replaced by ``<token>`` in every line, whoever logged it (aiohttp
quotes the first bytes of a request line it cannot parse).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

# A path under a tokened prefix, up to what cannot be in one (a request line is often cut
# after 100 bytes: a token cut in the middle is still part of one and still hidden).
_TOKENED = re.compile(r"/(feeds|confirm|status|agenda)/([^\s\"'<>?#]*)")
_ID_SEGMENTS = {"feeds": 1, "confirm": 0, "status": 1, "agenda": 1}  # before the token


def redact(text: str) -> str:
    """``text`` with the tokens of mocd's URLs replaced by ``<token>``: ``/feeds/UNIT/…``,
    ``/feeds/campaign/ID/…``, ``/feeds/all/…``, ``/confirm/…``, ``/status/ID/…``,
    ``/agenda/UNIT/…`` keep their ids and lose everything after them."""
    if "/" not in text:
        return text

    def hide(match: re.Match[str]) -> str:
        prefix, segments = match[1], match[2].split("/")
        keep = _ID_SEGMENTS[prefix] + (prefix == "feeds" and segments[0] == "campaign")
        if len(segments) <= keep:  # /feeds/UNIT.ics (a public feed): no token
            return match[0]
        return "/".join([f"/{prefix}", *segments[:keep], "<token>"])

    return _TOKENED.sub(hide, text)


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds")
        text = record.getMessage()
        if record.exc_info:
            text += " | " + self.formatException(record.exc_info)
        text = redact(text).replace("\r", " ").replace("\n", " | ")
        return f"{stamp} {record.levelname} {record.name}: {text}"


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


class LoopErrors:
    """The event loop's exception handler: errors asyncio reports without raising them.

    ``accept()`` failing (``EMFILE``: out of file descriptors) is reported by asyncio at
    every retry, once a second per listener, each with a traceback: here it is one line
    at most every :attr:`every` seconds, saying how many were not shown. The rest go to
    asyncio's own handler.
    """

    every = 5.0

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._hidden: dict[str, int] = {}
        self._log = logging.getLogger("mocd.loop")

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if not message.startswith("socket.accept() out of system resource"):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self._last.get(message, float("-inf")) < self.every:
            self._hidden[message] = self._hidden.get(message, 0) + 1
            return
        self._last[message] = now
        hidden = self._hidden.pop(message, 0)
        error = context.get("exception")
        self._log.error("cannot accept connections: %s%s (raise LimitNOFILE, or lower "
                        "http.max_connections)", error or message,
                        f"; {hidden} more like it not shown" if hidden else "")


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Json() if fmt == "json" else _OneLine())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
