"""`mocd import` from the command line: sources, output, errors, and the check afterwards.

DOCX and PDF fixtures are generated here from the Ba Tơ seed (python-docx for
the DOCX, a minimal PDF writer with a ToUnicode map for the text layer), so
the repository holds no binary fixtures and the three forms can be compared.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import docx
import pytest
from pypdf import PdfWriter

from config.importer.assemble import draft_plan
from config.importer.text_sources import read_plan
from tests.conftest import RunCli

FIXTURES = Path(__file__).parent / "fixtures" / "import"
BA_TO = FIXTURES / "seeds" / "ke-hoach-ba-to-2024.txt"
TODO = re.compile(r"(?P<key>\w+): TODO(?=[\s,}])")


def text_pdf(lines: list[str]) -> bytes:
    """A PDF whose text layer holds ``lines`` (one Type0 font mapped by ToUnicode).

    No glyphs are embedded — a viewer would show boxes — but text extraction,
    which is all ``mocd import`` does, reads the ToUnicode map. Blank lines are
    written as a space so that paragraphs survive.
    """
    chars = sorted({c for line in lines for c in line} | {" "})
    cid = {c: i + 1 for i, c in enumerate(chars)}
    pages = [lines[i:i + 50] for i in range(0, len(lines), 50)]
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def stream(data: bytes) -> bytes:
        return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"

    cmap = ["/CIDInit /ProcSet findresource begin 12 dict begin begincmap",
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
            "/CMapName /Vi def /CMapType 2 def 1 begincodespacerange <0000> <FFFF> "
            "endcodespacerange"]
    items = [f"<{cid[c]:04X}> <{ord(c):04X}>" for c in chars]
    for k in range(0, len(items), 100):
        block = items[k:k + 100]
        cmap += [f"{len(block)} beginbfchar", *block, "endbfchar"]
    cmap += ["endcmap CMapName currentdict /CMap defineresource pop end end"]
    to_unicode = add(stream("\n".join(cmap).encode()))
    descriptor = add(b"<< /Type /FontDescriptor /FontName /Vi /Flags 32 /FontBBox [0 0 1000 "
                     b"1000] /ItalicAngle 0 /Ascent 800 /Descent -200 /CapHeight 700 "
                     b"/StemV 80 >>")
    cid_font = add(b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Vi /CIDSystemInfo "
                   b"<< /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
                   b"/FontDescriptor %d 0 R /DW 500 >>" % descriptor)
    font = add(b"<< /Type /Font /Subtype /Type0 /BaseFont /Vi /Encoding /Identity-H "
               b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (cid_font, to_unicode))
    page_ids = []
    pages_id = len(objects) + 2 * len(pages) + 1
    for page in pages:
        ops = ["BT /F1 10 Tf 12 TL 40 800 Td"]
        for line in page:
            hexed = "".join(f"{cid[c]:04X}" for c in (line or " "))
            ops.append(f"<{hexed}> Tj T*")
        ops.append("ET")
        content = add(stream("\n".join(ops).encode()))
        page_ids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] "
                            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>"
                            % (pages_id, font, content)))
    kids = " ".join(f"{p} 0 R" for p in page_ids).encode()
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))) == pages_id
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, catalog, xref))
    return out.getvalue()


def scanned_pdf() -> bytes:
    """A PDF of one blank page: what a scanner without OCR produces, as far as text goes."""
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def ba_to_docx(path: Path) -> None:
    """The Ba Tơ plan as Word would hold it: paragraphs, and "Nơi nhận" in a table."""
    lines = BA_TO.read_text(encoding="utf-8").splitlines()
    split = lines.index("Nơi nhận:")
    document = docx.Document()
    for line in lines[:split]:
        document.add_paragraph(line)
    table = document.add_table(rows=1, cols=2)
    left, right = table.rows[0].cells
    left.text = "\n".join(line for line in lines[split:] if line.startswith(("Nơi", "-")))
    right.text = "CHỦ TỊCH\nPhạm Xuân Vinh"
    document.save(str(path))


def dates(text: str, name: str = "plan") -> tuple[list[str], list[str]]:
    draft = draft_plan(text, name)
    return [v.yaml for v in draft.values()], sorted(u.id for u in draft.units)


def test_import_prints_the_draft_and_a_summary(run_cli: RunCli) -> None:
    code, out, err = run_cli(["import", str(BA_TO)])
    assert code == 0
    assert out.startswith("# Bản nháp do `mocd import` tạo từ ke-hoach-ba-to-2024.txt.")
    assert "      - id: gui-ho-so-de-nghi-khen-thuong-ve-ubnd" in out
    assert err.strip() == (
        "stdout: draft of ke-hoach-ba-to-2024.txt — 1 anniversaries, a campaign period, "
        "2 milestones, 10 units, 4 groups; 3 TODO values to fill in before `mocd check`")


def test_the_written_draft_passes_mocd_check_once_the_todos_are_filled(
        run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    draft = tmp_path / "cfg" / "ba-to.yaml"
    code, out, _ = run_cli(["import", str(BA_TO), "--output", str(draft),
                            "--campaign-id", "thi-dua-dhdt-ba-to-2024"])
    assert (code, out) == (0, "")
    code, _, err = run_cli(["check", "--config", "cfg"])
    assert code == 1  # the TODOs are still there: the check says where
    assert "cfg/ba-to.yaml:" in err
    assert "'TODO'" in err
    values = iter(["2024-04-15", "2024-06-20 08:00", "2024-05-30"])
    draft.write_text(TODO.sub(lambda m: f"{m['key']}: {next(values)}", draft.read_text()))
    code, out, err = run_cli(["check", "--config", "cfg"])
    assert (code, err) == (0, "")
    assert "1 campaigns, 1 anniversaries" in out
    code, out, _ = run_cli(["agenda", "--config", "cfg", "--from", "2024-06-20",
                            "--to", "2024-06-20", "--format", "json"])
    assert "thi-dua-dhdt-ba-to-2024.dai-hoi-dai-bieu-cac-dan-toc-thieu-so@" in out


def test_output_is_never_overwritten_without_force(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "draft.yaml"
    target.write_text("# mine\n")
    code, _out, err = run_cli(["import", str(BA_TO), "-o", str(target)])
    assert code == 2
    assert err.strip() == f"{target}: already exists: use --force to overwrite it"
    assert target.read_text() == "# mine\n"
    code, _, _ = run_cli(["import", str(BA_TO), "-o", str(target), "--force"])
    assert code == 0
    assert target.read_text().startswith("# Bản nháp")


def test_a_docx_gives_the_same_draft_as_the_text(tmp_path: Path) -> None:
    path = tmp_path / "ba-to.docx"
    ba_to_docx(path)
    assert dates(read_plan(path)) == dates(BA_TO.read_text(encoding="utf-8"))


def test_a_pdf_with_a_text_layer_gives_the_same_dates_as_the_text(tmp_path: Path) -> None:
    text = BA_TO.read_text(encoding="utf-8")
    path = tmp_path / "ba-to.pdf"
    path.write_bytes(text_pdf(text.splitlines()))
    from_pdf = read_plan(path)
    assert "Ba Tơ, ngày tháng 4 năm 2024" in from_pdf
    assert dates(from_pdf) == dates(text)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("scan.pdf", scanned_pdf(), "the PDF has no text layer (a scan?): run OCR first, e.g. "
     "`ocrmypdf -l vie scan.pdf plan-ocr.pdf`, then import the result"),
    ("broken.pdf", b"%PDF-1.4\nnot really a pdf", "not a readable PDF"),
    ("broken.docx", b"PK\x03\x04 this zip is cut short", "not a readable .docx file"),
    ("binary.txt", bytes(range(256)) * 4, "not a text file (binary data)"),
    ("legacy.txt", b"K\xea ho\xe0ch n\xe3m 2024\n", "not UTF-8 text"),  # a Windows-1258 file
    ("empty.txt", b"", "the file is empty"),
    ("blank.txt", b"  \n\n \t\n", "the file is empty"),
    ("novel.txt", (FIXTURES / "novel.txt").read_bytes(), "no dates to draft from"),
    ("no-dates.txt", (FIXTURES / "no-dates.txt").read_bytes(), "no dates to draft from"),
])
def test_garbage_in_gives_one_line_exit_1_and_no_draft(
        run_cli: RunCli, tmp_path: Path, name: str, content: bytes, message: str) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    target = tmp_path / "draft.yaml"
    code, out, err = run_cli(["import", str(source), "--output", str(target)])
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{source}: ")
    assert message in err
    assert "Traceback" not in err
    assert not target.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["import", "plan.odt"], "cannot import '.odt' files: mocd import reads .txt, .docx and .pdf"),
    (["import", str(BA_TO), "--campaign-id", "Kế hoạch"], "'Kế hoạch' is not an id"),
    (["import"], "Missing argument 'FILE'"),
])
def test_usage_errors_exit_2(run_cli: RunCli, args: list[str], message: str) -> None:
    code, out, err = run_cli(args)
    assert (code, out) == (2, "")
    assert message in err


def test_a_missing_file_is_one_line(run_cli: RunCli) -> None:
    code, _, err = run_cli(["import", "nowhere.txt"])
    assert (code, err) == (1, "nowhere.txt: no such file\n")
