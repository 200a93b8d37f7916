"""PCGrad: project away the conflicting component of each task gradient ("gradient surgery")."""

from __future__ import annotations

import numpy as np
import torch

from mtl_cli.loss.base import GradientWeighting, restore_generator, seeded_generator
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class PCGrad(GradientWeighting):
    """Yu, Kumar, Gupta, Levine, Hausman & Finn 2020, "Gradient surgery for multi-task learning".

    For each task i, for the other tasks j in a random order: if g_i^PC . g_j < 0, then
    g_i^PC -= (g_i^PC . g_j / ||g_j||^2) g_j (projection against the original g_j). The update is
    sum_i g_i^PC (`reduction="sum"`, the paper's Algorithm 1 and code) or its mean. Computed in
    coefficient space (g_i^PC = sum_k C_ik g_k) from the Gram matrix, so the effective weights are
    the column sums of C. The orders come from the method's own generator (seeded with `seed`,
    None: the run's seed), which is checkpointed.
    """

    def __init__(
        self,
        reduction: str = schema.PCGrad.reduction,
        seed: int | None = schema.PCGrad.seed,
        rep_grad: bool = schema.PCGrad.rep_grad,
    ) -> None:
        super().__init__(rep_grad=rep_grad)
        check_settings(schema.PCGrad, reduction=reduction, seed=seed)
        self.reduction = reduction
        self.generator = seeded_generator(seed)

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        num = gram.shape[0]
        # row i: a random order of the tasks for task i (task i itself is skipped below)
        order = torch.rand(num, num, generator=self.generator).argsort(dim=1).numpy()
        weights = pcgrad_coefficients(gram, order).sum(axis=0)
        return weights / num if self.reduction == "mean" else weights

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        restore_generator(self.generator, state["generator"])


def pcgrad_coefficients(gram: np.ndarray, order: np.ndarray) -> np.ndarray:
    """C [T, T] with g_i^PC = sum_k C_ik g_k, projecting task i in the order `order[i]`."""
    num = gram.shape[0]
    coeffs = np.eye(num)
    rows = np.arange(num)
    sq_norms = np.diag(gram)
    for step in range(num):  # all tasks i at once, each against its step-th partner
        partner = order[:, step]
        inner = (coeffs @ gram)[rows, partner]  # g_i^PC . g_partner
        conflict = (inner < 0) & (partner != rows) & (sq_norms[partner] > 0)
        safe = np.where(sq_norms[partner] > 0, sq_norms[partner], 1.0)
        coeffs[rows, partner] -= np.where(conflict, inner / safe, 0.0)
    return coeffs
