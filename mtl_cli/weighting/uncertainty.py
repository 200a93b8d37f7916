"""Homoscedastic-uncertainty weighting with learned log-variances."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtl_cli.weighting.base import LossWeighting

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
        num_tasks: int,
        variant: str = "unit",
        init_log_variance: float = 0.0,
        task_names: Sequence[str] | None = None,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(num_tasks, task_names=task_names, steps_per_epoch=steps_per_epoch)
        if variant not in VARIANTS:
            raise ValueError(
                f"loss.variant: invalid value '{variant}'; allowed: {', '.join(VARIANTS)}"
            )
        self.variant = variant
        self.log_variances = nn.Parameter(torch.full((self.num_tasks,), float(init_log_variance)))

    def objective(self, losses: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        loss_factor, log_factor = VARIANTS[self.variant]
        s = self.log_variances[index].to(losses.dtype)
        precision = loss_factor * torch.exp(-s)
        total = (precision * losses + log_factor * s).sum()
        return total, precision.detach()
