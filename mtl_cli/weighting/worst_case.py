"""Robust multi-task objective: minimise the worst task loss (or its log-sum-exp smoothing)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtl_cli.weighting.base import LossWeighting


class WorstCase(LossWeighting):
    """min_theta max_i L_i (CS330 lecture 2, robust / minimax multi-task objective).

    `temperature` 0: the hard max; the subgradient goes to the argmax task (the first one on a
    tie). `temperature` tau > 0: tau * log sum_i exp(L_i / tau), whose gradient weights are
    softmax(L / tau); it tends to the max as tau -> 0 and to mean + tau log T as tau -> inf.
    The weights always sum to 1.
    """

    def __init__(
        self,
        num_tasks: int,
        temperature: float = 0.0,
        task_names: Sequence[str] | None = None,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(num_tasks, task_names=task_names, steps_per_epoch=steps_per_epoch)
        if temperature < 0:
            raise ValueError(f"loss.temperature: {temperature} is below the minimum 0.0")
        self.temperature = float(temperature)

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        if self.temperature == 0.0:
            return torch.nn.functional.one_hot(losses.argmax(), len(losses)).to(losses.dtype)
        return torch.softmax(losses / self.temperature, dim=0)
