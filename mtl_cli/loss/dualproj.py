"""DualProj: the mean task gradient projected onto the dual cone of the task gradients."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mtl_cli.loss.dual_cone import normalize_gram, project_weights, regularize_gram
from mtl_cli.loss.task_preferences import PreferenceWeighting
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class DualProj(PreferenceWeighting):
    """DualProj of Quinton & Rey 2024, "Jacobian descent for multi-objective optimization" (the
    projection of Lopez-Paz & Ranzato's GEM, 2017, eq. 11): d = pi(sum_i p_i g_i), pi the
    projection onto the dual cone {x : G x >= 0}, p the preference vector (default: 1/T each, so
    the mean gradient is projected).

    d never conflicts with a task (g_i . d >= 0) and is the p-weighted sum itself when that does
    not conflict. As in the authors' library TorchJD (DualProj), the weights are
    w = argmin w^T M w subject to w >= p, with M = G G^T / tr(G G^T) (zeros when
    tr(G G^T) < `norm_eps`, which leaves d = the p-weighted sum) plus `reg_eps` I (positive
    definite; g_i . d may then fall below 0 by about reg_eps w_i tr(G G^T)). The quadratic program
    is solved exactly by an active-set method (mtl_cli/loss/dual_cone.py) instead of quadprog.

    `pref_vector` ({task name: p}, every task or none) is used as given for the tasks of each
    step; empty means 1/T over the T tasks of the step.
    """

    def __init__(
        self,
        pref_vector: Mapping[str, float] | None = None,
        norm_eps: float = schema.DualProj.norm_eps,
        reg_eps: float = schema.DualProj.reg_eps,
        rep_grad: bool = schema.DualProj.rep_grad,
    ) -> None:
        super().__init__(pref_vector=pref_vector, rep_grad=rep_grad)
        check_settings(schema.DualProj, norm_eps=norm_eps, reg_eps=reg_eps)
        self.norm_eps = float(norm_eps)
        self.reg_eps = float(reg_eps)

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        prefs = self.step_preferences(index)
        return dualproj_weights(gram, prefs, self.norm_eps, self.reg_eps)


def dualproj_weights(
    gram: np.ndarray, prefs: np.ndarray, norm_eps: float = 0.0, reg_eps: float = 0.0
) -> np.ndarray:
    """w = argmin_{w >= p} w^T M w, so that w @ G = pi(sum_i p_i g_i)."""
    m = regularize_gram(normalize_gram(gram, norm_eps), reg_eps)
    return project_weights(m, np.asarray(prefs, dtype=np.float64))
