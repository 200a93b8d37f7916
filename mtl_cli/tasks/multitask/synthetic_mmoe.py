"""Synthetic multi-task (no download): MMoE regression tasks with a set correlation."""

from __future__ import annotations

import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MultiTaskData, TaskSplit
from mtl_cli.tasks.common import _slices


def synthetic_mmoe_tasks(
    correlation: float,
    num_tasks: int,
    dim: int,
    train_size: int,
    val_size: int,
    test_size: int,
    data_seed: int,
    data: dict,
) -> MultiTaskData:
    """Ma et al. 2018 §4.1 regression tasks; all tasks share p(x) (the same inputs), MSE loss."""
    from mtl_cli.data.synthetic_mmoe import make_synthetic_mmoe

    slices = _slices({"train": train_size, "val": val_size, "test": test_size})
    total = slices["test"].stop
    try:
        arrays = make_synthetic_mmoe(
            total, float(correlation), seed=int(data_seed), dim=int(dim), num_tasks=int(num_tasks)
        )
    except ValueError as exc:
        raise UserError(f"task: {exc}") from None
    x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
    splits = {
        split: [TaskSplit(x[s], y[s, t].clone()) for t in range(int(num_tasks))]
        for split, s in slices.items()
    }
    return MultiTaskData(
        task_names=[f"task{t}" for t in range(int(num_tasks))],
        outputs=[1] * int(num_tasks),
        input_shape=(int(dim),),
        splits=splits,
        kind="regression",
        info={"correlation": float(correlation)},
    )
