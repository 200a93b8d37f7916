"""Helpers the dense builders share: the `tasks` option and conversion to DenseData tensors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import DENSE_TASKS, DenseData, DenseSplit


def check_tasks(tasks: Sequence[str] | None, available: Sequence[str], dataset: str) -> list[str]:
    """The chosen tasks in DENSE_TASKS order; unknown, unavailable or repeated names are refused."""
    names = list(available) if tasks is None else [str(t) for t in tasks]
    if not names:
        raise UserError(f"task.tasks: empty; allowed: a non-empty subset of {list(available)}")
    for name in names:
        if name not in available:
            why = f"{dataset} has no '{name}' targets" if name in DENSE_TASKS else "unknown task"
            raise UserError(
                f"task.tasks: invalid value '{name}' ({why}); allowed: {', '.join(available)}"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"task.tasks: {repeated} listed more than once; list each task once")
    return [t for t in DENSE_TASKS if t in names]


def dense_split(
    images: np.ndarray, targets: dict[str, np.ndarray], tasks: Sequence[str]
) -> DenseSplit:
    """Tensors of one split: images float [N,3,H,W] (uint8 is scaled by 1/255), the chosen tasks'
    targets as int64 labels [N,H,W], float32 depth [N,1,H,W] and float32 normals [N,3,H,W]."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
    out = {}
    for task in tasks:
        value = torch.from_numpy(np.ascontiguousarray(targets[task]))
        out[task] = value.long() if task == "segmentation" else value.float()
    return DenseSplit(x.contiguous(), out)


def folder_tasks(
    dataset,
    tasks: Sequence[str] | None,
    available: Sequence[str],
    image_size: Sequence[int] | None,
    val_fraction: float,
    split_seed: int,
    max_samples: int | None,
    data: dict,
) -> DenseData:
    """A preprocessed MTAN-layout dataset (mtl_cli/data/dense_folders.py) as DenseData.

    The official `val` folder is MTAN's test set, so it is our test split; our val split is a
    seeded `val_fraction` of the training samples. `max_samples` caps each split (its first
    samples in index order) for quick runs; `image_size` [H, W] down-samples."""
    from mtl_cli.data.dense_folders import find_folder, read_split, sample_indices

    chosen = check_tasks(tasks, available, f"dense/{dataset.name}")
    size = _check_size(image_size, dataset.size)
    if not 0.0 < float(val_fraction) <= 0.5:
        raise UserError(f"task.val_fraction: {val_fraction}; allowed: a fraction in (0, 0.5]")
    if max_samples is not None and int(max_samples) < 1:
        raise UserError(f"task.max_samples: {max_samples}; allowed: null or an integer >= 1")
    root = find_folder(dataset, data.get("root"), data.get("cache_dir"))
    train = sample_indices(root / "train")
    if len(train) < 2:
        raise UserError(f"{root / 'train' / 'image'}: {len(train)} sample; need >= 2 to carve val")
    order = np.random.default_rng(int(split_seed)).permutation(len(train))
    n_val = min(len(train) - 1, max(1, round(float(val_fraction) * len(train))))
    picks = {
        "train": sorted(train[i] for i in order[n_val:]),
        "val": sorted(train[i] for i in order[:n_val]),
        "test": sample_indices(root / "val"),
    }
    folders = {"train": "train", "val": "train", "test": "val"}
    splits = {}
    for split, indices in picks.items():
        if max_samples is not None:
            indices = indices[: int(max_samples)]
        arrays = read_split(root / folders[split], indices, chosen, dataset, size)
        splits[split] = DenseSplit(arrays["image"], {t: arrays[t] for t in chosen})
    height, width = size or dataset.size
    return DenseData(
        task_names=chosen,
        classes=dataset.classes,
        class_names=list(dataset.class_names),
        input_shape=(3, height, width),
        splits=splits,
        info={
            "dataset": dataset.name,
            "root": str(root),
            "sizes": {split: len(part) for split, part in splits.items()},
            "val_fraction": float(val_fraction),
            "split_seed": int(split_seed),
            "image_size": [height, width],
        },
    )


def _check_size(
    image_size: Sequence[int] | None, native: tuple[int, int]
) -> tuple[int, int] | None:
    if image_size is None:
        return None
    values = list(image_size) if isinstance(image_size, list | tuple) else [image_size]
    if (
        len(values) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        or not all(1 <= v <= n for v, n in zip(values, native, strict=True))
    ):
        raise UserError(
            f"task.image_size: {image_size}; allowed: null or [H, W] with 1 <= H <= {native[0]} "
            f"and 1 <= W <= {native[1]} (down-sampling only)"
        )
    return int(values[0]), int(values[1])
