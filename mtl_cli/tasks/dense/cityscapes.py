"""Cityscapes (Cordts et al. 2016) as preprocessed by MTAN: 7 classes and depth at 128 x 256."""

from __future__ import annotations

from collections.abc import Sequence

from mtl_cli.data.dense_folders import DenseFolder
from mtl_cli.families.task_data import DenseData
from mtl_cli.tasks.dense.common import folder_tasks

#: 2975 train / 500 test images; `label_7` holds the 7 Cityscapes categories (void = -1)
CITYSCAPES = DenseFolder(
    name="cityscapes",
    size=(128, 256),
    class_names=("flat", "construction", "object", "nature", "sky", "human", "vehicle"),
    folders={"segmentation": "label_7", "depth": "depth"},
    where="the preprocessed Cityscapes of MTAN (github.com/lorenmt/mtan, README: cityscapes.zip)",
)
TASKS = ("segmentation", "depth")


def cityscapes_tasks(
    tasks: Sequence[str],
    image_size: Sequence[int] | None,
    val_fraction: float,
    split_seed: int,
    max_samples: int | None,
    data: dict,
) -> DenseData:
    """Cityscapes (Cordts et al., CVPR 2016) in the MTAN layout (Liu, Johns & Davison, CVPR
    2019): segmentation into the 7 categories and depth (as MTAN stores it, 0 = invalid)."""
    return folder_tasks(
        CITYSCAPES, tasks, TASKS, image_size, val_fraction, split_seed, max_samples, data
    )
