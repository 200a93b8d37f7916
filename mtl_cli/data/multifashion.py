"""MultiFashion: two Fashion-MNIST items per image, one top-left, one bottom-right
(Lin et al., 2019, Pareto MTL; after the MultiMNIST of Sabour, Frosst & Hinton, 2017)."""

from __future__ import annotations

import numpy as np

from mtl_cli.data.fashion_mnist import load_fashion_mnist

# Paper sizes (Lin et al., 2019): 120k training and 20k test images.
PAPER_SIZES: dict[str, int] = {"train": 120_000, "test": 20_000}

_CHUNK = 8192  # images resampled per step; bounds float32 memory, does not change the result


def area_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Exact area-averaging weights R [out_size, in_size]: output pixel i is the overlap-weighted
    mean of the input pixels its footprint [i*s, (i+1)*s), s = in/out, covers (rows sum to 1)."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"area_matrix: sizes must be >= 1; got in={in_size}, out={out_size}")
    edges = np.arange(out_size + 1, dtype=np.float64) * (in_size / out_size)
    lo, hi = edges[:-1, None], edges[1:, None]
    pix = np.arange(in_size, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def area_resize(images: np.ndarray, out_size: int) -> np.ndarray:
    """Resize uint8 [n, H, W] to uint8 [n, out_size, out_size] by exact area averaging (the
    box filter of Pillow's Image.BOX and OpenCV's INTER_AREA), rounded half to even."""
    if images.ndim != 3:
        raise ValueError(f"images: expected [n, H, W]; got shape {images.shape}")
    n, h, w = images.shape
    if (h, w) == (out_size, out_size):
        return images.copy()
    rows = area_matrix(h, out_size).astype(np.float32)
    cols = area_matrix(w, out_size).astype(np.float32)
    out = np.empty((n, out_size, out_size), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        block = images[start : start + _CHUNK].astype(np.float32)
        resized = rows @ (block @ cols.T)  # [out, h] @ [n, h, out] broadcasts over n
        out[start : start + _CHUNK] = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
    return out


def check_pool(images: np.ndarray, labels: np.ndarray) -> None:
    """Validate an item pool: uint8 images [N, h, w], int labels [N], at least two classes."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images: expected uint8 [N, h, w]; got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels: expected shape ({len(images)},); got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: expected an integer dtype; got {labels.dtype}")
    if len(np.unique(labels)) < 2:
        raise ValueError("labels: the pool needs items of at least two classes")


def sample_pairs_of_different_classes(
    labels: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (first, second) into `labels`, each pair of different classes: `first` uniform
    over the pool, `second` uniform over the items whose class differs (with replacement)."""
    first = rng.integers(0, len(labels), size=n)
    second = rng.integers(0, len(labels), size=n)
    clash = labels[first] == labels[second]
    while clash.any():  # rejection rounds: each redraws only the clashing pairs
        second[clash] = rng.integers(0, len(labels), size=int(clash.sum()))
        clash = labels[first] == labels[second]
    return first, second


def make_multifashion(
    images: np.ndarray,
    labels: np.ndarray,
    n: int,
    seed: int,
    size: int = 36,
    out_size: int = 28,
    max_shift: int = 4,
) -> dict[str, np.ndarray]:
    """Build n MultiFashion images (Lin et al., 2019): x uint8 [n, out_size, out_size],
    y_left / y_right int64 [n] (class of the top-left / bottom-right item).

    Two items of different classes go on a size x size black canvas: one at the top-left corner
    moved inwards by (dy, dx), one at the bottom-right corner moved inwards by (dy', dx'), each
    shift a uniform integer in [0, max_shift] per axis; overlaps merge by pixel-wise max; the
    canvas is area-resampled to out_size (see `area_resize`).
    """
    check_pool(images, labels)
    if n < 1:
        raise ValueError(f"n: must be >= 1; got {n}")
    if max_shift < 0:
        raise ValueError(f"max_shift: must be >= 0; got {max_shift}")
    h, w = images.shape[1:]
    if size < max(h, w) + max_shift:
        raise ValueError(
            f"size: {size} cannot hold a {h}x{w} item shifted by up to {max_shift}; "
            f"allowed: size >= {max(h, w) + max_shift}"
        )
    if out_size < 1:
        raise ValueError(f"out_size: must be >= 1; got {out_size}")
    rng = np.random.default_rng(seed)
    left, right = sample_pairs_of_different_classes(labels, n, rng)
    shift_left = rng.integers(0, max_shift + 1, size=(n, 2))
    shift_right = rng.integers(0, max_shift + 1, size=(n, 2))
    top_left = shift_left
    bottom_right = np.array([size - h, size - w]) - shift_right

    x = np.empty((n, out_size, out_size), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        canvas = np.zeros((stop - start, size, size), dtype=np.uint8)
        for index, corner in ((left, top_left), (right, bottom_right)):
            offsets = corner[start:stop]
            # One slice assignment per distinct offset (at most (max_shift + 1)^2 of them).
            for dy, dx in np.unique(offsets, axis=0):
                sel = np.flatnonzero((offsets[:, 0] == dy) & (offsets[:, 1] == dx))
                window = (sel, slice(dy, dy + h), slice(dx, dx + w))
                canvas[window] = np.maximum(canvas[window], images[index[start + sel]])
        x[start:stop] = area_resize(canvas, out_size)
    return {
        "x": x,
        "y_left": labels[left].astype(np.int64),
        "y_right": labels[right].astype(np.int64),
    }


def multifashion(
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    root: str | None = None,
    download: bool = False,
    cache_dir: str | None = None,
    out_size: int = 28,
) -> dict[str, np.ndarray]:
    """MultiFashion for one split, cached on disk: the train split draws its items from
    Fashion-MNIST's training images, the test split from its test images.

    `n` defaults to the paper's size (120000 train, 20000 test); items are sampled with
    replacement, so any n works. Same (split, n, seed, out_size) -> same arrays.
    """
    if split not in PAPER_SIZES:
        raise ValueError(f"split: unknown split {split!r}; allowed: {', '.join(PAPER_SIZES)}")
    count = PAPER_SIZES[split] if n is None else int(n)
    if count < 1:
        raise ValueError(f"n: must be >= 1; got {count}")
    key = {
        "construction": "multifashion-v1",
        "split": split,
        "n": count,
        "seed": int(seed),
        "size": 36,
        "out_size": int(out_size),
        "max_shift": 4,
    }

    def build() -> dict[str, np.ndarray]:
        data = load_fashion_mnist(root=root, download=download)
        return make_multifashion(
            data[f"{split}_images"], data[f"{split}_labels"], count, seed, out_size=out_size
        )

    from mtl_cli.data.cache import cached_arrays  # imported late: the builders above need no cache

    return cached_arrays("multifashion", key, build, directory=cache_dir)
