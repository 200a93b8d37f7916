"""Fixed, user-chosen weight per task name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtl_cli.weighting.base import LossWeighting


class Static(LossWeighting):
    """Fixed weights sum_i w_i L_i with w given per task name (linear scalarisation).

    Tasks missing from `weights` get weight 1.0; an unknown task name or a negative weight is an
    error, so a typo in a name cannot silently leave a task at 1.0.
    """

    def __init__(
        self,
        num_tasks: int,
        weights: Mapping[str, float] | None = None,
        task_names: Sequence[str] | None = None,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(num_tasks, task_names=task_names, steps_per_epoch=steps_per_epoch)
        given = dict(weights or {})
        names = self.task_names
        if given and names is None:
            raise ValueError("loss.weights: task names are unknown, cannot place the weights")
        unknown = sorted(set(given) - set(names or []))
        if unknown:
            raise ValueError(
                f"loss.weights: unknown task name(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(names or [])}"
            )
        negative = {k: v for k, v in given.items() if float(v) < 0}
        if negative:
            name, value = next(iter(negative.items()))
            raise ValueError(f"loss.weights.{name}: {value} is below the minimum 0.0")
        values = [float(given.get(n, 1.0)) for n in names] if names else [1.0] * self.num_tasks
        self.register_buffer("task_weights", torch.tensor(values), persistent=False)

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        return self.task_weights.to(losses.device, losses.dtype)[index]
