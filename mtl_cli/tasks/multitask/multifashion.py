"""Fashion-MNIST multi-task: MultiFashion, two overlapping items, one task per item."""

from __future__ import annotations

import torch

from mtl_cli.families.task_data import MultiTaskData, TaskSplit
from mtl_cli.tasks.fashion_common import VAL_POOL, _constructed, _image_tensor


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
