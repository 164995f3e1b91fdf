"""`mocd import` on hostile files: zip bombs, oversized files, huge texts, one-line texts.

A plan is a few dozen kilobytes of text. Whatever arrives instead — a .docx
whose ``word/document.xml`` unpacks to a gigabyte, a zip whose headers lie
about its sizes, a 20 MB file, a text of a single 4 MB line — must end in one
line and exit 1, or in a draft, in a time that grows linearly with the input
and without the memory growing with what the file claims to hold.

The zip bombs are built here, cheaply: the deflate stream of a 1 MiB block of
zeros is cut with a full flush, which makes it independent of what came before,
so repeating it N times is a valid stream of N MiB (about 1 KiB each).
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.importer import text_sources
from config.importer.spans import Spans
from config.importer.text_sources import ImportFailure, read_plan
from tests.conftest import RunCli
from tests.test_import_cli import text_pdf

SEEDS = Path(__file__).parent / "fixtures" / "import" / "seeds"
SEED_TEXTS = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]
MiB = 1 << 20
REPO = Path(__file__).resolve().parent.parent


# --- building zips by hand -------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    """A zip member as stored: its deflated bytes and what the headers say about it."""

    name: str
    data: bytes  # as stored (deflated unless method is STORED)
    crc: int
    size: int  # the uncompressed size written in the headers (may lie)
    method: int = zipfile.ZIP_DEFLATED

    @classmethod
    def of(cls, name: str, content: bytes) -> Member:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        return cls(name, c.compress(content) + c.flush(), zlib.crc32(content), len(content))


def write_zip(members: list[Member]) -> bytes:
    """A zip of ``members`` exactly as given (sizes and CRCs are not recomputed)."""
    out = io.BytesIO()
    central = []
    for m in members:
        offset = out.tell()
        name = m.name.encode()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, m.method, 0, 0x21,
                              m.crc, len(m.data), m.size, len(name), 0) + name + m.data)
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, m.method, 0, 0x21,
                                   m.crc, len(m.data), m.size, len(name), 0, 0, 0, 0, 0,
                                   offset) + name)
    start = out.tell()
    out.write(b"".join(central))
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members),
                          out.tell() - start, start, 0))
    return out.getvalue()


def docx_members(text: str = "Kế hoạch") -> list[Member]:
    """The members of a real (python-docx) document holding ``text``."""
    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    with zipfile.ZipFile(buffer) as z:
        return [Member.of(info.filename, z.read(info)) for info in z.infolist()]


def deflate_bomb(prefix: bytes, mib: int, suffix: bytes) -> tuple[bytes, int, int]:
    """``prefix + b"0" * mib MiB + suffix`` deflated: (stream, crc, size), in a second or so."""
    block = b"0" * MiB
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    repeated = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.compress(suffix) + c.flush()
    crc = zlib.crc32(prefix)
    for _ in range(mib):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(suffix, crc)
    return head + repeated * mib + tail, crc, len(prefix) + mib * MiB + len(suffix)


XML_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w='
            b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
            b"<w:t>")
XML_TAIL = b"</w:t></w:r></w:p></w:body></w:document>"


def bomb_docx(mib: int = 1024, *, declared: int | None = None) -> bytes:
    """A .docx whose ``word/document.xml`` is one text run of ``mib`` MiB of zeros.

    ``declared`` is the uncompressed size the headers claim (default: the truth).
    """
    stream, crc, size = deflate_bomb(XML_HEAD, mib, XML_TAIL)
    members = [m for m in docx_members() if m.name != "word/document.xml"]
    members.insert(1, Member("word/document.xml", stream, crc,
                             size if declared is None else declared))
    return write_zip(members)


# --- running `mocd import` in a child whose memory we can see -----------------------------

_CHILD = """
import json, resource, sys
import config.importer.command, docx, pypdf  # everything import needs, loaded before measuring
from scheduler.cli import main
vm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:")][0]
limit = (vm + 1536 * 1024) * 1024  # the machine's safety net: 1.5 GB more address space at most
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = main(["import", sys.argv[1], "--output", sys.argv[2]])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"code": code, "growth_mb": (after - before) / 1024}))
"""


def import_in_child(path: Path, tmp_path: Path) -> tuple[int, float, str, float]:
    """(exit code, peak RSS growth in MB, stderr, seconds) of `mocd import path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCD_")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(tmp_path / "out.yaml")],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    seconds = time.perf_counter() - start
    assert done.stdout, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    return result["code"], result["growth_mb"], done.stderr, seconds


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="measures memory through /proc (Linux)")


def assert_one_line(err: str, path: Path, *fragments: str) -> None:
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{path}: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


# --- .docx zip bombs ---------------------------------------------------------------------

@needs_proc
def test_a_zip_bomb_docx_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    path = tmp_path / "bomb.docx"
    path.write_bytes(bomb_docx(1024))  # 1 GiB of XML in about 1 MB
    assert path.stat().st_size < 2 * MiB
    code, growth, err, seconds = import_in_child(path, tmp_path)
    assert code == 1
    assert_one_line(err, path, "word/document.xml", "MB")
    assert growth < 50, f"peak RSS grew by {growth:.0f} MB"
    assert seconds < 10
    assert not (tmp_path / "out.yaml").exists()


@needs_proc
def test_a_zip_whose_headers_lie_about_its_size_is_read_no_further_than_they_say(
        tmp_path: Path) -> None:
    # The headers claim 20 kB; the stream inflates to 1 GiB. zipfile inflates a whole
    # member in one call, so trusting the headers is not enough: what is read is bounded.
    path = tmp_path / "liar.docx"
    path.write_bytes(bomb_docx(1024, declared=20_000))
    code, growth, err, _ = import_in_child(path, tmp_path)
    assert code == 1
    assert_one_line(err, path, "not a readable .docx file")
    assert growth < 50, f"peak RSS grew by {growth:.0f} MB"


def test_the_docx_limits_are_checked_on_the_zip_members(tmp_path: Path) -> None:
    path = tmp_path / "plan.docx"
    members = docx_members()
    # Many members: a Word document has a few dozen.
    crowd = [Member.of(f"word/media/image{i}.png", b"x") for i in range(5000)]
    path.write_bytes(write_zip(members + crowd))
    with pytest.raises(ImportFailure, match=r"holds 5,\d{3} files, over the 1,000 limit"):
        read_plan(path)
    # A compression method Word never uses (bzip2 would inflate without bound).
    odd = [*members, Member("word/media/x.bin", b"BZh91AY&SY", 0, 10, zipfile.ZIP_BZIP2)]
    path.write_bytes(write_zip(odd))
    with pytest.raises(ImportFailure, match=r"not a readable \.docx file \(.*compression"):
        read_plan(path)
    # Honest sizes that add up to too much, each part compressing as text does (8 times).
    bits = random.Random(1).randbytes(MiB).translate(bytes(48 + (i & 1) for i in range(256)))
    part = Member.of("word/media/part.bin", bits)
    assert 6 < part.size / len(part.data) < 10
    big = [*members, *(Member(f"word/media/p{i}.bin", part.data, part.crc, part.size)
                       for i in range(70))]
    path.write_bytes(write_zip(big))
    assert path.stat().st_size < text_sources.MAX_FILE_BYTES
    with pytest.raises(ImportFailure, match=r"the \.docx unpacks to 7\d MB \(word/media/p0"
                       r"\.bin: 1\.0 MB\), over the 64 MB limit"):
        read_plan(path)
    # Under the limits, but a picture of 30 MB in 30 kB: a bomb all the same.
    stream, crc, size = deflate_bomb(b"", 30, b"")
    path.write_bytes(write_zip([*members, Member("word/media/image1.png", stream, crc, size)]))
    with pytest.raises(ImportFailure, match=r"word/media/image1\.png expands 1,\d{3} times "
                       r"\(31 MB from \d+ kB\), over the 100 times"):
        read_plan(path)
    # XML, which lxml parses into a tree many times its size, is held to less.
    xml = [*members, *(Member(f"word/p{i}.xml", part.data, part.crc, part.size)
                       for i in range(11))]
    path.write_bytes(write_zip(xml))
    with pytest.raises(ImportFailure, match=r"its XML unpacks to 12 MB .*over the 10 MB limit"):
        read_plan(path)


def test_an_ordinary_docx_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "plan.docx"
    path.write_bytes(write_zip(docx_members("Kế hoạch số 12/KH-UBND")))
    assert read_plan(path) == "Kế hoạch số 12/KH-UBND"


# --- sizes of files and texts ------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".txt", ".docx", ".pdf"])
def test_a_file_over_the_size_limit_is_refused_unread(
        run_cli: RunCli, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"huge{suffix}"
    plan = "\n".join(SEED_TEXTS).encode()
    with path.open("wb") as f:
        for _ in range(21 * MiB // len(plan) + 1):
            f.write(plan)
    start = time.perf_counter()
    code, out, err = run_cli(["import", str(path), "-o", str(tmp_path / "d.yaml")])
    assert time.perf_counter() - start < 2
    assert (code, out) == (1, "")
    assert_one_line(err, path, "over the 20 MB limit of mocd import")


def test_a_text_over_the_length_limit_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "collection.txt"
    plan = "\n".join(SEED_TEXTS)
    path.write_text(plan * (text_sources.MAX_TEXT_CHARS // len(plan) + 1), encoding="utf-8")
    assert path.stat().st_size < text_sources.MAX_FILE_BYTES
    start = time.perf_counter()
    code, _, err = run_cli(["import", str(path)])
    assert time.perf_counter() - start < 3
    assert code == 1
    assert_one_line(err, path, "characters of text, over the", "limit of mocd import")


def test_the_text_limit_counts_what_the_recognisers_will_see(tmp_path: Path) -> None:
    # NFKC writes "ﷺ" as 18 letters: 300,000 of them are 5.4 million characters.
    path = tmp_path / "ligatures.txt"
    path.write_text("Kế hoạch năm 2024 " + "\ufdfa" * 300_000, encoding="utf-8")
    with pytest.raises(ImportFailure, match=r"5,400,018 characters of text, over the "):
        read_plan(path)


def test_a_docx_and_a_pdf_are_held_to_the_same_text_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = SEED_TEXTS[1].splitlines()
    document = docx.Document()
    for line in lines:
        document.add_paragraph(line)
    document.save(str(tmp_path / "plan.docx"))
    (tmp_path / "plan.pdf").write_bytes(text_pdf(lines))
    monkeypatch.setattr(text_sources, "MAX_TEXT_CHARS", 5000)
    for name in ("plan.docx", "plan.pdf"):
        with pytest.raises(ImportFailure, match=r"over the 5,000-character limit"):
            read_plan(tmp_path / name)


def test_a_pdf_with_too_many_pages_is_refused_before_its_text_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long.pdf"
    path.write_bytes(text_pdf([f"Trang {i}" for i in range(50 * 30)]))  # 30 pages
    monkeypatch.setattr(text_sources, "MAX_PDF_PAGES", 20)
    with pytest.raises(ImportFailure, match=r"has 30 pages, over the 20-page limit"):
        read_plan(path)


def test_a_pdf_page_with_a_huge_text_is_refused(tmp_path: Path) -> None:
    # One page whose content stream draws 40 million characters (600 kB deflated).
    run = b"(" + b"nam 2024 " * 10_000 + b") Tj\n"
    content = b"BT /F1 10 Tf 40 800 Td\n" + run * 444 + b"ET"
    data = zlib.compress(content, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 "
        b"5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % o for o in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    path = tmp_path / "huge-text.pdf"
    path.write_bytes(out.getvalue())
    start = time.perf_counter()
    with pytest.raises(ImportFailure, match=r"huge-text\.pdf: .*over the"):
        read_plan(path)
    assert time.perf_counter() - start < 10


# --- time linear in the size of the text -------------------------------------------------

def plan_on_one_line(size: int) -> str:
    """The three seed plans with their line breaks turned into spaces, repeated."""
    unit = " ".join(" ".join(SEED_TEXTS).split("\n")) + " "
    return (unit * (size // len(unit) + 1))[:size]


def random_words(size: int) -> str:
    """Words of the seed plans in random order: no sentence, no paragraph, no line."""
    rnd = random.Random(11)
    words = " ".join(SEED_TEXTS).split()
    out = " ".join(rnd.choice(words) for _ in range(size // 5 + 1000))
    return out[:size]


_PHRASES = [
    "gửi hồ sơ đề nghị khen thưởng về UBND huyện (qua Phòng Nội vụ)", "Hằng năm:",
    "thời gian dự kiến trong tháng 9 năm 2021", "hoàn thành trước ngày 31/5/2023",
    "Năm 2022:", "- Tổ chức hội nghị", "Giao Phòng Nội vụ chủ trì, phối hợp với các Phòng: "
    "Nội vụ; Tư pháp theo dõi, đôn đốc", "52 năm Ngày giải phóng huyện Ba Tơ (30/10/1972-"
    "30/10/2024)", "Quý III vào Quý IV năm 2023", "6 tháng đầu năm 2023", "12 năm 2024 (",
    "Thời gian thi đua: từ ngày phát động đến hết ngày 31/5/2023", "Nơi nhận:", "1.",
]


def dates_everywhere(size: int) -> str:
    """The phrases the recognisers look for (dates, submissions, year lists), on one line."""
    rnd = random.Random(12)
    words = " ".join(SEED_TEXTS).split()
    parts = [rnd.choice(_PHRASES) if rnd.random() < 0.3 else rnd.choice(words)
             for _ in range(size // 6 + 1000)]
    return " ".join(parts)[:size]


def many_lines(size: int) -> str:
    unit = "\n".join(SEED_TEXTS) + "\n"
    return (unit * (size // len(unit) + 1))[:size]


def import_seconds(run_cli: RunCli, path: Path, text: str) -> float:
    """CPU seconds of `mocd import` (not wall time: other processes share the machine)."""
    path.write_text(text, encoding="utf-8")
    start = time.process_time()
    code, _, err = run_cli(["import", str(path), "-o", str(path.with_suffix(".yaml")),
                            "--force"])
    seconds = time.process_time() - start
    assert code in (0, 1), err
    assert len(err.strip().splitlines()) == 1, err
    return seconds


@pytest.mark.slow
@pytest.mark.parametrize(("make", "small", "limit"), [
    (plan_on_one_line, 400_000, 8.0),
    (random_words, 400_000, 8.0),
    (many_lines, 400_000, 8.0),
    # A due date, a submission or a year list every few words: the recognisers' most
    # expensive case (each milestone's title is restored), so half the size.
    (dates_everywhere, 200_000, 10.0),
])
def test_import_time_grows_linearly_with_the_text(
        run_cli: RunCli, tmp_path: Path, make: Callable[[int], str], small: int,
        limit: float) -> None:
    import_seconds(run_cli, tmp_path / "warm.txt", SEED_TEXTS[0])  # dictionaries loaded once
    # Ten times the text must take about ten times as long: before the recognisers
    # were linear, a 4 MB line of plan took 18 times as long as 400 kB, and more the
    # longer it got. The best of three small runs keeps noise out of the ratio.
    fast = min(import_seconds(run_cli, tmp_path / "small.txt", make(small)) for _ in range(3))
    slow = import_seconds(run_cli, tmp_path / "big.txt", make(10 * small))
    assert slow < 14 * max(fast, 0.05), f"{small:,} chars: {fast:.2f} s, ×10: {slow:.2f} s"
    assert slow < limit, f"{10 * small:,} characters: {slow:.2f} s"


SPANS = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 12)).map(
    lambda p: (p[0], p[0] + p[1])), max_size=25)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(added=SPANS, asked=SPANS)
def test_spans_answer_as_the_list_of_spans_did(added: list[tuple[int, int]],
                                                asked: list[tuple[int, int]]) -> None:
    # The recognisers asked `any(s < b and a < e for a, b in spans)` of a growing list;
    # Spans must answer the same, empty spans (points) included, after every addition.
    spans = Spans()
    for i, (start, end) in enumerate(added):
        spans.add(start, end)
        for s, e in [*asked, *added]:
            expected = any(s < b and a < e for a, b in added[:i + 1])
            assert spans.overlaps(s, e) == expected, (added[:i + 1], (s, e))


def test_a_title_running_the_whole_text_is_cut_short() -> None:
    from config.importer.assemble import draft_plan
    from config.importer.draft import render

    draft = draft_plan(plan_on_one_line(200_000), "one-line.txt")
    longest = max(len(line) for line in render(draft).splitlines())
    assert longest < 1000
    assert draft.campaign is not None
    assert re.match(r"TINH BACKAN", draft.campaign.title)
