"""A bounded fuzz test of `mocd import`: damaged plans in its three formats.

The three seed plans are mutated at the byte level (bits flipped, ranges
deleted, duplicated or overwritten, bytes inserted, the end cut off) as
``.txt``; as text packed into a real ``.docx`` (python-docx); as ``.docx``
files whose ``word/document.xml`` or whose zip bytes are damaged; and as
``.pdf`` files (the test writer of tests/test_import_cli.py) whose bytes are
damaged. Whatever comes out, `mocd import` exits 0 (a draft) or 1 (one line
saying why), never with an internal error or a traceback, and within a couple
of seconds.

Normal runs try a fixed set of 100 cases (``derandomize``: the same ones every
time); ``MOCD_FUZZ=1`` runs 2,000 random ones (``MOCD_FUZZ=N``: N of them).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
import unicodedata
import zipfile
from functools import cache
from pathlib import Path

import docx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.test_import_cli import text_pdf

SEEDS = sorted((Path(__file__).parent / "fixtures" / "import" / "seeds").glob("*.txt"))
_FUZZ = os.environ.get("MOCD_FUZZ", "")
EXAMPLES = (int(_FUZZ) if _FUZZ.isdigit() and int(_FUZZ) > 1 else 2000) if _FUZZ else 100
SECONDS_PER_CASE = 3.0
FORMATS = ("txt", "docx-text", "docx-xml", "docx-bytes", "pdf-bytes")
# Characters XML 1.0 cannot hold: python-docx refuses them when the test packs the text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@cache
def seed_docx(index: int) -> bytes:
    return pack_docx(SEEDS[index].read_text(encoding="utf-8"))


@cache
def seed_pdf(index: int) -> bytes:
    return text_pdf(SEEDS[index].read_text(encoding="utf-8").splitlines())


def pack_docx(text: str) -> bytes:
    document = docx.Document()
    for line in _NOT_XML.sub("", text).split("\n"):
        document.add_paragraph(line)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def replace_member(zipped: bytes, name: str, content: bytes) -> bytes:
    """``zipped`` with member ``name`` replaced by ``content`` (sizes and CRC correct)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zipped)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, content if info.filename == name else src.read(info))
    return out.getvalue()


def member(zipped: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(zipped)) as z:
        return z.read(name)


MUTATIONS = st.lists(st.tuples(
    st.sampled_from(["flip", "delete", "insert", "duplicate", "overwrite", "truncate"]),
    st.floats(0, 1), st.integers(1, 4096), st.binary(min_size=1, max_size=64)),
    min_size=1, max_size=6)


def mutate(data: bytes, mutations: list[tuple[str, float, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, where, length, blob in mutations:
        at = int(where * len(buf))
        if kind == "flip" and buf:
            at = min(at, len(buf) - 1)
            buf[at] ^= 1 << (length % 8)
        elif kind == "delete":
            del buf[at:at + length]
        elif kind == "insert":
            buf[at:at] = blob
        elif kind == "duplicate":
            buf[at:at] = buf[at:at + length]
        elif kind == "overwrite":
            buf[at:at + len(blob)] = blob
        elif kind == "truncate":
            del buf[at:]
    return bytes(buf)


def build(fmt: str, index: int, mutations: list[tuple[str, float, int, bytes]]) -> bytes:
    if fmt == "txt":
        return mutate(SEEDS[index].read_bytes(), mutations)
    if fmt == "docx-text":
        raw = mutate(SEEDS[index].read_bytes(), mutations)
        return pack_docx(unicodedata.normalize("NFC", raw.decode("utf-8", "replace")))
    if fmt == "docx-xml":
        original = seed_docx(index)
        xml = mutate(member(original, "word/document.xml"), mutations)
        return replace_member(original, "word/document.xml", xml)
    if fmt == "docx-bytes":
        return mutate(seed_docx(index), mutations)
    return mutate(seed_pdf(index), mutations)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not _FUZZ,
                         suppress_health_check=[HealthCheck.too_slow,
                                                HealthCheck.data_too_large])
if not _FUZZ:  # the fixed cases: nothing to remember between runs
    FUZZ_SETTINGS = settings(FUZZ_SETTINGS, database=None)


@FUZZ_SETTINGS
@given(fmt=st.sampled_from(FORMATS), index=st.integers(0, len(SEEDS) - 1),
       mutations=MUTATIONS)
def test_import_of_a_damaged_plan_exits_0_or_1_with_one_line(
        workdir: Path, fmt: str, index: int,
        mutations: list[tuple[str, float, int, bytes]]) -> None:
    from scheduler.cli import main

    suffix = "." + fmt.split("-")[0]
    path = workdir / f"plan{suffix}"
    path.write_bytes(build(fmt, index, mutations))
    target = workdir / "draft.yaml"
    target.unlink(missing_ok=True)
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["import", str(path), "--output", str(target)])
    seconds = time.perf_counter() - start
    message = err.getvalue()
    event(f"{fmt}: exit {code}")  # --hypothesis-show-statistics shows the spread
    assert code in (0, 1), message
    assert "Traceback" not in message
    assert len(message.strip().splitlines()) == 1, message
    if code == 1:
        assert message.startswith(f"{path}: "), message
        assert not target.exists()
    else:
        assert target.exists()
    assert seconds < SECONDS_PER_CASE, f"{fmt}: {seconds:.1f} s"
