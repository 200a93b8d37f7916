"""Synthetic multi-label (no download): correlated binary labels from a latent-factor model."""

from __future__ import annotations

import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MultiLabelData, TaskSplit
from mtl_cli.tasks.common import _slices, label_options


def synthetic_multilabel_tasks(
    num_labels: int,
    dim: int,
    correlation: float,
    cardinality: float,
    train_size: int,
    val_size: int,
    test_size: int,
    pos_weight,
    threshold,
    data_seed: int,
    data: dict,
) -> MultiLabelData:
    """Correlated binary labels from a latent-factor model (see docs/data/synthetic.md)."""
    from mtl_cli.data.synthetic_multilabel import make_synthetic_multilabel

    if cardinality >= num_labels:
        raise UserError(
            f"task.cardinality: {cardinality} must be below task.num_labels ({num_labels})"
        )
    slices = _slices({"train": train_size, "val": val_size, "test": test_size})
    try:
        arrays = make_synthetic_multilabel(
            slices["test"].stop,
            int(num_labels),
            int(dim),
            float(correlation),
            float(cardinality),
            seed=int(data_seed),
        )
    except ValueError as exc:
        raise UserError(f"task: {exc}") from None
    x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]).float()
    splits = {split: TaskSplit(x[s], y[s]) for split, s in slices.items()}
    return MultiLabelData(
        task_names=[f"label{i}" for i in range(int(num_labels))],
        input_shape=(int(dim),),
        splits=splits,
        info=label_options(pos_weight, threshold),
    )
