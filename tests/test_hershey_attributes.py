"""Geometric glyph attributes on hand-made glyphs with known answers, and their positive rates."""

from __future__ import annotations

import numpy as np
import pytest

from mtl_cli.data.hershey import Glyph, load_alphabets
from mtl_cli.data.hershey_attributes import ATTRIBUTES, attribute_matrix, glyph_attributes


def _glyph(*strokes: list[list[float]]) -> Glyph:
    return Glyph("hand", "hand", 0, tuple(np.array(s, dtype=np.float32) for s in strokes))


def _attrs(*strokes: list[list[float]]) -> dict[str, bool]:
    return dict(zip(ATTRIBUTES, glyph_attributes(_glyph(*strokes)).tolist(), strict=True))


SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
L_SHAPE = [[0, 0], [0, 10], [6, 10]]
CIRCLE = [[5 * np.cos(a), 5 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 37)]


def test_at_least_eight_named_attributes():
    assert len(ATTRIBUTES) >= 8 and len(set(ATTRIBUTES)) == len(ATTRIBUTES)


def test_square_is_closed_symmetric_straight():
    a = _attrs(SQUARE)
    assert a["closed_loop"] and a["symmetric_lr"] and a["symmetric_tb"] and a["straight_only"]
    assert not (a["crossing"] or a["curved"] or a["tall"] or a["wide"] or a["has_dot"])
    assert not a["many_strokes"]


def test_l_is_open_asymmetric_and_tall():
    a = _attrs(L_SHAPE)
    assert not (a["closed_loop"] or a["symmetric_lr"] or a["symmetric_tb"] or a["crossing"])
    assert a["tall"] and not a["wide"] and a["straight_only"] and not a["long_ink"]


def test_x_crosses_and_is_symmetric_but_not_closed():
    a = _attrs([[0, 0], [10, 10]], [[10, 0], [0, 10]])
    assert a["crossing"] and a["symmetric_lr"] and a["symmetric_tb"]
    assert not a["closed_loop"] and not a["has_dot"]


def test_t_junction_touching_is_not_a_crossing():
    assert not _attrs([[0, 0], [10, 0]], [[5, 0], [5, 10]])["crossing"]


def test_circle_is_curved_and_closed():
    a = _attrs(CIRCLE)
    assert a["curved"] and a["closed_loop"] and not a["straight_only"]
    assert a["symmetric_lr"] and a["symmetric_tb"]


def test_self_crossing_stroke_is_a_closed_loop():
    a = _attrs([[0, 0], [10, 10], [10, 0], [0, 10]])
    assert a["closed_loop"] and not a["crossing"]


def test_i_has_a_dot_and_many_strokes_and_wide():
    assert _attrs([[0, 3], [0, 10]], [[0, 0]])["has_dot"]
    five = [[[i, 0], [i, 1]] for i in range(0, 20, 4)]
    a = _attrs(*five)
    assert a["many_strokes"] and a["wide"] and not a["tall"]
    assert not _attrs(*five[:4])["many_strokes"]


def test_hash_sign_has_long_ink():
    grid = [[0, 3], [10, 3]], [[0, 7], [10, 7]], [[3, 0], [3, 10]], [[7, 0], [7, 10]]
    a = _attrs(*grid)
    assert a["long_ink"] and a["crossing"] and not a["closed_loop"]


def test_empty_glyph_is_refused():
    with pytest.raises(ValueError, match="glyph: hand/hand#0 has no strokes"):
        glyph_attributes(Glyph("hand", "hand", 0, ()))


def test_batch_equals_single_and_rates_are_informative():
    glyphs = [g for gs in load_alphabets().values() for g in gs]
    matrix = attribute_matrix(glyphs)
    assert matrix.shape == (len(glyphs), len(ATTRIBUTES)) and matrix.dtype == bool
    for i in (0, 100, 500):
        assert np.array_equal(matrix[i], glyph_attributes(glyphs[i]))
    rates = matrix.mean(0)
    assert ((rates > 0.1) & (rates < 0.7)).all(), dict(zip(ATTRIBUTES, rates, strict=True))
