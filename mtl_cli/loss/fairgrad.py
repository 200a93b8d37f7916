"""FairGrad: alpha-fair allocation of the update among tasks, (G G^T) w = w^(-1/alpha)."""

from __future__ import annotations

import numpy as np

from mtl_cli.loss.base import GradientWeighting
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings

RIDGE = 1e-8  # added to the diagonal of G G^T / ||G G^T||_F; keeps the problem bounded


class FairGrad(GradientWeighting):
    """Ban & Ji 2024, "Fair Resource Allocation in Multi-Task Learning" (ICML 2024):
    d = sum_i w_i g_i with w > 0 solving (G G^T) w = w^(-1/alpha) (elementwise power).

    The update maximises sum_i u_alpha(g_i . d) over ||d|| <= const, with the alpha-fair utility
    u_alpha(x) = x^(1-alpha) / (1-alpha) (log x at alpha = 1: proportional fairness, the
    equation of Nash-MTL; alpha -> inf: max-min fairness, equal g_i . d). Instead of the
    official code's scipy least_squares on the residual (started at w = 1/T), w is the unique
    minimiser of the strictly convex f(w) = 1/2 w^T M w - sum_i phi(w_i) with
    phi'(w) = w^(-1/alpha) (phi = log at alpha = 1), whose stationarity condition is the
    equation. Damped Newton steps start from the closed form for orthogonal gradients,
    w_i = M_ii^(-alpha/(alpha+1)), stop at the fraction 0.99 of the way to the boundary w = 0,
    and backtrack until Armijo holds or f is still decreasing at the new point (a test immune to
    round-off in f), until max_i |w_i^(1/alpha) (M w)_i - 1| <= `tol` (logged as
    `fairgrad/residual`) or `max_iter` steps. M is G G^T scaled to unit Frobenius norm plus a
    1e-8 ridge; w is scaled back exactly (w = s^(-alpha/(alpha+1)) w_M for M = G G^T / s). A task
    with a zero gradient gets w_i = 0. Checked on random problems with T <= 10, including
    near-collinear and rank-deficient G: the residual reaches 1e-6 for every alpha in [0.5, 10]
    (full-rank G: [0.25, 10]). For small alpha with rank-deficient G a task's (M w)_i can be
    ~1e-16 of the scale, below what double precision resolves, and the residual stays large
    although Newton has converged; for alpha ~ 100 tasks the max-min solution drops get w -> 0
    geometrically and may need more than 100 steps.

    Deviation from the official code (OptMN-Lab/fairgrad), which multiplies d by the number of
    tasks and then clips the shared gradient to norm 1 (inherited from Nash-MTL's training code):
    this follows the paper's Algorithm 1, d = G^T w, unscaled and unclipped (`trainer.grad_clip`
    clips all gradients). Defaults: `alpha` 1.0 is the official code's (and LibMTL's) default;
    its CelebA and QM9 scripts use 2.0.
    """

    def __init__(
        self,
        alpha: float = schema.FairGrad.alpha,
        tol: float = schema.FairGrad.tol,
        max_iter: int = schema.FairGrad.max_iter,
        rep_grad: bool = schema.FairGrad.rep_grad,
    ) -> None:
        super().__init__(rep_grad=rep_grad)
        check_settings(schema.FairGrad, alpha=alpha, tol=tol, max_iter=max_iter)
        self.alpha = float(alpha)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        #: max_i |w_i^(1/alpha) (M w)_i - 1| of the latest solve
        self.last_residual: float | None = None

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        weights, self.last_residual = fairgrad_weights(gram, self.alpha, self.tol, self.max_iter)
        return weights

    def solver_diagnostics(self) -> dict[str, float]:
        return {} if self.last_residual is None else {"fairgrad/residual": self.last_residual}


def fairgrad_weights(
    gram: np.ndarray, alpha: float = 1.0, tol: float = 1e-6, max_iter: int = 100
) -> tuple[np.ndarray, float]:
    """w > 0 with (gram) w = w^(-1/alpha) (zero for zero-gradient tasks) and its residual
    max_i |w_i^(1/alpha) (gram w)_i - 1| (on the scaled, ridged Gram matrix)."""
    num = gram.shape[0]
    weights = np.zeros(num)
    diag = np.diag(gram)
    active = diag > 1e-12 * max(float(diag.max()), 1e-300)
    if not active.any():
        return weights, 0.0
    m = gram[np.ix_(active, active)]
    scale = float(np.linalg.norm(m))
    m = m / scale + RIDGE * np.eye(len(m))
    power = 1.0 / alpha  # the equation is M w = w^(-power)

    def phi(w: np.ndarray) -> np.ndarray:  # phi'(w) = w^(-power), concave
        if alpha == 1.0:
            return np.log(w)
        return w ** (1.0 - power) / (1.0 - power)

    def objective(w: np.ndarray) -> float:
        return 0.5 * w @ m @ w - float(phi(w).sum())

    def descends(w: np.ndarray, step: np.ndarray, t: float, f0: float, slope: float) -> bool:
        """Armijo, or (immune to cancellation in f) f still decreasing at w + t step: f is
        convex along the line, so a non-positive slope there means f fell all the way."""
        trial = w + t * step
        if objective(trial) <= f0 + 1e-4 * t * slope:
            return True
        return float(step @ (m @ trial - trial ** (-power))) <= 0.0

    def residual_of(w: np.ndarray) -> float:
        return float(np.abs(w**power * (m @ w) - 1.0).max())

    w = np.diag(m) ** (-alpha / (alpha + 1.0))  # exact when the gradients are orthogonal
    residual = residual_of(w)
    for _ in range(max_iter):
        if residual <= tol:
            break
        grad = m @ w - w ** (-power)
        hessian = m + np.diag(power * w ** (-power - 1.0))
        step = -np.linalg.solve(hessian, grad)
        shrink = step < 0
        t = min(1.0, 0.99 * float(np.min(-w[shrink] / step[shrink]))) if shrink.any() else 1.0
        f0, slope = objective(w), float(grad @ step)
        while t > 1e-12 and not descends(w, step, t, f0, slope):
            t *= 0.5
        w = w + t * step
        residual = residual_of(w)
    weights[active] = w * scale ** (-alpha / (alpha + 1.0))
    return weights, residual
