"""CAGrad: the update within a ball around the mean gradient that best improves the worst task."""

from __future__ import annotations

import numpy as np

from mtl_cli.loss.base import GradientWeighting
from mtl_cli.loss.simplex import project_to_simplex
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings

SOLVER_MAX_ITER = 2000
BACKTRACK_MAX = 200  # doublings of the step's Lipschitz estimate per iteration
# stop when the Frank-Wolfe gap w.grad F(w) - min_i grad_i F(w) (a KKT measure; it bounds
# F(w) - min F) is below this fraction of the Gram's mean diagonal
SOLVER_TOL = 1e-12
# inside the square root of the dual, as a fraction of the Gram's mean diagonal: it only keeps the
# gradient finite at g_w = 0. (The paper's code adds 1e-8 to an unscaled ||g_w||^2; a fixed 1e-8
# on the unit-mean-diagonal Gram moves the optimum visibly once a task's gradient is 1e-4 of the
# others' in squared norm.)
SQRT_EPS = 1e-20


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
        c: float = schema.CAGrad.c,
        rescale: int = schema.CAGrad.rescale,
        rep_grad: bool = schema.CAGrad.rep_grad,
    ) -> None:
        super().__init__(rep_grad=rep_grad)
        check_settings(schema.CAGrad, c=c, rescale=rescale)
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
    """argmin over the simplex of F(w) = w.a + radius sqrt(w.M.w + eps), a = M 1/T (M = gram).

    Accelerated projected gradient (FISTA with backtracking and adaptive restarts), stopped on a
    KKT measure, never on the change between iterates (FISTA's momentum can bring it back to a
    vertex that is not optimal): the Frank-Wolfe gap w.grad F(w) - min_i grad_i F(w), zero exactly
    at the KKT point (grad_i F >= lambda for every i, with equality where w_i > 0) and an upper
    bound on F(w) - min F. Whenever the iterate's support changes, the point of that face where
    grad F is constant is solved in closed form and returned if its gap passes: exact once the
    support is right, where FISTA alone is slow (a short optimal g_w makes F stiff). Otherwise the
    iterate is returned at the iteration cap or when not even a plain projected-gradient step from
    it descends any more (floating-point limit; also at a kink g_w = 0, where the gap says nothing).
    """
    gram = np.asarray(gram, dtype=np.float64)
    num = gram.shape[0]
    scale = float(np.trace(gram)) / num
    x = np.full(num, 1.0 / num)
    if num == 1 or scale <= 0:
        return x
    linear = gram.mean(axis=1)
    eps, tol = SQRT_EPS * scale, SOLVER_TOL * scale

    def value(w: np.ndarray) -> float:
        return float(w @ linear + radius * np.sqrt(max(w @ gram @ w, 0.0) + eps))

    def gradient(w: np.ndarray) -> np.ndarray:
        return linear + radius * (gram @ w) / np.sqrt(max(w @ gram @ w, 0.0) + eps)

    def kkt_gap(w: np.ndarray) -> float:
        g = gradient(w)
        return float(w @ g - g.min())

    fx = value(x)
    y, momentum, lipschitz = x.copy(), 1.0, max(float(np.abs(gram).max()), 1e-300)
    tried: set[tuple[int, ...]] = set()
    for _ in range(SOLVER_MAX_ITER):
        if kkt_gap(x) <= tol:
            return x
        support = tuple(int(i) for i in np.flatnonzero(x > 0))
        if radius > 0 and support not in tried:
            tried.add(support)
            w = _face_stationary_point(gram, linear, radius, eps, support)
            if w is not None and kkt_gap(w) <= tol:
                return w
        gy, fy = gradient(y), value(y)
        slack = 1e-15 * (scale + abs(fy))  # rounding in F
        for _ in range(BACKTRACK_MAX):  # backtracking on the quadratic upper bound
            z = project_to_simplex(y - gy / lipschitz)
            diff = z - y
            fz = value(z)
            if fz <= fy + gy @ diff + 0.5 * lipschitz * (diff @ diff) + slack:
                break
            lipschitz *= 2.0
        if fz > fx:  # adaptive restart: drop the momentum
            if momentum == 1.0:  # a plain step from x does not descend: nothing left to gain
                break
            y, momentum = x.copy(), 1.0
            continue
        next_momentum = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * momentum**2))
        y = z + ((momentum - 1.0) / next_momentum) * (z - x)
        x, fx, momentum = z, fz, next_momentum
        lipschitz *= 0.9  # let the step grow again
    return x


def _face_stationary_point(
    gram: np.ndarray, linear: np.ndarray, radius: float, eps: float, support: tuple[int, ...]
) -> np.ndarray | None:
    """The point of the face {w_i = 0 off `support`} where grad F is constant on the support, or
    None. With s = sqrt(w.M.w + eps): M_S w_S = (s / radius)(lambda 1 - a_S), so
    w_S = (lambda u - v) / t with u = M_S^-1 1, v = M_S^-1 a_S, t = lambda sum(u) - sum(v) > 0
    (from sum w = 1), and s^2 = radius^2 / t^2 gives a quadratic in lambda."""
    num = gram.shape[0]
    index = list(support)
    if len(index) == 1:
        w = np.zeros(num)
        w[index[0]] = 1.0
        return w
    sub = gram[np.ix_(index, index)]
    diag = np.sqrt(np.diag(sub))
    if not np.all(diag > 0):
        return None
    scaled = sub / np.outer(diag, diag)  # unit diagonal: better conditioned solves
    try:
        u = np.linalg.solve(scaled, 1.0 / diag) / diag
        v = np.linalg.solve(scaled, linear[index] / diag) / diag
    except np.linalg.LinAlgError:
        return None
    su, sv, av = u.sum(), v.sum(), linear[index] @ v
    # lambda^2 su - 2 lambda sv + av + eps t^2 = radius^2
    qa, qb = su + eps * su**2, -2.0 * sv * (1.0 + eps * su)
    qc = av + eps * sv**2 - radius**2
    disc = qb * qb - 4.0 * qa * qc
    if not (np.isfinite(disc) and disc >= 0 and qa != 0):
        return None
    best, best_value = None, np.inf
    for lam in ((-qb + np.sqrt(disc)) / (2.0 * qa), (-qb - np.sqrt(disc)) / (2.0 * qa)):
        t = lam * su - sv
        if not t > 0:
            continue
        w_s = (lam * u - v) / t
        if np.any(w_s < 0):
            continue
        w = np.zeros(num)
        w[index] = w_s / w_s.sum()
        f = w @ linear + radius * np.sqrt(max(w @ gram @ w, 0.0) + eps)
        if f < best_value:
            best, best_value = w, f
    return best
