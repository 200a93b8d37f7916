"""UPGrad: the average of every task gradient projected onto the dual cone of all of them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mtl_cli.loss.dual_cone import normalize_gram, project_weights, regularize_gram
from mtl_cli.loss.task_preferences import PreferenceWeighting
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class UPGrad(PreferenceWeighting):
    """UPGrad of Quinton & Rey 2024, "Jacobian descent for multi-objective optimization":
    d = sum_i p_i pi(g_i), pi the projection onto the dual cone {x : G x >= 0} of the task
    gradients, p the preference vector (default: 1/T each, the mean of the projections).

    d never conflicts with a task (g_i . d >= 0), equals the p-weighted sum of the gradients when
    no two of them conflict, and is linear under positive scaling of the tasks (each pi(c_i g_i)
    = c_i pi(g_i)). As in the authors' library TorchJD (UPGradWeighting), the weights come from
    the Gram matrix: for each i, v^(i) = argmin v^T M v subject to v >= p_i e_i, and w = sum_i v^(i),
    with M = G G^T / tr(G G^T) (zeros when tr(G G^T) < `norm_eps`, which leaves d = the p-weighted
    sum of the raw gradients) plus `reg_eps` I (so that M is positive definite; g_i . d may then
    fall below 0 by about reg_eps v_i tr(G G^T)). The quadratic programs are solved exactly by an
    active-set method (mtl_cli/loss/dual_cone.py) instead of TorchJD's quadprog.

    `pref_vector` ({task name: p}, every task or none) is used as given for the tasks of each
    step; empty means 1/T over the T tasks of the step.
    """

    def __init__(
        self,
        pref_vector: Mapping[str, float] | None = None,
        norm_eps: float = schema.UPGrad.norm_eps,
        reg_eps: float = schema.UPGrad.reg_eps,
        rep_grad: bool = schema.UPGrad.rep_grad,
    ) -> None:
        super().__init__(pref_vector=pref_vector, rep_grad=rep_grad)
        check_settings(schema.UPGrad, norm_eps=norm_eps, reg_eps=reg_eps)
        self.norm_eps = float(norm_eps)
        self.reg_eps = float(reg_eps)

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        prefs = self.step_preferences(index)
        return upgrad_weights(gram, prefs, self.norm_eps, self.reg_eps)


def upgrad_weights(
    gram: np.ndarray, prefs: np.ndarray, norm_eps: float = 0.0, reg_eps: float = 0.0
) -> np.ndarray:
    """w = sum_i v^(i), v^(i) = argmin_{v >= p_i e_i} v^T M v (M: the normalised, regularised
    Gram matrix), so that w @ G = sum_i p_i pi(g_i)."""
    m = regularize_gram(normalize_gram(gram, norm_eps), reg_eps)
    weights = np.zeros(len(prefs))
    for i, p in enumerate(prefs):
        u = np.zeros(len(prefs))
        u[i] = p
        weights += project_weights(m, u)
    return weights
