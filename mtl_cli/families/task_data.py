"""In-memory task data shared by the families: D_i^tr, D_i^val, D_i^test as tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from mtl_cli.families import DENSE_TASK_METRICS


@dataclass
class TaskSplit:
    """Inputs and targets of one split of one task."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device) -> TaskSplit:
        return TaskSplit(self.x.to(device), self.y.to(device))


@dataclass
class MultiTaskData:
    """Multi-task data: task i has its own p_i(x) and label space (CS330 lecture 2).

    `outputs[i]` is the number of classes of task i (classification) or target dims (regression).
    """

    task_names: list[str]
    outputs: list[int]
    input_shape: tuple[int, ...]
    splits: dict[str, list[TaskSplit]]  # "train" | "val" | "test" -> one TaskSplit per task
    kind: str = "classification"  # or "regression"
    info: dict = field(default_factory=dict)  # provenance written to metrics.json

    def __post_init__(self) -> None:
        for split, parts in self.splits.items():
            if len(parts) != len(self.task_names):
                raise ValueError(
                    f"{split}: {len(parts)} task splits for {len(self.task_names)} tasks"
                )


@dataclass
class MultiLabelData:
    """Multi-label data: one shared p(x), L binary labels (each label is a task)."""

    task_names: list[str]
    input_shape: tuple[int, ...]
    splits: dict[str, TaskSplit]  # y: float [N, L] in {0, 1}
    info: dict = field(default_factory=dict)

    @property
    def outputs(self) -> list[int]:
        return [1] * len(self.task_names)


@dataclass
class MetaData:
    """Meta-learning data: episode samplers over disjoint meta-train/val/test classes (or task
    distributions), and how episodes are batched and evaluated."""

    kind: str  # "classification" | "regression"
    input_shape: tuple[int, ...]
    ways: int  # classes per episode (1 for regression)
    samplers: dict[
        str, Any
    ]  # split -> EpisodeSampler | SinusoidTasks (has .sample(batch, generator))
    meta_batch_size: int
    eval_episodes: int
    eval_seed: int
    eval_steps: list[int] = field(default_factory=list)  # extra adaptation-step evaluations
    info: dict = field(default_factory=dict)


#: the per-pixel tasks of scene understanding (CS330 lecture 2), in the order models emit them
DENSE_TASKS = tuple(DENSE_TASK_METRICS)


@dataclass
class DenseSplit:
    """Images and per-pixel targets of one split (dense scene understanding).

    `x`: float32 [N, 3, H, W] RGB in [0, 1]. `targets` holds only the chosen tasks:
    "segmentation" int64 [N, H, W] (class 0..C-1, -1 = ignored pixel), "depth" float32
    [N, 1, H, W] (> 0, 0 = invalid pixel), "normals" float32 [N, 3, H, W] (unit vectors in camera
    coordinates, all-zero = invalid pixel).
    """

    x: torch.Tensor
    targets: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device: torch.device) -> DenseSplit:
        return DenseSplit(self.x.to(device), {k: v.to(device) for k, v in self.targets.items()})


@dataclass
class DenseData:
    """Dense scene understanding: one image, T per-pixel tasks, each with its own loss."""

    task_names: list[str]  # the chosen subset of DENSE_TASKS, in that order
    classes: int  # segmentation classes C
    class_names: list[str]
    input_shape: tuple[int, int, int]  # (3, H, W)
    splits: dict[str, DenseSplit]  # "train" | "val" | "test"
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [t for t in self.task_names if t not in DENSE_TASKS]
        if unknown or not self.task_names:
            raise ValueError(f"task_names: {self.task_names}; allowed: subsets of {DENSE_TASKS}")
        for split, part in self.splits.items():
            if sorted(part.targets) != sorted(self.task_names):
                raise ValueError(f"{split}: targets {sorted(part.targets)} for {self.task_names}")

    @property
    def outputs(self) -> list[int]:
        """Output channels per task: C logits, 1 depth, 3 normal components."""
        channels = {"segmentation": self.classes, "depth": 1, "normals": 3}
        return [channels[t] for t in self.task_names]
