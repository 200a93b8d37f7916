"""Equal weighting: the plain mean (or sum) of the task losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtl_cli.weighting.base import LossWeighting

REDUCTIONS = ("mean", "sum")


class Equal(LossWeighting):
    """Uniform task weights (the linear-scalarisation baseline, e.g. Caruana 1997).

    `reduction="mean"` (default): w_i = 1/T for the T tasks of the step; `"sum"`: w_i = 1.
    """

    def __init__(
        self,
        num_tasks: int,
        reduction: str = "mean",
        task_names: Sequence[str] | None = None,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(num_tasks, task_names=task_names, steps_per_epoch=steps_per_epoch)
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"loss.reduction: invalid value '{reduction}'; allowed: {', '.join(REDUCTIONS)}"
            )
        self.reduction = reduction

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        value = 1.0 / len(index) if self.reduction == "mean" else 1.0
        return torch.full_like(losses, value)
