"""Geometric loss strategy: minimise the geometric mean of the task losses."""

from __future__ import annotations

import torch

from mtl_cli.errors import UserError
from mtl_cli.loss.base import LossWeighting


class GeometricMean(LossWeighting):
    """L = (prod_i L_i)^(1/T) (Chennupati et al. 2019, "MultiNet++", CVPR workshops), written
    exp(mean_i log(L_i + eps)); its gradient weights are L / (T (L_i + eps)).

    Options: `eps` (added to each loss before the log, default 1e-8). Also reports the step's
    geometric mean as the diagnostic `loss/geometric_mean` in metrics.jsonl.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        if eps < 0:
            raise UserError(f"loss.eps: {eps}; allowed: >= 0")
        self.eps = float(eps)
        self.last_mean = float("nan")

    def objective(self, losses: torch.Tensor, index: torch.Tensor):
        total = torch.exp(torch.log(losses + self.eps).mean())
        self.last_mean = float(total.detach())
        weights = (total / (len(losses) * (losses + self.eps))).detach()
        return total, weights

    def backward(self, losses, tasks, model, representation=None) -> dict[str, float]:
        stats = super().backward(losses, tasks, model, representation)
        return {**stats, "geometric_mean": self.last_mean}
