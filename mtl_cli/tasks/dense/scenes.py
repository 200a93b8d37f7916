"""Procedural indoor scenes (no download): segmentation, depth and normals with exact targets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import DENSE_TASKS, DenseData
from mtl_cli.tasks.common import check_sizes
from mtl_cli.tasks.dense.common import check_tasks, dense_split


def scene_tasks(
    tasks: Sequence[str],
    image_size: int,
    train_size: int,
    val_size: int,
    test_size: int,
    objects: Sequence[int],
    noise: float,
    data_seed: int,
    data: dict,
) -> DenseData:
    """Ray-cast rooms with spheres, boxes, cylinders and cones (mtl_cli/data/scenes.py; CLEVR-like
    scenes, Johnson et al. 2017): per-pixel class, z-depth and camera-space normals."""
    from mtl_cli.data.scenes import CLASS_NAMES, RENDERER_VERSION, SceneParams, cached_scenes

    chosen = check_tasks(tasks, DENSE_TASKS, "dense/scenes")
    check_sizes(train_size=train_size, val_size=val_size, test_size=test_size)
    bounds = [int(v) for v in objects]
    if len(bounds) != 2 or not 1 <= bounds[0] <= bounds[1] <= 12:
        raise UserError(
            f"task.objects: expected [min, max] with 1 <= min <= max <= 12, got {list(objects)}"
        )
    if not 16 <= int(image_size) <= 256:
        raise UserError(f"task.image_size: {image_size}; allowed: an integer in 16..256")
    if not 0.0 <= float(noise) <= 0.5:
        raise UserError(f"task.noise: {noise}; allowed: a standard deviation in [0, 0.5]")
    params = SceneParams(image_size=int(image_size), objects=tuple(bounds), noise=float(noise))
    sizes = {"train": int(train_size), "val": int(val_size), "test": int(test_size)}
    splits = {}
    for split, count in sizes.items():
        arrays = cached_scenes(split, count, params, int(data_seed), data.get("cache_dir"))
        normals = arrays["normals"].astype(np.float32)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)  # the cache stores float16
        targets = {"segmentation": arrays["classes"], "depth": arrays["depth"], "normals": normals}
        splits[split] = dense_split(arrays["rgb"], targets, chosen)
    return DenseData(
        task_names=chosen,
        classes=len(CLASS_NAMES),
        class_names=list(CLASS_NAMES),
        input_shape=(3, int(image_size), int(image_size)),
        splits=splits,
        info={
            "dataset": "scenes",
            "renderer_version": RENDERER_VERSION,
            "sizes": sizes,
            "data_seed": int(data_seed),
            "objects": bounds,
            "noise": float(noise),
        },
    )
