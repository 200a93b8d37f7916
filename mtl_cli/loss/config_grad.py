"""ConFIG: the update with equal positive projections on every unit task gradient."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mtl_cli.loss.task_preferences import PreferenceWeighting
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings

#: eigenvalues of the cosine matrix below max eigenvalue * T * this count as zero (float32 eps,
#: the precision the gradients are usually computed in)
RANK_EPS = float(np.finfo(np.float32).eps)


class ConFIG(PreferenceWeighting):
    """ConFIG (Conflict-Free Inverse Gradients) of Liu, Chu & Thuerey 2024, "ConFIG: towards
    conflict-free training of physics informed neural networks" (eq. 2): with the unit gradients
    u_i = g_i/||g_i|| as the rows of U, the direction x = U^+ w (w: `pref_vector`, default ones)
    has u_i . x = w_i for every task when the gradients are linearly independent, so with equal
    w the update makes the same positive angle with every task gradient. The update is
    d = L x/||x||, with the length L from `length_model`: `projection` (the paper's and the
    official code's default) L = sum_i g_i . x/||x||; `track_min`, `track_max`, `track_harmonic`,
    `track_arithmetic`, `track_geometric` (the official code's other length models)
    L = t sum_i u_i . x/||x|| with t the minimum, maximum, harmonic, arithmetic or geometric mean
    of the gradient norms.

    Computed from the Gram matrix: U U^T = C (the cosine matrix), x = U^T C^+ w. The pseudo-inverse
    drops eigenvalues of C below max * T * 1.19e-7 (float32 eps), so collinear or opposite
    gradients give a finite update (opposite ones: d = 0). The official code solves U x = w by
    least squares (rank cut at eps * max(T, P) of U's singular values on the CPU) and, for two
    tasks, an equivalent closed form; the momentum variant M-ConFIG is not implemented. A zero
    task gradient gets u_i = 0.
    """

    mean_by_default = False  # empty pref_vector: ones, as in the official code

    def __init__(
        self,
        pref_vector: Mapping[str, float] | None = None,
        length_model: str = schema.ConFIG.length_model,
        rep_grad: bool = schema.ConFIG.rep_grad,
    ) -> None:
        super().__init__(pref_vector=pref_vector, rep_grad=rep_grad)
        check_settings(schema.ConFIG, length_model=length_model)
        self.length_model = length_model

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        prefs = self.step_preferences(index)
        return config_weights(gram, prefs, self.length_model)


def config_weights(
    gram: np.ndarray, prefs: np.ndarray, length_model: str = "projection"
) -> np.ndarray:
    """Coefficients a [T] of the task gradients with a @ G the ConFIG update."""
    gram = 0.5 * (gram + gram.T)
    num = len(gram)
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    cosines = gram * inv[:, None] * inv[None, :]  # U U^T
    eigenvalues, vectors = np.linalg.eigh(cosines)
    top = float(eigenvalues.max(initial=0.0))
    keep = eigenvalues > top * num * RANK_EPS
    if top <= 0.0 or not keep.any():
        return np.zeros(num)
    eigenvalues, vectors = eigenvalues[keep], vectors[:, keep]
    coeffs = vectors @ ((vectors.T @ prefs) / eigenvalues)  # x = U^T coeffs
    norm_sq = float(coeffs @ cosines @ coeffs)  # ||x||^2
    if norm_sq <= 0.0:
        return np.zeros(num)
    unit = coeffs * inv / np.sqrt(norm_sq)  # x/||x|| = unit @ G
    projections = gram @ unit  # g_i . x/||x||
    if length_model == "projection":
        length = projections.sum()
    else:
        length = _tracked_norm(norms, length_model) * (projections * inv).sum()
    return length * unit


def _tracked_norm(norms: np.ndarray, length_model: str) -> float:
    with np.errstate(divide="ignore"):  # a zero norm: 1/0 = inf, log 0 = -inf
        if length_model == "track_min":
            return float(norms.min())
        if length_model == "track_max":
            return float(norms.max())
        if length_model == "track_harmonic":  # 0 when a gradient is zero
            return float(len(norms) / np.sum(1.0 / norms))
        if length_model == "track_arithmetic":
            return float(norms.mean())
        return float(np.exp(np.mean(np.log(norms))))  # track_geometric; 0 with a zero gradient
