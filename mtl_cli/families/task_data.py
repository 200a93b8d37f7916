"""In-memory task data shared by the families: D_i^tr, D_i^val, D_i^test as tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


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
