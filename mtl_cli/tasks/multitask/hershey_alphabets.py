"""Hershey-glyph multi-task: one task per alphabet (embedded data: no download)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtl_cli.families.task_data import MultiTaskData, TaskSplit
from mtl_cli.tasks.hershey_common import _alphabet_names, _as_float, _render


def hershey_alphabet_tasks(
    alphabets: Sequence[str], data_seed: int, render: dict, data: dict
) -> MultiTaskData:
    """One classification task per alphabet; its characters are the classes; drawers 70/15/15."""
    from mtl_cli.data.hershey_images import drawer_split

    names = _alphabet_names(alphabets)
    params, glyphs = _render(names, data_seed, render, data)
    images = _as_float(glyphs.images)  # [C, D, H, W]
    splits: dict[str, list[TaskSplit]] = {"train": [], "val": [], "test": []}
    outputs = []
    for name in names:
        chars = torch.from_numpy(
            np.flatnonzero(glyphs.alphabet == glyphs.alphabet_names.index(name))
        )
        outputs.append(len(chars))
        for split, parts in splits.items():
            drawers = torch.from_numpy(drawer_split(split, params.drawers))
            x = images[chars][:, drawers].reshape(-1, 1, params.size, params.size)
            y = torch.arange(len(chars)).repeat_interleave(len(drawers))
            parts.append(TaskSplit(x, y))
    return MultiTaskData(
        task_names=names,
        outputs=outputs,
        input_shape=(1, params.size, params.size),
        splits=splits,
        info={"classes": dict(zip(names, outputs, strict=True))},
    )
