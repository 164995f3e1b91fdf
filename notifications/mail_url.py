"""``mail.url`` (SPEC §3): where and how mocd hands its mail to an SMTP server.

Forms::

    smtp://[user[:password]@]host[:port][?tls=starttls|none][&timeout=SECONDS]
    smtps://[user[:password]@]host[:port][?timeout=SECONDS]

* ``smtp://`` is STARTTLS by default (port 587). ``tls=none`` is plain SMTP
  (port 25 by default); an explicit port 25 without ``tls=`` also means
  ``none``. STARTTLS is *required* when asked for: a server that does not
  offer it is an error, never a silent downgrade to plain text.
* ``smtps://`` is implicit TLS (TLS from the first byte), port 465 by default.
* The user name and password are percent-decoded: a password containing
  ``/ ? # @ % :`` or spaces is written ``%2F %3F %23 %40 %25 %3A %20``.
* ``timeout`` is the time allowed for connecting and for each server reply
  (seconds, default 30).

``mail.password_file`` keeps the password out of the settings file (which is
world-readable in ``/etc/mocd``): the file's content, as is (not
percent-encoded; the line end after it is dropped), replaces the URL's
password, or is the password of a URL with a user and no password
(``smtp://mocd@mail.example.vn:587``). :func:`mail_server` reads it when the
transport is opened; a missing, unreadable or empty file is a one-line
UserError naming the setting and the file, never quoting what it holds.

A bad URL is a :class:`config.errors.UserError` with a one-line message that
never contains the password, not even a piece of it: when a stray ``/``, ``?``
or ``#`` in an unencoded password splits the URL in the wrong place, the
message says so instead of quoting what it found.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from config.errors import UserError, did_you_mean

if TYPE_CHECKING:
    from config.settings import MailSettings
    from notifications.transport import Transport

TlsMode = Literal["none", "starttls", "implicit"]

DEFAULT_TIMEOUT = 30.0
_PARAMETERS = ("tls", "timeout")


@dataclass(frozen=True)
class MailServer:
    """A parsed ``mail.url``. ``repr()`` and :attr:`redacted_url` never show the password."""

    host: str
    port: int
    tls: TlsMode
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_url(cls, url: str) -> MailServer:
        return parse_mail_url(url)

    @property
    def redacted_url(self) -> str:
        """The URL for logs and messages: ``smtp://mocd:***@mail.example.vn:587?tls=starttls``."""
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        user = ""
        if self.username is not None:
            user = quote(self.username, safe="")
            user += ":***@" if self.password else "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = "" if self.tls == "implicit" else f"?tls={self.tls}"
        return f"{scheme}://{user}{host}:{self.port}{query}"


def _fail(problem: str) -> UserError:
    return UserError(f"mail.url: {problem}")


def _decode(text: str, what: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise _fail(f"the {what} is not valid UTF-8 after percent-decoding") from None


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):  # [IPv6]:port
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise _fail("an IPv6 address must be written in brackets: smtp://[2001:db8::1]:587")
        return host, (rest[1:] if rest else None)
    host, colon, port = hostport.partition(":")
    return host, (port if colon else None)


def parse_mail_url(url: str) -> MailServer:
    """``smtp://user:pass@host:587?tls=starttls`` → :class:`MailServer`, or a UserError."""
    text = url.strip()
    if not text:
        raise _fail("empty (leave mail.url unset to write .eml files instead)")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise _fail("contains control characters")
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unbalanced '[': the message would quote the URL
        raise _fail("not a valid URL") from None

    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        shown = f"'{scheme}' " if scheme.isalnum() and len(scheme) <= 20 else ""
        raise _fail(f"unknown scheme {shown}(use smtp:// or smtps://, "
                    "e.g. smtp://user:password@mail.example.vn:587)")
    if not parts.netloc:
        raise _fail("no host (e.g. smtp://mail.example.vn:587)")
    # The password ends at the last '@' of the authority; an unencoded '/', '?' or '#'
    # inside it ends the authority early and leaves that '@' in the path/query/fragment.
    if "@" in text[len(scheme) + 3 + len(parts.netloc):]:
        raise _fail("a '/', '?' or '#' in the user name or password must be percent-encoded "
                    "(%2F, %3F, %23)")
    if parts.path not in ("", "/"):
        raise _fail("unexpected path after the host (only smtp[s]://[user:password@]host[:port]"
                    "[?tls=…&timeout=…])")
    if parts.fragment:
        raise _fail("unexpected '#…' after the URL")

    userinfo, at, hostport = parts.netloc.rpartition("@")
    username: str | None = None
    password: str | None = None
    if at:
        raw_user, colon, raw_password = userinfo.partition(":")
        if not raw_user:
            raise _fail("a password is given without a user name")
        username = _decode(raw_user, "user name")
        password = _decode(raw_password, "password") if colon else None

    host, raw_port = _split_host_port(hostport)
    if not host:
        raise _fail("no host (e.g. smtp://mail.example.vn:587)")
    if any(ch.isspace() or ch in "[]<>\\\"'" for ch in host):
        raise _fail("the host contains characters a host name cannot have")
    host = host.lower()

    port: int | None = None
    if raw_port is not None and raw_port != "":
        if not (raw_port.isascii() and raw_port.isdigit()) or not 0 < int(raw_port) < 65536:
            raise _fail("the port must be a number from 1 to 65535")
        port = int(raw_port)

    params: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        key = name.lower()
        if key not in _PARAMETERS:
            shown = name if name.isidentifier() and len(name) <= 30 else "…"
            raise _fail(f"unknown parameter '{shown}'{did_you_mean(key, _PARAMETERS)} "
                        "(known: tls, timeout)")
        if key in params:
            raise _fail(f"parameter '{key}' given twice")
        params[key] = value

    tls = _tls_mode(scheme, params.get("tls"), port)
    if port is None:
        port = {"implicit": 465, "starttls": 587, "none": 25}[tls]
    return MailServer(host=host, port=port, tls=tls, username=username, password=password,
                      timeout=_timeout(params.get("timeout")))


def _tls_mode(scheme: str, given: str | None, port: int | None) -> TlsMode:
    value = None if given is None else given.strip().lower()
    if scheme == "smtps":
        if value not in (None, "implicit"):
            raise _fail("smtps:// is TLS from the first byte and takes no tls= parameter; "
                        "for STARTTLS write smtp://…?tls=starttls")
        return "implicit"
    if value is None:
        if port == 465:
            raise _fail("port 465 is implicit TLS: write smtps://host:465 "
                        "(or add ?tls=starttls or ?tls=none)")
        return "none" if port == 25 else "starttls"
    if value == "starttls":
        return "starttls"
    if value == "none":
        return "none"
    if value in ("implicit", "ssl", "tls"):
        raise _fail(f"tls={value}: for implicit TLS write smtps://host (port 465)")
    shown = value if value.isalnum() and len(value) <= 20 else "…"
    raise _fail(f"tls must be 'starttls' or 'none', not '{shown}'")


def _timeout(given: str | None) -> float:
    if given is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(given.strip().removesuffix("s"))
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= 3600):
        shown = given if re.fullmatch(r"[-+.0-9A-Za-z]{1,20}", given) else "…"
        raise _fail(f"timeout must be a number of seconds between 0 and 3600, not '{shown}'")
    return seconds


# More than any password; a longer file is not one (e.g. the settings file given by mistake).
MAX_PASSWORD_BYTES = 4096


def read_password_file(path: Path) -> str:
    """The password in ``path`` (``mail.password_file``), or a one-line UserError.

    One line end after the password is dropped (``install … /dev/stdin`` and editors
    add it); nothing else is stripped. No message quotes the content.
    """

    def fail(problem: str) -> UserError:
        return UserError(f"mail.password_file: {path}: {problem}")

    try:
        with path.open("rb") as file:
            data = file.read(MAX_PASSWORD_BYTES + 1)
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as exc:
        raise fail(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_PASSWORD_BYTES:
        raise fail(f"longer than {MAX_PASSWORD_BYTES} bytes: it should hold the password only")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise fail("not valid UTF-8") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise fail("empty: write the SMTP password into it")
    if "\n" in text or "\r" in text:
        raise fail("more than one line: it should hold the password only")
    return text


def mail_server(mail: MailSettings) -> MailServer:
    """``mail.url`` parsed, its password from ``mail.password_file`` when that is set.

    A UserError for a bad URL, a URL without a user name to log in with (a password
    alone means nothing to SMTP AUTH), or a password file that cannot be used.
    """
    server = parse_mail_url(mail.url)
    if mail.password_file is None:
        return server
    if server.username is None:
        raise UserError("mail.password_file: mail.url names no user to log in as "
                        "(write smtp://USER@host…)")
    return replace(server, password=read_password_file(mail.password_file))


def open_transport(mail: MailSettings, outbox: Path) -> Transport:
    """SMTP for a ``mail.url``; without one, ``.eml`` files in ``outbox`` (SPEC §3).

    Raises a UserError for a bad ``mail.url`` or ``mail.password_file`` (read here,
    a file: call it off the event loop); nothing is connected until the first send.
    Without ``mail.url``, ``mail.password_file`` is not used.
    """
    from notifications.eml_files import EmlFileTransport
    from notifications.smtp import SmtpTransport

    if not mail.url.strip():
        return EmlFileTransport(outbox)
    return SmtpTransport(mail_server(mail), mail.concurrency, mail.rate_per_minute)
