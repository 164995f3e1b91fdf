"""The MIME writer (notifications/mime.py): what makes mocd's own bytes safe on any wire.

Messages are parsed back with the stdlib's strict ``policy.default``; every body must come
back exactly, whatever it holds.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifications.mime import Attachment, base64_lines, compose, from_email
from notifications.transport import PermanentError

HEADERS = [("From", "mocd <mocd@x.vn>"), ("To", "a@x.vn"), ("Subject", "Test")]


def parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def transfer_encodings(data: bytes) -> list[str]:
    return [p["Content-Transfer-Encoding"] for p in parse(data).walk() if not p.is_multipart()]


def test_short_ascii_text_travels_as_7bit_and_vietnamese_as_base64() -> None:
    data = compose(HEADERS, "Hello\n", "<p>Xin chào</p>\n", None, key="k")
    assert transfer_encodings(data) == ["7bit", "base64"]
    assert data.isascii()
    assert (body(parse(data), "plain"), body(parse(data), "html")) == (
        "Hello\n", "<p>Xin chào</p>\n")


def test_text_that_contains_the_boundary_or_a_long_line_is_base64() -> None:
    first = compose(HEADERS, "x\n", "y\n", None, key="k")
    boundary = parse(first).get_boundary()
    assert boundary is not None
    assert boundary.startswith("=_mocd_")
    tricky = f"--{boundary}\nnot a part\n"
    long_line = "a" * 2000 + "\n"
    data = compose(HEADERS, tricky, long_line, None, key="k")
    assert transfer_encodings(data) == ["base64", "base64"]
    assert (body(parse(data), "plain"), body(parse(data), "html")) == (tricky, long_line)
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_a_header_that_is_not_one_line_of_7bit_text_is_refused() -> None:
    for bad in (("Subject", "a\nBcc: evil@x.vn"), ("Subject", "Gửi"), ("X-A", "a\rb")):
        with pytest.raises(ValueError, match="7-bit"):
            compose([*HEADERS, bad], "x", "y", None, key="k")


def test_the_attachment_keeps_its_bytes_and_crlf() -> None:
    ics = "BEGIN:VCALENDAR\r\nSUMMARY:Hạn nộp\r\nEND:VCALENDAR\r\n".encode()
    attachment = Attachment('text/calendar; charset="utf-8"; method=PUBLISH', "m.ics",
                            base64_lines(ics))
    message = parse(compose(HEADERS, "x", "y", attachment, key="k"))
    assert message.get_content_type() == "multipart/mixed"
    [part] = message.iter_attachments()
    assert (part.get_filename(), part.get_payload(decode=True)) == ("m.ics", ics)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=400), st.text(max_size=400))
def test_any_text_comes_back_exactly(plain: str, html: str) -> None:
    """Line breaks are normalised (CRLF on the wire, as RFC 2045 wants for text), and a
    part always ends with one (an empty text is one empty line)."""
    data = compose(HEADERS, plain, html, None, key="k")
    assert data.isascii()
    message = parse(data)

    def lines(text: str) -> list[str]:
        return text.splitlines()

    assert lines(body(message, "plain")) == (lines(plain) or [""])
    assert lines(body(message, "html")) == (lines(html) or [""])


def test_from_email_takes_the_envelope_from_the_headers_and_drops_bcc() -> None:
    message = EmailMessage()
    message["From"] = "mocd <mocd@x.vn>"
    message["To"] = "A <a@x.vn>, b@x.vn"
    message["Bcc"] = "hidden@x.vn"
    message["Subject"] = "Xin chào"
    message.set_content("Nội dung")
    outgoing = from_email(message)
    assert (outgoing.sender, outgoing.recipients) == ("mocd@x.vn",
                                                     ("a@x.vn", "b@x.vn", "hidden@x.vn"))
    assert b"hidden@x.vn" not in outgoing.data
    assert outgoing.data == from_email(message).data  # the same message, the same bytes
    assert outgoing.subject == "Xin chào"
    assert not outgoing.smtputf8
    del message["To"], message["Bcc"]
    with pytest.raises(PermanentError, match="no To, Cc or Bcc"):
        from_email(message)
