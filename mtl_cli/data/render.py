"""Anti-aliased rasteriser for stroke glyphs with per-sample affine and point jitter.

Each sample plays one "drawer" of a character, as in Omniglot (Lake, Salakhutdinov & Tenenbaum,
2015); the distortions follow the elastic/affine augmentation of Simard, Steinkraus & Platt (2003).
Ink is the pen's coverage of each pixel: clip(width / 2 + 0.5 - distance to the nearest segment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The longer side of a glyph's bounding box spans this fraction of the canvas before jitter,
# so that scale 1.1, translation 0.08 and rotation mostly stay inside the canvas.
FIT = 0.72
_REFERENCE_SIZE = 28  # stroke widths are given in pixels at this canvas size
_CHUNK_ELEMENTS = 500_000  # samples x pixels x segments evaluated at once (memory bound)
_FAR = -1.0e4  # coordinates of padding segments: never the nearest one


@dataclass(frozen=True)
class RenderParams:
    """Canvas size, number of drawers and jitter ranges (uniform in +-range unless a pair)."""

    size: int = 28
    drawers: int = 20
    rotation_deg: float = 10.0
    shear: float = 0.15
    scale: tuple[float, float] = (0.85, 1.1)
    translate: float = 0.08
    point_jitter: float = 0.02
    stroke_width: tuple[float, float] = (1.0, 2.2)

    def __post_init__(self) -> None:
        checks = {
            "size": (self.size >= 4, "an integer >= 4"),
            "drawers": (self.drawers >= 3, "an integer >= 3 (train/val/test drawers)"),
            "rotation_deg": (0 <= self.rotation_deg <= 180, "0 <= value <= 180"),
            "shear": (0 <= self.shear <= 1, "0 <= value <= 1"),
            "scale": (0 < self.scale[0] <= self.scale[1], "a pair 0 < low <= high"),
            "translate": (0 <= self.translate <= 0.5, "0 <= value <= 0.5"),
            "point_jitter": (0 <= self.point_jitter <= 0.5, "0 <= value <= 0.5"),
            "stroke_width": (
                0 < self.stroke_width[0] <= self.stroke_width[1],
                "a pair 0 < low <= high",
            ),
        }
        for key, (ok, allowed) in checks.items():
            if not ok:
                raise ValueError(f"render.{key}: got {getattr(self, key)!r}; allowed: {allowed}")


def _segments(strokes: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points [P, 2] and start/end point indices of each segment; a lone point is a 0-length one."""
    if not strokes:
        raise ValueError("glyph_strokes: a glyph has no strokes; allowed: glyphs with ink")
    points = np.concatenate(strokes).astype(np.float32)
    offsets = np.cumsum([0] + [len(s) for s in strokes])
    starts, ends = [], []
    for lo, hi in zip(offsets[:-1], offsets[1:], strict=True):
        idx = np.arange(lo, hi)
        starts.append(idx[:-1] if hi - lo > 1 else idx)
        ends.append(idx[1:] if hi - lo > 1 else idx)
    return points, np.concatenate(starts), np.concatenate(ends)


def _normalise(points: np.ndarray, size: int, fit: float) -> np.ndarray:
    """Centre the bounding box on the canvas and scale its longer side to fit * size pixels."""
    lo, hi = points.min(0), points.max(0)
    scale = fit * size / max(float((hi - lo).max()), 1e-6)
    return (points - (lo + hi) / 2) * scale + size / 2


def _rasterise(starts: np.ndarray, ends: np.ndarray, widths: np.ndarray, size: int) -> np.ndarray:
    """Ink in [0, 1], float32 [N, size, size], for padded segments [N, S, 2] in pixel units."""
    n, s = starts.shape[:2]
    centres = np.arange(size, dtype=np.float32) + 0.5
    gx = np.tile(centres, size)  # pixel x = column
    gy = np.repeat(centres, size)  # pixel y = row (y down)
    out = np.empty((n, size * size), dtype=np.float32)
    step = max(1, _CHUNK_ELEMENTS // max(1, size * size * s))
    for lo in range(0, n, step):
        a = starts[lo : lo + step, None, :, :]  # [n, 1, S, 2]
        d = ends[lo : lo + step, None, :, :] - a
        inv = 1.0 / np.maximum((d * d).sum(-1), 1e-12)  # [n, 1, S]
        dx, dy = d[..., 0], d[..., 1]
        px = gx[None, :, None] - a[..., 0]  # [n, P, S]
        py = gy[None, :, None] - a[..., 1]
        t = px * (dx * inv)  # projection of the pixel on the segment, clipped to its ends
        t += py * (dy * inv)
        np.clip(t, 0.0, 1.0, out=t)
        tmp = t * dx
        px -= tmp
        np.multiply(t, dy, out=tmp)
        py -= tmp
        np.multiply(px, px, out=px)
        np.multiply(py, py, out=py)
        px += py
        dist = np.sqrt(px.min(-1))  # [n, P]
        out[lo : lo + step] = np.clip(widths[lo : lo + step, None] / 2 + 0.5 - dist, 0.0, 1.0)
    return out.reshape(n, size, size)


def _rasterise_sorted(
    segs: list[tuple[np.ndarray, np.ndarray]], widths: np.ndarray, size: int
) -> np.ndarray:
    """Rasterise glyphs grouped by segment count (little padding); returns images in input order."""
    counts = np.array([len(a) for a, _ in segs])
    order = np.argsort(counts, kind="stable")
    out = np.empty((len(segs), size, size), dtype=np.float32)
    group = 256
    for lo in range(0, len(order), group):
        ids = order[lo : lo + group]
        s_max = int(counts[ids].max())
        starts = np.full((len(ids), s_max, 2), _FAR, dtype=np.float32)
        ends = np.full((len(ids), s_max, 2), _FAR, dtype=np.float32)
        for row, i in enumerate(ids):
            starts[row, : counts[i]] = segs[i][0]
            ends[row, : counts[i]] = segs[i][1]
        out[ids] = _rasterise(starts, ends, widths[ids], size)
    return out


def render_normalised(
    glyph_strokes: Sequence[tuple[np.ndarray, ...]], size: int, fit: float, width: float
) -> np.ndarray:
    """Jitter-free float32 rasters [N, size, size] in [0, 1]: glyph box scaled to fit * size."""
    segs = []
    for strokes in glyph_strokes:
        points, s, e = _segments(strokes)
        points = _normalise(points, size, fit)
        segs.append((points[s], points[e]))
    widths = np.full(len(segs), width, dtype=np.float32)
    return _rasterise_sorted(segs, widths, size)


def _sample_transform(
    points: np.ndarray, rng: np.random.Generator, params: RenderParams
) -> tuple[np.ndarray, float]:
    """Apply point jitter then one random affine map (about the canvas centre); return pen width."""
    size = params.size
    rot, shear, scale, tx, ty, width = rng.random(6)
    theta = np.deg2rad((2 * rot - 1) * params.rotation_deg)
    k = (2 * shear - 1) * params.shear
    s = params.scale[0] + scale * (params.scale[1] - params.scale[0])
    cos, sin = np.cos(theta), np.sin(theta)
    matrix = s * np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, k], [0.0, 1.0]])
    shift = (2 * np.array([tx, ty]) - 1) * params.translate * size
    jitter = rng.standard_normal(points.shape) * (params.point_jitter * FIT * size)
    moved = (points + jitter - size / 2) @ matrix.T + size / 2 + shift
    lo, hi = params.stroke_width
    return moved.astype(np.float32), (lo + width * (hi - lo)) * size / _REFERENCE_SIZE


def render(
    glyph_strokes: Sequence[tuple[np.ndarray, ...]], seeds: np.ndarray, params: RenderParams
) -> np.ndarray:
    """Render one jittered image per (glyph, seed) pair -> uint8 [N, size, size], ink 255 on 0.

    Each sample draws from `np.random.default_rng(seed)` (PCG64), so images are identical on every
    machine: point jitter N(0, point_jitter * box), then rotation, shear, scale, translation and
    pen width, each uniform in its range.
    """
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or len(seeds) != len(glyph_strokes):
        raise ValueError(
            f"seeds: got shape {seeds.shape} for {len(glyph_strokes)} glyphs; allowed: one seed "
            "per glyph"
        )
    segs = []
    widths = np.empty(len(seeds), dtype=np.float32)
    prepared: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for i, (strokes, seed) in enumerate(zip(glyph_strokes, seeds, strict=True)):
        key = id(strokes)
        if key not in prepared:
            points, s, e = _segments(strokes)
            prepared[key] = (_normalise(points, params.size, FIT), s, e)
        points, s, e = prepared[key]
        moved, widths[i] = _sample_transform(points, np.random.default_rng(int(seed)), params)
        segs.append((moved[s], moved[e]))
    if not segs:
        return np.zeros((0, params.size, params.size), dtype=np.uint8)
    ink = _rasterise_sorted(segs, widths, params.size)
    return np.rint(ink * 255).astype(np.uint8)
