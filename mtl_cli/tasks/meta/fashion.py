"""Fashion-MNIST meta-learning: few-shot episodes over disjoint class sets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MetaData
from mtl_cli.tasks.common import meta_samplers
from mtl_cli.tasks.fashion_common import _fashion


def fashion_meta_classes(
    kind: str,
    ways: int,
    shots: int,
    queries: int,
    rotations: bool,
    meta_batch_size: int,
    eval_episodes: int,
    eval_seed: int,
    train_classes: Sequence[int],
    val_classes: Sequence[int],
    test_classes: Sequence[int],
    data: dict,
    eval_ways: int | None = None,
    eval_shots: int | None = None,
    eval_queries: int | None = None,
) -> MetaData:
    """Few-shot episodes over Fashion-MNIST with disjoint class sets (all 70,000 images pooled)."""
    fashion = _fashion(data)
    classes = {"train": list(train_classes), "val": list(val_classes), "test": list(test_classes)}
    chosen = [c for cs in classes.values() for c in cs]
    if len(set(chosen)) != len(chosen) or not all(0 <= c <= 9 for c in chosen):
        raise UserError(f"task.*_classes: need disjoint class ids in 0..9, got {classes}")
    images = np.concatenate([fashion["train_images"], fashion["test_images"]])
    labels = np.concatenate([fashion["train_labels"], fashion["test_labels"]])
    per_class = min(int((labels == c).sum()) for c in chosen)
    by_class = np.stack([images[labels == c][:per_class] for c in range(10)])  # [10, D, 28, 28]
    tensor = torch.from_numpy(by_class).unsqueeze(2)
    samplers = meta_samplers(
        tensor,
        {k: np.array(v) for k, v in classes.items()},
        ways,
        shots,
        queries,
        rotations,
        eval_ways,
        eval_shots,
        eval_queries,
    )
    return MetaData(
        kind="classification",
        input_shape=(1, 28, 28),
        ways=int(ways),
        samplers=samplers,
        meta_batch_size=int(meta_batch_size),
        eval_episodes=int(eval_episodes),
        eval_seed=int(eval_seed),
        info={"splits": classes},
    )
