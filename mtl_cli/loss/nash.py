"""Nash-MTL: the Nash bargaining solution among tasks, G G^T alpha = 1 / alpha."""

from __future__ import annotations

from typing import Self

import numpy as np
import torch
from torch import Tensor

from mtl_cli.loss.base import GradientWeighting, TaskSetup
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings

RIDGE = 1e-8  # added to the diagonal of G G^T / ||G G^T||_F; keeps the problem bounded


class NashMTL(GradientWeighting):
    """Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya 2022, "Multi-task learning as
    a bargaining game": d = sum_i alpha_i g_i with alpha > 0 solving (G G^T) alpha = 1 / alpha.

    Instead of the paper's sequence of convex problems (cvxpy), alpha is the unique minimiser of
    the strictly convex 1/2 a^T M a - sum_i log a_i (its stationarity condition is the equation
    above), found by damped Newton steps until max_i |alpha_i (M alpha)_i - 1| <= `tol` or
    `max_iter` steps; M is G G^T scaled to unit Frobenius norm plus a 1e-8 ridge. Tasks with a
    zero gradient get alpha_i = 0. As in the paper's code, the weights are recomputed every
    `update_weights_every` steps (reused in between, without per-task gradients), and the combined
    shared gradient is clipped to norm `max_norm` (0: no clipping).
    """

    def __init__(
        self,
        update_weights_every: int = schema.Nash.update_weights_every,
        max_norm: float = schema.Nash.max_norm,
        tol: float = schema.Nash.tol,
        max_iter: int = schema.Nash.max_iter,
        rep_grad: bool = schema.Nash.rep_grad,
    ) -> None:
        super().__init__(rep_grad=rep_grad)
        check_settings(
            schema.Nash,
            update_weights_every=update_weights_every,
            max_norm=max_norm,
            tol=tol,
            max_iter=max_iter,
        )
        self.update_weights_every = int(update_weights_every)
        self.max_norm = float(max_norm)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        #: max_i |alpha_i (M alpha)_i - 1| of this step's solve; None when alpha was reused
        self.last_residual: float | None = None

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("alpha", torch.zeros(self.num_tasks, dtype=torch.float64))
        self.register_buffer("alpha_known", torch.zeros(self.num_tasks, dtype=torch.bool))
        return self

    def reused_weights(self, index: Tensor) -> Tensor | None:
        step = int(self.step)
        self.step += 1
        self.last_residual = None
        if step % self.update_weights_every == 0 or not bool(self.alpha_known[index].all()):
            return None
        return self.alpha[index]

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        alpha, self.last_residual = nash_weights(gram, self.tol, self.max_iter)
        where = torch.as_tensor(index, device=self.alpha.device)
        self.alpha[where] = torch.as_tensor(alpha, device=self.alpha.device)
        self.alpha_known[where] = True
        return alpha

    def solver_diagnostics(self) -> dict[str, float]:
        return {} if self.last_residual is None else {"nash/residual": self.last_residual}

    def finalize(self, direction: Tensor) -> Tensor:
        if self.max_norm > 0:
            norm = direction.norm()
            if norm > self.max_norm:
                direction = direction * (self.max_norm / norm)
        return direction


def nash_weights(
    gram: np.ndarray, tol: float = 1e-6, max_iter: int = 100
) -> tuple[np.ndarray, float]:
    """alpha > 0 with (gram) alpha = 1/alpha (zero for zero-gradient tasks) and its residual."""
    num = gram.shape[0]
    alpha = np.zeros(num)
    diag = np.diag(gram)
    active = diag > 1e-12 * max(float(diag.max()), 1e-300)
    if not active.any():
        return alpha, 0.0
    m = gram[np.ix_(active, active)]
    scale = float(np.linalg.norm(m))
    m = m / scale + RIDGE * np.eye(len(m))
    beta = 1.0 / np.sqrt(np.diag(m))  # exact when the gradients are orthogonal

    def objective(b: np.ndarray) -> float:
        return 0.5 * b @ m @ b - np.log(b).sum()

    residual = np.inf
    for _ in range(max_iter):
        mb = m @ beta
        residual = float(np.abs(beta * mb - 1.0).max())
        if residual <= tol:
            break
        grad = mb - 1.0 / beta
        step = -np.linalg.solve(m + np.diag(1.0 / beta**2), grad)
        shrink = step < 0
        t = min(1.0, 0.99 * float(np.min(-beta[shrink] / step[shrink]))) if shrink.any() else 1.0
        f0, slope = objective(beta), float(grad @ step)
        while t > 1e-12 and objective(beta + t * step) > f0 + 1e-4 * t * slope:
            t *= 0.5
        beta = beta + t * step
    else:
        residual = float(np.abs(beta * (m @ beta) - 1.0).max())
    alpha[active] = beta / np.sqrt(scale)
    return alpha, residual
