"""Omniglot few-shot tasks (Lake et al. 2015): official background/evaluation split or by class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MetaData
from mtl_cli.tasks.common import check_fractions, meta_samplers, split_indices


def omniglot_meta_classes(
    kind: str,
    ways: int,
    shots: int,
    queries: int,
    rotations: bool,
    meta_batch_size: int,
    eval_episodes: int,
    eval_seed: int,
    image_size: int,
    split_by: str,
    val_alphabets: int,
    split_fractions: Sequence[float],
    split_seed: int,
    data: dict,
    eval_ways: int | None = None,
    eval_shots: int | None = None,
    eval_queries: int | None = None,
) -> MetaData:
    """official: background alphabets = meta-train, except `val_alphabets` of them (seeded) held
    out for meta-val; evaluation alphabets = meta-test. class: a seeded split of all characters."""
    from mtl_cli.data.omniglot import load_omniglot

    try:
        om = load_omniglot(
            root=data.get("root"), download=bool(data.get("download")), size=int(image_size),
            cache_dir=data.get("cache_dir"),
        )  # fmt: skip
    except (FileNotFoundError, ValueError, ImportError) as exc:
        raise UserError(str(exc)) from None
    background = om["background"].astype(bool)
    if split_by == "official":
        bg_alphabets = np.unique(om["alphabet"][background])
        if int(val_alphabets) >= len(bg_alphabets):
            raise UserError(
                f"task.val_alphabets: {val_alphabets} leaves no background alphabet for meta-train "
                f"(there are {len(bg_alphabets)})"
            )
        held = np.random.default_rng(split_seed).choice(
            bg_alphabets, int(val_alphabets), replace=False
        )
        val = np.isin(om["alphabet"], held)
        classes = {
            "train": np.flatnonzero(background & ~val),
            "val": np.flatnonzero(val),
            "test": np.flatnonzero(~background),
        }
    else:
        classes = split_indices(len(background), check_fractions(split_fractions), split_seed)
    images = torch.from_numpy(om["images"]).unsqueeze(2)  # uint8 [C, 20, 1, H, W]
    samplers = meta_samplers(
        images, classes, ways, shots, queries, rotations, eval_ways, eval_shots, eval_queries
    )
    return MetaData(
        kind="classification",
        input_shape=(1, int(image_size), int(image_size)),
        ways=int(ways),
        samplers=samplers,
        meta_batch_size=int(meta_batch_size),
        eval_episodes=int(eval_episodes),
        eval_seed=int(eval_seed),
        info={
            "split_by": split_by,
            "splits": {k: [str(om["char_names"][i]) for i in v] for k, v in classes.items()},
            "classes": {k: len(v) for k, v in classes.items()},
        },
    )
