"""Synthetic tasks (no download): MMoE regression, correlated multi-label data, sinusoids."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtl_cli.errors import UserError
from mtl_cli.families.data import MetaData, MultiLabelData, MultiTaskData, TaskSplit
from mtl_cli.tasks.common import label_options


def _slices(sizes: dict[str, int]) -> dict[str, slice]:
    """Consecutive slices of one sample: train, val and test are disjoint draws of one distribution."""
    out, start = {}, 0
    for split, n in sizes.items():
        out[split] = slice(start, start + int(n))
        start += int(n)
    return out


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


def _pair(key: str, values: Sequence[float], strict: bool) -> tuple[float, float]:
    low, high = (float(v) for v in values) if len(values) == 2 else (1.0, 0.0)
    if (low >= high) if strict else (low > high):
        raise UserError(f"task.{key}: expected [low, high] with low < high, got {list(values)}")
    return low, high


def sinusoid_tasks(
    kind: str,
    shots: int,
    queries: int,
    amplitude: Sequence[float],
    phase: Sequence[float],
    x_range: Sequence[float],
    meta_batch_size: int,
    eval_episodes: int,
    eval_seed: int,
    eval_steps: Sequence[int],
    data: dict,
) -> MetaData:
    """Finn et al. 2017's sinusoid regression: every task is a new amplitude and phase."""
    from mtl_cli.data.sinusoid import SinusoidTasks

    if any(int(k) < 0 for k in eval_steps):
        raise UserError(f"task.eval_steps: adaptation steps must be >= 0, got {list(eval_steps)}")
    tasks = SinusoidTasks(
        int(shots),
        int(queries),
        amp=_pair("amplitude", amplitude, strict=False),
        phase=_pair("phase", phase, strict=False),
        x_range=_pair("x_range", x_range, strict=True),
    )
    return MetaData(
        kind="regression",
        input_shape=(1,),
        ways=1,
        samplers={"train": tasks, "val": tasks, "test": tasks},
        meta_batch_size=int(meta_batch_size),
        eval_episodes=int(eval_episodes),
        eval_seed=int(eval_seed),
        eval_steps=[int(k) for k in eval_steps],
    )
