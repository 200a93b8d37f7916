"""Aligned-MTL: align the principal components of the task gradients (condition number 1)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mtl_cli.loss.task_preferences import PreferenceWeighting
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings

#: eigenvalues of G G^T below max eigenvalue * T * this count as zero (the official code's
#: torch.finfo().eps: float32, the precision the gradients are usually computed in)
RANK_EPS = float(np.finfo(np.float32).eps)


class AlignedMTL(PreferenceWeighting):
    """Aligned-MTL of Senushkin, Patakin, Kuznetsov & Konushin 2023, "Independent component
    alignment for multi-task learning" (Algorithm 1): with M = G G^T = V diag(lambda) V^T, the
    balance transformation B = sigma V diag(lambda)^{-1/2} V^T makes the aligned task gradients
    B G orthogonal with equal norms sigma (condition number 1), and d = w^T B G: the weights are
    B w, w the task weights (`pref_vector`, default ones: the sum, as the official code).

    The scale sigma (`scale_mode`, the official code's option): `min` (default) the smallest
    retained singular value sqrt(lambda_R) of G, `median` the median one (torch.median's: the
    lower middle value when their number is even), `rmse` sqrt(mean(lambda)). Eigenvalues below
    max(lambda) * T * 1.19e-7 (float32 eps, as in the official code) are dropped, so a
    rank-deficient G (collinear gradients) aligns within its range and stays finite; when every
    gradient is zero, the weights are w. The official option `scale_decoder_grad` (scaling the
    task heads' gradients by the weights) is not offered: as for every gradient method here, the
    heads receive their own task's plain gradient. With `rep_grad` this is Aligned-MTL-UB.
    TorchJD's AlignedMTL uses w = 1/T (the mean) by default instead of ones.
    """

    mean_by_default = False  # empty pref_vector: ones, as in the official code

    def __init__(
        self,
        pref_vector: Mapping[str, float] | None = None,
        scale_mode: str = schema.AlignedMTL.scale_mode,
        rep_grad: bool = schema.AlignedMTL.rep_grad,
    ) -> None:
        super().__init__(pref_vector=pref_vector, rep_grad=rep_grad)
        check_settings(schema.AlignedMTL, scale_mode=scale_mode)
        self.scale_mode = scale_mode

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        prefs = self.step_preferences(index)
        return balance_transformation(gram, self.scale_mode) @ prefs


def balance_transformation(gram: np.ndarray, scale_mode: str = "min") -> np.ndarray:
    """B [T, T] with (B G)(B G)^T = sigma^2 (identity on the range of G G^T)."""
    gram = 0.5 * (gram + gram.T)
    num = len(gram)
    eigenvalues, vectors = np.linalg.eigh(gram)
    top = float(eigenvalues.max(initial=0.0))
    keep = eigenvalues > top * num * RANK_EPS
    if top <= 0.0 or not keep.any():
        return np.eye(num)
    eigenvalues, vectors = eigenvalues[keep], vectors[:, keep]
    if scale_mode == "min":
        sigma = np.sqrt(eigenvalues.min())
    elif scale_mode == "median":  # torch.median: the lower of the two middle values
        sigma = np.sqrt(np.sort(eigenvalues)[(len(eigenvalues) - 1) // 2])
    else:  # rmse
        sigma = np.sqrt(eigenvalues.mean())
    return sigma * (vectors / np.sqrt(eigenvalues)) @ vectors.T
