"""Hershey-glyph meta-learning: N-way K-shot episodes over characters (embedded data: no download).

Classes are split by alphabet (like Omniglot's background/evaluation) or by character.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MetaData
from mtl_cli.tasks.common import check_fractions, meta_samplers, split_indices
from mtl_cli.tasks.hershey_common import _alphabet_names, _render


def hershey_meta_classes(
    kind: str,
    alphabets: Sequence[str],
    split_by: str,
    split_fractions: Sequence[float],
    split_seed: int,
    ways: int,
    shots: int,
    queries: int,
    rotations: bool,
    meta_batch_size: int,
    eval_episodes: int,
    eval_seed: int,
    data_seed: int,
    render: dict,
    data: dict,
    eval_ways: int | None = None,
    eval_shots: int | None = None,
    eval_queries: int | None = None,
) -> MetaData:
    """N-way K-shot episodes over Hershey characters; meta-train/val/test classes are disjoint."""
    names = _alphabet_names(alphabets)
    fractions = check_fractions(split_fractions)
    params, glyphs = _render(names, data_seed, render, data)
    if split_by == "alphabet":
        if len(names) < 3:
            raise UserError("task.split_by: 'alphabet' needs at least 3 alphabets; use 'class'")
        groups = split_indices(len(names), fractions, split_seed)
        classes = {
            split: np.flatnonzero(np.isin(glyphs.alphabet, idx)) for split, idx in groups.items()
        }
        detail = {split: [names[i] for i in idx] for split, idx in groups.items()}
    else:
        classes = split_indices(len(glyphs.alphabet), fractions, split_seed)
        detail = {split: [glyphs.char_names[i] for i in idx] for split, idx in classes.items()}
    images = torch.from_numpy(glyphs.images).unsqueeze(2)  # uint8 [C, D, 1, H, W]
    samplers = meta_samplers(
        images, classes, ways, shots, queries, rotations, eval_ways, eval_shots, eval_queries
    )
    return MetaData(
        kind="classification",
        input_shape=(1, params.size, params.size),
        ways=ways,
        samplers=samplers,
        meta_batch_size=meta_batch_size,
        eval_episodes=eval_episodes,
        eval_seed=eval_seed,
        info={
            "split_by": split_by,
            "splits": detail,
            "classes": {k: len(v) for k, v in classes.items()},
        },
    )
