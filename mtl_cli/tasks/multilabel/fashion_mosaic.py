"""Fashion-MNIST multi-label: mosaics of items, one label per class present."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MultiLabelData, TaskSplit
from mtl_cli.tasks.common import label_options
from mtl_cli.tasks.fashion_common import VAL_POOL, _constructed, _image_tensor


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
