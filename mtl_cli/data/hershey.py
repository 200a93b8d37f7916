"""Hershey vector glyphs shipped with the package: .jhf parser, alphabets, near-duplicate removal.

The fonts were drawn by A. V. Hershey (1967) at the U.S. National Bureau of Standards; the .jhf
format is James Hurt's. Alphabets group glyphs of one script and style the way Omniglot groups
characters (Lake, Salakhutdinov & Tenenbaum, 2015); see docs/data/hershey.md for the table.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtl_cli.data.render import render_normalised

FONT_DIR = Path(__file__).with_name("hershey")

# Index ranges inside the 96-glyph ASCII-ordered fonts (index = ASCII code - 32).
_UPPER = tuple(range(33, 59))  # A..Z
_LOWER = tuple(range(65, 91))  # a..z
_DIGITS = tuple(range(16, 26))  # 0..9
_GREEK_UPPER = tuple(range(33, 57))  # greeks/greekc: Alpha..Omega in Greek order
_GREEK_LOWER = tuple(range(65, 89))  # alpha..omega


def _ints(*parts: int | range) -> tuple[int, ...]:
    return tuple(i for p in parts for i in ((p,) if isinstance(p, int) else p))


# Alphabet -> ((font, glyph indices), ...). Fonts are listed in dedupe priority order: the first
# copy of a duplicated shape is kept. Hershey's designs come in weights: simplex (one stroke),
# duplex/complex (two), triplex (three). An alphabet holds one design in one weight, so that its
# characters differ in shape, not in pen width (which the renderer already varies). Not used:
# the heavier weights futuram/rowmand (duplex sans), rowmant/timesrb (triplex serif), timesib
# (triplex italic), scriptc (complex script); greek.jhf and timesg.jhf (the glyphs of greeks.jhf
# and greekc.jhf in a Latin-keyboard order plus a few math signs); ASCII punctuation; the
# line/arc fragments (1-31) and repeated markers (32-48) of symbolic.jhf; kana with (han)dakuten
# marks and the "." placeholders of japanese.jhf; the DEL placeholder (index 95) of every font.
_ALPHABET_SPEC: dict[str, tuple[tuple[str, tuple[int, ...]], ...]] = {
    "latin_sans_upper": (("futural", _UPPER), ("rowmans", _UPPER)),
    "latin_sans_lower": (("futural", _LOWER), ("rowmans", _LOWER)),
    "latin_serif_upper": (("timesr", _UPPER),),
    "latin_serif_lower": (("timesr", _LOWER),),
    "latin_italic_upper": (("timesi", _UPPER),),
    "latin_italic_lower": (("timesi", _LOWER),),
    "latin_script_upper": (("scripts", _UPPER), ("cursive", _UPPER)),
    "latin_script_lower": (("scripts", _LOWER), ("cursive", _LOWER)),
    "gothic_english_upper": (("gothiceng", _UPPER), ("gothgbt", _UPPER)),
    "gothic_english_lower": (("gothiceng", _LOWER), ("gothgbt", _LOWER)),
    "gothic_german_upper": (("gothicger", _UPPER), ("gothgrt", _UPPER)),
    "gothic_german_lower": (("gothicger", _LOWER), ("gothgrt", _LOWER)),
    "gothic_italian_upper": (("gothicita", _UPPER), ("gothitt", _UPPER)),
    "gothic_italian_lower": (("gothicita", _LOWER), ("gothitt", _LOWER)),
    "digits": tuple(
        (font, _DIGITS)
        for font in ("futural", "rowmans", "timesr", "timesi", "scripts", "cursive")
        + ("gothiceng", "gothicger", "gothicita")
    ),
    "greek_sans_upper": (("greeks", _GREEK_UPPER),),
    "greek_sans_lower": (("greeks", _GREEK_LOWER),),
    "greek_serif_upper": (("greekc", _GREEK_UPPER),),
    "greek_serif_lower": (("greekc", _GREEK_LOWER),),
    "cyrillic_upper": (("cyrilc_1", _UPPER), ("cyrillic", _ints(4, range(33, 60), range(61, 65)))),
    "cyrillic_lower": (("cyrilc_1", _LOWER), ("cyrillic", _ints(5, 6, range(65, 95)))),
    "japanese_kanji": (("japanese", _ints(range(2, 27))),),
    "japanese_hiragana": (("japanese", _ints(range(33, 84))),),
    "japanese_katakana": (("japanese", _ints(range(112, 164))),),
    "astrology": (("astrology", _ints(1, range(3, 8), range(10, 14), 15, range(26, 32))),),
    "astrology_zodiac": (("astrology", _ints(32, 59, range(61, 65), range(91, 95))),),
    "markers": (("markers", _ints(range(33, 49))),),
    "math": (("mathlow", _ints(range(1, 8), 26, 27, 31, 32, 62, 63, range(65, 95))),),
    "meteorology": (("meteorology", _ints(range(1, 13), range(26, 31), 62, 63, 64, 92, 94)),),
    "music": (("music", _ints(range(1, 16), range(27, 32), 32, 61, 63)),),
    "symbolic": (("symbolic", _ints(range(49, 95))),),
}

ALPHABETS: tuple[str, ...] = tuple(sorted(_ALPHABET_SPEC))
ALPHABET_FONTS: dict[str, tuple[str, ...]] = {
    name: tuple(dict.fromkeys(font for font, _ in _ALPHABET_SPEC[name])) for name in ALPHABETS
}

# Near-duplicate test (see `duplicate_mask`): two glyphs whose box-normalised 16x16 rasters have a
# soft IoU at or above this value are the same character.
DEDUPE_SIZE = 16
DEDUPE_IOU = 0.95


@dataclass(frozen=True, eq=False)
class Glyph:
    """One character shape: strokes in font units (x right, y down), from one font file.

    Compared and hashed by identity (its strokes are arrays)."""

    alphabet: str
    font: str
    index: int
    strokes: tuple[np.ndarray, ...]

    @property
    def name(self) -> str:
        """Stable character name, e.g. "greek_upper/greekc#12"."""
        return f"{self.alphabet}/{self.font}#{self.index}"


def parse_jhf(text: str, font: str) -> list[tuple[int, tuple[np.ndarray, ...]]]:
    """Parse James Hurt's .jhf format into (0-based record index, strokes) pairs.

    Record: cols 0-4 glyph id, cols 5-7 vertex-pair count (margin pair included), then the
    pairs; coordinate = ord(char) - ord("R"); pair " R" lifts the pen. A record longer than its
    line continues on the next lines. Glyphs without ink get an empty tuple of strokes.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    records: list[tuple[int, tuple[np.ndarray, ...]]] = []
    row = 0
    while row < len(lines):
        line = lines[row]
        row += 1
        if not line.strip():
            continue
        first_row = row
        try:
            pairs = int(line[5:8])
        except ValueError:
            raise ValueError(
                f"{font}: line {first_row}: columns 6-8 must hold the vertex count, got "
                f"{line[5:8]!r}"
            ) from None
        body = line[8:]
        while len(body) < 2 * pairs and row < len(lines):
            body += lines[row]
            row += 1
        if len(body) < 2 * pairs or pairs < 1:
            raise ValueError(
                f"{font}: line {first_row}: record announces {pairs} vertex pairs but holds "
                f"{len(body) // 2}; allowed: a count >= 1 matching the record"
            )
        records.append((len(records), _strokes_from_pairs(body[2 : 2 * pairs])))
    return records


def _strokes_from_pairs(pairs: str) -> tuple[np.ndarray, ...]:
    codes = np.frombuffer(pairs.encode("latin-1"), dtype=np.uint8).reshape(-1, 2)
    pen_up = (codes[:, 0] == ord(" ")) & (codes[:, 1] == ord("R"))
    points = codes.astype(np.float32) - ord("R")
    # Split at pen-up markers; each run of points between them is one stroke.
    starts = np.flatnonzero(np.diff(np.concatenate([[1], pen_up.astype(np.int8)])) == -1)
    ends = np.flatnonzero(np.diff(np.concatenate([pen_up.astype(np.int8), [1]])) == 1) + 1
    return tuple(points[s:e].copy() for s, e in zip(starts, ends, strict=True))


@functools.cache
def _font(font: str) -> tuple[tuple[np.ndarray, ...], ...]:
    path = FONT_DIR / f"{font}.jhf"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Hershey font file missing from the package")
    return tuple(strokes for _, strokes in parse_jhf(path.read_text(encoding="latin-1"), font))


def glyph_raster(glyph_strokes: Sequence[tuple[np.ndarray, ...]], size: int) -> np.ndarray:
    """Box-normalised float32 rasters [N, size, size] in [0, 1], no jitter (dedupe, attributes)."""
    return render_normalised(glyph_strokes, size=size, fit=0.85, width=1.5 * size / 16)


def duplicate_mask(
    glyph_strokes: Sequence[tuple[np.ndarray, ...]], threshold: float = DEDUPE_IOU
) -> np.ndarray:
    """Bool [N]: True where glyph i is a near-duplicate of an earlier glyph j < i.

    Each glyph is scaled to fill a 16x16 raster (aspect kept, centred) and drawn with a
    1.5-pixel pen; glyphs i, j are duplicates when soft IoU = sum(min) / sum(max) >= threshold.
    """
    if len(glyph_strokes) == 0:
        return np.zeros(0, dtype=bool)
    flat = glyph_raster(glyph_strokes, DEDUPE_SIZE).reshape(len(glyph_strokes), -1)
    iou = soft_iou(flat, flat)
    earlier = np.tril(iou >= threshold, k=-1)
    # Greedy in order: a glyph is dropped only if it matches an earlier glyph that is itself kept.
    dropped = np.zeros(len(glyph_strokes), dtype=bool)
    for i in np.flatnonzero(earlier.any(axis=1)):
        dropped[i] = bool((earlier[i, :i] & ~dropped[:i]).any())
    return dropped


def soft_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise soft IoU sum(min)/sum(max) between rows of a [N, P] and b [M, P] -> [N, M]."""
    a = a[:, None, :]
    b = b[None, :, :]
    inter = np.minimum(a, b).sum(-1)
    union = np.maximum(a, b).sum(-1)
    return inter / np.maximum(union, 1e-12)


@functools.cache
def _alphabet(name: str) -> tuple[tuple[Glyph, ...], int, int]:
    """(kept glyphs, duplicates dropped, no-ink glyphs dropped) for one alphabet."""
    candidates = [
        Glyph(name, font, index, _font(font)[index])
        for font, indices in _ALPHABET_SPEC[name]
        for index in indices
    ]
    inked = [g for g in candidates if g.strokes]
    dropped = duplicate_mask([g.strokes for g in inked])
    kept = tuple(g for g, d in zip(inked, dropped, strict=True) if not d)
    return kept, int(dropped.sum()), len(candidates) - len(inked)


def alphabet_stats(name: str) -> dict[str, int]:
    """Counts for the docs: characters kept, duplicates dropped, glyphs without ink dropped."""
    _check_names([name])
    kept, duplicates, no_ink = _alphabet(name)
    return {"characters": len(kept), "duplicates": duplicates, "no_ink": no_ink}


def _check_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in _ALPHABET_SPEC]
    if unknown:
        raise ValueError(
            f"alphabets: unknown alphabet {unknown[0]!r}; allowed: {', '.join(ALPHABETS)}"
        )


def load_alphabets(names: Sequence[str] | None = None) -> dict[str, list[Glyph]]:
    """Characters of the named alphabets (all when None), deduplicated, in a fixed order.

    Order: alphabets as given (sorted when None); within one, fonts in `ALPHABET_FONTS` order and
    glyph index ascending. Parsed glyphs are cached in memory.
    """
    if isinstance(names, str):
        names = [names]
    names = list(ALPHABETS if names is None else names)
    _check_names(names)
    if len(set(names)) != len(names):
        raise ValueError(f"alphabets: duplicate names in {names}; allowed: each name once")
    return {name: list(_alphabet(name)[0]) for name in names}
