"""MGDA: the min-norm point of the convex hull of the task gradients (a common descent step)."""

from __future__ import annotations

import numpy as np

from mtl_cli.loss.base import GradientWeighting
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class MGDA(GradientWeighting):
    """Sener & Koltun 2018, "Multi-task learning as multi-objective optimization".

    Weights w = argmin_{w in simplex} ||sum_i w_i g_i / n_i||^2, solved as in the paper's
    MinNormSolver: the best pair by the exact two-point line solution, then Frank-Wolfe steps with
    exact line search until the weights change by less than `tol` (L1) or `max_iter` steps.
    `normalization` n_i (the paper's code): "none" 1, "l2" ||g_i||, "loss" L_i, "loss+" L_i ||g_i||.
    As in the paper's training code the weights then scale the unnormalised gradients:
    d = sum_i w_i g_i (weights sum to 1). `rep_grad=True` is MGDA-UB (gradients w.r.t. z).
    Unlike the paper's code, the two-point solution is exact (0 and 1, not 0.001 and 0.999), and
    the Frank-Wolfe result is polished by solving the KKT system on its support (kept only when
    it is feasible and optimal), which makes the weights exact where Frank-Wolfe converges slowly.
    """

    def __init__(
        self,
        normalization: str = schema.MGDA.normalization,
        max_iter: int = schema.MGDA.max_iter,
        tol: float = schema.MGDA.tol,
        rep_grad: bool = schema.MGDA.rep_grad,
    ) -> None:
        super().__init__(rep_grad=rep_grad)
        check_settings(schema.MGDA, normalization=normalization, max_iter=max_iter, tol=tol)
        self.normalization = normalization
        self.max_iter = int(max_iter)
        self.tol = float(tol)

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
        scale = {
            "none": np.ones_like(norms),
            "l2": norms,
            "loss": np.abs(losses),
            "loss+": np.abs(losses) * norms,
        }[self.normalization]
        scale = np.where(scale > 0, scale, 1.0)
        normalized = gram / np.outer(scale, scale)
        return min_norm_weights(normalized, self.max_iter, self.tol)


def line_min_norm(v1v1: float, v1v2: float, v2v2: float) -> tuple[float, float]:
    """argmin_c ||c x1 + (1-c) x2||^2 over c in [0, 1] and the minimum, from the inner products."""
    if v1v2 >= v1v1:
        return 1.0, v1v1
    if v1v2 >= v2v2:
        return 0.0, v2v2
    c = (v2v2 - v1v2) / (v1v1 + v2v2 - 2.0 * v1v2)
    return c, v2v2 + c * (v1v2 - v2v2)


def min_norm_weights(gram: np.ndarray, max_iter: int = 250, tol: float = 1e-5) -> np.ndarray:
    """Weights on the simplex of the min-norm point of conv{g_i}, given the Gram matrix [T, T]."""
    num = gram.shape[0]
    weights = np.zeros(num)
    if num == 1:
        weights[0] = 1.0
        return weights
    # best pair (i, j) by the exact line solution, vectorised over all pairs
    i, j = np.triu_indices(num, k=1)
    a, b, c = gram[i, i], gram[i, j], gram[j, j]
    denom = a + c - 2.0 * b
    safe = np.where(denom > 0, denom, 1.0)
    gamma = np.where(b >= a, 1.0, np.where(b >= c, 0.0, (c - b) / safe))
    cost = gamma**2 * a + 2 * gamma * (1 - gamma) * b + (1 - gamma) ** 2 * c
    best = int(np.argmin(cost))
    weights[i[best]] += gamma[best]
    weights[j[best]] += 1.0 - gamma[best]
    if num == 2:
        return weights
    for _ in range(max_iter):  # Frank-Wolfe with exact line search towards the best vertex
        gw = gram @ weights
        vertex = int(np.argmin(gw))
        step, _ = line_min_norm(float(weights @ gw), float(gw[vertex]), float(gram[vertex, vertex]))
        new = step * weights
        new[vertex] += 1.0 - step
        change = np.abs(new - weights).sum()
        weights = new
        if change < tol:
            break
    return _polish(gram, weights)


def _polish(gram: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Exact solution on the Frank-Wolfe support when it satisfies the KKT conditions.

    On the support S the min-norm problem is an equality-constrained QP:
    M_SS w_S = nu 1, sum w_S = 1. Negative entries drop out of S one at a time; the exact point
    is kept only if w >= 0 and (M w)_j >= nu outside S, and if it is no worse than `weights`.
    """
    scale = max(float(np.abs(gram).max()), 1e-300)
    support = weights > 1e-12
    for _ in range(len(weights)):
        idx = np.flatnonzero(support)
        k = len(idx)
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = gram[np.ix_(idx, idx)]
        kkt[:k, k] = -1.0
        kkt[k, :k] = 1.0
        rhs = np.zeros(k + 1)
        rhs[k] = 1.0
        solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
        if not np.allclose(kkt @ solution, rhs, atol=1e-9 * scale):
            return weights
        if solution[:k].min() < 0:
            support[idx[np.argmin(solution[:k])]] = False
            continue
        exact = np.zeros_like(weights)
        exact[idx] = solution[:k]
        optimal = (gram @ exact)[~support] >= solution[k] - 1e-9 * scale
        if optimal.all() and exact @ gram @ exact <= weights @ gram @ weights:
            return exact
        return weights
    return weights
