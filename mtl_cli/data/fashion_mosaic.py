"""Fashion mosaic for multi-label learning: a grid of Fashion-MNIST cells, some empty; label c is
on when an item of class c appears (a multi-label take on the MultiMNIST idea of Sabour et al.,
2017, in the style of Lin et al., 2019's MultiFashion)."""

from __future__ import annotations

import numpy as np

from mtl_cli.data.fashion_mnist import CLASSES, load_fashion_mnist
from mtl_cli.data.multifashion import area_resize, check_pool

DEFAULT_SIZES: dict[str, int] = {"train": 60_000, "test": 10_000}

_CHUNK = 8192  # mosaics composed per step; bounds memory, does not change the result


def make_mosaic(
    images: np.ndarray,
    labels: np.ndarray,
    n: int,
    seed: int,
    grid: int = 2,
    items: tuple[int, int] = (1, 4),
    out_size: int | None = 28,
    num_classes: int = len(CLASSES),
) -> dict[str, np.ndarray]:
    """Build n mosaics: x uint8 [n, S, S], y bool [n, num_classes].

    Each mosaic is a grid x grid array of item-sized cells. k ~ uniform integer in
    [items[0], items[1]] cells, chosen uniformly without replacement, each receive an item drawn
    uniformly from the pool (with replacement, so a class may appear twice); the other cells stay
    black. y[c] is True when some item of class c is present. S = out_size after area resampling,
    or grid * item size when out_size is None.
    """
    check_pool(images, labels)
    if n < 1:
        raise ValueError(f"n: must be >= 1; got {n}")
    if grid < 1:
        raise ValueError(f"grid: must be >= 1; got {grid}")
    cells = grid * grid
    low, high = (int(v) for v in items)
    if not 0 <= low <= high <= cells:
        raise ValueError(
            f"items: range ({low}, {high}) invalid for a {grid}x{grid} grid; "
            f"allowed: 0 <= min <= max <= {cells}"
        )
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(
            f"labels: values in [{int(labels.min())}, {int(labels.max())}]; "
            f"allowed: 0..{num_classes - 1}"
        )
    if out_size is not None and out_size < 1:
        raise ValueError(f"out_size: must be >= 1 or None; got {out_size}")
    rng = np.random.default_rng(seed)
    count = rng.integers(low, high + 1, size=n)
    rank = np.argsort(rng.random((n, cells)), axis=1)  # a uniform random permutation per row
    filled = rank < count[:, None]  # [n, cells]
    item = rng.integers(0, len(labels), size=(n, cells))

    classes = labels[item]  # [n, cells]
    y = ((classes[..., None] == np.arange(num_classes)) & filled[..., None]).any(axis=1)

    h, w = images.shape[1:]
    side = out_size if out_size is not None else grid * h
    if out_size is None and h != w:
        raise ValueError(f"images: out_size=None needs square items; got {h}x{w}")
    x = np.empty((n, side, side), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        tiles = images[item[start:stop]] * filled[start:stop, :, None, None].astype(np.uint8)
        mosaic = (
            tiles.reshape(stop - start, grid, grid, h, w)
            .transpose(0, 1, 3, 2, 4)
            .reshape(stop - start, grid * h, grid * w)
        )
        x[start:stop] = mosaic if out_size is None else area_resize(mosaic, out_size)
    return {"x": x, "y": y}


def fashion_mosaic(
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    root: str | None = None,
    download: bool = False,
    cache_dir: str | None = None,
    grid: int = 2,
    items: tuple[int, int] = (1, 4),
    out_size: int | None = 28,
) -> dict[str, np.ndarray]:
    """Fashion mosaics for one split, cached on disk; items come from Fashion-MNIST's train
    (split='train') or test images. `n` defaults to 60000 train / 10000 test."""
    if split not in DEFAULT_SIZES:
        raise ValueError(f"split: unknown split {split!r}; allowed: {', '.join(DEFAULT_SIZES)}")
    count = DEFAULT_SIZES[split] if n is None else int(n)
    items = (int(items[0]), int(items[1]))
    key = {
        "construction": "fashion-mosaic-v1",
        "split": split,
        "n": count,
        "seed": int(seed),
        "grid": int(grid),
        "items": list(items),
        "out_size": out_size,
    }

    def build() -> dict[str, np.ndarray]:
        data = load_fashion_mnist(root=root, download=download)
        return make_mosaic(
            data[f"{split}_images"],
            data[f"{split}_labels"],
            count,
            seed,
            grid=grid,
            items=items,
            out_size=out_size,
        )

    from mtl_cli.data.cache import cached_arrays  # imported late: the builders above need no cache

    return cached_arrays("fashion_mosaic", key, build, directory=cache_dir)
