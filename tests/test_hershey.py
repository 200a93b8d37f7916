"""Hershey .jhf parser, alphabet grouping and near-duplicate removal."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mtl_cli.data import hershey
from mtl_cli.data.hershey import (
    ALPHABET_FONTS,
    ALPHABETS,
    Glyph,
    alphabet_stats,
    duplicate_mask,
    load_alphabets,
    parse_jhf,
)

# Glyph 1: margins "JZ", stroke (0,-12)->(0,2), pen up, stroke (-2,-12)->(-2,-10): 6 pairs.
# Glyph 2: margins "MW", a single point (0,0): 2 pairs.
TWO_GLYPHS = "    1  6JZRFRT RPFPH\n    2  2MWRR\n"


def _as_lists(record):
    index, strokes = record
    return index, [s.tolist() for s in strokes]


def test_parse_two_glyph_records_known_coordinates():
    records = parse_jhf(TWO_GLYPHS, "hand")
    assert [_as_lists(r) for r in records] == [
        (0, [[[0, -12], [0, 2]], [[-2, -12], [-2, -10]]]),
        (1, [[[0, 0]]]),
    ]
    assert all(s.dtype == np.float32 and s.shape[1] == 2 for _, st in records for s in st)


def test_pen_up_at_start_and_repeated_pen_ups_make_no_empty_strokes():
    records = parse_jhf("    1  6JZ RRF R RRT\n", "hand")
    assert [_as_lists(r) for r in records] == [(0, [[[0, -12]], [[0, 2]]])]


def test_wrapped_records_equal_unwrapped():
    wrapped = "    1  6JZRF\nRT RPFPH\n    2  2MWRR\n"
    split_in_pen_up = "    1  6JZRFRT\n RPFPH\n    2  2MWRR\n"
    expected = [_as_lists(r) for r in parse_jhf(TWO_GLYPHS, "hand")]
    assert [_as_lists(r) for r in parse_jhf(wrapped, "hand")] == expected
    assert [_as_lists(r) for r in parse_jhf(split_in_pen_up, "hand")] == expected


def test_glyph_without_ink_parses_to_no_strokes():
    assert _as_lists(parse_jhf("12345  1JZ\n", "hand")[0]) == (0, [])


@pytest.mark.parametrize("text", ["    1  xJZRR\n", "    1  9JZRFRT\n"])
def test_malformed_record_is_one_line_value_error(text):
    with pytest.raises(ValueError, match=r"^bad: line 1: ") as info:
        parse_jhf(text, "bad")
    assert "\n" not in str(info.value)


def test_every_shipped_font_parses_fast_and_whole():
    fonts = sorted({f for fs in ALPHABET_FONTS.values() for f in fs})
    start = time.perf_counter()
    for font in fonts:
        text = (hershey.FONT_DIR / f"{font}.jhf").read_text(encoding="latin-1")
        records = parse_jhf(text, font)
        assert len(records) == len(text.strip("\n").split("\n"))
    assert time.perf_counter() - start < 1.0


def test_alphabets_are_sorted_and_fonts_exist():
    assert list(ALPHABETS) == sorted(ALPHABETS)
    assert set(ALPHABET_FONTS) == set(ALPHABETS)
    for fonts in ALPHABET_FONTS.values():
        for font in fonts:
            assert (hershey.FONT_DIR / f"{font}.jhf").is_file()


def test_character_counts_are_stable():
    alphabets = load_alphabets()
    counts = {name: len(glyphs) for name, glyphs in alphabets.items()}
    assert len(counts) == 31
    assert sum(counts.values()) == 857
    assert counts["latin_sans_upper"] == 26  # rowmans duplicates futural exactly
    assert alphabet_stats("latin_sans_upper") == {"characters": 26, "duplicates": 26, "no_ink": 0}
    assert counts["gothic_german_upper"] == 25  # Fraktur I and J are the same glyph
    assert counts["greek_serif_lower"] == 24
    assert counts["digits"] == 40
    assert min(counts.values()) >= 5


def test_no_empty_glyphs_and_fields_match_the_source_font():
    for name, glyphs in load_alphabets().items():
        for g in glyphs:
            assert g.alphabet == name and g.font in ALPHABET_FONTS[name]
            assert g.strokes and all(len(s) >= 1 and s.shape[1] == 2 for s in g.strokes)
            source = hershey._font(g.font)[g.index]
            assert all(np.array_equal(a, b) for a, b in zip(g.strokes, source, strict=True))


def test_order_is_deterministic_and_follows_the_requested_names():
    first = load_alphabets(["markers", "digits"])
    assert list(first) == ["markers", "digits"]
    hershey._alphabet.cache_clear()
    again = load_alphabets(["markers", "digits"])
    assert [g.name for g in first["digits"]] == [g.name for g in again["digits"]]
    indices = [(ALPHABET_FONTS["digits"].index(g.font), g.index) for g in first["digits"]]
    assert indices == sorted(indices)


def test_unknown_alphabet_lists_allowed_names():
    with pytest.raises(ValueError, match=r"alphabets: unknown alphabet 'klingon'; allowed: ") as e:
        load_alphabets(["greek_sans_upper", "klingon"])
    assert "markers" in str(e.value)


def test_dedupe_drops_exact_and_perturbed_copies_only():
    base = [g.strokes for g in load_alphabets(["latin_serif_upper"])["latin_serif_upper"][:5]]
    rng = np.random.default_rng(0)
    perturbed = tuple(s + rng.uniform(-0.05, 0.05, s.shape).astype(np.float32) for s in base[3])
    moved_and_scaled = tuple(s * 2.0 + 7.0 for s in base[1])  # same shape, other box
    mask = duplicate_mask(base + [base[2], perturbed, moved_and_scaled])
    assert mask.tolist() == [False] * 5 + [True, True, True]


def test_duplicate_of_a_dropped_glyph_does_not_drop_a_third_distinct_one():
    square = (np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], np.float32),)
    cross = (np.array([[0, 0], [10, 10]], np.float32), np.array([[10, 0], [0, 10]], np.float32))
    assert duplicate_mask([square, cross, square, cross]).tolist() == [False, False, True, True]


def test_glyph_name():
    g = Glyph("greek_serif_upper", "greekc", 12, ())
    assert g.name == "greek_serif_upper/greekc#12"
