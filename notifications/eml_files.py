"""Delivery into ``.eml`` files (SPEC §3: no ``mail.url`` → ``{state_dir}/outbox/``).

Each message becomes one file that any mail client opens. The file name comes
from the ``Message-ID`` — reduced to ``[A-Za-z0-9._-]`` plus a hash of the
exact ID, so a hostile ID (``<../../etc/passwd@x>``) cannot leave the
directory and two IDs that reduce alike cannot overwrite each other — and
carries no timestamp: writing the same message again (a re-send after a
crash) replaces its file instead of adding a second one. Files are written
atomically: a temporary file in the same directory, ``fsync``, ``os.replace``,
then ``fsync`` of the directory, so a reader never sees half a message and a
crash never leaves one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from notifications.mime import OutgoingMessage
from notifications.transport import Delivery, PermanentError, TransientError

__all__ = ["EmlFileTransport", "eml_file_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_READABLE_MAX = 80


def eml_file_name(message: OutgoingMessage) -> str:
    """``{readable Message-ID}-{16 hex}.eml``; without a Message-ID, named by the content
    (:func:`notifications.mime.from_email` makes the same content the same bytes)."""
    message_id = message.message_id.strip()
    if message_id:
        readable = _UNSAFE.sub("_", message_id.strip("<>")).strip("._-")[:_READABLE_MAX]
        key = message_id.encode("utf-8", "surrogateescape")
    else:
        readable = "no-message-id"
        key = message.data
    digest = hashlib.sha256(key).hexdigest()[:16]
    readable = readable.rstrip("._-")
    return f"{readable}-{digest}.eml" if readable else f"{digest}.eml"


class EmlFileTransport:
    """The :class:`notifications.transport.Transport` that writes ``.eml`` files.

    The directory is created on first use (mode ``0o750``, less if the umask
    says so). Every file system error is a :class:`TransientError`: a full
    disk or a permission fixed by the admin lets a later attempt succeed.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    async def send(self, message: OutgoingMessage) -> Delivery:
        """Write ``message``; the reply is the file's path, every recipient accepted."""
        if not message.recipients:
            raise PermanentError("the message has no recipient")
        data = message.data
        path = self.directory / eml_file_name(message)
        if path.parent != self.directory:  # cannot happen: the name has no separator
            raise AssertionError(f"unsafe .eml name {path.name!r}")
        try:
            await asyncio.to_thread(self._write, path, data)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise TransientError(f"cannot write {path}: {reason}") from exc
        return Delivery(reply=str(path), accepted=message.recipients)

    async def close(self) -> None:
        """Nothing to close: every send is complete on disk when it returns."""

    def _write(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".eml.tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                os.fchmod(file.fileno(), 0o640)
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _fsync_directory(self.directory)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (where the platform lets us open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
