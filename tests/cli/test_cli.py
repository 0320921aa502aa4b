"""The command line, run in-process through ``main(argv)`` (exit codes, output, files)."""

from __future__ import annotations

import json

import pytest

from fgr_retriever import cli
from fgr_retriever.cli import common


@pytest.fixture
def tiny_cli(monkeypatch, tiny_model):
    """Make every CLI model load return the tiny model, so CLI tests stay fast."""
    monkeypatch.setattr(common, "load_model", lambda name, device=None: tiny_model)
    from fgr_retriever import FGRColBERT

    monkeypatch.setattr(FGRColBERT, "from_pretrained", classmethod(lambda cls, *a, **k: tiny_model))
    return tiny_model


def write_corpus(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "care.txt").write_text("Suede should be brushed with a crepe brush and kept away from rain.", encoding="utf-8")
    (root / "notes.md").write_text("# Returns\nReturns are accepted within 30 days of delivery.", encoding="utf-8")
    with open(root / "faq.jsonl", "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "ship", "title": "Shipping", "text": "Orders ship from Orléans in 2 days.",
                             "metadata": {"category": "policy"}}) + "\n")
        fh.write(json.dumps({"text": "Gold jewellery is 18 karat.", "metadata": {"category": "material"}}) + "\n")
    return root


def test_index_search_json_roundtrip(tmp_path, tiny_cli, capsys):
    root = write_corpus(tmp_path)
    out = tmp_path / "idx"
    assert cli.main(["index", str(root), "--out", str(out), "--quiet"]) == 0
    assert "indexed 4 documents" in capsys.readouterr().out
    assert (out / "index.json").exists()

    assert cli.main(["search", str(out), "where do orders ship from", "-k", "2", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 2
    assert {"id", "text", "score", "spans", "evidence", "metadata", "rank"} <= set(results[0])
    ids = {r["id"] for r in results}
    assert ids <= {"care.txt", "notes.md", "ship", "faq.jsonl:2"}

    assert cli.main(["search", str(out), "karat", "--json", "--filter", '{"category": "policy"}']) == 0
    filtered = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in filtered] == ["ship"]


def test_index_refuses_to_clobber_then_appends(tmp_path, tiny_cli, capsys):
    root = write_corpus(tmp_path)
    out = tmp_path / "idx"
    assert cli.main(["index", str(root / "care.txt"), "--out", str(out), "--quiet"]) == 0
    assert cli.main(["index", str(root / "notes.md"), "--out", str(out), "--quiet"]) == 1
    assert "--append" in capsys.readouterr().err
    assert cli.main(["index", str(root / "notes.md"), "--out", str(out), "--quiet", "--append"]) == 0
    assert "now holds 2" in capsys.readouterr().out


def test_index_writes_a_persistent_index_and_append_changes_it_in_place(tmp_path, tiny_cli, capsys):
    root = write_corpus(tmp_path)
    out = tmp_path / "idx"
    assert cli.main(["index", str(root / "care.txt"), "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "index.json").read_text())["version"] == 2
    segments = {p.name: p.stat().st_mtime_ns for p in (out / "segments").iterdir()}
    assert cli.main(["index", str(root / "notes.md"), "--out", str(out), "--quiet", "--append"]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (out / "segments").iterdir()}
    assert segments.items() <= after.items() and len(after) == len(segments) + 1  # nothing rewritten
    assert cli.main(["optimize", str(out)]) == 0
    assert "2 documents, 2 -> 1 segment files" in capsys.readouterr().out
    assert len(list((out / "segments").iterdir())) == 1


def test_append_converts_an_index_in_the_portable_format(tmp_path, tiny_cli, capsys):
    from fgr_retriever import FGRRetriever

    root = write_corpus(tmp_path)
    old = FGRRetriever(model=tiny_cli)
    old.add_documents(["Suede should be brushed."], ids=["care"])
    out = old.save(tmp_path / "old")
    assert json.loads((out / "index.json").read_text())["version"] == 1
    assert cli.main(["index", str(root / "notes.md"), "--out", str(out), "--quiet", "--append"]) == 0
    assert "now holds 2" in capsys.readouterr().out
    assert json.loads((out / "index.json").read_text())["version"] == 2


def test_index_non_utf8_file_fails_and_writes_nothing(tmp_path, tiny_cli, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café crème".encode("latin-1"))
    out = tmp_path / "idx"
    assert cli.main(["index", str(bad), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "latin1.txt" in err
    assert not out.exists()


def test_index_bad_jsonl_line_is_reported(tmp_path, tiny_cli, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"no_text": 1}\n', encoding="utf-8")
    assert cli.main(["index", str(bad), "--out", str(tmp_path / "idx")]) == 1
    assert "bad.jsonl:2" in capsys.readouterr().err


def test_search_missing_index_exit_code(tmp_path, tiny_cli, capsys):
    assert cli.main(["search", str(tmp_path / "nope"), "query"]) == 1
    assert "no fgr-retriever index" in capsys.readouterr().err


def test_search_bad_filter_json(tmp_path, tiny_cli, capsys):
    root = write_corpus(tmp_path)
    out = tmp_path / "idx"
    cli.main(["index", str(root), "--out", str(out), "--quiet"])
    capsys.readouterr()
    assert cli.main(["search", str(out), "q", "--filter", "{not json"]) == 1
    assert "--filter" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["search"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["search", "idx", "q", "-k", "0"])
    assert exc.value.code == 2


def test_highlight_text_and_file_formats(tmp_path, tiny_cli, capsys):
    text = "Tom <b> & Jerry: the warranty lasts five years."
    assert cli.main(["highlight", "warranty", text, "--json", "--threshold", "0"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["spans"] and all(text[s["start"]:s["end"]] == s["text"] for s in payload["spans"])

    f = tmp_path / "t.txt"
    f.write_text(text, encoding="utf-8")
    assert cli.main(["highlight", "warranty", str(f), "--format", "html", "--threshold", "0"]) == 0
    html_out = capsys.readouterr().out
    assert "<mark" in html_out and "&lt;b&gt;" in html_out and "<b>" not in html_out

    assert cli.main(["highlight", "warranty", text, "--color", "never", "--threshold", "0"]) == 0
    plain = capsys.readouterr().out
    assert "[[" in plain and "\x1b[" not in plain
    assert cli.main(["highlight", "warranty", text, "--color", "always", "--threshold", "0"]) == 0
    assert "\x1b[" in capsys.readouterr().out


def test_highlight_and_search_choose_the_evidence_unit(tmp_path, tiny_cli, capsys):
    text = "Gift wrap is free. The warranty lasts five years. Boutiques open at ten."
    assert cli.main(["highlight", "warranty", text, "--json", "--unit", "sentence", "--threshold", "0"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["unit"] == "sentence" and payload["threshold"] == 0.0
    sentences = {"Gift wrap is free.", "The warranty lasts five years.", "Boutiques open at ten."}
    assert payload["spans"] and all(s["text"] in sentences for s in payload["spans"])
    assert cli.main(["highlight", "warranty", text, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unit"] == "word"  # the tiny test model's own unit
    with pytest.raises(SystemExit):
        cli.main(["highlight", "warranty", text, "--unit", "paragraph"])
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "w", "text": text}) + "\n", encoding="utf-8")
    assert cli.main(["index", str(docs), "--out", str(tmp_path / "idx"), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["search", str(tmp_path / "idx"), "warranty", "--json", "--unit", "sentence",
                     "--threshold", "0"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["spans"] and all(s["text"] in sentences for s in hits[0]["spans"])


def test_highlight_empty_query_is_an_error(tiny_cli, capsys):
    assert cli.main(["highlight", "  ", "some text"]) == 1
    assert "query" in capsys.readouterr().err


def test_demo_runs_on_custom_kb(tmp_path, tiny_cli, capsys):
    kb = tmp_path / "kb.jsonl"
    kb.write_text("\n".join(json.dumps({"id": f"d{i}", "text": f"Document number {i} about topic {i}."})
                            for i in range(5)), encoding="utf-8")
    q = tmp_path / "q.json"
    q.write_text(json.dumps([{"question": "topic 3", "expected_id": "d3"}]), encoding="utf-8")
    assert cli.main(["demo", "--kb", str(kb), "--questions", str(q), "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert "Indexed 5 documents" in out and "Q: topic 3" in out and "questions answered" in out


def test_index_folder_chunks_long_files_and_reports_skipped_ones(tmp_path, tiny_cli, capsys):
    root = write_corpus(tmp_path)
    guide = " ".join(f"Step {i}: rinse the strap in cool water and dry it flat." for i in range(60))
    (root / "guide.txt").write_text(guide, encoding="utf-8")
    (root / "old.txt").write_bytes("café".encode("latin-1"))
    (root / ".cache").mkdir()
    (root / ".cache" / "x.txt").write_text("hidden", encoding="utf-8")
    out = tmp_path / "idx"
    assert cli.main(["index", str(root), "--out", str(out), "--quiet", "--chunk-tokens", "60"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 unreadable files" in captured.err and "old.txt: not UTF-8" in captured.err
    assert "passages from 5 documents" in captured.out
    assert cli.main(["search", str(out), "rinse the strap", "-k", "50", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    parts = [h for h in hits if h["id"].startswith("guide.txt#")]
    assert len(parts) > 5 and not any(h["id"].startswith(".cache") for h in hits)
    for h in parts:  # every passage points back into the file it came from
        m = h["metadata"]
        assert guide[m["start"]:m["end"]] == h["text"] and m["source"] == "guide.txt"
    # --strict stops at the unreadable file and writes nothing
    assert cli.main(["index", str(root), "--out", str(tmp_path / "strict"), "--strict"]) == 1
    assert "old.txt" in capsys.readouterr().err and not (tmp_path / "strict").exists()


def test_help_and_missing_index_answer_without_loading_torch(tmp_path):
    # the command line starts in a fraction of a second: nothing heavy is imported for --help,
    # usage errors or a missing index
    import subprocess
    import sys

    code = ("import sys\nfrom fgr_retriever.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"assert main(['search', {str(tmp_path / 'nope')!r}, 'q']) == 1\n"
            "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "no fgr-retriever index" in out.stderr


def test_search_shows_marked_evidence_in_context_and_other_formats(tmp_path, tiny_cli, capsys):
    root = write_corpus(tmp_path)
    out = tmp_path / "idx"
    assert cli.main(["index", str(root), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["search", str(out), "suede brush rain", "-k", "4", "--threshold", "0.01",
                     "--color", "never"]) == 0
    text = capsys.readouterr().out
    assert "evidence: " in text and "[[" in text and "]]" in text  # plain markers when not a terminal
    assert cli.main(["search", str(out), "suede brush rain", "-k", "2", "--threshold", "0.01", "--format", "html"]) == 0
    html = capsys.readouterr().out
    assert html.count("<article") == 2 and "<mark" in html
    assert cli.main(["search", str(out), "suede", "-k", "1", "--threshold", "0.01", "--format", "markdown"]) == 0
    assert capsys.readouterr().out.startswith("### 1. ")


def test_marked_snippet_windows_and_ellipses():
    from fgr_retriever import Span

    text = " ".join(f"w{i}" for i in range(60))
    a, b = text.index("w10"), text.index("w50")
    spans = [Span(start=a, end=a + 3, text="w10", score=0.9), Span(start=b, end=b + 3, text="w50", score=0.8)]
    snippet = common.marked_snippet(text, spans, color=False, context_words=2)
    assert snippet == "… w8 w9 [[w10]] w11 w12 … w48 w49 [[w50]] w51 w52 …"


def test_demo_data_ships_inside_the_package():
    # `fgr-retriever demo` must work from an installed wheel: its data is package data, and the
    # checkout's examples/ links to the same files
    from pathlib import Path

    import fgr_retriever
    from fgr_retriever.cli.demo import DEMO_DATA

    package = Path(fgr_retriever.__file__).parent
    assert DEMO_DATA == package / "demo_data"
    for name in ("knowledge_base.jsonl", "demo_questions.json"):
        assert (DEMO_DATA / name).is_file()
        assert (package.parent / "examples" / name).resolve() == (DEMO_DATA / name).resolve()
    pyproject = (package.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert '"demo_data/*"' in pyproject


def test_search_modes(tmp_path, tiny_cli, capsys):
    root = write_corpus(tmp_path)
    out = tmp_path / "idx"
    assert cli.main(["index", str(root), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["search", str(out), "Orléans", "--mode", "lexical", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["ship"]
    assert cli.main(["search", str(out), "crepe brush", "--mode", "hybrid", "--fusion", "rrf", "--weight", "0.4",
                     "-k", "4", "--json"]) == 0
    hybrid = json.loads(capsys.readouterr().out)
    assert len(hybrid) == 4 and hybrid[0]["score"] < 1
    assert cli.main(["search", str(out), "x", "--mode", "hybrid", "--weight", "2"]) != 0
    assert "weight" in capsys.readouterr().err
