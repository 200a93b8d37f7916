"""Synthetic MMoE regression (Ma et al., 2018) and latent-factor multi-label data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtl_cli.data.synthetic_mmoe import make_synthetic_mmoe, mmoe_task_weights
from mtl_cli.data.synthetic_multilabel import label_directions, make_synthetic_multilabel


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


# ---------------------------------------------------------------- MMoE


def test_mmoe_shapes_dtypes_and_determinism():
    a = make_synthetic_mmoe(100, 0.5, seed=3, dim=20, num_tasks=3)
    b = make_synthetic_mmoe(100, 0.5, seed=3, dim=20, num_tasks=3)
    c = make_synthetic_mmoe(100, 0.5, seed=4, dim=20, num_tasks=3)
    assert a["x"].shape == (100, 20) and a["y"].shape == (100, 3)
    assert a["x"].dtype == np.float32 and a["y"].dtype == np.float32
    np.testing.assert_array_equal(a["y"], b["y"])
    assert not np.allclose(a["y"], c["y"])


@pytest.mark.parametrize("p", [-1.0, -0.3, 0.0, 0.5, 1.0])
def test_two_task_weights_follow_the_paper(p):
    w1, w2 = mmoe_task_weights(p, seed=0, dim=50, scale=2.0)
    c = 2.0
    u1 = w1 / c
    assert math.isclose(np.linalg.norm(u1), 1.0, rel_tol=1e-12)
    # w2 = c (p u1 + sqrt(1 - p^2) u2) with u2 a unit vector orthogonal to u1.
    residual = w2 / c - p * u1
    assert math.isclose(float(residual @ u1), 0.0, abs_tol=1e-12)
    assert math.isclose(np.linalg.norm(residual), math.sqrt(1 - p * p), abs_tol=1e-12)


def test_many_task_weights_are_equicorrelated():
    weights = mmoe_task_weights(0.3, seed=1, dim=40, num_tasks=5, scale=1.5)
    gram = weights @ weights.T / 1.5**2
    expected = np.full((5, 5), 0.3) + 0.7 * np.eye(5)
    np.testing.assert_allclose(gram, expected, atol=1e-12)
    edge = mmoe_task_weights(-0.25, seed=1, dim=40, num_tasks=5)  # p = -1/(T-1): degenerate
    np.testing.assert_allclose(edge.sum(axis=0), 0.0, atol=1e-12)


@pytest.mark.parametrize("p", [-0.5, 0.0, 0.5, 0.9])
def test_linear_parts_correlate_like_p(p):
    data = make_synthetic_mmoe(20000, p, seed=0)
    linear = data["x"].astype(np.float64) @ mmoe_task_weights(p, seed=0).T
    assert abs(pearson(linear[:, 0], linear[:, 1]) - p) < 0.03


def test_label_correlation_decreases_with_p():
    corr = [
        pearson(*make_synthetic_mmoe(20000, p, seed=5)["y"].T) for p in (1.0, 0.9, 0.5, 0.0, -0.5)
    ]
    assert corr[0] > 0.99  # identical tasks up to the 0.01 noise
    assert all(a > b + 0.05 for a, b in zip(corr, corr[1:], strict=False))


def test_labels_match_the_formula_computed_by_hand():
    data = make_synthetic_mmoe(5, 0.4, seed=2, dim=8, noise_std=0.0)
    weights = mmoe_task_weights(0.4, seed=2, dim=8)
    x = data["x"].astype(np.float64)
    for row in range(5):
        for task in range(2):
            z = float(weights[task] @ x[row])
            y = z + sum(math.sin(j * z + (j - 1) ** 2) for j in range(1, 11))
            assert math.isclose(float(data["y"][row, task]), y, rel_tol=1e-5, abs_tol=1e-5)
    linear_only = make_synthetic_mmoe(5, 0.4, seed=2, dim=8, num_sines=0, noise_std=0.0)
    np.testing.assert_allclose(linear_only["y"], x @ weights.T, rtol=1e-5, atol=1e-6)


def test_noise_has_the_requested_std():
    clean = make_synthetic_mmoe(20000, 0.2, seed=9, noise_std=0.0)["y"].astype(np.float64)
    noisy = make_synthetic_mmoe(20000, 0.2, seed=9, noise_std=0.5)["y"].astype(np.float64)
    assert abs((noisy - clean).std() - 0.5) < 0.01


def test_mmoe_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"correlation: 1.5 out of range for 2 tasks"):
        make_synthetic_mmoe(10, 1.5, seed=0)
    with pytest.raises(ValueError, match=r"allowed: \[-0.333333, 1\]"):
        make_synthetic_mmoe(10, -0.5, seed=0, num_tasks=4)
    with pytest.raises(ValueError, match="dim: 2 < num_tasks 3"):
        make_synthetic_mmoe(10, 0.0, seed=0, dim=2, num_tasks=3)


# ---------------------------------------------------------------- multi-label


def test_multilabel_shapes_and_directions():
    data = make_synthetic_multilabel(
        50, num_labels=6, dim=12, correlation=0.4, cardinality=2, seed=0
    )
    assert data["x"].shape == (50, 12) and data["x"].dtype == np.float32
    assert data["y"].shape == (50, 6) and data["y"].dtype == bool
    weights = label_directions(6, 12, 0.4, seed=0)
    gram = weights @ weights.T
    np.testing.assert_allclose(gram, np.full((6, 6), 0.4) + 0.6 * np.eye(6), atol=1e-12)
    few_dims = label_directions(10, 4, 0.4, seed=0)  # dim <= L: unit norm, approximate angles
    np.testing.assert_allclose(np.linalg.norm(few_dims, axis=1), 1.0)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("cardinality", [1.0, 3.5])
def test_mean_label_count_is_the_cardinality(rho, cardinality):
    y = make_synthetic_multilabel(40000, 10, 32, rho, cardinality, seed=1)["y"]
    # var(count) <= L^2/4 even with fully correlated labels: 0.06 is >= 2.4 sigma (fixed seed).
    assert abs(y.sum(axis=1).mean() - cardinality) < 0.06
    np.testing.assert_allclose(y.mean(axis=0), cardinality / 10, atol=0.03)


def test_label_correlation_grows_with_correlation():
    def mean_pairwise(rho: float) -> float:
        y = make_synthetic_multilabel(20000, 8, 32, rho, 2.0, seed=4)["y"].astype(np.float64)
        corr = np.corrcoef(y.T)
        return float(corr[np.triu_indices(8, 1)].mean())

    low, mid, high = mean_pairwise(0.0), mean_pairwise(0.5), mean_pairwise(0.9)
    assert abs(low) < 0.03
    assert low + 0.1 < mid and mid + 0.1 < high


def test_multilabel_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"cardinality: 5 out of range; allowed: 0 < cardinality"):
        make_synthetic_multilabel(10, 5, 8, 0.5, 5, seed=0)
    with pytest.raises(ValueError, match=r"correlation: -0.1 out of range; allowed: \[0, 1\]"):
        make_synthetic_multilabel(10, 5, 8, -0.1, 2, seed=0)
