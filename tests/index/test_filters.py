"""compile_filter: MongoDB-style metadata filters on plain JSON metadata."""

from __future__ import annotations

import pytest

from fgr_retriever import InvalidInputError, compile_filter

DOCS = {
    "bag": {"category": "product", "price": 450, "tags": ["leather"], "care": {"level": 2, "method": "wipe"},
            "stock": 0, "discount": None},
    "scarf": {"category": "product", "price": 120.5, "care": {"level": 3}, "stock": 4},
    "policy": {"category": "policy", "lang": "en"},
    "odd": {"category": "product", "price": "expensive", "care": "ask staff"},
    "empty": {},
}


def matching(spec) -> set[str]:
    match = compile_filter(spec)
    return {name for name, md in DOCS.items() if match(md)}


class TestBasics:
    def test_none_and_empty_match_everything(self):
        assert matching(None) == set(DOCS)
        assert matching({}) == set(DOCS)

    def test_equality(self):
        assert matching({"category": "product"}) == {"bag", "scarf", "odd"}
        assert matching({"price": 450}) == {"bag"}
        assert matching({"price": 450.0}) == {"bag"}
        assert matching({"tags": ["leather"]}) == {"bag"}
        assert matching({"category": "nothing"}) == set()

    def test_equality_with_none_needs_the_field(self):
        assert matching({"discount": None}) == {"bag"}

    def test_several_fields_are_anded(self):
        assert matching({"category": "product", "stock": 4}) == {"scarf"}
        assert matching({"category": "policy", "stock": 4}) == set()

    def test_returns_bool(self):
        assert compile_filter({"category": "product"})(DOCS["bag"]) is True
        assert compile_filter({"category": "product"})(DOCS["policy"]) is False


class TestOperators:
    def test_eq_ne(self):
        assert matching({"category": {"$eq": "policy"}}) == {"policy"}
        assert matching({"category": {"$ne": "product"}}) == {"policy", "empty"}  # missing counts as "not equal"
        assert matching({"discount": {"$eq": None}}) == {"bag"}
        assert matching({"discount": {"$ne": None}}) == set(DOCS) - {"bag"}

    def test_in_nin(self):
        assert matching({"category": {"$in": ["policy", "other"]}}) == {"policy"}
        assert matching({"price": {"$in": (450, 120.5)}}) == {"bag", "scarf"}
        assert matching({"category": {"$in": []}}) == set()
        assert matching({"category": {"$nin": ["product"]}}) == {"policy", "empty"}
        assert matching({"category": {"$nin": []}}) == set(DOCS)

    def test_in_accepts_any_non_string_iterable(self):
        assert matching({"stock": {"$in": {0, 4}}}) == {"bag", "scarf"}
        assert matching({"stock": {"$in": (x for x in [4])}}) == {"scarf"}

    @pytest.mark.parametrize("op, value, expected", [
        ("$gt", 120.5, {"bag"}),
        ("$gte", 120.5, {"bag", "scarf"}),
        ("$lt", 450, {"scarf"}),
        ("$lte", 450, {"bag", "scarf"}),
        ("$gt", 1000, set()),
        ("$lt", 0, set()),
    ])
    def test_comparisons(self, op, value, expected):
        assert matching({"price": {op: value}}) == expected

    def test_range(self):
        assert matching({"price": {"$gt": 100, "$lt": 200}}) == {"scarf"}
        assert matching({"price": {"$gte": 450, "$lte": 450}}) == {"bag"}
        assert matching({"price": {"$gt": 200, "$lt": 100}}) == set()

    def test_string_comparison(self):
        assert matching({"category": {"$gt": "policy"}}) == {"bag", "scarf", "odd"}  # "product" > "policy"
        assert matching({"lang": {"$lte": "en"}}) == {"policy"}

    def test_type_mismatch_is_false_not_error(self):
        # "expensive" vs a number, a dict vs a number, a list vs a number: no match, no TypeError
        assert "odd" not in matching({"price": {"$gt": 0}})
        assert "odd" not in matching({"price": {"$lt": 10 ** 9}})
        assert matching({"care": {"$gte": 1}}) == set()
        assert matching({"tags": {"$lt": 5}}) == set()
        assert matching({"price": {"$gte": "a"}}) == {"odd"}  # strings compare with strings

    def test_comparisons_on_missing_or_null_are_false(self):
        assert matching({"stock": {"$gte": 0}}) == {"bag", "scarf"}
        assert matching({"discount": {"$lt": 1}}) == set()
        assert matching({"discount": {"$gte": 0}}) == set()

    def test_exists(self):
        assert matching({"lang": {"$exists": True}}) == {"policy"}
        assert matching({"lang": {"$exists": False}}) == set(DOCS) - {"policy"}
        assert matching({"discount": {"$exists": True}}) == {"bag"}  # null still exists
        assert matching({"stock": {"$exists": 1}}) == {"bag", "scarf"}
        assert matching({"stock": {"$exists": 0}}) == {"policy", "odd", "empty"}


class TestDottedFields:
    def test_nested(self):
        assert matching({"care.level": 2}) == {"bag"}
        assert matching({"care.level": {"$gte": 2}}) == {"bag", "scarf"}
        assert matching({"care.method": {"$exists": True}}) == {"bag"}

    def test_missing_or_non_mapping_intermediate(self):
        # "odd" has care = "ask staff" (a string): care.level is missing there, not an error
        assert matching({"care.level": {"$exists": False}}) == {"policy", "odd", "empty"}
        assert matching({"care.level.deeper": 1}) == set()
        assert matching({"care.level": {"$ne": 2}}) == {"scarf", "policy", "odd", "empty"}

    def test_whole_nested_value(self):
        assert matching({"care": {"$eq": {"level": 3}}}) == {"scarf"}

    def test_deep_path(self):
        match = compile_filter({"a.b.c.d": {"$in": [1, 2]}})
        assert match({"a": {"b": {"c": {"d": 2}}}}) is True
        assert match({"a": {"b": {"c": {"d": 3}}}}) is False
        assert match({"a": {"b": [1, 2]}}) is False


class TestLogic:
    def test_and(self):
        assert matching({"$and": [{"category": "product"}, {"price": {"$lt": 200}}]}) == {"scarf"}

    def test_or(self):
        assert matching({"$or": [{"category": "policy"}, {"care.level": 3}]}) == {"policy", "scarf"}

    def test_nested_logic(self):
        spec = {"$or": [{"$and": [{"category": "product"}, {"stock": {"$gt": 0}}]}, {"lang": "en"}]}
        assert matching(spec) == {"scarf", "policy"}

    def test_logic_combined_with_fields(self):
        spec = {"category": "product", "$or": [{"stock": 0}, {"care": "ask staff"}]}
        assert matching(spec) == {"bag", "odd"}

    def test_tuple_of_filters(self):
        assert matching({"$or": ({"stock": 0}, {"stock": 4})}) == {"bag", "scarf"}


class TestInvalid:
    @pytest.mark.parametrize("spec", [
        ["category", "product"],
        "category",
        42,
        {"price": {"$regex": "4.*"}},
        {"price": {"$gt": 1, "$between": [1, 2]}},
        {"price": {"gt": 1}},
        {"$nor": [{"a": 1}]},
        {"$not": {"a": 1}},
        {"$and": []},
        {"$or": {"a": 1}},
        {"$and": "a"},
        {"$and": [{"a": {"$bad": 1}}]},
        {"$or": [{"a": 1}, "not a mapping"]},
        {"category": {"$in": "product"}},
        {"category": {"$nin": b"product"}},
        {"category": {"$in": 5}},
        {"": 1},
        {1: "x"},
    ])
    def test_rejected_at_compile_time(self, spec):
        with pytest.raises(InvalidInputError):
            compile_filter(spec)

    def test_error_names_the_operator(self):
        with pytest.raises(InvalidInputError, match=r"\$regex"):
            compile_filter({"price": {"$regex": "x"}})


def test_callable_filters_see_read_only_metadata():
    from fgr_retriever import Document
    from fgr_retriever.index.filters import compile_document_filter

    doc = Document(id="a", text="x", metadata={"k": 1})

    def tamper(d):
        d.metadata["k"] = 2
        return True

    with pytest.raises(TypeError):
        compile_document_filter(tamper)(doc)
    assert doc.metadata == {"k": 1} and compile_document_filter(lambda d: d.metadata["k"] == 1)(doc) is True
