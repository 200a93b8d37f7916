"""Rendered Hershey characters as an Omniglot-like array: character x drawer images, disk-cached.

Mirrors Omniglot (Lake, Salakhutdinov & Tenenbaum, 2015): every character is drawn by `drawers`
"people" (here: seeded random distortions); drawers are split into train/val/test.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mtl_cli.data.cache import cached_arrays
from mtl_cli.data.hershey import ALPHABETS, DEDUPE_IOU, load_alphabets
from mtl_cli.data.render import RenderParams, render

FORMAT_VERSION = 1  # bump when rendering changes, so cached images are rebuilt
SPLITS = ("train", "val", "test")


@dataclass
class HersheyImages:
    """Images [C, D, H, W] uint8 (character x drawer), alphabet index per character, names."""

    images: np.ndarray
    alphabet: np.ndarray
    alphabet_names: list[str]
    char_names: list[str]


def drawer_split(split: str, drawers: int) -> np.ndarray:
    """Drawer indices of a split: 70/15/15 % in order, >= 1 each (20 -> 0-13 / 14-16 / 17-19)."""
    if split not in SPLITS:
        raise ValueError(f"split: got {split!r}; allowed: {', '.join(SPLITS)}")
    if drawers < 3:
        raise ValueError(f"drawers: got {drawers}; allowed: an integer >= 3")
    n_val = max(1, round(0.15 * drawers))
    n_test = max(1, round(0.15 * drawers))
    n_train = drawers - n_val - n_test
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val)}
    lo, hi = bounds.get(split, (n_train + n_val, drawers))
    return np.arange(lo, hi, dtype=np.int64)


DRAWER_SPLITS = {split: tuple(drawer_split(split, 20).tolist()) for split in SPLITS}


def sample_seed(seed: int, alphabet: str, font: str, index: int, drawer: int) -> int:
    """Stable 63-bit seed from (seed, alphabet, font, glyph index, drawer) via sha256."""
    text = f"{seed}/{alphabet}/{font}/{index}/{drawer}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def hershey_images(
    alphabets: Sequence[str] | None,
    params: RenderParams,
    seed: int,
    cache_dir: str | None = None,
) -> HersheyImages:
    """Render (or load from the disk cache) every character of `alphabets` by every drawer."""
    names = list(ALPHABETS if alphabets is None else alphabets)
    glyphs_by_alphabet = load_alphabets(names)
    glyphs = [g for name in names for g in glyphs_by_alphabet[name]]
    alphabet = np.array(
        [i for i, name in enumerate(names) for _ in glyphs_by_alphabet[name]], dtype=np.int64
    )
    char_names = [g.name for g in glyphs]
    key = {
        "format": FORMAT_VERSION,
        "render": dataclasses.asdict(params),
        "alphabets": names,
        "seed": int(seed),
        "dedupe_iou": DEDUPE_IOU,
        "characters": hashlib.sha256("\n".join(char_names).encode()).hexdigest(),
    }

    def build() -> dict[str, np.ndarray]:
        seeds = np.array(
            [
                sample_seed(seed, g.alphabet, g.font, g.index, d)
                for g in glyphs
                for d in range(params.drawers)
            ],
            dtype=np.uint64,
        )
        strokes = [g.strokes for g in glyphs for _ in range(params.drawers)]
        images = render(strokes, seeds, params)
        return {"images": images.reshape(len(glyphs), params.drawers, params.size, params.size)}

    arrays = cached_arrays("hershey_images", key, build, cache_dir)
    return HersheyImages(arrays["images"], alphabet, names, char_names)
