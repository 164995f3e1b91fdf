"""Transports (SPEC §5): how a message leaves mocd, and what mocd learns about it.

The SMTP tests talk to real aiosmtpd servers on 127.0.0.1 (a free port
chosen by the OS for each test) whose handler records what arrives and
answers what the test tells it to: "550" for one address, "451" to DATA, a
slow DATA… The ``.eml`` tests write into ``tmp_path``. ``mail.url`` parsing is
a table.
"""

from __future__ import annotations

import asyncio
import email.policy
import itertools
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from config.errors import UserError
from config.settings import MailSettings
from notifications.eml_files import EmlFileTransport
from notifications.mail_url import MailServer, open_transport, parse_mail_url
from notifications.mime import OutgoingMessage, from_email
from notifications.smtp import RateLimiter, SmtpTransport
from notifications.transport import Delivery, PermanentError, TransientError
from tests.smtp_server import LocalController

LOCALHOST = "127.0.0.1"  # the only address these tests ever use

SUBJECT = "[Nhắc hạn] Còn 3 ngày: Gửi hồ sơ đề nghị khen thưởng (07/6/2023)"
TEXT = "Kính gửi Văn phòng,\n\nHạn nộp hồ sơ: Thứ Sáu, 07/6/2023.\n"
HTML = "<p>Kính gửi <b>Văn phòng</b>,</p><p>Hạn nộp hồ sơ: Thứ Sáu, 07/6/2023.</p>\n"
ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mocd//test//VI\r\nEND:VCALENDAR\r\n"


def reminder(
    *to: str,
    cc: tuple[str, ...] = (),
    bcc: tuple[str, ...] = (),
    message_id: str | None = "<3f2a9c0d@mocd.local>",
    subject: str = SUBJECT,
) -> OutgoingMessage:
    """A reminder shaped like mocd's (plain + HTML alternatives and an .ics attachment),
    built with the email package and made ready for the wire by ``from_email``."""
    return from_email(reminder_email(*to, cc=cc, bcc=bcc, message_id=message_id,
                                     subject=subject))


def reminder_email(
    *to: str,
    cc: tuple[str, ...] = (),
    bcc: tuple[str, ...] = (),
    message_id: str | None = "<3f2a9c0d@mocd.local>",
    subject: str = SUBJECT,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "mocd <mocd@bato.gov.vn>"
    message["To"] = ", ".join(to or ("Văn phòng <vanphong@bato.gov.vn>",))
    if cc:
        message["Cc"] = ", ".join(cc)
    if bcc:
        message["Bcc"] = ", ".join(bcc)
    message["Subject"] = subject
    if message_id is not None:
        message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(TEXT)
    message.add_alternative(HTML, subtype="html")
    message.add_attachment(ICS, maintype="text", subtype="calendar", filename="moc.ics")
    return message


def run(coroutine: Any) -> Any:
    """The tests are plain functions; each runs its scenario in a fresh event loop."""
    return asyncio.run(coroutine)


# --- a test SMTP server --------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer: tuple[str, int]
    mail_options: tuple[str, ...] = ()

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=email.policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Mailbox:
    """An aiosmtpd handler: records what arrives and answers as it is told.

    ``rcpt_replies`` maps an address to the reply its RCPT gets (others: 250);
    ``mail_replies`` / ``data_replies`` are answers used up one per MAIL / DATA
    (then 250). The hooks run in the server's thread: counters take a lock.
    """

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    mail_replies: list[str] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    data_delay: float = 0.0
    hide_extensions: tuple[str, ...] = ()  # e.g. ("8BITMIME",): not offered in EHLO
    messages: list[Received] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)  # one per connection (EHLO)
    mail_times: list[float] = field(default_factory=list)
    logins: list[bytes] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def connections(self) -> int:
        return len(set(self.peers))

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        with self.lock:
            self.peers.append(session.peer)
        session.host_name = hostname
        return [r for r in responses if r[4:].split(" ")[0].upper() not in self.hide_extensions]

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        with self.lock:
            self.mail_times.append(time.monotonic())
            if self.mail_replies:
                return self.mail_replies.pop(0)
        # A handle_MAIL hook that accepts must fill the envelope itself.
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)  # likewise for RCPT
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.data_delay:
                await asyncio.sleep(self.data_delay)
            with self.lock:
                if self.data_replies:
                    return self.data_replies.pop(0)
                self.messages.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos),
                                              envelope.original_content, session.peer,
                                              tuple(envelope.mail_options)))
                return f"250 2.0.0 Ok: queued as Q{len(self.messages)}"
        finally:
            with self.lock:
                self.active -= 1

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        """The aiosmtpd authenticator: user ``mocd``, password ``mật khẩu:/@1``."""
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"mocd"
              and auth_data.password == "mật khẩu:/@1".encode())
        if ok:
            with self.lock:
                self.logins.append(auth_data.login)
        # handled=False: aiosmtpd then answers "535" itself; with the default
        # (handled=True) it answers nothing and the client waits for its timeout.
        return AuthResult(success=ok, handled=False)


@dataclass
class Server:
    port: int
    mailbox: Mailbox

    def mail_server(self, *, tls: str = "none", timeout: float = 5.0,
                    username: str | None = None, password: str | None = None) -> MailServer:
        return MailServer(LOCALHOST, self.port, tls, username, password, timeout)  # type: ignore[arg-type]


StartServer = Callable[..., Server]


@pytest.fixture
def smtp_server() -> Iterator[StartServer]:
    """``smtp_server(Mailbox(...), **aiosmtpd_options)`` → a running server; stopped after."""
    controllers: list[Controller] = []

    def start(mailbox: Mailbox | None = None, **options: Any) -> Server:
        mailbox = mailbox or Mailbox()
        controller = LocalController(mailbox, hostname=LOCALHOST, port=0,
                                 server_hostname="mx.test.vn", **options)
        controller.start()
        controllers.append(controller)
        return Server(controller.port, mailbox)

    yield start
    for controller in controllers:
        controller.stop()


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound by the OS, then released)."""
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return int(probe.getsockname()[1])


def transport(server: MailServer, concurrency: int = 1, **options: Any) -> SmtpTransport:
    return SmtpTransport(server, concurrency, local_hostname="mocd.test.vn", **options)


# --- delivering ----------------------------------------------------------------------------


def test_a_multipart_vietnamese_reminder_arrives_exactly_as_sent(smtp_server: StartServer) -> None:
    server = smtp_server()
    message = reminder("Văn phòng <vanphong@bato.gov.vn>", cc=("Lãnh đạo <lanhdao@bato.gov.vn>",),
                       bcc=("luutru@bato.gov.vn",))

    async def scenario() -> Delivery:
        async with transport(server.mail_server()) as smtp:
            return await smtp.send(message)

    delivery = run(scenario())

    assert delivery.reply == "250 2.0.0 Ok: queued as Q1"
    assert delivery.accepted == ("vanphong@bato.gov.vn", "lanhdao@bato.gov.vn",
                                 "luutru@bato.gov.vn")
    assert delivery.refused == {}
    [received] = server.mailbox.messages
    assert received.mail_from == "mocd@bato.gov.vn"
    assert received.rcpt_tos == delivery.accepted  # Bcc is an envelope recipient…
    got = received.message
    assert "Bcc" not in got  # …whose header is never transmitted
    assert got["Subject"] == SUBJECT
    assert got["From"] == "mocd <mocd@bato.gov.vn>"
    assert got["To"] == "Văn phòng <vanphong@bato.gov.vn>"
    assert got["Cc"] == "Lãnh đạo <lanhdao@bato.gov.vn>"
    assert got["Message-ID"] == "<3f2a9c0d@mocd.local>"
    assert got["Auto-Submitted"] == "auto-generated"
    assert got.get_content_type() == "multipart/mixed"
    plain = got.get_body(("plain",))
    html = got.get_body(("html",))
    assert plain is not None
    assert html is not None
    # Text travels with CRLF line ends (SMTP's), which the parser keeps.
    assert plain.get_content().replace("\r\n", "\n") == TEXT
    assert html.get_content().replace("\r\n", "\n") == HTML
    [attachment] = got.iter_attachments()
    assert attachment.get_filename() == "moc.ics"
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_payload(decode=True) == ICS
    # Headers went out RFC 2047-encoded and CRLF-terminated, as SMTP wants.
    assert received.data.isascii() or b"8bit" in received.data
    assert b"Subject: =?utf-8?" in received.data
    assert b"\r\n" in received.data
    assert b"\n" not in received.data.replace(b"\r\n", b"")


def test_non_ascii_addresses_or_message_id_go_out_with_smtputf8(smtp_server: StartServer) -> None:
    server = smtp_server()  # aiosmtpd's Controller offers SMTPUTF8 by default
    address = reminder("Phòng Nội vụ <phòngnộivụ@bộ.vn>")
    header = reminder("noivu@bato.gov.vn", message_id="<thư-mời@bộ.vn>")  # RFC 2047 can't

    async def scenario() -> None:
        async with transport(server.mail_server()) as smtp:
            await smtp.send(address)
            await smtp.send(header)

    run(scenario())
    first, second = server.mailbox.messages
    assert first.rcpt_tos == ("phòngnộivụ@bộ.vn",)
    assert "SMTPUTF8" in first.mail_options
    assert second.message["Message-ID"] == "<thư-mời@bộ.vn>"
    assert "SMTPUTF8" in second.mail_options


def test_non_ascii_address_without_smtputf8_is_permanent(smtp_server: StartServer) -> None:
    server = smtp_server(enable_SMTPUTF8=False)

    async def scenario() -> None:
        async with transport(server.mail_server()) as smtp:
            await smtp.send(reminder("phòng@bộ.vn"))

    with pytest.raises(PermanentError, match="SMTPUTF8"):
        run(scenario())
    assert server.mailbox.messages == []


def test_a_server_without_8bitmime_gets_a_7bit_message(smtp_server: StartServer) -> None:
    server = smtp_server(Mailbox(hide_extensions=("8BITMIME",)))

    async def scenario() -> None:
        async with transport(server.mail_server()) as smtp:
            await smtp.send(reminder())

    run(scenario())
    [received] = server.mailbox.messages
    assert received.data.isascii()
    assert "BODY=8BITMIME" not in received.mail_options
    plain = received.message.get_body(("plain",))
    assert plain is not None
    assert plain.get_content() == TEXT


def test_one_connection_carries_every_message_when_concurrency_is_one(
        smtp_server: StartServer) -> None:
    server = smtp_server()
    messages = [reminder(f"don-vi-{n}@bato.gov.vn", message_id=f"<{n}@mocd.local>")
                for n in range(5)]

    async def scenario() -> list[Delivery]:
        async with transport(server.mail_server(), concurrency=1) as smtp:
            return list(await asyncio.gather(*(smtp.send(m) for m in messages)))

    deliveries = run(scenario())

    assert [d.reply for d in deliveries] == [f"250 2.0.0 Ok: queued as Q{n}" for n in range(1, 6)]
    assert len(server.mailbox.messages) == 5
    assert server.mailbox.connections == 1  # one EHLO, one client port


def test_never_more_parallel_sessions_than_concurrency(smtp_server: StartServer) -> None:
    server = smtp_server(Mailbox(data_delay=0.15))
    messages = [reminder(f"don-vi-{n}@bato.gov.vn", message_id=f"<{n}@mocd.local>")
                for n in range(6)]

    async def scenario() -> None:
        async with transport(server.mail_server(), concurrency=2) as smtp:
            await asyncio.gather(*(smtp.send(m) for m in messages))

    run(scenario())

    assert len(server.mailbox.messages) == 6
    assert server.mailbox.max_active == 2  # in use: both slots, never a third
    assert server.mailbox.connections == 2  # and each connection was reused


def test_a_connection_the_server_closed_while_idle_is_reopened(smtp_server: StartServer) -> None:
    server = smtp_server(timeout=0.2)  # aiosmtpd drops a connection idle for 0.2 s

    async def scenario() -> tuple[Delivery, Delivery]:
        async with transport(server.mail_server()) as smtp:
            first = await smtp.send(reminder(message_id="<1@mocd.local>"))
            await asyncio.sleep(0.5)  # the client sees the connection close meanwhile
            second = await smtp.send(reminder(message_id="<2@mocd.local>"))
            return first, second

    first, second = run(scenario())

    assert (first.reply, second.reply) == ("250 2.0.0 Ok: queued as Q1",
                                           "250 2.0.0 Ok: queued as Q2")
    assert server.mailbox.connections == 2


def test_a_close_the_client_has_not_noticed_yet_costs_one_retry_not_an_error(
        smtp_server: StartServer) -> None:
    server = smtp_server(timeout=0.2)

    async def scenario() -> Delivery:
        async with transport(server.mail_server()) as smtp:
            await smtp.send(reminder(message_id="<1@mocd.local>"))
            # Block the event loop: the server closes the connection, but the client
            # only finds out when its next MAIL FROM meets the closed socket.
            time.sleep(0.5)
            return await smtp.send(reminder(message_id="<2@mocd.local>"))

    assert run(scenario()).reply == "250 2.0.0 Ok: queued as Q2"
    assert len(server.mailbox.messages) == 2
    assert server.mailbox.connections == 2


def test_one_recipient_refused_with_550_the_other_still_gets_the_message(
        smtp_server: StartServer) -> None:
    rejected = "550 5.1.1 <khongco@bato.gov.vn>: Recipient address rejected: User unknown"
    server = smtp_server(Mailbox(rcpt_replies={"khongco@bato.gov.vn": rejected}))

    async def scenario() -> Delivery:
        async with transport(server.mail_server()) as smtp:
            return await smtp.send(reminder("vanphong@bato.gov.vn", "khongco@bato.gov.vn"))

    delivery = run(scenario())

    assert delivery.accepted == ("vanphong@bato.gov.vn",)
    assert delivery.refused == {"khongco@bato.gov.vn": rejected}
    assert delivery.reply == "250 2.0.0 Ok: queued as Q1"
    [received] = server.mailbox.messages
    assert received.rcpt_tos == ("vanphong@bato.gov.vn",)


def test_a_4xx_for_any_recipient_sends_nothing_and_is_transient(
        smtp_server: StartServer) -> None:
    """450 for one of two: RSET before DATA, so a later retry of the whole message is safe."""
    busy = "450 4.2.1 <noivu@bato.gov.vn>: Mailbox busy, try again later"
    server = smtp_server(Mailbox(rcpt_replies={"noivu@bato.gov.vn": busy}))

    async def scenario() -> Delivery:
        async with transport(server.mail_server()) as smtp:
            with pytest.raises(TransientError) as deferred:
                await smtp.send(reminder("vanphong@bato.gov.vn", "noivu@bato.gov.vn"))
            assert deferred.value.reply == f"noivu@bato.gov.vn: {busy}"
            # The connection was reset, not lost: the next message uses it.
            return await smtp.send(reminder("vanphong@bato.gov.vn", message_id="<2@mocd.local>"))

    assert run(scenario()).reply == "250 2.0.0 Ok: queued as Q1"
    [only] = server.mailbox.messages  # the first message reached nobody
    assert only.message["Message-ID"] == "<2@mocd.local>"
    assert server.mailbox.connections == 1


def test_every_recipient_refused_with_5xx_is_permanent(smtp_server: StartServer) -> None:
    refusals = {"a@bato.gov.vn": "550 5.1.1 User unknown", "b@bato.gov.vn": "553 5.1.3 Bad address"}
    server = smtp_server(Mailbox(rcpt_replies=refusals))

    async def scenario() -> None:
        async with transport(server.mail_server()) as smtp:
            await smtp.send(reminder("a@bato.gov.vn", "b@bato.gov.vn"))

    with pytest.raises(PermanentError) as refused:
        run(scenario())
    assert refused.value.reply == ("a@bato.gov.vn: 550 5.1.1 User unknown; "
                                   "b@bato.gov.vn: 553 5.1.3 Bad address")
    assert server.mailbox.messages == []


@pytest.mark.parametrize(("stage", "reply", "error"), [
    ("MAIL", "451 4.3.0 Temporary lookup failure", TransientError),
    ("MAIL", "553 5.7.1 Sender address rejected: not owned by user", PermanentError),
    ("DATA", "451 4.3.0 Error: queue file write error", TransientError),
    ("DATA", "452 4.3.1 Insufficient system storage", TransientError),
    ("DATA", "550 5.7.1 Message rejected as spam", PermanentError),
    ("DATA", "554 5.6.0 Message content rejected", PermanentError),
])
def test_the_reply_code_decides_between_retry_and_failure(
        smtp_server: StartServer, stage: str, reply: str, error: type[Exception]) -> None:
    mailbox = Mailbox(mail_replies=[reply] if stage == "MAIL" else [],
                      data_replies=[reply] if stage == "DATA" else [])
    server = smtp_server(mailbox)

    async def scenario() -> Delivery:
        async with transport(server.mail_server()) as smtp:
            with pytest.raises(error) as failed:
                await smtp.send(reminder())
            assert failed.value.reply == reply  # type: ignore[attr-defined]
            # A refused message does not cost the connection.
            return await smtp.send(reminder(message_id="<2@mocd.local>"))

    assert run(scenario()).reply == "250 2.0.0 Ok: queued as Q1"
    assert server.mailbox.connections == 1


def test_connection_refused_is_transient() -> None:
    port = free_port()

    async def scenario() -> None:
        async with transport(MailServer(LOCALHOST, port, "none", timeout=2)) as smtp:
            await smtp.send(reminder())

    with pytest.raises(TransientError) as refused:
        run(scenario())
    # "Error connecting to 127.0.0.1 on port …: [Errno 111] Connect call failed …"
    assert f"127.0.0.1 on port {port}" in refused.value.reply


def test_a_server_slower_than_the_timeout_is_transient(smtp_server: StartServer) -> None:
    server = smtp_server(Mailbox(data_delay=3.0))

    async def scenario() -> None:
        async with transport(server.mail_server(timeout=0.5)) as smtp:
            await smtp.send(reminder())

    started = time.monotonic()
    with pytest.raises(TransientError, match=r"timed out after 0\.5 s"):
        run(scenario())
    assert time.monotonic() - started < 2.5


def test_a_server_that_never_greets_is_transient() -> None:
    with socket.socket() as silent:  # accepts TCP connections (backlog), never says 220
        silent.bind((LOCALHOST, 0))
        silent.listen(1)
        port = silent.getsockname()[1]

        async def scenario() -> None:
            async with transport(MailServer(LOCALHOST, port, "none", timeout=0.5)) as smtp:
                await smtp.send(reminder())

        with pytest.raises(TransientError, match="timed out"):
            run(scenario())


def test_a_message_without_recipients_is_permanent_before_any_connection() -> None:
    email_message = reminder_email()
    del email_message["To"]
    with pytest.raises(PermanentError, match="no To, Cc or Bcc"):
        from_email(email_message)
    message = replace(reminder(), recipients=())

    async def scenario() -> None:
        async with transport(MailServer(LOCALHOST, free_port(), "none")) as smtp:
            await smtp.send(message)

    with pytest.raises(PermanentError, match="no recipient"):
        run(scenario())


def test_after_close_a_send_is_transient_not_lost() -> None:
    async def scenario() -> None:
        smtp = transport(MailServer(LOCALHOST, free_port(), "none"))
        await smtp.close()
        await smtp.send(reminder())

    with pytest.raises(TransientError, match="closed"):
        run(scenario())


# --- AUTH and TLS --------------------------------------------------------------------------


def test_auth_with_a_percent_encoded_password_over_plain_smtp(smtp_server: StartServer) -> None:
    mailbox = Mailbox()
    # auth_require_tls=False: aiosmtpd offers AUTH without TLS (a test-only setting).
    server = smtp_server(mailbox, auth_require_tls=False, authenticator=mailbox.authenticate)
    settings = parse_mail_url(
        f"smtp://mocd:m%E1%BA%ADt%20kh%E1%BA%A9u%3A%2F%401@{LOCALHOST}:{server.port}?tls=none")

    async def scenario() -> Delivery:
        async with transport(settings) as smtp:
            return await smtp.send(reminder())

    assert run(scenario()).reply == "250 2.0.0 Ok: queued as Q1"
    assert mailbox.logins == [b"mocd"]


def test_a_rejected_password_is_transient_and_names_the_user(smtp_server: StartServer) -> None:
    mailbox = Mailbox()
    server = smtp_server(mailbox, auth_require_tls=False, authenticator=mailbox.authenticate)

    async def scenario() -> None:
        wrong = server.mail_server(username="mocd", password="sai-mat-khau")
        async with transport(wrong) as smtp:
            await smtp.send(reminder())

    with pytest.raises(TransientError) as rejected:
        run(scenario())
    assert rejected.value.reply.startswith("535 5.7.8 Authentication credentials invalid")
    assert "'mocd'" in rejected.value.reply
    assert "sai-mat-khau" not in rejected.value.reply
    assert mailbox.messages == []


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30)
    return cert, key


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def test_starttls_then_auth(smtp_server: StartServer, certificate: tuple[Path, Path]) -> None:
    mailbox = Mailbox()
    server = smtp_server(mailbox, tls_context=server_tls(certificate), require_starttls=True,
                         authenticator=mailbox.authenticate)  # AUTH only after STARTTLS

    async def scenario() -> Delivery:
        settings = server.mail_server(tls="starttls", username="mocd", password="mật khẩu:/@1")
        async with transport(settings, tls_context=trusting(certificate)) as smtp:
            await smtp.send(reminder(message_id="<1@mocd.local>"))
            return await smtp.send(reminder(message_id="<2@mocd.local>"))

    assert run(scenario()).reply == "250 2.0.0 Ok: queued as Q2"
    assert mailbox.logins == [b"mocd"]  # one login: the connection was reused
    assert mailbox.connections == 1


def test_implicit_tls(smtp_server: StartServer, certificate: tuple[Path, Path]) -> None:
    server = smtp_server(ssl_context=server_tls(certificate))

    async def scenario() -> Delivery:
        async with transport(server.mail_server(tls="implicit"),
                             tls_context=trusting(certificate)) as smtp:
            return await smtp.send(reminder())

    assert run(scenario()).reply == "250 2.0.0 Ok: queued as Q1"


def test_an_untrusted_certificate_is_transient(smtp_server: StartServer,
                                               certificate: tuple[Path, Path]) -> None:
    server = smtp_server(tls_context=server_tls(certificate))

    async def scenario() -> None:  # the system trust store does not know the test certificate
        async with transport(server.mail_server(tls="starttls")) as smtp:
            await smtp.send(reminder())

    with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
        run(scenario())
    assert server.mailbox.messages == []


def test_starttls_is_required_never_silently_skipped(smtp_server: StartServer) -> None:
    server = smtp_server()  # offers no STARTTLS

    async def scenario() -> None:
        async with transport(server.mail_server(tls="starttls")) as smtp:
            await smtp.send(reminder())

    with pytest.raises(TransientError, match="STARTTLS"):
        run(scenario())
    assert server.mailbox.messages == []


# --- mail.password_file -------------------------------------------------------------------

LOGIN_PASSWORD = "mật khẩu:/@1"  # what Mailbox.authenticate accepts, raw: no percent-encoding


def password_file(tmp_path: Path, content: bytes | str, name: str = "smtp-password") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(0o600)
    return path


def test_a_login_with_the_password_from_mail_password_file(smtp_server: StartServer,
                                                           tmp_path: Path) -> None:
    """The unit's way: mail.url names the user only, the credential file holds the password
    (as ``install … /dev/stdin`` writes it: with a line end, which is not part of it)."""
    mailbox = Mailbox()
    server = smtp_server(mailbox, auth_require_tls=False, authenticator=mailbox.authenticate)
    mail = MailSettings(url=f"smtp://mocd@{LOCALHOST}:{server.port}?tls=none&timeout=5",
                        password_file=password_file(tmp_path, LOGIN_PASSWORD + "\n"))

    async def scenario() -> Delivery:
        smtp = open_transport(mail, tmp_path / "outbox")
        async with smtp:
            return await smtp.send(reminder())

    assert run(scenario()).reply == "250 2.0.0 Ok: queued as Q1"
    assert mailbox.logins == [b"mocd"]


def test_the_password_file_replaces_the_password_of_the_url_over_starttls(
        smtp_server: StartServer, certificate: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    mailbox = Mailbox()
    server = smtp_server(mailbox, tls_context=server_tls(certificate), require_starttls=True,
                         authenticator=mailbox.authenticate)  # AUTH only after STARTTLS
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # open_transport: system store
    mail = MailSettings(url=f"smtp://mocd:old-password@{LOCALHOST}:{server.port}?timeout=5",
                        password_file=password_file(tmp_path, LOGIN_PASSWORD + "\r\n"))

    async def scenario() -> Delivery:
        smtp = open_transport(mail, tmp_path / "outbox")
        assert isinstance(smtp, SmtpTransport)
        assert smtp.server.tls == "starttls"
        async with smtp:
            return await smtp.send(reminder())

    assert run(scenario()).reply == "250 2.0.0 Ok: queued as Q1"
    assert mailbox.logins == [b"mocd"]


def test_the_password_from_the_file_is_never_shown(tmp_path: Path) -> None:
    mail = MailSettings(url="smtp://mocd@mail.bato.gov.vn:587",
                        password_file=password_file(tmp_path, "Hunter2pw\n"))
    smtp = open_transport(mail, tmp_path)
    assert isinstance(smtp, SmtpTransport)
    assert smtp.server.password == "Hunter2pw"
    assert "Hunter2pw" not in repr(smtp.server)
    assert smtp.server.redacted_url == "smtp://mocd:***@mail.bato.gov.vn:587?tls=starttls"


def test_without_mail_url_the_password_file_is_not_read(tmp_path: Path) -> None:
    mail = MailSettings(password_file=tmp_path / "no-such-file")
    assert isinstance(open_transport(mail, tmp_path / "outbox"), EmlFileTransport)


@pytest.mark.parametrize(("content", "problem"), [
    (None, "no such file"),
    ("directory", "cannot read: Is a directory"),
    (b"", "empty: write the SMTP password into it"),
    (b"\n", "empty: write the SMTP password into it"),
    (b"Hunter2pw\nsecond line\n", "more than one line: it should hold the password only"),
    (b'[mail]\nurl = "smtp://mocd:Hunter2pw@mail.local"\n',
     "more than one line: it should hold the password only"),
    (b"Hunter2pw\xff\xfe", "not valid UTF-8"),
    (b"Hunter2pw" * 500, "longer than 4096 bytes: it should hold the password only"),
], ids=["missing", "directory", "empty", "newline-only", "two-lines", "settings-file",
        "not-utf8", "too-long"])
def test_a_bad_password_file_is_one_line_naming_setting_and_file(
        tmp_path: Path, content: bytes | str | None, problem: str) -> None:
    path = tmp_path / "smtp-password"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        password_file(tmp_path, content)
    mail = MailSettings(url="smtp://mocd@mail.local:587", password_file=path)
    with pytest.raises(UserError) as error:
        open_transport(mail, tmp_path)
    assert str(error.value) == f"mail.password_file: {path}: {problem}"
    assert "Hunter" not in str(error.value)


def test_an_unreadable_password_file_says_so(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: a mode 000 file is still readable "
                    "(the directory case above covers a read that fails)")
    path = password_file(tmp_path, "Hunter2pw")
    path.chmod(0)
    mail = MailSettings(url="smtp://mocd@mail.local:587", password_file=path)
    with pytest.raises(UserError, match=r"^mail\.password_file: .*: cannot read: Permission"):
        open_transport(mail, tmp_path)


def test_a_password_file_needs_a_user_in_the_url(tmp_path: Path) -> None:
    mail = MailSettings(url="smtp://mail.local:587",
                        password_file=password_file(tmp_path, "Hunter2pw"))
    with pytest.raises(UserError) as error:
        open_transport(mail, tmp_path)
    assert str(error.value) == ("mail.password_file: mail.url names no user to log in as "
                                "(write smtp://USER@host…)")


# --- rate limit ----------------------------------------------------------------------------


def test_rate_limiter_spaces_messages_evenly_and_never_bursts() -> None:
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    limiter = RateLimiter(30, clock=lambda: now[0], sleep=sleep)  # one every 2 s

    async def scenario() -> None:
        for _ in range(4):  # four at once: 0, 2, 4, 6 s from now
            await limiter.wait()
        now[0] += 60.0  # a quiet minute earns no burst
        await limiter.wait()
        await limiter.wait()

    run(scenario())
    assert waits == [2.0, 4.0, 6.0, 2.0]


def test_rate_per_minute_zero_means_unlimited() -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError("an unlimited limiter never sleeps")

    limiter = RateLimiter(0, clock=lambda: 0.0, sleep=sleep)
    run(limiter.wait())
    assert limiter.interval == 0.0


def test_rate_limit_spaces_what_the_server_sees(smtp_server: StartServer) -> None:
    server = smtp_server()
    messages = [reminder(message_id=f"<{n}@mocd.local>") for n in range(4)]

    async def scenario() -> None:  # 600 a minute: one every 0.1 s
        async with transport(server.mail_server(), concurrency=4, rate_per_minute=600) as smtp:
            await asyncio.gather(*(smtp.send(m) for m in messages))

    run(scenario())
    times = server.mailbox.mail_times
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(server.mailbox.messages) == 4
    assert times[-1] - times[0] >= 0.28  # 3 intervals of 0.1 s (less scheduling jitter)
    assert all(gap >= 0.07 for gap in gaps), gaps


# --- .eml files ----------------------------------------------------------------------------


def test_eml_file_is_a_parseable_copy_of_the_message(tmp_path: Path) -> None:
    outbox = tmp_path / "var" / "outbox"
    message = reminder("Văn phòng <vanphong@bato.gov.vn>", cc=("lanhdao@bato.gov.vn",))

    delivery = run(EmlFileTransport(outbox).send(message))

    path = Path(delivery.reply)
    assert path.parent == outbox
    assert path.suffix == ".eml"
    assert delivery.accepted == ("vanphong@bato.gov.vn", "lanhdao@bato.gov.vn")
    assert delivery.refused == {}
    parsed = BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
    assert parsed["Subject"] == SUBJECT
    assert parsed["Message-ID"] == "<3f2a9c0d@mocd.local>"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == TEXT
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o750 & ~umask
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_eml_same_message_twice_is_one_file_and_no_temporary_is_left(tmp_path: Path) -> None:
    eml = EmlFileTransport(tmp_path)

    async def scenario() -> tuple[Delivery, Delivery, Delivery]:
        return (await eml.send(reminder()), await eml.send(reminder()),
                await eml.send(reminder(message_id="<other@mocd.local>")))

    first, again, other = run(scenario())

    assert first.reply == again.reply != other.reply
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [Path(first.reply).name, Path(other.reply).name])  # no .tmp, no dot files


@pytest.mark.parametrize("hostile", [
    "<../../etc/passwd@x>",
    "</etc/passwd>",
    "<..>",
    "<..\\..\\windows\\win.ini@x>",
    "<.hidden@x>",
    "<thư-mời@bộ.vn>",
    "<" + "a/" * 300 + "@x>",
])
def test_eml_file_name_from_a_hostile_message_id_stays_inside(tmp_path: Path,
                                                              hostile: str) -> None:
    outbox = tmp_path / "outbox"

    delivery = run(EmlFileTransport(outbox).send(reminder(message_id=hostile)))

    path = Path(delivery.reply)
    assert path.parent == outbox
    assert re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\.eml", path.name)
    assert len(path.name) <= 120
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [path]


def test_eml_message_ids_that_sanitise_alike_do_not_overwrite_each_other(tmp_path: Path) -> None:
    async def scenario() -> set[str]:
        eml = EmlFileTransport(tmp_path)
        ids = ["<a/b@x>", "<a_b@x>", "<a b@x>"]
        return {(await eml.send(reminder(message_id=i))).reply for i in ids}

    assert len(run(scenario())) == 3


def test_eml_without_message_id_is_named_by_its_content(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        eml = EmlFileTransport(tmp_path)
        return [(await eml.send(reminder(message_id=None, subject=s))).reply
                for s in ("một", "một", "hai")]

    first, again, other = run(scenario())
    assert first == again != other


def test_eml_unwritable_directory_is_transient(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: a read-only directory is still writable")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(TransientError, match="cannot write"):
            run(EmlFileTransport(tmp_path).send(reminder()))
    finally:
        tmp_path.chmod(0o700)


def test_eml_outbox_path_taken_by_a_file_is_transient(tmp_path: Path) -> None:
    """Works as root too: no permission involved, mkdir itself fails."""
    (tmp_path / "outbox").write_text("not a directory")

    with pytest.raises(TransientError, match="cannot write"):
        run(EmlFileTransport(tmp_path / "outbox").send(reminder()))
    assert [p.name for p in tmp_path.iterdir()] == ["outbox"]


def test_eml_message_without_recipients_is_permanent(tmp_path: Path) -> None:
    message = replace(reminder(), recipients=())
    with pytest.raises(PermanentError):
        run(EmlFileTransport(tmp_path).send(message))


# --- mail.url ------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://mocd:secret@mail.bato.gov.vn:587?tls=starttls",
     MailServer("mail.bato.gov.vn", 587, "starttls", "mocd", "secret", 30.0)),
    ("smtp://mail.bato.gov.vn", MailServer("mail.bato.gov.vn", 587, "starttls")),
    ("smtp://mail.bato.gov.vn:25", MailServer("mail.bato.gov.vn", 25, "none")),
    ("smtp://relay.local?tls=none", MailServer("relay.local", 25, "none")),
    ("smtp://relay.local:2525?tls=starttls", MailServer("relay.local", 2525, "starttls")),
    ("smtp://relay.local:2525", MailServer("relay.local", 2525, "starttls")),
    ("smtps://mail.example.vn", MailServer("mail.example.vn", 465, "implicit")),
    ("smtps://u:p@Mail.Example.VN:4650?timeout=10",
     MailServer("mail.example.vn", 4650, "implicit", "u", "p", 10.0)),
    ("SMTP://[::1]:2525?TLS=none&timeout=0.5", MailServer("::1", 2525, "none", timeout=0.5)),
    ("smtp://vp%40bato.gov.vn:p%2Fa%3Fs%23s%40%25%20x@mail.bato.gov.vn",
     MailServer("mail.bato.gov.vn", 587, "starttls", "vp@bato.gov.vn", "p/a?s#s@% x")),
    ("smtp://user:p@ss@mail.local:587", MailServer("mail.local", 587, "starttls", "user", "p@ss")),
    ("smtp://user@mail.local", MailServer("mail.local", 587, "starttls", "user", None)),
    ("smtp://user:@mail.local", MailServer("mail.local", 587, "starttls", "user", "")),
    ("  smtp://mail.local/  ", MailServer("mail.local", 587, "starttls")),
])
def test_mail_url(url: str, expected: MailServer) -> None:
    assert parse_mail_url(url) == expected


PASSWORD = "Hunter2pw"


@pytest.mark.parametrize(("url", "message"), [
    ("", "empty"),
    (f"http://mocd:{PASSWORD}@mail.local", "unknown scheme 'http'"),
    (f"smtp://mocd:{PASSWORD}@", "no host"),
    (f"smtp:mocd:{PASSWORD}@mail.local", "no host"),
    (f"smtp://:{PASSWORD}@mail.local", "without a user name"),
    (f"smtp://mocd:{PASSWORD}@mail.local:abc", "port must be a number"),
    (f"smtp://mocd:{PASSWORD}@mail.local:70000", "port must be a number"),
    (f"smtp://mocd:{PASSWORD}/x@mail.local", "must be percent-encoded"),
    ("smtp://mocd:Hunter?2pw@mail.local", "must be percent-encoded"),
    ("smtp://mocd:Hunter#2pw@mail.local", "must be percent-encoded"),
    ("smtp://mocd:Hunter2:99@mail.local:587/path", "unexpected path"),
    (f"smtp://mocd:{PASSWORD}@mail.local?tsl=none",
     "unknown parameter 'tsl' (did you mean 'tls'?)"),
    (f"smtp://mocd:{PASSWORD}@mail.local?tls=none&tls=none", "given twice"),
    (f"smtp://mocd:{PASSWORD}@mail.local?tls=yes", "tls must be 'starttls' or 'none'"),
    (f"smtp://mocd:{PASSWORD}@mail.local?tls=ssl", "write smtps://"),
    (f"smtps://mocd:{PASSWORD}@mail.local?tls=starttls", "smtps:// is TLS from the first byte"),
    (f"smtp://mocd:{PASSWORD}@mail.local:465", "port 465 is implicit TLS"),
    (f"smtp://mocd:{PASSWORD}@mail.local?timeout=0", "timeout must be"),
    (f"smtp://mocd:{PASSWORD}@mail.local?timeout=soon", "timeout must be"),
    ("smtp://mocd:%FF%FE@mail.local", "password is not valid UTF-8"),
    ("smtp://mocd:Hunter[2pw@mail.local", "not a valid URL"),
])
def test_mail_url_errors_are_one_line_and_never_show_the_password(url: str, message: str) -> None:
    with pytest.raises(UserError) as error:
        parse_mail_url(url)
    text = str(error.value)
    assert text.startswith("mail.url: ")
    assert message in text
    assert "\n" not in text
    assert "Hunter" not in text
    assert "2pw" not in text


def test_mail_server_never_shows_its_password() -> None:
    server = parse_mail_url("smtp://mocd:Hunter2pw@mail.bato.gov.vn:587")
    assert "Hunter2pw" not in repr(server)
    assert server.redacted_url == "smtp://mocd:***@mail.bato.gov.vn:587?tls=starttls"
    assert parse_mail_url("smtps://[::1]").redacted_url == "smtps://[::1]:465"


def test_open_transport_follows_mail_url(tmp_path: Path) -> None:
    eml = open_transport(MailSettings(), tmp_path / "outbox")
    assert isinstance(eml, EmlFileTransport)
    assert eml.directory == tmp_path / "outbox"

    smtp = open_transport(MailSettings(url="smtp://mail.local:25", concurrency=3), tmp_path)
    assert isinstance(smtp, SmtpTransport)
    assert (smtp.server, smtp.concurrency) == (MailServer("mail.local", 25, "none"), 3)

    with pytest.raises(UserError, match=r"mail\.url"):
        open_transport(MailSettings(url="smtp://"), tmp_path)
