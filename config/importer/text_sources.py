"""Reading the text of a plan from ``.txt``, ``.docx`` or a ``.pdf`` with a text layer.

This is the importer's only input edge: everything after it works on a string.
Every way a file can be unreadable — binary data, legacy (non-UTF-8)
encodings, a corrupt DOCX, a PDF that is a scan without a text layer — is a
one-line :class:`ImportFailure`, never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path

from config.errors import UsageError, UserError

SUFFIXES = (".txt", ".docx", ".pdf")
# Text that is really a binary file: NUL bytes, or mostly control characters.
_CONTROL = set(range(0, 9)) | {11, 12} | set(range(14, 32))


class ImportFailure(UserError):
    """The input cannot be read as a plan; exit 1 with one line."""


def read_plan(path: Path) -> str:
    """The text of the plan in ``path`` (see the module docstring)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"{path}: cannot import '{path.suffix or path.name}' files: "
                         "mocd import reads .txt, .docx and .pdf")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImportFailure(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImportFailure(f"{path}: is a directory, not a plan") from None
    except OSError as exc:
        raise ImportFailure(f"{path}: cannot read: {exc.strerror}") from None
    if not raw.strip():
        raise ImportFailure(f"{path}: the file is empty")
    if suffix == ".docx":
        text = docx_text(raw, path)
    elif suffix == ".pdf":
        text = pdf_text(raw, path)
    else:
        text = plain_text(raw, path)
    if not text.strip():
        raise ImportFailure(f"{path}: the file holds no text")
    return text


def plain_text(raw: bytes, path: Path) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with a BOM; anything else is refused."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    sample = raw[:8192]
    if b"\x00" in sample or sum(b in _CONTROL for b in sample) > len(sample) // 20:
        raise ImportFailure(f"{path}: not a text file (binary data): "
                            "export the plan as .txt, .docx or .pdf")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailure(
            f"{path}: not UTF-8 text (byte {exc.start}): save it as UTF-8 "
            "(TCVN3/VNI files must be converted to Unicode first)") from None


def docx_text(raw: bytes, path: Path) -> str:
    """Paragraphs and table cells in document order (headers are often tables)."""
    import docx

    try:
        document = docx.Document(io.BytesIO(raw))
    except Exception as exc:  # zip, package and XML errors of a damaged or foreign file
        raise ImportFailure(f"{path}: not a readable .docx file ({type(exc).__name__})") from None
    return "\n".join(_docx_lines(document.element.body))


def _docx_lines(body: object) -> Iterator[str]:
    from docx.oxml.ns import qn

    def paragraph_text(p: object) -> str:
        # Line breaks inside a paragraph (Shift+Enter, "Nơi nhận" lists) are lines too.
        marks = {qn("w:br"): "\n", qn("w:cr"): "\n", qn("w:tab"): "\t"}
        return "".join(node.text or "" if node.tag == qn("w:t") else marks[node.tag]
                       for node in p.iter(qn("w:t"), *marks))  # type: ignore[attr-defined]

    for child in body.iterchildren():  # type: ignore[attr-defined]
        if child.tag == qn("w:p"):
            yield paragraph_text(child)
        elif child.tag == qn("w:tbl"):
            for cell in child.iter(qn("w:tc")):
                for p in cell.iter(qn("w:p")):
                    yield paragraph_text(p)


@contextlib.contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs its repairs of damaged files; they are not the admin's business."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def pdf_text(raw: bytes, path: Path) -> str:
    """The text layer of every page; a PDF without one is a scan that needs OCR first."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    with _quiet_pypdf():
        try:
            reader = PdfReader(io.BytesIO(raw))
            if reader.is_encrypted and not reader.decrypt(""):
                raise ImportFailure(f"{path}: the PDF is password-protected")
            pages = [page.extract_text() or "" for page in reader.pages]
        except ImportFailure:
            raise
        except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
            raise ImportFailure(f"{path}: not a readable PDF ({type(exc).__name__})") from None
    text = "\n".join(pages)
    if not text.strip():
        raise ImportFailure(
            f"{path}: the PDF has no text layer (a scan?): run OCR first, e.g. "
            f"`ocrmypdf -l vie {path.name} plan-ocr.pdf`, then import the result")
    return text
