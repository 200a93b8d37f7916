"""Fashion-MNIST tasks: MultiFashion (multi-task), mosaics (multi-label), class splits (meta).

Validation sets are built from a held-out part of Fashion-MNIST's training images (the last
10,000), so train, val and test items never share a source image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from mtl_cli.errors import UserError
from mtl_cli.families.data import MetaData, MultiLabelData, MultiTaskData, TaskSplit
from mtl_cli.tasks.common import label_options, meta_samplers

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


def multifashion_tasks(
    train_size: int,
    val_size: int,
    test_size: int,
    image_size: int,
    max_shift: int,
    data_seed: int,
    data: dict,
) -> MultiTaskData:
    """MultiFashion (Lin et al. 2019): task "left" = class of the top-left item, "right" = bottom-right."""
    from mtl_cli.data.multifashion import make_multifashion

    sizes = {"train": int(train_size), "val": int(val_size), "test": int(test_size)}
    key = {"construction": "mtl-multifashion-v1", "sizes": sizes, "seed": int(data_seed),
           "out_size": int(image_size), "max_shift": int(max_shift), "val_pool": VAL_POOL}  # fmt: skip
    seeds = {"train": int(data_seed), "val": int(data_seed) + 1, "test": int(data_seed) + 2}

    def make(images, labels, split):
        return make_multifashion(
            images,
            labels,
            sizes[split],
            seeds[split],
            out_size=int(image_size),
            max_shift=int(max_shift),
        )

    built = _constructed("multifashion", key, data, make)
    splits = {
        split: [
            TaskSplit(_image_tensor(arrays["x"]), torch.from_numpy(arrays["y_left"])),
            TaskSplit(_image_tensor(arrays["x"]), torch.from_numpy(arrays["y_right"])),
        ]
        for split, arrays in built.items()
    }
    return MultiTaskData(
        task_names=["left", "right"],
        outputs=[10, 10],
        input_shape=(1, int(image_size), int(image_size)),
        splits=splits,
    )


def fashion_mosaic_tasks(
    grid: int,
    items: Sequence[int],
    image_size: int,
    train_size: int,
    val_size: int,
    test_size: int,
    pos_weight,
    threshold,
    data_seed: int,
    data: dict,
) -> MultiLabelData:
    """A grid x grid mosaic of items; label c = Fashion-MNIST class c appears (10 labels)."""
    from mtl_cli.data.fashion_mnist import CLASSES
    from mtl_cli.data.fashion_mosaic import make_mosaic

    low_high = [int(v) for v in items]
    if len(low_high) != 2 or not 1 <= low_high[0] <= low_high[1] <= int(grid) ** 2:
        raise UserError(
            f"task.items: expected [min, max] with 1 <= min <= max <= grid^2, got {list(items)}"
        )
    sizes = {"train": int(train_size), "val": int(val_size), "test": int(test_size)}
    key = {"construction": "mtl-mosaic-v1", "sizes": sizes, "seed": int(data_seed), "grid": int(grid),
           "items": low_high, "out_size": int(image_size), "val_pool": VAL_POOL}  # fmt: skip
    seeds = {"train": int(data_seed), "val": int(data_seed) + 1, "test": int(data_seed) + 2}

    def make(images, labels, split):
        return make_mosaic(images, labels, sizes[split], seeds[split], grid=int(grid),
                           items=tuple(low_high), out_size=int(image_size))  # fmt: skip

    built = _constructed("fashion_mosaic", key, data, make)
    splits = {
        split: TaskSplit(_image_tensor(arrays["x"]), torch.from_numpy(arrays["y"]).float())
        for split, arrays in built.items()
    }
    names = [c.lower().replace("/", "_").replace(" ", "_").replace("-", "_") for c in CLASSES]
    return MultiLabelData(
        task_names=names,
        input_shape=(1, int(image_size), int(image_size)),
        splits=splits,
        info=label_options(pos_weight, threshold),
    )


def fashion_meta_classes(
    kind: str,
    ways: int,
    shots: int,
    queries: int,
    rotations: bool,
    meta_batch_size: int,
    eval_episodes: int,
    eval_seed: int,
    train_classes: Sequence[int],
    val_classes: Sequence[int],
    test_classes: Sequence[int],
    data: dict,
) -> MetaData:
    """Few-shot episodes over Fashion-MNIST with disjoint class sets (all 70,000 images pooled)."""
    fashion = _fashion(data)
    classes = {"train": list(train_classes), "val": list(val_classes), "test": list(test_classes)}
    chosen = [c for cs in classes.values() for c in cs]
    if len(set(chosen)) != len(chosen) or not all(0 <= c <= 9 for c in chosen):
        raise UserError(f"task.*_classes: need disjoint class ids in 0..9, got {classes}")
    images = np.concatenate([fashion["train_images"], fashion["test_images"]])
    labels = np.concatenate([fashion["train_labels"], fashion["test_labels"]])
    per_class = min(int((labels == c).sum()) for c in chosen)
    by_class = np.stack([images[labels == c][:per_class] for c in range(10)])  # [10, D, 28, 28]
    tensor = torch.from_numpy(by_class).unsqueeze(2)
    samplers = meta_samplers(
        tensor, {k: np.array(v) for k, v in classes.items()}, ways, shots, queries, rotations
    )
    return MetaData(
        kind="classification",
        input_shape=(1, 28, 28),
        ways=int(ways),
        samplers=samplers,
        meta_batch_size=int(meta_batch_size),
        eval_episodes=int(eval_episodes),
        eval_seed=int(eval_seed),
        info={"splits": classes},
    )
