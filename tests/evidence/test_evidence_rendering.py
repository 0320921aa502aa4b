"""evidence_text (compact evidence strings) and the ANSI / HTML / Markdown renderers."""

from __future__ import annotations

import doctest
import re

import pytest

import fgr_retriever.evidence.text
from fgr_retriever import InvalidInputError, Span, evidence_text, render_ansi, render_html, render_markdown

GREEK = "alpha beta gamma delta epsilon zeta eta theta"
NUMBERS = "one two three four five six seven eight nine ten"


def span(text: str, words: str, score: float = 0.5) -> Span:
    """The span of the first occurrence of ``words`` as whole words (not inside a longer word)."""
    m = re.search(r"(?<!\w)" + re.escape(words) + r"(?!\w)", text)
    assert m is not None, words
    return Span(start=m.start(), end=m.end(), text=words, score=score)


# ------------------------------------------------------------------------ evidence
class TestEvidenceText:
    def test_no_spans(self):
        assert evidence_text(GREEK, []) == ""
        assert evidence_text(GREEK, [], max_tokens=3, context_words=2) == ""

    def test_gaps_and_edges(self):
        out = evidence_text(GREEK, [span(GREEK, "zeta"), span(GREEK, "gamma")])
        assert out == "… gamma … zeta …"

    def test_document_order_regardless_of_input_order(self):
        spans = [span(GREEK, "eta", 0.1), span(GREEK, "alpha", 0.9), span(GREEK, "delta", 0.5)]
        assert evidence_text(GREEK, spans) == "alpha … delta … eta …"
        assert evidence_text(GREEK, list(reversed(spans))) == "alpha … delta … eta …"

    def test_no_ellipsis_at_text_edges(self):
        assert evidence_text(GREEK, [span(GREEK, "alpha"), span(GREEK, "theta")]) == "alpha … theta"
        assert evidence_text(GREEK, [span(GREEK, GREEK)]) == GREEK

    def test_whitespace_only_outside_is_no_gap(self):
        text = "  \n alpha beta \t\n"
        assert evidence_text(text, [span(text, "alpha beta")]) == "alpha beta"

    def test_context_words(self):
        assert evidence_text(GREEK, [span(GREEK, "delta")], context_words=1) == "… gamma delta epsilon …"
        assert evidence_text(GREEK, [span(GREEK, "delta")], context_words=2) == \
            "… beta gamma delta epsilon zeta …"

    def test_context_clipped_at_edges(self):
        assert evidence_text(GREEK, [span(GREEK, "alpha")], context_words=2) == "alpha beta gamma …"
        assert evidence_text(GREEK, [span(GREEK, "theta")], context_words=2) == "… zeta eta theta"
        assert evidence_text(GREEK, [span(GREEK, "delta")], context_words=50) == GREEK

    def test_overlapping_context_merges(self):
        out = evidence_text(GREEK, [span(GREEK, "gamma"), span(GREEK, "epsilon")], context_words=1)
        assert out == "… beta gamma delta epsilon zeta …"

    def test_span_inside_a_word_extends_to_context(self):
        # a span that starts inside a word still counts that word as its first one
        assert evidence_text(GREEK, [Span(start=19, end=22, text="lta", score=0.5)], context_words=1) == \
            "… gamma delta epsilon …"

    def test_whitespace_is_collapsed(self):
        text = "first line\n\nsecond\tline end"
        assert evidence_text(text, [span(text, "line\n\nsecond")]) == "… line second …"

    def test_custom_separator(self):
        out = evidence_text(GREEK, [span(GREEK, "gamma"), span(GREEK, "zeta")], separator=" [...] ")
        assert out == "[...] gamma [...] zeta [...]"

    @pytest.mark.parametrize("budget, expected", [
        (None, "… two … five six … nine …"),
        (1, "… five …"),  # the best piece is cut to fit rather than dropped
        (2, "… five six …"),
        (3, "… five six … nine …"),
        (4, "… two … five six … nine …"),
        (100, "… two … five six … nine …"),
    ])
    def test_max_tokens_keeps_highest_scores(self, budget, expected):
        spans = [span(NUMBERS, "two", 0.5), span(NUMBERS, "five six", 0.9), span(NUMBERS, "nine", 0.7)]
        assert evidence_text(NUMBERS, spans, max_tokens=budget) == expected

    def test_max_tokens_cuts_a_single_long_piece(self):
        assert evidence_text(NUMBERS, [span(NUMBERS, "three four five six", 0.9)], max_tokens=2) == \
            "… three four …"
        assert evidence_text(NUMBERS, [span(NUMBERS, "one two three", 0.9)], max_tokens=2) == "one two …"

    def test_max_tokens_output_respects_budget(self):
        spans = [span(NUMBERS, w, s) for w, s in [("one", .2), ("three four", .8), ("six", .6), ("eight nine", .4)]]
        for budget in range(1, 8):
            out = evidence_text(NUMBERS, spans, max_tokens=budget, context_words=1)
            words = [w for w in out.split() if w != "…"]
            assert 1 <= len(words) <= budget

    def test_custom_token_counter(self):
        spans = [span(NUMBERS, "two", 0.5), span(NUMBERS, "five six", 0.9), span(NUMBERS, "nine", 0.7)]
        # counting characters: the best piece "five six" (8) does not fit in 7, so it is cut to "five"
        assert evidence_text(NUMBERS, spans, max_tokens=7, token_counter=len) == "… five …"
        # with room for it, weaker pieces follow in score order: "five six" (8) + "nine" (4) <= 12
        assert evidence_text(NUMBERS, spans, max_tokens=12, token_counter=len) == "… five six … nine …"

    @pytest.mark.parametrize("bad", [
        Span(start=0, end=len(GREEK) + 1, text="x", score=0.5),
        Span(start=-1, end=3, text="x", score=0.5),
        Span(start=5, end=5, text="", score=0.5),
        Span(start=9, end=4, text="", score=0.5),
    ])
    def test_spans_out_of_range(self, bad):
        with pytest.raises(InvalidInputError):
            evidence_text(GREEK, [span(GREEK, "beta"), bad])

    @pytest.mark.parametrize("kwargs", [dict(max_tokens=0), dict(max_tokens=-2), dict(max_tokens=True),
                                        dict(max_tokens=2.5), dict(context_words=-1)])
    def test_invalid_options(self, kwargs):
        with pytest.raises(InvalidInputError):
            evidence_text(GREEK, [span(GREEK, "beta")], **kwargs)

    def test_adjacent_pieces_have_no_ellipsis(self):
        out = evidence_text(GREEK, [span(GREEK, "gamma"), span(GREEK, "zeta")], context_words=1)
        assert out == "… beta gamma delta epsilon zeta eta …"

    def test_over_budget_best_piece_is_cut_not_dropped(self):
        spans = [span(NUMBERS, "three four five six", 0.9), span(NUMBERS, "nine", 0.1)]
        assert evidence_text(NUMBERS, spans, max_tokens=2) == "… three four …"

    @pytest.mark.parametrize("highlight, expected", [
        ("costs 15", "… costs 15 EUR …"),          # a number keeps the unit after it
        ("ships in 2", "… ships in 2 days …"),
        ("weighs 0.9", "… weighs 0.9 kg …"),
        ("19", "… EUR 19 …"),                       # and the currency before it
        ("Ondine 28", "… Ondine 28 …"),             # "costs" is not a unit
        ("total: 40.", "… total: 40. …"),           # a sentence that ends with the number ends there
    ])
    def test_numbers_keep_their_units(self, highlight, expected):
        text = "The Ondine 28 costs 15 EUR and ships in 2 days. In shops: EUR 19. It weighs 0.9 kg, total: 40. Done."
        assert evidence_text(text, [span(text, highlight)]) == expected

    def test_the_budget_cut_never_ends_inside_a_span_that_fits(self):
        text = "alpha beta gamma delta epsilon zeta eta theta"
        spans = [span(text, "alpha beta", 0.9), span(text, "gamma delta epsilon", 0.8)]
        # both spans merge into one piece; 4 words cannot hold both whole, so the second is left out
        assert evidence_text(text, spans, max_tokens=4) == "alpha beta …"
        assert evidence_text(text, spans, max_tokens=5) == "alpha beta gamma delta epsilon …"

    def test_a_span_over_the_whole_budget_is_not_cut_between_number_and_unit(self):
        text = "It is 14 cm wide and 15 EUR."
        assert evidence_text(text, [span(text, "It is 14 cm wide")], max_tokens=3) == "It is …"
        assert evidence_text(text, [span(text, "It is 14 cm wide")], max_tokens=4) == "It is 14 cm …"

    def test_docstring_example(self):
        result = doctest.testmod(fgr_retriever.evidence.text, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0


# ----------------------------------------------------------------------- rendering
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class TestRenderHtml:
    def test_escapes_inside_and_outside(self):
        text = "a < b & c <d>"
        out = render_html(text, [span(text, "b & c", 0.9)])
        assert out == 'a &lt; <mark data-score="0.900">b &amp; c</mark> &lt;d&gt;'

    def test_escapes_quotes_and_script(self):
        text = '<script>alert("x")</script> & \'quoted\''
        out = render_html(text, [span(text, "alert", 0.25)])
        assert "<script>" not in out and "&lt;script&gt;" in out
        assert '<mark data-score="0.250">alert</mark>' in out
        assert "&quot;x&quot;" in out and "&amp;" in out

    def test_custom_tag_and_multiple_spans(self):
        text = "one two three"
        out = render_html(text, [span(text, "three", 0.1), span(text, "one", 0.123456)], tag="b")
        assert out == '<b data-score="0.123">one</b> two <b data-score="0.100">three</b>'

    def test_no_spans(self):
        assert render_html("x < y", []) == "x &lt; y"

    def test_overlapping_and_foreign_spans_are_skipped(self):
        text = "one two three"
        spans = [Span(start=0, end=7, text="one two", score=0.5), Span(start=4, end=13, text="two three", score=0.5),
                 Span(start=8, end=99, text="?", score=0.5)]
        assert render_html(text, spans) == '<mark data-score="0.500">one two</mark> three'


class TestRenderAnsi:
    def test_wraps_exactly_the_span(self):
        text = "hello world, foo"
        out = render_ansi(text, [span(text, "world", 0.9)])
        assert out == "hello \x1b[1;30;43mworld\x1b[0m, foo"

    def test_stripping_codes_gives_original(self):
        text = "Crème brûlée 😀 <b>\tend"
        spans = [span(text, "Crème"), span(text, "😀 <b>")]
        out = render_ansi(text, spans)
        assert ANSI.sub("", out) == text
        marked = re.findall(r"\x1b\[1;30;43m(.*?)\x1b\[0m", out, flags=re.S)
        assert marked == ["Crème", "😀 <b>"]

    def test_no_spans_is_identity(self):
        assert render_ansi("plain & <text>", []) == "plain & <text>"


class TestRenderMarkdown:
    def test_escapes_asterisks(self):
        text = "2*3 is *six* _x_"
        out = render_markdown(text, [span(text, "*six*", 0.9)])
        assert out == r"2\*3 is **\*six\*** \_x\_"

    def test_escapes_other_syntax(self):
        text = "# [link](x) `code` a|b ~s~ <tag> back\\slash"
        out = render_markdown(text, [])
        for raw in ["#", "[", "]", "`", "|", "~", "<", ">", "\\"]:
            assert raw in text
        assert out == r"\# \[link\](x) \`code\` a\|b \~s\~ \<tag\> back\\slash"

    def test_span_whitespace_stays_outside_bold(self):
        text = "one two three"
        out = render_markdown(text, [Span(start=3, end=8, text=" two ", score=0.5)])
        assert out == "one **two** three"

    def test_whitespace_only_span_not_bold(self):
        text = "one   two"
        assert render_markdown(text, [Span(start=3, end=6, text="   ", score=0.5)]) == "one   two"

    def test_multiple_spans_in_order(self):
        text = "alpha beta gamma"
        out = render_markdown(text, [span(text, "gamma"), span(text, "alpha")])
        assert out == "**alpha** beta **gamma**"


# ------------------------------------------------------------------- the answer tier
SHEET = "Size: M. Weight: 0.9 kg. Colour: <black>."
EVIDENCE = [span(SHEET, "Weight: 0.9 kg.", 0.3)]
ANSWER = [span(SHEET, "0.9 kg", 0.8)]


class TestAnswerTier:
    def test_html_nests_the_answer_inside_the_evidence(self):
        out = render_html(SHEET, EVIDENCE, answers=ANSWER)
        assert out == ('Size: M. <mark data-score="0.300">Weight: <mark class="answer" data-score="0.800">0.9 kg'
                       '</mark>.</mark> Colour: &lt;black&gt;.')

    def test_markdown_and_terminal(self):
        assert render_markdown(SHEET, EVIDENCE, answers=ANSWER) == r"Size: M. **Weight: *0.9 kg*.** Colour: \<black\>."
        ansi = render_ansi(SHEET, EVIDENCE, answers=ANSWER)
        assert re.sub(r"\x1b\[[0-9;]*m", "", ansi) == SHEET
        assert "\x1b[4;30;46m0.9 kg\x1b[0m\x1b[1;30;43m." in ansi  # evidence colour resumes after the answer

    def test_an_answer_outside_every_evidence_span_is_not_marked(self):
        stray = [span(SHEET, "Colour")]
        assert render_html(SHEET, EVIDENCE, answers=stray) == render_html(SHEET, EVIDENCE)
        assert render_markdown(SHEET, [], answers=ANSWER) == render_markdown(SHEET, [])

    def test_without_answers_the_output_is_unchanged(self):
        assert render_html(SHEET, EVIDENCE) == \
            'Size: M. <mark data-score="0.300">Weight: 0.9 kg.</mark> Colour: &lt;black&gt;.'
        assert render_markdown(SHEET, EVIDENCE) == r"Size: M. **Weight: 0.9 kg.** Colour: \<black\>."

    def test_plain_cli_marks(self):
        from fgr_retriever.cli.common import mark, marked_snippet

        assert mark(SHEET, EVIDENCE, False, ANSWER) == "Size: M. [[Weight: {{0.9 kg}}.]] Colour: <black>."
        assert marked_snippet(SHEET, EVIDENCE, False, context_words=1, answers=ANSWER) == \
            "… M. [[Weight: {{0.9 kg}}.]] Colour: …"
