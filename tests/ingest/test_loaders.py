"""Loading files into documents: each format, folders, hidden entries, bad files and --strict."""

from __future__ import annotations

import gzip
import json

import pytest

from fgr_retriever import InvalidInputError
from fgr_retriever.ingest import load_documents, read_documents


def _pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page (byte offsets computed)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None,
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Resources << /Font << /F1 3 0 R >> >> /Contents {len(objects)} 0 R >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def test_every_format(tmp_path):
    (tmp_path / "care.txt").write_text("Wash cashmere by hand in cold water.")
    (tmp_path / "notes.md").write_text("# Notes\n\nShipping takes two days.")
    (tmp_path / "faq.jsonl").write_text(json.dumps({"id": "f1", "text": "Returns within 30 days.", "title": "FAQ"}) + "\n")
    with gzip.open(tmp_path / "more.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "Gift wrapping is free."}) + "\n")
    (tmp_path / "list.json").write_text(json.dumps([{"id": "j1", "text": "Store leather away from sun."}]))
    (tmp_path / "products.csv").write_text('id,name,description,price\nMV-1,Ondine 28,"A bag, 0.9 kg.",950\n')
    (tmp_path / "page.html").write_text("<html><head><title>Warranty</title><style>p{}</style></head>"
                                        "<body><h1>Care</h1><p>Two years <b>warranty</b>.<br>Free repairs.</p>"
                                        "<script>x()</script></body></html>")
    (tmp_path / "guide.pdf").write_bytes(_pdf(["Polish the watch monthly.", "Service every five years."]))
    report = load_documents(tmp_path, csv_text_columns=["name", "description"])
    by_id = {d.id: d for d in report.documents}
    assert report.skipped == [] and report.files_read == 8
    assert by_id["care.txt"].text == "Wash cashmere by hand in cold water."
    assert by_id["f1"].metadata == {"source": "faq.jsonl", "record": 1, "title": "FAQ"}
    assert by_id["more.jsonl.gz:1"].text == "Gift wrapping is free."
    assert by_id["j1"].metadata["source"] == "list.json"
    csv_doc = by_id["MV-1"]
    assert csv_doc.text == "name: Ondine 28\ndescription: A bag, 0.9 kg."
    assert csv_doc.metadata == {"price": "950", "source": "products.csv", "record": 2}
    html = by_id["page.html"]
    assert html.text == "Care\nTwo years warranty.\nFree repairs." and html.metadata["title"] == "Warranty"
    pdf = by_id["guide.pdf"]
    assert pdf.text == "Polish the watch monthly.\n\nService every five years."
    assert pdf.metadata["page_starts"] == [0, pdf.text.index("Service")]


def test_folders_skip_hidden_entries_and_count_other_types(tmp_path):
    (tmp_path / "a.txt").write_text("visible")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "b.txt").write_text("hidden")
    (tmp_path / ".secret.md").write_text("hidden")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG")
    (tmp_path / "code.py").write_text("print()")
    report = load_documents(tmp_path)
    assert [d.id for d in report.documents] == ["a.txt"]
    assert report.unsupported == {".png": 1, ".py": 1}
    assert "not read (unsupported types): 1 .png, 1 .py" in report.summary()


def test_bad_files_are_skipped_and_reported_or_raise_when_strict(tmp_path):
    (tmp_path / "good.txt").write_text("Fine text.")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    (tmp_path / "empty.md").write_text("  \n")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "nocol.csv").write_text("a,b\n1,2\n")
    report = load_documents(tmp_path)
    assert [d.id for d in report.documents] == ["good.txt"]
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in report.skipped}
    assert reasons["latin1.txt"].startswith("not UTF-8 text")
    assert reasons["empty.md"] == "no text"
    assert reasons["broken.json"].startswith("not valid JSON")
    assert "no 'text' column" in reasons["nocol.csv"] and "['a', 'b']" in reasons["nocol.csv"]
    assert "skipped 4 unreadable files" in report.summary()
    with pytest.raises(InvalidInputError, match="broken.json"):
        load_documents(tmp_path, strict=True)
    with pytest.raises(InvalidInputError, match="latin1.txt"):
        read_documents([tmp_path / "latin1.txt"])


def test_explicit_paths_are_checked(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        load_documents(tmp_path / "missing.txt")
    (tmp_path / "x.docx").write_text("?")
    with pytest.raises(InvalidInputError, match="unsupported file type"):
        load_documents(tmp_path / "x.docx")


def test_csv_columns_are_validated(tmp_path):
    (tmp_path / "p.csv").write_text("sku,body\nA1,Some text\n")
    with pytest.raises(InvalidInputError, match=r"no column\(s\) \['nope'\]"):
        load_documents(tmp_path / "p.csv", csv_text_columns=["nope"], strict=True)
    [doc] = load_documents(tmp_path / "p.csv", csv_text_columns=["body"], csv_id_column="sku").documents
    assert (doc.id, doc.text, doc.metadata) == ("A1", "Some text", {"source": "p.csv", "record": 2})
