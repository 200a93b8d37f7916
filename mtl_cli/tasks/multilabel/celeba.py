"""CelebA attributes as multi-label tasks (Liu et al. 2015): one binary label per attribute."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence

import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MultiLabelData, TaskSplit
from mtl_cli.tasks.common import SPLITS, label_options


def celeba_attribute_tasks(
    attributes: Sequence[str],
    image_size: int,
    center_crop: bool,
    max_samples,
    pos_weight,
    threshold,
    data: dict,
) -> MultiLabelData:
    """The official partition (162,770 / 19,867 / 19,962 images); `attributes` picks labels
    (empty = all 40, in the file's order); images RGB in [0, 1], image_size x image_size."""
    from mtl_cli.data.celeba import load_celeba

    if max_samples is not None and (isinstance(max_samples, bool) or int(max_samples) < 1):
        raise UserError(f"task.max_samples: {max_samples}; allowed: null or a positive integer")
    options = label_options(pos_weight, threshold)
    try:
        arrays = load_celeba(
            data.get("root"), int(image_size), bool(center_crop),
            None if max_samples is None else int(max_samples), data.get("cache_dir"),
        )  # fmt: skip
    except (FileNotFoundError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(str(exc)) from None
    names = [str(n) for n in arrays["attributes"]]
    wanted = list(attributes or names)
    unknown = [a for a in wanted if a not in names]
    if unknown:
        raise UserError(f"task.attributes: unknown '{unknown[0]}'; allowed: {', '.join(names)}")
    columns = torch.tensor([names.index(a) for a in wanted])
    splits = {
        s: TaskSplit(
            torch.from_numpy(arrays[f"{s}_x"]).float().div_(255.0),
            torch.from_numpy(arrays[f"{s}_y"]).float()[:, columns],
        )
        for s in SPLITS
    }
    return MultiLabelData(
        task_names=wanted,
        input_shape=(3, int(image_size), int(image_size)),
        splits=splits,
        info={**options, "sizes": {s: len(splits[s]) for s in SPLITS}},
    )
