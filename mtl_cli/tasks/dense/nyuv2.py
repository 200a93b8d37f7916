"""NYUv2 (Silberman et al. 2012) as preprocessed by MTAN: 13 classes, depth, surface normals."""

from __future__ import annotations

from collections.abc import Sequence

from mtl_cli.data.dense_folders import DenseFolder
from mtl_cli.families.task_data import DENSE_TASKS, DenseData
from mtl_cli.tasks.dense.common import folder_tasks

#: 795 train / 654 test images at 288 x 384, the 13-class labelling of Couprie et al. (2013),
#: class ids in alphabetical order as in MTAN's files
NYUV2 = DenseFolder(
    name="nyuv2",
    size=(288, 384),
    class_names=(
        "bed",
        "books",
        "ceiling",
        "chair",
        "floor",
        "furniture",
        "objects",
        "painting",
        "sofa",
        "table",
        "tv",
        "wall",
        "window",
    ),  # fmt: skip
    folders={"segmentation": "label", "depth": "depth", "normals": "normal"},
    where="the preprocessed NYUv2 of MTAN (github.com/lorenmt/mtan, README: nyuv2.zip)",
)


def nyuv2_tasks(
    tasks: Sequence[str],
    image_size: Sequence[int] | None,
    val_fraction: float,
    split_seed: int,
    max_samples: int | None,
    data: dict,
) -> DenseData:
    """NYUv2 (Silberman, Hoiem, Kohli & Fergus, ECCV 2012) in the MTAN layout (Liu, Johns &
    Davison, CVPR 2019): segmentation (13 classes), depth (metres, 0 = invalid), normals."""
    return folder_tasks(
        NYUV2, tasks, DENSE_TASKS, image_size, val_fraction, split_seed, max_samples, data
    )
