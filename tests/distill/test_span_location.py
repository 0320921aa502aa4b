"""Placing LLM-quoted strings in a passage: tiers, offsets, Unicode, repeats, merging."""

from __future__ import annotations

import random
import time

import pytest

from fgr_retriever.distill.span_location import locate_spans, merge_spans, normalize_with_map


def assert_consistent(passage, result):
    """The invariants of every result: real offsets, sorted, stripped, non-touching."""
    assert result.span_texts == [passage[s:e] for s, e in result.spans]
    for s, e in result.spans:
        assert 0 <= s < e <= len(passage)
        assert passage[s:e] == passage[s:e].strip()
    for (_, e1), (s2, _) in zip(result.spans, result.spans[1:]):
        assert e1 < s2
    for m in result.matches:
        assert m.text == passage[m.start:m.end]


def test_exact_match_offsets():
    passage = "The Eiffel Tower was completed in 1889 for the World's Fair."
    r = locate_spans(passage, ["in 1889", "World's Fair"])
    assert r.spans == [(31, 38), (47, 59)]
    assert r.span_texts == ["in 1889", "World's Fair"]
    assert r.tiers == ("exact", "exact") and r.tier_counts["exact"] == 2
    assert r.dropped == ()
    assert_consistent(passage, r)


def test_invented_strings_are_dropped_never_placed():
    passage = "Water boils at 100 degrees Celsius at sea level."
    r = locate_spans(passage, ["boils at 100 degrees", "freezes at zero degrees", "Mount Everest"])
    assert r.span_texts == ["boils at 100 degrees"]
    assert r.dropped == ("freezes at zero degrees", "Mount Everest")
    assert r.tiers == ("exact", None, None)
    assert not locate_spans(passage, ["entirely unrelated words here"]).found_any


def test_case_whitespace_and_quotes_use_normalized_tier_with_original_offsets():
    passage = "He said \u201cit\u2019s   done\u201d \u2014 then\nLEFT the building."
    r = locate_spans(passage, ['"It\'s done" - then left'])
    assert r.tiers == ("normalized",)
    (s, e), = r.spans
    # the offsets point at the ORIGINAL characters (curly quotes, triple space, em dash, newline)
    assert passage[s:e] == "\u201cit\u2019s   done\u201d \u2014 then\nLEFT"
    assert_consistent(passage, r)


def test_accents_composed_vs_decomposed_and_nfkc():
    passage = "Cafe\u0301 society met at the Caf\u00e9 de Flore; the \ufb01nal bill was large."
    # precomposed é in the quote matches the decomposed e + U+0301 in the passage, and vice versa
    r = locate_spans(passage, ["caf\u00e9 society", "CAFE\u0301 DE FLORE", "final bill"])
    assert r.tiers == ("normalized", "normalized", "normalized")
    assert r.span_texts == ["Cafe\u0301 society", "Caf\u00e9 de Flore", "\ufb01nal bill"]
    assert_consistent(passage, r)


def test_accented_exact_match_keeps_code_point_offsets():
    passage = "Orders ship from Orléans — Zürich in 2 days."
    r = locate_spans(passage, ["Zürich"])
    assert r.spans == [(passage.index("Zürich"), passage.index("Zürich") + 6)]
    assert r.tiers == ("exact",)


def test_fuzzy_typo_is_located_and_snapped_to_words():
    passage = "Marie Curie discovered polonium and radium in 1898 with Pierre Curie."
    r = locate_spans(passage, ["discoverd polonium and radium"])
    assert r.tiers == ("fuzzy",)
    assert r.span_texts == ["discovered polonium and radium"]
    assert r.matches[0].distance == 1
    assert_consistent(passage, r)


def test_fuzzy_respects_edit_budget_and_min_length():
    passage = "Marie Curie discovered polonium and radium in 1898."
    # 3 edits on 29 characters > 10% -> dropped
    assert locate_spans(passage, ["dizcoverd polonium and radiun"]).dropped == ("dizcoverd polonium and radiun",)
    # a looser budget accepts it
    assert locate_spans(passage, ["dizcoverd polonium and radiun"], max_edit_ratio=0.2).tiers == ("fuzzy",)
    # short strings are never matched approximately, whatever the budget
    assert locate_spans(passage, ["radiun"], max_edit_ratio=0.5).dropped == ("radiun",)
    # fuzzy can be switched off
    assert locate_spans(passage, ["discoverd polonium and radium"], fuzzy=False).dropped


def test_fuzzy_snaps_off_partial_words():
    passage = "The treaty was signed in Paris on 10 February 1763 by three powers."
    r = locate_spans(passage, ["signed in Paris on 10 Febuary 1763"])
    assert r.tiers == ("fuzzy",)
    s, e = r.spans[0]
    # never cuts a word on either side
    assert not passage[s - 1].isalnum() and not passage[e].isalnum()
    assert r.span_texts == ["signed in Paris on 10 February 1763"]


def test_repeated_string_uses_distinct_occurrences():
    passage = "the cat sat. the cat ran. the cat slept."
    r = locate_spans(passage, ["the cat", "the cat"])
    starts = sorted(m.start for m in r.matches)
    assert starts == [0, 13]
    # quoted more often than it occurs: a duplicate, not an invention
    r3 = locate_spans("one cat", ["cat", "cat"])
    assert r3.dropped == () and r3.spans == [(4, 7)]


def test_repeated_normalized_strings_use_distinct_occurrences():
    passage = "Rome. ROME! rome?"
    r = locate_spans(passage, ["rome", "rome", "rome"])
    assert r.tiers == ("exact", "normalized", "normalized")
    assert sorted((m.start, m.end) for m in r.matches) == [(0, 4), (6, 10), (12, 16)]


def test_short_quote_beside_longer_one_keeps_its_own_first_occurrence():
    passage = "Scarlett is back. Known as Scarlett ALIAS on the show."
    r = locate_spans(passage, ["Scarlett", "Scarlett ALIAS"])
    assert [(m.quote, m.start) for m in r.matches] == [("Scarlett", 0), ("Scarlett ALIAS", 27)]
    assert r.span_texts == ["Scarlett", "Scarlett ALIAS"]
    # when its only occurrence is inside the longer quote, it lands there and merges away
    r2 = locate_spans("Known as Scarlett ALIAS.", ["Scarlett", "Scarlett ALIAS"])
    assert r2.spans == [(9, 23)] and r2.dropped == ()


def test_longer_strings_placed_first_exact_beats_fuzzy():
    passage = "alpha beta gamma delta. alpha beta gamma delta."
    r = locate_spans(passage, ["alpha betta gamma delta", "alpha beta gamma delta"])
    # the exact quote takes the first occurrence even though it comes second in the list
    assert r.matches[1].tier == "exact" and r.matches[1].start == 0
    assert r.matches[0].tier == "fuzzy" and r.matches[0].start == 24


def test_merge_strips_and_merges_touching_but_not_space_separated():
    p = "One sentence. Two sentence."
    assert merge_spans(p, [(14, 27), (0, 13)]) == [(0, 13), (14, 27)]
    assert merge_spans(p, [(0, 8), (8, 13)]) == [(0, 13)]
    assert merge_spans(p, [(0, 13), (4, 20)]) == [(0, 20)]
    assert merge_spans(p, [(3, 4)]) == []  # whitespace only
    r = locate_spans(p, [" One sentence. ", "sentence. Two"])
    assert r.spans == [(0, 17)] and r.span_texts == ["One sentence. Two"]


def test_empty_quotes_ignored():
    r = locate_spans("abc", ["", "   "])
    assert r.spans == [] and r.dropped == () and r.tiers == (None, None)


def test_normalize_map_points_back():
    text = "A\u00a0\u00a0B \u201cC\u201d \ufb01"
    norm, starts, ends = normalize_with_map(text)
    assert norm == 'a b "c" fi'
    assert len(norm) == len(starts) == len(ends)
    i = norm.index("fi")
    assert text[starts[i]:ends[i + 1]] == "\ufb01"


def test_random_quotes_never_produce_invalid_offsets():
    rng = random.Random(7)
    words = ["Zürich", "naïve", "café", "co-op", "“quoted”", "it’s", "data", "model", "\u00a0", "x"]
    for _ in range(60):
        passage = " ".join(rng.choice(words) for _ in range(rng.randint(3, 30)))
        quotes = []
        for _ in range(rng.randint(0, 4)):
            a = rng.randrange(len(passage))
            b = min(len(passage), a + rng.randint(1, 25))
            q = passage[a:b]
            if rng.random() < 0.3:
                q = q.upper()
            if rng.random() < 0.2:
                q = q.replace("a", "e", 1)
            quotes.append(q)
        quotes.append("invented phrase not present")
        r = locate_spans(passage, quotes)
        assert_consistent(passage, r)
        assert "invented phrase not present" in r.dropped
        assert sum(r.tier_counts.values()) == len(r.matches)


def test_fuzzy_is_fast_on_long_passages():
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa"]
    passage = " ".join(rng.choice(words) for _ in range(3000))
    quote = passage[9000:9150]
    quote = quote[:40] + "#" + quote[41:]
    t = time.perf_counter()
    r = locate_spans(passage, [quote, "an invented sentence that appears nowhere in this passage at all"])
    assert time.perf_counter() - t < 2.0
    assert r.tiers[0] == "fuzzy" and abs(r.spans[0][0] - 9000) <= 8
    assert len(r.dropped) == 1


def test_rejects_bad_arguments():
    with pytest.raises(TypeError):
        locate_spans(None, ["x"])
    with pytest.raises(ValueError):
        locate_spans("x", ["x"], max_edit_ratio=1.5)


def test_fuzzy_long_typoed_quote_gets_exact_span_and_distance():
    filler = "Rivers carry sediment from the mountains down to the plains every spring. " * 6
    sentence = ("The harbour was rebuilt after the great storm of 1703, when almost every pier, warehouse "
                "and customs house along the eastern quay had been destroyed, and the merchants who "
                "financed the work were granted a century of reduced duties on wine, salt and timber.")
    passage = filler + sentence  # the quoted sentence ends the passage
    assert len(sentence) > 250
    # four substitutions by a character the passage never contains: exactly four edits
    chars = list(sentence)
    for i in (20, 90, 170, 240):
        chars[i] = "#"
    r = locate_spans(passage, ["".join(chars)])
    assert r.tiers == ("fuzzy",)
    assert r.matches[0].distance == 4
    assert r.span_texts == [sentence]
    assert r.spans == [(len(filler), len(passage))]


def test_fuzzy_edit_budget_boundary_is_exact():
    passage = "Before the match. The archive of the old city council burned down in 1871. After it."
    quote = "The archive of the old city council burned down in 1871."  # 56 chars: budget 5 edits
    assert int(0.1 * len(quote)) == 5

    def with_edits(n):
        chars = list(quote)
        for i in range(n):
            chars[4 + 10 * i] = "#"
        return "".join(chars)

    at_budget = locate_spans(passage, [with_edits(5)])
    assert at_budget.tiers == ("fuzzy",) and at_budget.matches[0].distance == 5
    assert at_budget.span_texts == [quote]
    over_budget = locate_spans(passage, [with_edits(6)])
    assert over_budget.dropped == (with_edits(6),) and over_budget.spans == []


def test_fuzzy_quote_given_twice_marks_both_typoed_occurrences():
    phrase = "the committee approved the annual budget report"
    passage = (f"In March {phrase} without debate. Several members later objected to the procedure, "
               f"so in April {phrase} a second time. Nobody objected after that.")
    quote = "the comittee approved the anual budget report"  # two deletions, same distance to both
    r = locate_spans(passage, [quote, quote])
    first, second = passage.index(phrase), passage.rindex(phrase)
    assert r.tiers == ("fuzzy", "fuzzy")
    assert sorted((m.start, m.end) for m in r.matches) == [(first, first + len(phrase)),
                                                           (second, second + len(phrase))]
    assert [m.distance for m in r.matches] == [2, 2]
    # a third copy has nowhere new to go: it reuses an occurrence instead of being dropped
    r3 = locate_spans(passage, [quote] * 3)
    assert r3.dropped == () and len(r3.spans) == 2
