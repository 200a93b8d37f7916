"""Fixed, user-chosen weight per task name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import torch
from torch import Tensor

from mtl_cli.loss.base import LossWeighting, TaskSetup


class Static(LossWeighting):
    """Fixed weights sum_i w_i L_i with w given per task name (linear scalarisation).

    Tasks missing from `weights` get weight 1.0; an unknown task name or a negative weight is an
    error, so a typo in a name cannot silently leave a task at 1.0.
    """

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.given = {str(k): float(v) for k, v in dict(weights or {}).items()}
        negative = {k: v for k, v in self.given.items() if v < 0}
        if negative:
            name, value = next(iter(negative.items()))
            raise ValueError(f"loss.weights.{name}: {value} is below the minimum 0.0")

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        unknown = sorted(set(self.given) - set(self.task_names))
        if unknown:
            raise ValueError(
                f"loss.weights: unknown task name(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(self.task_names)}"
            )
        values = [self.given.get(n, 1.0) for n in self.task_names]
        self.register_buffer("task_weights", torch.tensor(values), persistent=False)
        return self

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        return self.task_weights.to(losses.device, losses.dtype)[index]
