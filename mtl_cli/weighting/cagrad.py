"""CAGrad: the update within a ball around the mean gradient that best improves the worst task."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mtl_cli.weighting.base import GradientWeighting

RESCALES = (0, 1, 2)
SOLVER_MAX_ITER = 2000
SOLVER_TOL = 1e-8  # L1 change of the simplex weights between iterations
# inside the square root of the dual as in the paper's code (here the Gram has unit mean diagonal)
SQRT_EPS = 1e-8


class CAGrad(GradientWeighting):
    """Liu, Liu, Jin, Stone & Liu 2021, "Conflict-averse gradient descent for multi-task learning".

    With g0 the mean gradient and radius r = c ||g0||, solves the dual
    min_{w in simplex} g_w . g0 + r ||g_w|| (g_w = sum_i w_i g_i) for any number of tasks with an
    accelerated projected-gradient method (FISTA with backtracking and restarts; numpy only), then
    d = g0 + (r / ||g_w||) g_w. `rescale` as in the paper's code: 0 none, 1 d / (1 + c^2)
    (default), 2 d / (1 + c). `c = 0` gives the mean gradient.
    """

    def __init__(
        self,
        num_tasks: int,
        c: float = 0.4,
        rescale: int = 1,
        rep_grad: bool = False,
        task_names: Sequence[str] | None = None,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(
            num_tasks, rep_grad=rep_grad, task_names=task_names, steps_per_epoch=steps_per_epoch
        )
        if c < 0:
            raise ValueError(f"loss.c: {c} is below the minimum 0.0")
        if rescale not in RESCALES:
            raise ValueError(f"loss.rescale: invalid value '{rescale}'; allowed: 0, 1, 2")
        self.c = float(c)
        self.rescale = int(rescale)

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        num = gram.shape[0]
        mean = np.full(num, 1.0 / num)
        scale = np.trace(gram) / num
        if scale <= 0:  # every task gradient is zero
            return mean
        gram = gram / scale
        radius = self.c * np.sqrt(max(gram.mean(), 0.0))
        w = cagrad_dual(gram, radius)
        gw_norm = np.sqrt(max(w @ gram @ w, 0.0))
        step = radius / gw_norm if gw_norm > 1e-12 else 0.0
        weights = mean + step * w
        divisor = {0: 1.0, 1: 1.0 + self.c**2, 2: 1.0 + self.c}[self.rescale]
        return weights / divisor


def cagrad_dual(gram: np.ndarray, radius: float) -> np.ndarray:
    """argmin over the simplex of F(w) = w.a + radius sqrt(w.M.w + eps), a = M 1/T (M = gram)."""
    num = gram.shape[0]
    linear = gram.mean(axis=1)

    def value(w: np.ndarray) -> float:
        return float(w @ linear + radius * np.sqrt(max(w @ gram @ w, 0.0) + SQRT_EPS))

    def gradient(w: np.ndarray) -> np.ndarray:
        return linear + radius * (gram @ w) / np.sqrt(max(w @ gram @ w, 0.0) + SQRT_EPS)

    x = np.full(num, 1.0 / num)
    y, momentum, lipschitz = x.copy(), 1.0, max(float(np.abs(gram).max()), 1e-12)
    fx = value(x)
    for _ in range(SOLVER_MAX_ITER):
        gy, fy = gradient(y), value(y)
        while True:  # backtracking on the quadratic upper bound
            z = project_to_simplex(y - gy / lipschitz)
            diff = z - y
            fz = value(z)
            if fz <= fy + gy @ diff + 0.5 * lipschitz * (diff @ diff) + 1e-15:
                break
            lipschitz *= 2.0
        if fz > fx:  # adaptive restart: drop the momentum (no momentum left: converged)
            if momentum == 1.0:
                break
            y, momentum = x.copy(), 1.0
            continue
        next_momentum = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * momentum**2))
        y = z + ((momentum - 1.0) / next_momentum) * (z - x)
        change = np.abs(z - x).sum()
        x, fx, momentum = z, fz, next_momentum
        lipschitz *= 0.9  # let the step grow again
        if change < SOLVER_TOL:
            break
    return x


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {w >= 0, sum w = 1} (sort-based, Held et al. 1974)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    k = np.arange(1, len(v) + 1)
    rho = np.nonzero(u - cumulative / k > 0)[0][-1]
    return np.maximum(v - cumulative[rho] / (rho + 1.0), 0.0)
