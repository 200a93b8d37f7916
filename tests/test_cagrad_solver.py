"""CAGrad's dual solver against an exact reference (enumeration of the simplex faces).

The dual (Liu et al. 2021) is min_{w in simplex} F(w) = g_w . g0 + r ||g_w||, g_w = sum_i w_i g_i,
r = c ||g0||; the update is d = g0 + (r / ||g_w||) g_w and, by strong duality, the worst-task
improvement min_i g_i . d of the optimal d equals min F. The tests call the pure solver
`cagrad_dual(gram, radius)` on the Gram scaled to unit mean diagonal (as `CAGrad.combination`
does) and rebuild d from its weights; the method's own `combination` is called with a stand-in
`self` holding only its settings, so no test depends on the method's constructor.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from mtl_cli.loss.cagrad import CAGrad, cagrad_dual

C = 0.4


def dual_value(gram: np.ndarray, radius: float, w: np.ndarray) -> float:
    """F(w) = w . M 1/T + radius ||g_w|| on a Gram M (no epsilon: the exact dual)."""
    return float(w @ gram.mean(axis=1) + radius * np.sqrt(max(w @ gram @ w, 0.0)))


def exact_dual(gram: np.ndarray, radius: float) -> np.ndarray:
    """The minimiser of F over the simplex, by the KKT conditions on every face.

    F is convex, so its minimiser is a vertex or a point of some face S where grad F is constant
    (= lambda) on S: a_S + (radius / s) M_S w_S = lambda 1 with s = ||g_w||. Then
    w_S = (lambda u - v) / t with u = M_S^-1 1, v = M_S^-1 a_S, t = lambda sum(u) - sum(v) > 0
    (sum w = 1), and w.M.w = s^2 = radius^2 / t^2 reads lambda^2 sum(u) - 2 lambda sum(v) + a_S.v
    = radius^2. Every feasible candidate of every face is evaluated and the smallest F kept.
    """
    num = gram.shape[0]
    linear = gram.mean(axis=1)
    best, best_value = None, np.inf
    for size in range(1, num + 1):
        for face in itertools.combinations(range(num), size):
            index = list(face)
            candidates = []
            if size == 1:
                candidates.append(np.ones(1))
            else:
                sub = gram[np.ix_(index, index)]
                u = np.linalg.solve(sub, np.ones(size))
                v = np.linalg.solve(sub, linear[index])
                su, sv, av = u.sum(), v.sum(), linear[index] @ v
                disc = sv**2 - su * (av - radius**2)
                if disc < 0:
                    continue
                for lam in ((sv + np.sqrt(disc)) / su, (sv - np.sqrt(disc)) / su):
                    t = lam * su - sv
                    if t > 0:
                        candidates.append((lam * u - v) / t)
            for w_face in candidates:
                if np.any(w_face < 0):
                    continue
                w = np.zeros(num)
                w[index] = w_face
                value = dual_value(gram, radius, w)
                if value < best_value:
                    best, best_value = w, value
    assert best is not None
    return best


def direction(G: np.ndarray, w: np.ndarray, c: float) -> np.ndarray:
    """d = g0 + (c ||g0|| / ||g_w||) g_w (rescale 0)."""
    g0, gw = G.mean(axis=0), w @ G
    return g0 + c * np.linalg.norm(g0) / np.linalg.norm(gw) * gw


def solve(G: np.ndarray, c: float) -> np.ndarray:
    """The solver's weights, called as CAGrad.combination calls it."""
    gram = G @ G.T
    gram = gram / (np.trace(gram) / G.shape[0])
    return cagrad_dual(gram, c * np.sqrt(gram.mean()))


def test_reproducer_reaches_the_optimal_worst_task_improvement():
    # the old solver stopped at the vertex e3 (worst improvement -7.05; KKT violated there)
    G = np.array([[-1.222, 0.419, -3.315], [-33.378, 97.482, 9.602], [0.045, -0.015, 0.011]])
    gram, radius = G @ G.T, C * np.linalg.norm(G.mean(axis=0))
    reference = exact_dual(gram, radius)
    best = dual_value(gram, radius, reference)
    # strong duality certifies the reference: its d attains the dual value
    assert (G @ direction(G, reference, C)).min() == pytest.approx(best, rel=1e-9)
    assert best == pytest.approx(-0.31782, rel=1e-4)

    w = solve(G, C)
    assert dual_value(gram, radius, w) == pytest.approx(best, rel=1e-6)
    assert (G @ direction(G, w, C)).min() == pytest.approx(best, rel=1e-4)
    d, d_ref = direction(G, w, C), direction(G, reference, C)
    assert np.linalg.norm(d - d_ref) <= 1e-4 * np.linalg.norm(d_ref)

    # the same through the method's combination (rescale 0): d = (mean + step w) G
    settings = SimpleNamespace(c=C, rescale=0)
    weights = CAGrad.combination(settings, gram, np.ones(3), np.arange(3))
    d = weights @ G
    assert np.linalg.norm(d - d_ref) <= 1e-4 * np.linalg.norm(d_ref)
    assert (G @ d).min() == pytest.approx(best, rel=1e-4)


def random_case(seed: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(seed)
    num, dim = int(rng.integers(2, 5)), int(rng.integers(5, 11))
    G = rng.normal(size=(num, dim)) * 10.0 ** rng.uniform(-2, 2, size=(num, 1))
    return G, float(rng.choice([0.2, 0.4, 0.8]))


def test_random_gradients_match_the_exact_dual():
    # task-gradient norms spread by 10^U(-2, 2); the old solver was off on 7 of 150
    failures = []
    for seed in range(150):
        G, c = random_case(seed)
        gram = G @ G.T
        gram = gram / (np.trace(gram) / G.shape[0])
        radius = c * np.sqrt(gram.mean())
        reference = exact_dual(gram, radius)
        best = dual_value(gram, radius, reference)
        # the reference's d attains the dual value (strong duality): it is optimal
        primal = (G @ direction(G, reference, c)).min() / (np.trace(G @ G.T) / G.shape[0])
        assert primal == pytest.approx(best, rel=1e-8, abs=1e-14), seed
        value = dual_value(gram, radius, solve(G, c))
        if abs(value - best) > 1e-6 * abs(best):
            failures.append((seed, value, best))
    assert not failures
