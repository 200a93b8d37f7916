"""Homoscedastic-uncertainty weighting with learned log-variances."""

from __future__ import annotations

from typing import Self

import torch
from torch import Tensor, nn

from mtl_cli.loss.base import LossWeighting, TaskSetup
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings

#: variant -> (factor on exp(-s_i) L_i, factor on s_i), with s_i = log sigma_i^2
VARIANTS = {"unit": (1.0, 1.0), "regression": (0.5, 0.5), "classification": (1.0, 0.5)}


class Uncertainty(LossWeighting):
    """Kendall, Gal & Cipolla 2018: L = sum_i a exp(-s_i) L_i + b s_i, s_i = log sigma_i^2 learned.

    `variant`: "unit" (default; a = b = 1, the form most reimplementations use), "regression"
    (a = b = 1/2: 1/(2 sigma^2) L + log sigma, the Gaussian likelihood, eq. 7 of the paper) or
    "classification" (a = 1, b = 1/2: 1/sigma^2 L + log sigma, the softmax approximation, eq. 10).
    "unit" is exactly twice "regression", so both have the optimum s_i = log L_i; "classification"
    has s_i = log(2 L_i). The log-variances are nn.Parameters: the trainer's optimizer updates them.
    """

    def __init__(
        self,
        variant: str = schema.Uncertainty.variant,
        init_log_variance: float = schema.Uncertainty.init_log_variance,
    ) -> None:
        super().__init__()
        check_settings(schema.Uncertainty, variant=variant, init_log_variance=init_log_variance)
        self.variant = variant
        self.init_log_variance = float(init_log_variance)

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        self.log_variances = nn.Parameter(torch.full((self.num_tasks,), self.init_log_variance))
        return self

    def objective(self, losses: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        loss_factor, log_factor = VARIANTS[self.variant]
        s = self.log_variances[index].to(losses.dtype)
        precision = loss_factor * torch.exp(-s)
        total = (precision * losses + log_factor * s).sum()
        return total, precision.detach()
