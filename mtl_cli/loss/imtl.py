"""IMTL-G: the update whose projections onto every task's unit gradient are equal."""

from __future__ import annotations

import numpy as np

from mtl_cli.loss.base import GradientWeighting


class IMTL(GradientWeighting):
    """IMTL-G of Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang 2021, "Towards impartial multi-task
    learning": d = sum_i a_i g_i with sum_i a_i = 1 and d . u_i equal for all i (u_i = g_i/||g_i||).

    Closed form with D = [g_1 - g_i]_{i>=2}, U = [u_1 - u_i]_{i>=2}:
    a_{2:T} = g_1 U^T (D U^T)^{-1}, a_1 = 1 - sum a_{2:T}; computed from the Gram matrix with a
    least-squares solve (the minimum-norm solution when D U^T is singular, e.g. identical
    gradients). A zero task gradient gets u_i = 0. Only the gradient part (IMTL-G) is implemented.
    """

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        return imtl_weights(gram)


def imtl_weights(gram: np.ndarray) -> np.ndarray:
    """IMTL-G coefficients a [T] (sum 1) from the Gram matrix of the task gradients."""
    num = gram.shape[0]
    if num == 1:
        return np.ones(1)
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    k = gram * inv[None, :]  # k[i, j] = g_i . u_j
    # (D U^T)[i, j] = (g_1 - g_i) . (u_1 - u_j) and (g_1 U^T)[j] = g_1 . (u_1 - u_j), i, j >= 2
    du = k[0, 0] - k[0, 1:][None, :] - k[1:, 0][:, None] + k[1:, 1:]
    g1u = k[0, 0] - k[0, 1:]
    rest = np.linalg.lstsq(du.T, g1u, rcond=None)[0]  # solves rest @ du = g1u
    return np.concatenate([[1.0 - rest.sum()], rest])
