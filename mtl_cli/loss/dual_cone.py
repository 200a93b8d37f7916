"""Projection onto the dual cone of the task gradients, computed on their Gram matrix.

The dual cone of the rows g_1..g_T of G is {x : G x >= 0}: the updates that conflict with no task.
By Proposition 1 of Quinton & Rey 2024 ("Jacobian descent for multi-objective optimization"), the
projection of G^T u onto it is G^T v with v the solution of the quadratic program

    minimise v^T M v  subject to  v >= u,     M = G G^T,

which needs M only. With v = u + s it is the non-negative least-squares problem
min_{s >= 0} ||R s + R u||^2 for any R with R^T R = M, solved here exactly by the Lawson-Hanson
active-set method written on M itself (no factor R is formed): the passive set holds the tasks
whose constraint g_i . d >= 0 is tight (v_i > u_i, g_i . d = 0), each step adds the most
conflicting task (the most negative g_i . d) and solves the equality-constrained problem on the
passive set. For the T <= a few dozen tasks of a step this ends in at most a few T steps and is
exact to rounding; no QP library (quadprog, cvxpy) is needed.
"""

from __future__ import annotations

import numpy as np


def normalize_gram(gram: np.ndarray, norm_eps: float) -> np.ndarray:
    """G G^T of G / ||G||_F (divided by its trace), or zeros when the trace is below `norm_eps`
    (or zero) -- TorchJD's `normalize`."""
    gram = 0.5 * (gram + gram.T)
    trace = float(np.trace(gram))
    if trace < norm_eps or trace <= 0.0:
        return np.zeros_like(gram)
    return gram / trace


def regularize_gram(gram: np.ndarray, reg_eps: float) -> np.ndarray:
    """gram + reg_eps I (positive definite when reg_eps > 0) -- TorchJD's `regularize`."""
    return gram + reg_eps * np.eye(len(gram))


def project_weights(gram: np.ndarray, u: np.ndarray, max_steps: int | None = None) -> np.ndarray:
    """v >= u minimising v^T gram v (gram symmetric positive semi-definite, u >= 0 typically):
    G^T v is the projection of G^T u onto the dual cone {x : G x >= 0}.

    At the solution, with lam = gram @ v (= G d, the inner products g_i . d):
    lam >= 0, v >= u and lam_i (v_i - u_i) = 0 (to rounding). When gram is singular the optimal
    v need not be unique; the projection G^T v is.
    """
    gram = 0.5 * (gram + gram.T)
    u = np.asarray(u, dtype=np.float64)
    num = len(u)
    if num == 0:
        return u.copy()
    scale = float(np.abs(np.diag(gram)).max(initial=0.0))
    if scale == 0.0:
        return u.copy()
    # inner products below this are zero to rounding (gram ~ 1, v ~ |u|)
    tol = 64.0 * num * np.finfo(np.float64).eps * scale * max(float(np.abs(u).max()), 1e-300)
    mu = gram @ u  # lam at s = 0
    s = np.zeros(num)
    passive = np.zeros(num, dtype=bool)
    blocked = np.zeros(num, dtype=bool)  # added with a non-positive solution (rounding): skip
    max_steps = 10 * num + 10 if max_steps is None else max_steps
    for _ in range(max_steps):
        lam = mu + gram @ s
        candidates = ~passive & ~blocked & (lam < -tol)
        if not candidates.any():
            break
        j = int(np.argmin(np.where(candidates, lam, np.inf)))
        passive[j] = True
        added = j
        for _ in range(num + 1):  # inner loop: restore feasibility (s >= 0) on the passive set
            z = _solve_on(gram, mu, passive)
            if added is not None and z[added] <= 0.0:  # cannot enter (rounding): leave it out
                passive[added] = False
                blocked[added] = True
                break
            added = None
            if (z[passive] > 0.0).all():
                s = z
                blocked[:] = False  # s moved: every task may be tried again
                break
            # move from s towards z until the first passive s_q reaches 0; q leaves P
            leaving = np.flatnonzero(passive & (z <= 0.0))
            ratios = s[leaving] / (s[leaving] - z[leaving])
            first = int(np.argmin(ratios))
            s = s + ratios[first] * (z - s)
            s[leaving[first]] = 0.0
            passive &= s > 0.0
            s[~passive] = 0.0
    return u + s


def _solve_on(gram: np.ndarray, mu: np.ndarray, passive: np.ndarray) -> np.ndarray:
    """s with s = 0 off the passive set P and (gram (u + s))_P = 0 on it (the minimiser of
    (u + s)^T gram (u + s) with s free on P; least squares when gram_PP is singular)."""
    z = np.zeros(len(mu))
    where = np.flatnonzero(passive)
    if len(where):
        sub = gram[np.ix_(where, where)]
        z[where] = np.linalg.lstsq(sub, -mu[where], rcond=None)[0]
    return z
