"""Robust multi-task objective: minimise the worst task loss (or its log-sum-exp smoothing)."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_cli.loss.base import LossWeighting
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class WorstCase(LossWeighting):
    """min_theta max_i L_i (CS330 lecture 2, robust / minimax multi-task objective).

    `temperature` 0: the hard max; the subgradient goes to the argmax task (the first one on a
    tie). `temperature` tau > 0: tau * log sum_i exp(L_i / tau), whose gradient weights are
    softmax(L / tau); it tends to the max as tau -> 0 and to mean + tau log T as tau -> inf.
    The weights always sum to 1.
    """

    def __init__(self, temperature: float = schema.WorstCase.temperature) -> None:
        super().__init__()
        check_settings(schema.WorstCase, temperature=temperature)
        self.temperature = float(temperature)

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        if self.temperature == 0.0:
            return torch.nn.functional.one_hot(losses.argmax(), len(losses)).to(losses.dtype)
        return torch.softmax(losses / self.temperature, dim=0)
