"""Reading the text of a plan from ``.txt``, ``.docx`` or a ``.pdf`` with a text layer.

This is the importer's only input edge: everything after it works on a string.
Every way a file can be unreadable — binary data, legacy (non-UTF-8)
encodings, a corrupt DOCX, a PDF that is a scan without a text layer — is a
one-line :class:`ImportFailure`, never a traceback.

It is also where hostile files stop (issue 11). A plan is a few dozen
kilobytes of text; the limits below are far above any real plan and far
below what would hurt the machine, and each is checked *before* the work it
bounds: the file's size before it is read, a ``.docx``'s zip members before
anything is unpacked or parsed, a PDF's page count before any text is
extracted, and the text's length before the recognisers see it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import unicodedata
import zipfile
from collections.abc import Iterator
from pathlib import Path

from config.errors import UsageError, UserError

SUFFIXES = (".txt", ".docx", ".pdf")
# Text that is really a binary file: NUL bytes, or mostly control characters.
_CONTROL = set(range(0, 9)) | {11, 12} | set(range(14, 32))

MB = 1_000_000

MAX_FILE_BYTES = 20 * MB
"""The largest file ``mocd import`` reads (any format).

The seed plans are 12–23 kB of text; a Word file of a long plan with its logos
is a few hundred kB, a PDF of 100 scanned and OCR'd pages some 10 MB. Beyond
20 MB the file is not one plan, and reading it is already the first copy of it
in memory.
"""

MAX_TEXT_CHARS = 5_000_000
"""The longest text handed to the recognisers, in characters (after NFKC).

A 100-page plan is about 300,000 characters. The recognisers are linear in the
text, about a microsecond a character for plan-like text and three for a text
that is nothing but dates, and keep a few copies of it (folded, normalised):
five million characters is a few seconds (15 at worst) and a few hundred MB,
and anything longer is not a plan.
"""

MAX_DOCX_MEMBERS = 1_000
"""The most files a ``.docx`` (a zip) may hold: Word writes about a dozen, plus one a picture.

Counted from the zip's central directory, before anything is unpacked.
"""

MAX_DOCX_UNPACKED_BYTES = 64 * MB
"""The most a ``.docx`` may unpack to, all its members together.

python-docx loads every part of the package into memory and parses its XML
with lxml (several times the XML's size again), so this bounds the memory of
reading a Word file. A plan's ``word/document.xml`` is well under 5 MB; its
pictures are stored nearly uncompressed and count at about their file size.
The sizes the zip declares are checked first; then every member is inflated
in small chunks and counted, so a zip whose headers lie is stopped at its
declared sizes too (zipfile itself inflates a whole member in one call).
"""

MAX_DOCX_RATIO = 100
"""The most a member of a ``.docx`` larger than :data:`DOCX_RATIO_FLOOR` may expand.

Word's XML deflates 5–15 times and pictures hardly at all; a member that
expands hundreds of times (``word/document.xml`` of a gigabyte of zeros in a
1.5 MB file: 1,000 times) is a zip bomb, refused before it is unpacked.
"""

MAX_DOCX_XML_BYTES = 10 * MB
"""The most XML a ``.docx`` may hold, all its ``.xml`` and ``.rels`` parts together.

This is what lxml parses, at some 20 bytes of memory and a microsecond per
byte in the worst case (a document of empty paragraphs): 10 MB is at most about
200 MB and a few seconds. Word writes 3–5 MB of XML for a 100-page plan.
"""

DOCX_RATIO_FLOOR = 1 * MB
"""Members smaller than this are never a bomb, whatever their compression ratio."""

DOCX_CHUNK_BYTES = 64 * 1024
"""How much of a zip member is inflated at a time while it is checked."""

MAX_PDF_PAGES = 2_000
"""The most pages a PDF may have: a plan has a few dozen; its page tree is read first."""

MAX_PDF_PAGE_CONTENT_BYTES = 8 * MB
"""The largest content stream (drawing operators) of a PDF page, decoded.

A page of text is 5–50 kB of operators, a page of a map or a chart a few MB;
a page that draws more is refused before its text is extracted, since
extraction holds the whole stream and its text at once. (pypdf caps each
decoded stream at 75 MB itself.)
"""


class ImportFailure(UserError):
    """The input cannot be read as a plan; exit 1 with one line."""


def _mb(size: int) -> str:
    """``20 MB``, ``1,074 MB``, ``1.5 MB``, ``31 kB``."""
    if size < MB:
        return f"{size / 1000:,.0f} kB"
    whole = size >= 10 * MB or size % MB == 0
    return f"{size / MB:,.0f} MB" if whole else f"{size / MB:,.1f} MB"


def read_plan(path: Path) -> str:
    """The text of the plan in ``path`` (see the module docstring)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"{path}: cannot import '{path.suffix or path.name}' files: "
                         "mocd import reads .txt, .docx and .pdf")
    raw = _read_bounded(path)
    if not raw.strip():
        raise ImportFailure(f"{path}: the file is empty")
    if suffix == ".docx":
        text = docx_text(raw, path)
    elif suffix == ".pdf":
        text = pdf_text(raw, path)
    else:
        text = plain_text(raw, path)
    check_length(text, path)
    if not text.strip():
        raise ImportFailure(f"{path}: the file holds no text")
    return text


def _too_big(path: Path, size: int) -> ImportFailure:
    return ImportFailure(
        f"{path}: the file is {_mb(size)}, over the {_mb(MAX_FILE_BYTES)} limit of mocd "
        "import: a plan is far smaller; import the plan alone (as .txt if need be)")


def _read_bounded(path: Path) -> bytes:
    """The file's bytes; no more than :data:`MAX_FILE_BYTES` are ever read."""
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise _too_big(path, size)
            raw = f.read(MAX_FILE_BYTES + 1)  # a pipe or a growing file may say less
    except FileNotFoundError:
        raise ImportFailure(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImportFailure(f"{path}: is a directory, not a plan") from None
    except OSError as exc:
        raise ImportFailure(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _too_big(path, len(raw))
    return raw


def check_length(text: str, path: Path) -> None:
    """Refuse a text longer than :data:`MAX_TEXT_CHARS`, counted as the recognisers will see it.

    The recognisers work on the NFKC form (:func:`config.importer.source.normalise`),
    which can be up to 18 times longer than the text (``ﷺ``); it is computed
    only when the text is not in that form already.
    """
    length = len(text)
    if length <= MAX_TEXT_CHARS and not unicodedata.is_normalized("NFKC", text):
        length = len(unicodedata.normalize("NFKC", text))
    if length > MAX_TEXT_CHARS:
        raise _too_long(path, length)


def _too_long(path: Path, length: int) -> ImportFailure:
    return ImportFailure(
        f"{path}: {length:,} characters of text, over the {MAX_TEXT_CHARS:,}-character "
        "limit of mocd import: a plan is far shorter; import the plan alone, not a "
        "collection of documents")


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

    check_docx(raw, path)
    try:
        document = docx.Document(io.BytesIO(raw))
        lines = list(_docx_lines(document.element.body))
    except Exception as exc:  # zip, package and XML errors of a damaged or foreign file
        raise ImportFailure(f"{path}: not a readable .docx file ({type(exc).__name__})") from None
    return "\n".join(lines)


def check_docx(raw: bytes, path: Path) -> None:
    """Refuse a ``.docx`` that would unpack to too much, before python-docx reads any of it.

    First what the zip declares — the size of its central directory (which
    zipfile reads whole) and its members: their number, compression, sizes and
    ratios — then what the members really inflate to, read in chunks of
    :data:`DOCX_CHUNK_BYTES` and counted, so that nothing is held and a zip
    whose headers lie stops at the sizes they declare (and fails its CRC).
    """
    fp = io.BytesIO(raw)
    end_record = getattr(zipfile, "_EndRecData", None)  # what ZipFile reads first, itself
    try:
        record = end_record(fp) if end_record is not None else None
    except Exception:  # not a zip at all: ZipFile below says so
        record = None
    if record and record[4] > MAX_DOCX_MEMBERS:
        raise _too_many(path, record[4])
    if record and record[5] > MAX_DOCX_MEMBERS * 1024:  # the directory of members
        raise ImportFailure(
            f"{path}: the .docx's list of files is {_mb(record[5])}, more than "
            f"{MAX_DOCX_MEMBERS:,} files need (the limit of mocd import): is it a Word "
            "document? Save the plan again from Word, or as .txt or .pdf")
    try:
        with zipfile.ZipFile(fp) as zf:
            members = zf.infolist()
            if len(members) > MAX_DOCX_MEMBERS:
                raise _too_many(path, len(members))
            for info in members:
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise ImportFailure(
                        f"{path}: not a readable .docx file (unsupported compression of "
                        f"{info.filename}: Word only deflates)")
            xml = [info for info in members if _is_xml(info.filename)]
            for chosen, limit in ((members, MAX_DOCX_UNPACKED_BYTES), (xml, MAX_DOCX_XML_BYTES)):
                declared = sum(info.file_size for info in chosen)
                if declared > limit:
                    largest = max(chosen, key=lambda info: info.file_size)
                    raise _unpacks_to(path, declared, limit, largest, chosen is xml)
            for info in members:
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > DOCX_RATIO_FLOOR and ratio > MAX_DOCX_RATIO:
                    raise ImportFailure(
                        f"{path}: {info.filename} expands {ratio:,.0f} times ("
                        f"{_mb(info.file_size)} from {_mb(info.compress_size)}), over the "
                        f"{MAX_DOCX_RATIO} times of mocd import: a zip bomb? Save the plan "
                        "again from Word, or as .txt or .pdf")
            unpacked = unpacked_xml = 0
            for info in members:
                with zf.open(info) as member:
                    while chunk := member.read(DOCX_CHUNK_BYTES):
                        unpacked += len(chunk)
                        unpacked_xml += len(chunk) if _is_xml(info.filename) else 0
                        if unpacked > MAX_DOCX_UNPACKED_BYTES:
                            raise _unpacks_to(path, unpacked, MAX_DOCX_UNPACKED_BYTES, info)
                        if unpacked_xml > MAX_DOCX_XML_BYTES:
                            raise _unpacks_to(path, unpacked_xml, MAX_DOCX_XML_BYTES, info,
                                              True)
    except ImportFailure:
        raise
    except Exception as exc:  # a damaged zip: bad headers, CRC, deflate data, encryption
        raise ImportFailure(f"{path}: not a readable .docx file ({type(exc).__name__})") from None


def _is_xml(name: str) -> bool:
    return name.lower().endswith((".xml", ".rels"))


def _too_many(path: Path, count: int) -> ImportFailure:
    return ImportFailure(
        f"{path}: the .docx holds {count:,} files, over the {MAX_DOCX_MEMBERS:,} limit of "
        "mocd import: is it a Word document? Save the plan again from Word, or as .txt or .pdf")


def _unpacks_to(path: Path, size: int, limit: int, member: zipfile.ZipInfo,
                xml: bool = False) -> ImportFailure:
    what = "its XML" if xml else "the .docx"
    return ImportFailure(
        f"{path}: {what} unpacks to {_mb(size)} ({member.filename}: "
        f"{_mb(member.file_size)}), over the {_mb(limit)} limit of mocd import: a zip "
        "bomb? Save the plan again from Word, or as .txt or .pdf")


def _docx_lines(body: object) -> Iterator[str]:
    from docx.oxml.ns import qn

    # Line breaks inside a paragraph (Shift+Enter, "Nơi nhận" lists) are lines too.
    text_tag, p_tag, tbl_tag, tc_tag = qn("w:t"), qn("w:p"), qn("w:tbl"), qn("w:tc")
    marks = {qn("w:br"): "\n", qn("w:cr"): "\n", qn("w:tab"): "\t"}

    def paragraph_text(p: object) -> str:
        return "".join(node.text or "" if node.tag == text_tag else marks[node.tag]
                       for node in p.iter(text_tag, *marks))  # type: ignore[attr-defined]

    for child in body.iterchildren():  # type: ignore[attr-defined]
        if child.tag == p_tag:
            yield paragraph_text(child)
        elif child.tag == tbl_tag:
            for cell in child.iter(tc_tag):
                for p in cell.iter(p_tag):
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
    """The text layer of every page; a PDF without one is a scan that needs OCR first.

    Pages are counted before any is read (:data:`MAX_PDF_PAGES`), each page's
    drawing operators are measured before its text is extracted
    (:data:`MAX_PDF_PAGE_CONTENT_BYTES`), and extraction stops as soon as the
    text is over :data:`MAX_TEXT_CHARS`.
    """
    from pypdf import PdfReader

    with _quiet_pypdf():
        try:
            reader = PdfReader(io.BytesIO(raw))
            if reader.is_encrypted and not reader.decrypt(""):
                raise ImportFailure(f"{path}: the PDF is password-protected")
            count = len(reader.pages)
            if count > MAX_PDF_PAGES:
                raise ImportFailure(
                    f"{path}: the PDF has {count:,} pages, over the {MAX_PDF_PAGES:,}-page "
                    "limit of mocd import: import the plan's own pages alone")
            pages: list[str] = []
            length = 0
            for number, page in enumerate(reader.pages, 1):
                contents = page.get_contents()
                size = len(contents.get_data()) if contents is not None else 0
                if size > MAX_PDF_PAGE_CONTENT_BYTES:
                    raise ImportFailure(
                        f"{path}: page {number} of the PDF draws {_mb(size)} of operators, "
                        f"over the {_mb(MAX_PDF_PAGE_CONTENT_BYTES)} limit of mocd import: "
                        "is it a plan? Export its text as .txt")
                pages.append(page.extract_text() or "")
                length += len(pages[-1]) + (number > 1)  # as joined by line breaks
                if length > MAX_TEXT_CHARS:
                    raise _too_long(path, length)
        except ImportFailure:
            raise
        except Exception as exc:  # pypdf's errors, and what a damaged file makes of its code
            raise ImportFailure(f"{path}: not a readable PDF ({type(exc).__name__})") from None
    text = "\n".join(pages)
    if not text.strip():
        raise ImportFailure(
            f"{path}: the PDF has no text layer (a scan?): run OCR first, e.g. "
            f"`ocrmypdf -l vie {path.name} plan-ocr.pdf`, then import the result")
    return text
