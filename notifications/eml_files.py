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
import email.policy
import hashlib
import os
import re
import tempfile
from email.message import EmailMessage
from pathlib import Path

from notifications.smtp import message_recipients
from notifications.transport import Delivery, TransientError

__all__ = ["EmlFileTransport", "eml_file_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_READABLE_MAX = 80


def eml_file_name(message: EmailMessage) -> str:
    """``{readable Message-ID}-{16 hex}.eml``; without a Message-ID, named by the content."""
    message_id = str(message.get("Message-ID") or "").strip()
    if message_id:
        readable = _UNSAFE.sub("_", message_id.strip("<>")).strip("._-")[:_READABLE_MAX]
        key = message_id.encode("utf-8", "surrogateescape")
    else:
        readable = "no-message-id"
        key = _content_key(message)
    digest = hashlib.sha256(key).hexdigest()[:16]
    readable = readable.rstrip("._-")
    return f"{readable}-{digest}.eml" if readable else f"{digest}.eml"


def _content_key(message: EmailMessage) -> bytes:
    """Headers and decoded contents of every part, without the random MIME boundaries."""
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


def _bytes(message: EmailMessage) -> bytes:
    """CRLF as on the wire, non-ASCII headers RFC 2047-encoded; Bcc kept (this is the record)."""
    try:
        return message.as_bytes(policy=email.policy.SMTP)
    except UnicodeEncodeError:  # a header that cannot be encoded (a non-ASCII Message-ID)
        return message.as_bytes(policy=email.policy.SMTPUTF8)


class EmlFileTransport:
    """The :class:`notifications.transport.Transport` that writes ``.eml`` files.

    The directory is created on first use (mode ``0o750``, less if the umask
    says so). Every file system error is a :class:`TransientError`: a full
    disk or a permission fixed by the admin lets a later attempt succeed.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    async def send(self, message: EmailMessage) -> Delivery:
        """Write ``message``; the reply is the file's path, every To/Cc/Bcc address accepted."""
        recipients = message_recipients(message)
        data = _bytes(message)
        path = self.directory / eml_file_name(message)
        if path.parent != self.directory:  # cannot happen: the name has no separator
            raise AssertionError(f"unsafe .eml name {path.name!r}")
        try:
            await asyncio.to_thread(self._write, path, data)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise TransientError(f"cannot write {path}: {reason}") from exc
        return Delivery(reply=str(path), accepted=recipients)

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
