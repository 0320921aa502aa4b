"""Result types (JSON round trips, immutability) and FGRConfig validation / (de)serialisation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from fgr_retriever import (
    Document,
    FGRConfig,
    FGRError,
    InvalidInputError,
    ModelLoadError,
    SearchResult,
    Span,
    TokenScore,
)
from fgr_retriever.errors import (
    DocumentNotFoundError,
    DuplicateIdError,
    IndexCorruptedError,
    IndexNotFoundError,
    IndexStoreError,
    ModelMismatchError,
)
from fgr_retriever.model.config import FORMAT_VERSION


def json_round_trip(obj):
    """to_dict -> JSON text -> from_dict, through a real serialiser (catches non-JSON values)."""
    return type(obj).from_dict(json.loads(json.dumps(obj.to_dict(), allow_nan=False)))


# --------------------------------------------------------------------------- types
class TestSpanAndTokenScore:
    @pytest.mark.parametrize("cls", [Span, TokenScore])
    def test_json_round_trip(self, cls):
        obj = cls(start=3, end=11, text="café 😀 x", score=0.8125)
        back = json_round_trip(obj)
        assert back == obj
        assert type(back) is cls

    @pytest.mark.parametrize("cls", [Span, TokenScore])
    def test_to_dict_fields(self, cls):
        assert cls(start=4, end=9, text="quick", score=0.91).to_dict() == {
            "start": 4, "end": 9, "text": "quick", "score": 0.91}

    @pytest.mark.parametrize("cls", [Span, TokenScore])
    def test_from_dict_coerces_types(self, cls):
        obj = cls.from_dict({"start": "4", "end": 9.0, "text": "quick", "score": "0.5"})
        assert (obj.start, obj.end, obj.text, obj.score) == (4, 9, "quick", 0.5)
        assert isinstance(obj.start, int) and isinstance(obj.end, int) and isinstance(obj.score, float)

    @pytest.mark.parametrize("cls", [Span, TokenScore])
    @pytest.mark.parametrize("field", ["start", "end", "text", "score"])
    def test_frozen(self, cls, field):
        obj = cls(start=0, end=1, text="a", score=0.5)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, 2)
        assert obj == cls(start=0, end=1, text="a", score=0.5)

    def test_slots_forbid_new_attributes(self):
        span = Span(start=0, end=1, text="a", score=0.5)
        with pytest.raises((AttributeError, TypeError)):
            span.extra = 1  # type: ignore[attr-defined]

    def test_hashable_and_equality(self):
        a = Span(start=0, end=1, text="a", score=0.5)
        assert {a, Span(start=0, end=1, text="a", score=0.5)} == {a}
        assert a != Span(start=0, end=1, text="a", score=0.6)


class TestDocument:
    def test_json_round_trip_with_nested_metadata(self):
        doc = Document(id="d-1", text="Ünïcode text\n", metadata={"a": 1, "nested": {"b": [1, 2, None]}, "f": 1.5})
        back = json_round_trip(doc)
        assert back == doc
        assert back.metadata == {"a": 1, "nested": {"b": [1, 2, None]}, "f": 1.5}

    def test_default_metadata_is_empty_and_not_shared(self):
        a, b = Document(id="a", text="x"), Document(id="b", text="y")
        assert a.metadata == {} and a.to_dict() == {"id": "a", "text": "x", "metadata": {}}
        assert a.metadata is not b.metadata

    def test_from_dict_missing_or_null_metadata(self):
        assert Document.from_dict({"id": "a", "text": "x"}).metadata == {}
        assert Document.from_dict({"id": "a", "text": "x", "metadata": None}).metadata == {}

    def test_from_dict_requires_id_and_text(self):
        with pytest.raises(KeyError):
            Document.from_dict({"text": "x"})
        with pytest.raises(KeyError):
            Document.from_dict({"id": "x"})

    def test_frozen(self):
        doc = Document(id="a", text="x")
        with pytest.raises(dataclasses.FrozenInstanceError):
            doc.text = "changed"  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            doc.id = "b"  # type: ignore[misc]
        assert doc.text == "x" and doc.id == "a"

    def test_to_dict_copies_metadata(self):
        doc = Document(id="a", text="x", metadata={"k": 1})
        d = doc.to_dict()
        d["metadata"]["k"] = 2
        assert doc.metadata == {"k": 1}


class TestSearchResult:
    def make(self, **kw):
        base = dict(id="r1", text="Returns are free within 30 days.", score=12.25, rank=1,
                    metadata={"category": "policy", "n": [1, 2]},
                    spans=(Span(start=17, end=31, text="within 30 days", score=0.9),
                           Span(start=0, end=7, text="Returns", score=0.6)),
                    evidence="Returns … within 30 days")
        base.update(kw)
        return SearchResult(**base)

    def test_json_round_trip(self):
        res = self.make()
        back = json_round_trip(res)
        assert back == res
        assert isinstance(back.spans, tuple) and all(isinstance(s, Span) for s in back.spans)

    def test_to_dict_shape(self):
        d = self.make().to_dict()
        assert set(d) == {"id", "text", "score", "rank", "metadata", "spans", "evidence", "answers"}
        assert d["spans"][0] == {"start": 17, "end": 31, "text": "within 30 days", "score": 0.9}

    @pytest.mark.parametrize("score", [float("nan"), float("inf"), float("-inf")])
    def test_non_finite_score_becomes_null(self, score):
        d = self.make(score=score).to_dict()
        assert d["score"] is None
        json.dumps(d, allow_nan=False)  # strict JSON
        back = SearchResult.from_dict(json.loads(json.dumps(d)))
        assert math.isnan(back.score)
        assert back.id == "r1" and back.spans == self.make().spans

    def test_defaults(self):
        res = SearchResult(id="a", text="t", score=1.0, rank=3)
        assert res.spans == () and res.evidence == "" and res.metadata == {}
        back = json_round_trip(res)
        assert back == res

    def test_from_dict_tolerates_missing_optional_fields(self):
        back = SearchResult.from_dict({"id": 5, "text": "t", "rank": "2", "score": 1})
        assert back == SearchResult(id="5", text="t", score=1.0, rank=2)

    @pytest.mark.parametrize("field, value", [("score", 0.0), ("rank", 9), ("spans", ()), ("evidence", "x"),
                                              ("id", "other")])
    def test_frozen(self, field, value):
        res = self.make()
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(res, field, value)
        assert res == self.make()


# --------------------------------------------------------------------------- errors
def test_error_hierarchy():
    assert issubclass(InvalidInputError, FGRError) and issubclass(InvalidInputError, ValueError)
    assert issubclass(ModelLoadError, FGRError) and issubclass(ModelLoadError, OSError)
    assert issubclass(IndexNotFoundError, IndexStoreError) and issubclass(IndexNotFoundError, FileNotFoundError)
    assert issubclass(IndexCorruptedError, IndexStoreError) and issubclass(IndexStoreError, FGRError)
    assert issubclass(ModelMismatchError, FGRError)
    assert issubclass(DocumentNotFoundError, KeyError) and issubclass(DuplicateIdError, FGRError)


def test_document_not_found_message_is_readable():
    err = DocumentNotFoundError([f"id{i}" for i in range(8)])
    assert err.missing == [f"id{i}" for i in range(8)]
    msg = str(err)
    assert msg == "unknown document id(s): 'id0', 'id1', 'id2', 'id3', 'id4' and 3 more"
    assert not msg.startswith('"')  # KeyError would normally quote it


# --------------------------------------------------------------------------- config
class TestFGRConfig:
    def test_defaults_are_valid_and_content_room(self):
        cfg = FGRConfig()
        assert cfg.doc_window_content == cfg.doc_maxlen - 3
        assert FGRConfig(doc_marker=None).doc_window_content == 180 - 2

    def test_round_trip(self):
        cfg = FGRConfig(query_maxlen=20, doc_maxlen=64, doc_window_overlap=8, dim=24, query_marker=None,
                        doc_marker="[unused3]", attend_to_expansion_tokens=True, mask_punctuation=False,
                        relevance_mode="projection", relevance_dim=12, relevance_query_tokens="all",
                        relevance_scale=7.5, relevance_bias=-1.25, threshold=0.3)
        d = cfg.to_dict()
        assert d["format_version"] == FORMAT_VERSION
        back = FGRConfig.from_dict(json.loads(json.dumps(d)))
        assert back == cfg
        assert back.to_dict() == d

    def test_from_dict_without_version_uses_current(self):
        d = FGRConfig(dim=8).to_dict()
        d.pop("format_version")
        assert FGRConfig.from_dict(d) == FGRConfig(dim=8)

    def test_from_dict_does_not_mutate_input(self):
        d = FGRConfig(dim=8).to_dict()
        copy = dict(d)
        FGRConfig.from_dict(d)
        assert d == copy

    @pytest.mark.parametrize("version", [0, 2, "1", None])
    def test_wrong_format_version(self, version):
        d = FGRConfig().to_dict()
        d["format_version"] = version
        with pytest.raises(ModelLoadError, match="format_version"):
            FGRConfig.from_dict(d)

    def test_unknown_keys(self):
        d = FGRConfig().to_dict()
        d["colour"] = "blue"
        d["another"] = 1
        with pytest.raises(ModelLoadError, match=r"\['another', 'colour'\]"):
            FGRConfig.from_dict(d)

    @pytest.mark.parametrize("kwargs", [
        dict(query_maxlen=3),  # [CLS] marker [SEP] leave no room
        dict(query_maxlen=2, query_marker=None),
        dict(doc_maxlen=10),
        dict(doc_maxlen=9, doc_marker=None),
        dict(doc_window_overlap=-1),
        dict(doc_maxlen=40, doc_window_overlap=37),  # overlap must be < content (37)
        dict(dim=0),
        dict(relevance_dim=0),
        dict(relevance_mode="bogus"),
        dict(relevance_query_tokens="some"),
        dict(threshold=0.0),
        dict(threshold=1.0),
        dict(threshold=-0.1),
        dict(threshold=1.5),
    ])
    def test_validation_errors(self, kwargs):
        with pytest.raises(InvalidInputError):
            FGRConfig(**kwargs)

    @pytest.mark.parametrize("kwargs", [
        dict(query_maxlen=4),
        dict(query_maxlen=3, query_marker=None),
        dict(doc_maxlen=11, doc_window_overlap=0),
        dict(doc_maxlen=10, doc_marker=None, doc_window_overlap=7),
        dict(doc_maxlen=40, doc_window_overlap=36),
        dict(threshold=0.001),
        dict(threshold=0.999),
    ])
    def test_boundary_values_are_accepted(self, kwargs):
        cfg = FGRConfig(**kwargs)
        for key, value in kwargs.items():
            assert getattr(cfg, key) == value

    def test_from_dict_validates_values(self):
        d = FGRConfig().to_dict()
        d["threshold"] = 2.0
        with pytest.raises(InvalidInputError):
            FGRConfig.from_dict(d)

    def test_frozen_and_replace(self):
        cfg = FGRConfig()
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.dim = 3  # type: ignore[misc]
        new = cfg.replace(dim=64, threshold=0.25)
        assert (new.dim, new.threshold) == (64, 0.25)
        assert cfg.dim == 128  # original untouched
        with pytest.raises(InvalidInputError):
            cfg.replace(threshold=1.0)

    def test_keyword_only(self):
        with pytest.raises(TypeError):
            FGRConfig(32)  # type: ignore[misc]
