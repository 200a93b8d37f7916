"""Binary shape attributes of Hershey glyphs, computed from stroke geometry (multi-label targets).

Like the attribute tasks of Lampert, Nickisch & Harmeling (2009), every attribute is a yes/no
property shared across classes; here each one is a documented geometric test on the strokes.
Coordinates are first scaled so that the longer side of the glyph's bounding box is 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mtl_cli.data.hershey import Glyph, glyph_raster

ATTRIBUTES: tuple[str, ...] = (
    "many_strokes",  # >= MANY_STROKES strokes (pen-ups + 1)
    "closed_loop",  # a stroke ends within LOOP_EPS of its start, or crosses itself
    "curved",  # summed gentle turns (each < 45 degrees) along the strokes >= 180 degrees
    "symmetric_lr",  # soft IoU of the 16x16 raster with its left-right mirror >= SYMMETRY_IOU
    "symmetric_tb",  # soft IoU of the raster with its top-bottom mirror >= SYMMETRY_IOU
    "crossing",  # a segment properly crosses a segment of another stroke
    "tall",  # height > TALL x width
    "wide",  # width > WIDE x height
    "has_dot",  # a stroke whose extent is < DOT_SIZE (a dot, drawn as a tiny loop or point)
    "long_ink",  # total stroke length >= LONG_INK box sides
    "straight_only",  # no turn between consecutive segments is gentle: only lines and corners
)

LOOP_EPS = 0.05  # closing distance, fraction of the box's longer side
GENTLE_TURN_DEG = 45.0
CURVE_DEG = 180.0
SYMMETRY_IOU = 0.75
MANY_STROKES = 5
TALL = 1.3
WIDE = 1.15
DOT_SIZE = 0.12
LONG_INK = 4.0
_CROSS_MARGIN = 1e-3  # a crossing must lie strictly inside both segments


def _unit_strokes(strokes: tuple[np.ndarray, ...]) -> tuple[list[np.ndarray], np.ndarray]:
    """Strokes scaled so the box's longer side is 1; returns them and the box size (w, h)."""
    points = np.concatenate(strokes).astype(np.float64)
    lo, hi = points.min(0), points.max(0)
    side = max(float((hi - lo).max()), 1e-9)
    return [(s.astype(np.float64) - lo) / side for s in strokes], (hi - lo) / side


def _segments_cross(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """Bool [A, B]: segment a_i properly crosses segment b_j (interiors meet, not parallel)."""
    r = (a1 - a0)[:, None, :]
    s = (b1 - b0)[None, :, :]
    q = b0[None, :, :] - a0[:, None, :]
    denom = r[..., 0] * s[..., 1] - r[..., 1] * s[..., 0]
    safe = np.where(np.abs(denom) < 1e-12, np.inf, denom)
    t = (q[..., 0] * s[..., 1] - q[..., 1] * s[..., 0]) / safe
    u = (q[..., 0] * r[..., 1] - q[..., 1] * r[..., 0]) / safe
    inside = (_CROSS_MARGIN < t) & (t < 1 - _CROSS_MARGIN)
    return inside & (_CROSS_MARGIN < u) & (u < 1 - _CROSS_MARGIN)


def _turns_deg(stroke: np.ndarray) -> np.ndarray:
    """Absolute turning angles (degrees) between consecutive non-zero segments of a stroke."""
    d = np.diff(stroke, axis=0)
    d = d[np.hypot(d[:, 0], d[:, 1]) > 1e-9]
    if len(d) < 2:
        return np.zeros(0)
    angle = np.arctan2(d[:, 1], d[:, 0])
    turn = np.diff(angle)
    return np.degrees(np.abs((turn + np.pi) % (2 * np.pi) - np.pi))


def _geometry_attributes(strokes: tuple[np.ndarray, ...]) -> dict[str, bool]:
    unit, (width, height) = _unit_strokes(strokes)
    turns = [_turns_deg(s) for s in unit]
    all_turns = np.concatenate(turns) if turns else np.zeros(0)
    gentle = all_turns[(all_turns > 1.0) & (all_turns < GENTLE_TURN_DEG)]
    seg_a = [s[:-1] for s in unit]
    seg_b = [s[1:] for s in unit]
    closed = False
    for i, s in enumerate(unit):
        if len(s) >= 3 and np.hypot(*(s[0] - s[-1])) <= LOOP_EPS:
            closed = True
        elif len(s) >= 4:
            hit = _segments_cross(seg_a[i], seg_b[i], seg_a[i], seg_b[i])
            closed |= bool(np.triu(hit, k=2).any())
    crossing = False
    for i in range(len(unit)):
        for j in range(i + 1, len(unit)):
            if len(unit[i]) > 1 and len(unit[j]) > 1:
                crossing |= bool(_segments_cross(seg_a[i], seg_b[i], seg_a[j], seg_b[j]).any())
    extents = [float((s.max(0) - s.min(0)).max()) for s in unit]
    length = sum(float(np.hypot(*np.diff(s, axis=0).T).sum()) for s in unit)
    return {
        "many_strokes": len(unit) >= MANY_STROKES,
        "closed_loop": closed,
        "curved": float(gentle.sum()) >= CURVE_DEG,
        "crossing": crossing,
        "tall": height > TALL * width,
        "wide": width > WIDE * height,
        "has_dot": len(unit) > 1 and min(extents) < DOT_SIZE,
        "long_ink": length >= LONG_INK,
        "straight_only": len(gentle) == 0,
    }


def _paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Soft IoU sum(min) / sum(max) of row i of a with row i of b -> [N]."""
    return np.minimum(a, b).sum(1) / np.maximum(np.maximum(a, b).sum(1), 1e-12)


def attribute_matrix(glyphs: Sequence[Glyph]) -> np.ndarray:
    """Bool [N, len(ATTRIBUTES)] for many glyphs (symmetry rasters are rendered in one batch)."""
    if len(glyphs) == 0:
        return np.zeros((0, len(ATTRIBUTES)), dtype=bool)
    raster = glyph_raster([g.strokes for g in glyphs], 16)
    flat = raster.reshape(len(glyphs), -1)
    mirror_lr = raster[:, :, ::-1].reshape(len(glyphs), -1)
    mirror_tb = raster[:, ::-1, :].reshape(len(glyphs), -1)
    sym_lr = _paired_iou(flat, mirror_lr)
    sym_tb = _paired_iou(flat, mirror_tb)
    out = np.zeros((len(glyphs), len(ATTRIBUTES)), dtype=bool)
    for i, glyph in enumerate(glyphs):
        values = _geometry_attributes(glyph.strokes)
        values["symmetric_lr"] = sym_lr[i] >= SYMMETRY_IOU
        values["symmetric_tb"] = sym_tb[i] >= SYMMETRY_IOU
        out[i] = [values[name] for name in ATTRIBUTES]
    return out


def glyph_attributes(glyph: Glyph) -> np.ndarray:
    """Bool [len(ATTRIBUTES)]: the geometric attributes of one glyph (see ATTRIBUTES)."""
    if not glyph.strokes:
        raise ValueError(f"glyph: {glyph.name} has no strokes; allowed: glyphs with ink")
    return attribute_matrix([glyph])[0]
