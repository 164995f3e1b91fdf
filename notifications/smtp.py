"""Delivery over SMTP (SPEC §5): aiosmtplib, a small pool of reused connections.

:class:`SmtpTransport` keeps up to ``concurrency`` connections open and sends
one message at a time on each, so a dispatch of a hundred reminders costs a
handful of TCP/TLS handshakes and logins, not a hundred. A connection that the
server dropped while it sat idle is reopened transparently (once per message).

How the outcome of one message is classified (the caller retries a
:class:`TransientError` with backoff and gives up at once on a
:class:`PermanentError`):

* the connection (connect, greeting, EHLO, STARTTLS, AUTH) fails, whatever
  the reply code → ``TransientError``. Refused connections, resets, timeouts
  and a lost connection are temporary by nature; a rejected password or a
  server that stopped offering STARTTLS is a problem of the configuration or
  the server, not of the message, and once an admin fixes it the queued
  messages should still go out (``mail.max_attempts`` bounds the retries);
* ``MAIL FROM`` or ``DATA`` answered 4xx → ``TransientError``, 5xx →
  ``PermanentError``;
* recipients: every recipient refused with a 5xx → ``PermanentError``;
  some refused with a 5xx and the others accepted → the message is sent to
  the accepted ones and the refusals are returned in :attr:`Delivery.refused`;
* **any recipient answered 4xx** (temporarily refused) → the transaction is
  abandoned with ``RSET`` *before* ``DATA`` and ``TransientError`` is raised,
  even if other recipients were accepted. The caller retries the whole message
  later; since nobody received it this time, nobody receives it twice.
  (Sending to the accepted recipients now and retrying only the deferred ones
  would need one outbox row per recipient.) :attr:`Delivery.refused` therefore
  only ever holds permanent (5xx) refusals.

As with any SMTP client, a connection lost or a timeout *after* the message
data was sent but before the server's final reply leaves the outcome unknown;
it is reported as a ``TransientError`` and a retry may deliver a duplicate
(RFC 1047). The stable ``Message-ID`` lets mail clients drop it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

from aiosmtplib import (
    SMTP,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPException,
    SMTPHeloError,
    SMTPRecipientRefused,
    SMTPResponse,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from notifications.mail_url import MailServer
from notifications.mime import OutgoingMessage, check_address
from notifications.transport import Delivery, PermanentError, TransientError

__all__ = ["RateLimiter", "SmtpTransport"]

def _listing(replies: Mapping[str, str]) -> str:
    return "; ".join(f"{address}: {reply}" for address, reply in replies.items())


def _reply(exc: SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}".strip()


def _by_code(exc: SMTPResponseException) -> TransientError | PermanentError:
    if 500 <= exc.code <= 599:
        return PermanentError(_reply(exc))
    return TransientError(_reply(exc))


# --- rate limit ----------------------------------------------------------------------------


class RateLimiter:
    """At most ``rate_per_minute`` message starts per minute, evenly spaced; 0 = unlimited.

    Spacing rather than a bucket that refills once a minute: a server limiting
    a sender to 30 per minute sees one message every 2 s, never a burst of 30.
    ``clock`` (seconds, monotonic) and ``sleep`` default to the running event
    loop's; tests inject both.
    """

    def __init__(
        self,
        rate_per_minute: int,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        if rate_per_minute < 0:
            raise ValueError("rate_per_minute must be >= 0")
        self.interval = 60.0 / rate_per_minute if rate_per_minute else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    async def wait(self) -> None:
        """Return when the next message may start (reserving that moment for the caller)."""
        if not self.interval:
            return
        now = self._clock() if self._clock else asyncio.get_running_loop().time()
        start = now if self._next is None else max(now, self._next)
        self._next = start + self.interval
        if start > now:
            await (self._sleep or asyncio.sleep)(start - now)


# --- transport -----------------------------------------------------------------------------


async def _closed(transport: asyncio.BaseTransport, *, within: float) -> None:
    """Wait (bounded) until the socket under ``transport`` is really closed.

    ``transport.close()`` only starts closing: the socket goes a loop iteration
    later, and over TLS only after the close_notify exchange. A caller that
    stops its event loop right after :meth:`SmtpTransport.close` would
    otherwise leak the socket (and get a ResourceWarning). aiosmtplib offers
    no wait_closed(), so watch the socket's file descriptor.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while sock.fileno() != -1 and loop.time() < deadline:
        await asyncio.sleep(0.005)


class _StaleConnection(Exception):
    """A reused connection turned out to be closed by the server: reconnect and try again."""


class SmtpTransport:
    """The :class:`notifications.transport.Transport` for ``mail.url`` (see the module doc).

    ``concurrency`` messages at most are in flight at once, each on its own
    connection, and connections are kept for the next messages until
    :meth:`close`. ``tls_context`` replaces the system's trust store (a private
    CA; tests); by default certificates are verified against the system store
    (``SSL_CERT_FILE`` works too). ``limiter`` replaces the one built from
    ``rate_per_minute`` (tests inject a clock); it is awaited once per message,
    after the connection is up and right before ``MAIL FROM``.
    """

    def __init__(
        self,
        server: MailServer,
        concurrency: int,
        rate_per_minute: int = 0,
        *,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.server = server
        self.concurrency = concurrency
        self._tls_context = tls_context
        self._local_hostname = local_hostname
        self._limiter = limiter or RateLimiter(rate_per_minute)
        self._slots = asyncio.Semaphore(concurrency)
        self._idle: list[SMTP] = []  # clients not in use, connected or not (LIFO: warm first)
        self._closed = False

    async def __aenter__(self) -> SmtpTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def _where(self) -> str:
        host = f"[{self.server.host}]" if ":" in self.server.host else self.server.host
        return f"{host}:{self.server.port}"

    async def send(self, message: OutgoingMessage) -> Delivery:
        """Deliver ``message`` to its envelope recipients."""
        if self._closed:
            raise TransientError("the SMTP transport is closed")
        check_address(message.sender, "sender")
        if not message.recipients:
            raise PermanentError("the message has no recipient")
        for address in message.recipients:
            check_address(address, "recipient")
        async with self._slots:
            client = self._idle.pop() if self._idle else self._new_client()
            keep = False
            try:
                delivery = await self._send_on(client, message)
                keep = True
                return delivery
            except (PermanentError, TransientError):
                keep = True  # the transaction was reset (or the client closed itself)
                raise
            finally:  # cancelled or a bug: the session state is unknown, drop the connection
                if not keep or self._closed:
                    client.close()
                self._idle.append(client)

    async def close(self) -> None:
        """``QUIT`` every idle connection; connections in use close when their send ends."""
        self._closed = True
        clients, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(client) for client in clients))

    async def _quit(self, client: SMTP) -> None:
        transport = client.transport  # quit() forgets it
        try:
            if client.is_connected:
                await client.quit(timeout=min(self.server.timeout, 5.0))
        except (SMTPException, OSError):
            pass
        finally:
            client.close()
        if transport is not None:
            await _closed(transport, within=2.0)

    def _new_client(self) -> SMTP:
        server = self.server
        return SMTP(
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            local_hostname=self._local_hostname,
            timeout=server.timeout,
            use_tls=server.tls == "implicit",
            start_tls=server.tls == "starttls",  # required, never opportunistic: no downgrade
            tls_context=self._tls_context,
        )

    async def _send_on(self, client: SMTP, message: OutgoingMessage) -> Delivery:
        reused = client.is_connected
        if not reused:
            await self._connect(client)
        # After connecting, so that connection set-up does not blur the spacing the server sees.
        await self._limiter.wait()
        try:
            return await self._transaction(client, message, reused=reused)
        except _StaleConnection:
            client.close()
            await self._connect(client)
            return await self._transaction(client, message, reused=False)

    async def _connect(self, client: SMTP) -> None:
        """Connect, STARTTLS, AUTH and EHLO; every failure here is a TransientError."""
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except SMTPHeloError:
                    await client.helo()
        except SMTPAuthenticationError as exc:
            client.close()
            raise TransientError(
                f"{_reply(exc)} (AUTH as {self.server.username!r} on {self._where})") from exc
        except SMTPResponseException as exc:
            client.close()
            raise TransientError(f"{_reply(exc)} (connecting to {self._where})") from exc
        except SMTPTimeoutError as exc:
            client.close()
            raise TransientError(
                f"timed out after {self.server.timeout:g} s connecting to {self._where}: "
                f"{exc.message}") from exc
        except SMTPConnectError as exc:  # refused, reset: the message names host and port
            client.close()
            raise TransientError(exc.message) from exc
        except SMTPException as exc:  # lost, no STARTTLS, no AUTH offered
            client.close()
            raise TransientError(f"{exc.message.rstrip('.')} ({self._where})") from exc
        except OSError as exc:  # a TLS handshake failure, a certificate that does not verify
            client.close()
            raise TransientError(f"{exc} ({self._where})") from exc

    async def _transaction(
        self, client: SMTP, message: OutgoingMessage, *, reused: bool
    ) -> Delivery:
        """MAIL, RCPT…, DATA on a connected client; classified errors (see the module doc).

        The data is 7-bit (see :mod:`notifications.mime`): no 8BITMIME needed."""
        try:
            utf8 = message.smtputf8
            if utf8 and not client.supports_extension("smtputf8"):
                raise PermanentError(
                    f"{self._where} does not offer SMTPUTF8, needed for a non-ASCII address "
                    "or header")
            data = message.data
            options = []
            if client.supports_extension("size"):
                options.append(f"SIZE={len(data)}")
            if utf8:
                options.append("SMTPUTF8")
            encoding = "utf-8" if utf8 else "ascii"

            try:
                await client.mail(message.sender, options=options, encoding=encoding)
            except (SMTPServerDisconnected, SMTPSenderRefused) as exc:
                # The first command on a kept connection tells whether the server still
                # wants it: closed while idle, or "421 idle too long".
                closed = isinstance(exc, SMTPServerDisconnected) or exc.code == 421
                if reused and closed:
                    raise _StaleConnection from exc
                raise

            accepted: list[str] = []
            refused: dict[str, str] = {}
            deferred: dict[str, str] = {}
            for address in message.recipients:
                try:
                    await client.rcpt(address, encoding=encoding)
                except SMTPRecipientRefused as exc:
                    (refused if 500 <= exc.code <= 599 else deferred)[address] = _reply(exc)
                else:
                    accepted.append(address)
            if deferred:
                await self._reset(client)
                raise TransientError(_listing(deferred))
            if not accepted:
                await self._reset(client)
                raise PermanentError(_listing(refused))

            response: SMTPResponse = await client.data(data)
        except SMTPResponseException as exc:
            await self._reset(client)
            raise _by_code(exc) from exc
        except SMTPTimeoutError as exc:
            client.close()
            raise TransientError(
                f"timed out after {self.server.timeout:g} s waiting for {self._where}") from exc
        except SMTPServerDisconnected as exc:
            client.close()
            raise TransientError(f"connection to {self._where} lost: {exc.message}") from exc
        except SMTPException as exc:
            await self._reset(client)
            raise TransientError(f"{exc.message} ({self._where})") from exc
        except OSError as exc:
            client.close()
            raise TransientError(f"{exc} ({self._where})") from exc
        except ValueError as exc:  # an address or argument aiosmtplib will not put on the wire
            await self._reset(client)
            raise PermanentError(str(exc)) from exc
        return Delivery(reply=str(response), accepted=tuple(accepted), refused=refused)

    async def _reset(self, client: SMTP) -> None:
        """``RSET`` after a failed transaction so the connection can carry the next message."""
        if not client.is_connected:
            return
        try:
            await client.rset()
        except (SMTPException, OSError):
            client.close()
