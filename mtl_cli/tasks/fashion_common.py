"""Helpers the Fashion-MNIST builders share: loading, split pools and the construction cache.

Validation sets are built from a held-out part of Fashion-MNIST's training images (the last
10,000), so train, val and test items never share a source image. The builders are
tasks/multitask/multifashion.py, tasks/multilabel/fashion_mosaic.py and tasks/meta/fashion.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mtl_cli.errors import UserError

VAL_POOL = 10000  # the last VAL_POOL training images are the validation pool


def _fashion(data: dict) -> dict[str, np.ndarray]:
    from mtl_cli.data.fashion_mnist import load_fashion_mnist

    try:
        return load_fashion_mnist(root=data.get("root"), download=bool(data.get("download")))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None


def _pools(fashion: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    images, labels = fashion["train_images"], fashion["train_labels"]
    cut = len(images) - min(VAL_POOL, len(images) // 6)
    return {
        "train": (images[:cut], labels[:cut]),
        "val": (images[cut:], labels[cut:]),
        "test": (fashion["test_images"], fashion["test_labels"]),
    }


def _constructed(
    name: str, key: dict, data: dict, make: Callable[[np.ndarray, np.ndarray, str], dict]
) -> dict[str, dict[str, np.ndarray]]:
    """Build (or load from the cache) one construction per split from its own item pool."""
    import hashlib

    from mtl_cli.data.cache import cached_arrays

    fashion = _fashion(
        data
    )  # ~0.4 s; its fingerprint keys the cache (real and other copies differ)
    digest = hashlib.sha256()
    for array in fashion.values():
        digest.update(np.ascontiguousarray(array).tobytes())
    source = {"source": digest.hexdigest()[:16]}
    pools = _pools(fashion)
    out = {}
    for split in ("train", "val", "test"):

        def build(split=split):
            images, labels = pools[split]
            return make(images, labels, split)

        out[split] = cached_arrays(
            name, {**key, **source, "split": split}, build, directory=data.get("cache_dir")
        )
    return out


def _image_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).float().div_(255.0).unsqueeze(1)
