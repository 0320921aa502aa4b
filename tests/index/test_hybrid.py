"""Hybrid retrieval: the BM25 table (FTS5), its sync with both local indexes, fusion, search modes."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch

from fgr_retriever import (
    Document,
    EmbeddedIndex,
    FGRRetriever,
    IndexCorruptedError,
    InvalidInputError,
    PersistentIndex,
)
from fgr_retriever.index.catalog import CATALOG_FILE
from fgr_retriever.index.fusion import HybridConfig, fuse, reciprocal_rank_fusion, relative_score_fusion
from fgr_retriever.index.lexical import LexicalTable, exact_phrases, lexical_values, query_terms
from fgr_retriever.model.encoder import TextEncoding

DIM = 16


def enc(seed: int, rows: int = 5) -> TextEncoding:
    g = torch.Generator().manual_seed(seed)
    vec = torch.nn.functional.normalize(torch.randn(rows, DIM, generator=g), dim=-1)
    offsets = torch.stack([torch.arange(rows) * 4, torch.arange(rows) * 4 + 3], dim=1).to(torch.int32)
    return TextEncoding(vectors=vec, offsets=offsets, window_lengths=(rows,))


CATALOGUE = [
    Document(id="stole", text="Brume cashmere stole, woven in Italy. Reference: MV-BRM-ST.", metadata={"line": "Brume"}),
    Document(id="crew", text="Brume cashmere crewneck knitted from 2-ply yarn. Reference: MV-BRM-CN.",
             metadata={"line": "Brume"}),
    Document(id="bag", text="The Ondine 28 shoulder bag weighs 0.9 kg.", metadata={"line": "Ondine", "sku": "OND-28-NOIR"}),
    Document(id="care", text="Brush suede with a crepe brush after each use.", metadata={"line": "care"}),
]


def lexical_ids(index, query, k=10, **kw):
    return [d for d, _ in index.lexical_search(query, k, **kw)]


# ------------------------------------------------------------------------------ text side
def test_query_terms_drop_stop_words_and_split_like_fts5():
    assert query_terms("What is the weight of the MV-OND28 bag?") == ["what", "weight", "mv", "ond28", "bag"]
    assert query_terms("the a of") == []
    assert query_terms("snake_case Café") == ["snake", "case", "café"]


def test_analyse_makes_the_terms_of_the_fts5_table():
    pytest.importorskip("snowballstemmer")
    import json
    import sqlite3
    from collections import Counter
    from pathlib import Path

    from fgr_retriever.index.lexical import analyse

    texts = [json.loads(line)["text"] for line in
             (Path(__file__).resolve().parents[2] / "examples" / "knowledge_base.jsonl").open(encoding="utf-8")]
    conn = sqlite3.connect(":memory:")
    LexicalTable.create(conn)
    LexicalTable.insert(conn, ((i + 1, t, "") for i, t in enumerate(texts)))
    conn.execute("CREATE VIRTUAL TABLE terms USING fts5vocab(lexical, 'row')")
    fts = dict(conn.execute("SELECT term, doc FROM terms").fetchall())  # term -> documents holding it
    ours = Counter(term for t in texts for term in set(analyse(t)))
    agree = sum(fts[t] == ours.get(t) for t in fts)
    assert agree / len(fts) >= 0.98, sorted(t for t in fts if fts[t] != ours.get(t))
    assert analyse("Scarves are dry-cleaned in Orléans") == ["scarv", "ar", "dry", "clean", "in", "orlean"]
    assert analyse("MV-BRM-CN, 2-ply") == ["mv", "brm", "cn", "2", "ply"]


@pytest.mark.parametrize("query,expected", [
    ("Is MV-BRM-CN in stock?", ["MV-BRM-CN"]),
    ("OND28 weight", ["OND28"]),
    ('the "dust bag" question', ["dust bag"]),
    ("A 2-ply yarn", ["2-ply"]),
    ("How heavy is it: 0.9 kg?", []),  # numbers alone are not identifiers
    ("plain words only", []),
])
def test_exact_phrases(query, expected):
    assert exact_phrases(query) == expected


def test_lexical_values_take_strings_numbers_and_lists_of_the_named_fields():
    text, fields = lexical_values("t", {"sku": "A-1", "ean": 400, "title": ["x", "y"], "other": "no", "flag": True},
                                  ("sku", "ean", "title", "flag", "missing"))
    assert (text, fields) == ("t", "A-1\n400\nx\ny")


def test_lexical_table_insert_remove_search_scores_exact():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    LexicalTable.create(conn)
    table = LexicalTable()
    rows = [(1, "cashmere stole from Italy", "MV-BRM-ST"), (2, "cashmere crewneck", "MV-BRM-CN"), (3, "suede brush", "")]
    LexicalTable.insert(conn, rows)
    assert [r for r, _ in table.search(conn, "cashmere stole", 10)] == [1, 2]
    assert table.search(conn, "the of", 10) == []  # only stop words: nothing to match
    scores = table.scores(conn, "suede", [1, 3])
    assert set(scores) == {3} and scores[3] > 0
    assert LexicalTable.exact_matches(conn, ["MV-BRM-ST"], max_rows=5) == {"MV-BRM-ST": [1]}
    assert LexicalTable.exact_matches(conn, ["MV-BRM"], max_rows=1) == {}  # two documents: not an identifier
    LexicalTable.remove(conn, [rows[0]])
    assert [r for r, _ in table.search(conn, "cashmere", 10)] == [2]
    assert LexicalTable.count(conn) == 2
    # FTS5 query syntax in user text is matched as words, never parsed
    assert table.search(conn, 'cashmere" OR NEAR(x', 10)[0][0] == 2


# ------------------------------------------------------------------------------ fusion
def test_reciprocal_rank_fusion_by_hand():
    fused = reciprocal_rank_fusion({"a": 3.0, "b": 2.0, "c": 1.0}, {"c": 5.0, "a": 1.0, "b": 0.0}, weight=0.5, k=60)
    assert fused["a"] == pytest.approx(0.5 / 61 + 0.5 / 62)
    assert fused["b"] == pytest.approx(0.5 / 62)  # BM25 0: no lexical rank
    assert fused["c"] == pytest.approx(0.5 / 63 + 0.5 / 61)


def test_relative_score_fusion_by_hand():
    fused = relative_score_fusion({"a": 10.0, "b": 20.0}, {"a": 4.0}, weight=0.25)
    assert fused == pytest.approx({"a": 0.75, "b": 0.25})
    with pytest.raises(InvalidInputError):
        relative_score_fusion({"a": 1.0}, {"b": 1.0})


@pytest.mark.parametrize("kwargs", [{"fusion": "max"}, {"weight": 1.5}, {"weight": True}, {"depth": 0},
                                    {"rrf_k": -1}, {"exact_max_docs": 0}])
def test_hybrid_config_validation(kwargs):
    with pytest.raises(InvalidInputError):
        HybridConfig(**kwargs)


def test_weight_extremes_reduce_to_one_side():
    late, lex = {"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 9.0, "b": 1.0}
    for fusion in ("rrf", "relative_score"):
        only_late = fuse(late, lex, HybridConfig(fusion=fusion, weight=1.0))
        only_lex = fuse(late, lex, HybridConfig(fusion=fusion, weight=0.0))
        assert sorted(only_late, key=only_late.get, reverse=True) == ["c", "b", "a"]
        assert sorted(only_lex, key=only_lex.get, reverse=True)[:2] == ["a", "b"]


# ------------------------------------------------------------------------------ indexes
def _qdrant(dim):
    pytest.importorskip("qdrant_client")
    from fgr_retriever import QdrantIndex

    return QdrantIndex(dim=dim, location=":memory:")


@pytest.fixture(params=["embedded", "persistent", "qdrant"])
def index(request, tmp_path):
    if request.param == "embedded":
        yield EmbeddedIndex(dim=DIM)
        return
    if request.param == "qdrant":  # BM25 by Qdrant's own text index (TextQuery)
        yield _qdrant(DIM)
        return
    idx = PersistentIndex(tmp_path / "idx", dim=DIM, approximate=False)
    yield idx
    idx.close()


def test_index_keeps_bm25_in_step_with_adds_upserts_and_deletes(index):
    index.add(CATALOGUE, [enc(i) for i in range(len(CATALOGUE))])
    assert lexical_ids(index, "cashmere")[:2] in (["stole", "crew"], ["crew", "stole"])
    assert lexical_ids(index, "OND-28-NOIR") == ["bag"]  # the sku metadata field is indexed
    index.add([Document(id="stole", text="Silk twill scarf, hand-rolled edges.")], [enc(9)])  # upsert
    assert lexical_ids(index, "cashmere") == ["crew"]
    assert lexical_ids(index, "silk twill") == ["stole"]
    index.delete(["crew"])
    assert lexical_ids(index, "cashmere") == []
    assert index.lexical_scores("silk", ["stole", "bag"]) == {"stole": pytest.approx(index.lexical_search("silk", 1)[0][1]),
                                                               "bag": 0.0}


def test_index_lexical_filter_and_exact_matches(index):
    index.add(CATALOGUE, [enc(i) for i in range(len(CATALOGUE))])
    assert lexical_ids(index, "cashmere brush", filter={"line": "care"}) == ["care"]
    assert index.exact_matches("Do you stock MV-BRM-CN?") == ["crew"]
    assert sorted(index.exact_matches("MV-BRM items")) == ["crew", "stole"]
    assert index.exact_matches("MV-BRM items", max_docs=1) == []
    assert index.exact_matches("MV-BRM-CN", filter={"line": "care"}) == []


def test_embedded_bm25_is_built_lazily_and_survives_save_and_load(tmp_path):
    index = EmbeddedIndex(dim=DIM, lexical_fields=["sku"])
    index.add(CATALOGUE[:2], [enc(0), enc(1)])
    assert index._lex_conn is None  # nothing built until a lexical search needs it
    assert lexical_ids(index, "stole") == ["stole"]
    index.add(CATALOGUE[2:], [enc(2), enc(3)])  # kept in step once built
    assert lexical_ids(index, "suede") == ["care"]
    index.save(tmp_path)
    loaded = EmbeddedIndex.load(tmp_path)
    assert loaded.lexical_fields == ("sku",)
    assert lexical_ids(loaded, "OND-28-NOIR") == ["bag"]


def test_persistent_bm25_is_shared_by_processes_and_reopens(tmp_path):
    a = PersistentIndex(tmp_path / "idx", dim=DIM, approximate=False)
    b = PersistentIndex(tmp_path / "idx", dim=DIM, approximate=False)
    a.add(CATALOGUE, [enc(i) for i in range(len(CATALOGUE))])
    assert lexical_ids(b, "suede") == ["care"]  # another handle sees the committed BM25 rows
    a.delete(["care"])
    assert lexical_ids(b, "suede") == []
    a.close()
    b.close()
    c = PersistentIndex(tmp_path / "idx")
    assert lexical_ids(c, "crewneck") == ["crew"]
    c.close()


def test_persistent_failed_write_changes_neither_side(tmp_path, monkeypatch):
    index = PersistentIndex(tmp_path / "idx", dim=DIM, approximate=False)
    index.add(CATALOGUE[:1], [enc(0)])

    def broken(conn, rows):
        list(rows)
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    monkeypatch.setattr(LexicalTable, "insert", staticmethod(broken))
    with pytest.raises(sqlite3.OperationalError):
        index.add([Document(id="stole", text="replaced text about silk")], [enc(5)])
    monkeypatch.undo()
    assert index.get(["stole"])[0].text == CATALOGUE[0].text  # the transaction rolled back as a whole
    assert lexical_ids(index, "cashmere") == ["stole"] and lexical_ids(index, "silk") == []
    index.close()


def test_version_1_catalogue_is_upgraded_and_newer_refused(tmp_path):
    path = tmp_path / "idx"
    index = PersistentIndex(path, dim=DIM, approximate=False)
    index.add(CATALOGUE, [enc(i) for i in range(len(CATALOGUE))])
    index.close()
    conn = sqlite3.connect(str(path / CATALOG_FILE), isolation_level=None)
    conn.execute("DROP TABLE lexical")  # what fgr-retriever <= issue 13 wrote
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.execute("DELETE FROM meta WHERE key = 'lexical_fields'")
    conn.close()
    upgraded = PersistentIndex(path)
    assert lexical_ids(upgraded, "crewneck") == ["crew"]
    assert upgraded.lexical_fields[0] == "title"
    upgraded.close()
    conn = sqlite3.connect(str(path / CATALOG_FILE), isolation_level=None)
    assert json.loads(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]) == 2
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(IndexCorruptedError, match="newer"):
        PersistentIndex(path)


# ------------------------------------------------------------------------------ retriever
@pytest.fixture(params=["embedded", "qdrant"])
def retriever(request, tiny_model):
    index = _qdrant(tiny_model.dim) if request.param == "qdrant" else None
    r = FGRRetriever(model=tiny_model, index=index)
    r.add_documents(CATALOGUE)
    return r


def test_modes_rank_and_highlight(retriever):
    lexical = retriever.search("Brume cashmere crewneck", k=4, mode="lexical")
    assert [r.id for r in lexical] == ["crew", "stole"]  # only documents with a query word
    assert lexical[0].score > lexical[1].score > 0
    hybrid = retriever.search("crepe brush suede", k=4, mode="hybrid")
    assert [r.rank for r in hybrid] == [1, 2, 3, 4]
    assert all(a.score >= b.score for a, b in zip(hybrid, hybrid[1:]))
    # evidence is decoded from the stored vectors, as in late mode
    late = {r.id: r.spans for r in retriever.search("crepe brush suede", k=4, mode="late")}
    assert {r.id: r.spans for r in hybrid} == late
    assert retriever.search("the of", k=3, mode="lexical") == []


def test_identifier_outranks_everything_in_hybrid_mode(retriever):
    for ref, doc in (("MV-BRM-CN", "crew"), ("MV-BRM-ST", "stole"), ("OND-28-NOIR", "bag")):
        results = retriever.search(f"Do you have {ref} in another colour?", k=4, mode="hybrid")
        assert results[0].id == doc and results[0].score > 1.0 > results[1].score
    off = FGRRetriever(model=retriever.model, index=retriever.index, hybrid=HybridConfig(exact_boost=False))
    assert all(r.score <= 1.0 for r in off.search("MV-BRM-CN", k=4, mode="hybrid"))


def test_hybrid_respects_filters_and_overrides(retriever):
    results = retriever.search("cashmere MV-BRM-CN", k=4, mode="hybrid", filter={"line": "Ondine"})
    assert [r.id for r in results] == ["bag"]
    rrf = retriever.search("cashmere stole", k=4, mode="hybrid", fusion="rrf", weight=0.3)
    assert all(r.score < 1.0 for r in rrf) and rrf[0].id == "stole"
    batch = retriever.search_batch(["cashmere stole", "suede"], k=2, mode="lexical")
    assert [b[0].id for b in batch] == ["stole", "care"]


def test_default_mode_and_bad_modes(tiny_model, retriever):
    hybrid_first = FGRRetriever(model=tiny_model, index=retriever.index, mode="lexical")
    assert hybrid_first.search("suede", k=1)[0].id == "care"
    with pytest.raises(InvalidInputError, match="mode"):
        retriever.search("x", mode="bm25")
    with pytest.raises(InvalidInputError, match="mode"):
        FGRRetriever(model=tiny_model, mode="dense")
    with pytest.raises(InvalidInputError, match="fusion"):
        retriever.search("x", mode="hybrid", fusion="max")


def test_hybrid_on_the_persistent_index_sees_writes(tiny_model, tmp_path):
    r = FGRRetriever.open(tmp_path / "idx", model=tiny_model)
    r.add_documents(CATALOGUE)
    assert r.search("MV-BRM-ST", k=1, mode="hybrid")[0].id == "stole"
    r.add_documents([Document(id="stole", text="A silk twill scarf.")])
    assert r.search("woven in Italy", k=4, mode="lexical") == []
    assert [x.id for x in r.search("silk twill", k=4, mode="lexical")] == ["stole"]
    assert r.search("silk twill", k=4, mode="hybrid")[0].score > 0
    r.close()


def test_an_index_without_a_bm25_side_refuses_hybrid(tiny_model):
    class LateOnly:  # a third-party backend with the Index protocol only
        def __init__(self):
            self.inner = EmbeddedIndex(dim=tiny_model.dim)
            self.backend, self.dim = "late-only", tiny_model.dim

        def __getattr__(self, name):
            if name.startswith("lexical") or name == "exact_matches":
                raise AttributeError(name)
            return getattr(self.inner, name)

        def __len__(self):
            return len(self.inner)

        def __contains__(self, doc_id):
            return doc_id in self.inner

    r = FGRRetriever(model=tiny_model, index=LateOnly())
    r.add_documents(CATALOGUE[:2])
    with pytest.raises(InvalidInputError, match="no BM25 side"):
        r.search("cashmere", mode="hybrid")
    assert r.search("cashmere", k=1)[0].id in ("stole", "crew")


def test_filtered_lexical_search_stops_early_and_leaves_no_statement_open(index):
    docs = [Document(id=f"d{i}", text=f"silk scarf number {i}", metadata={"even": i % 2 == 0}) for i in range(600)]
    index.add(docs, [enc(i) for i in range(600)])
    found = index.lexical_search("silk scarf", 3, filter={"even": True})
    assert len(found) == 3 and all(int(d[1:]) % 2 == 0 for d, _ in found)
    # a write right after: nothing of the search may still hold the database
    index.add([Document(id="d1", text="wool coat")], [enc(700)])
    assert index.lexical_search("wool", 5) == [("d1", pytest.approx(index.lexical_scores("wool", ["d1"])["d1"]))]
