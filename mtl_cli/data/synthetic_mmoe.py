"""Synthetic regression tasks with controlled correlation (Ma et al., 2018, MMoE, Sec. 3.2)."""

from __future__ import annotations

import numpy as np

# Ma et al. give the procedure but not these values; Google Research's reference generator for
# the paper's data ("Simple generator for synthetic multi-task data", google-research) uses
# c = 1, m = 10, alpha_i = i (i = 1..m), beta_i = (i - 1)^2 and noise std 0.01.
DEFAULT_SCALE = 1.0
DEFAULT_NUM_SINES = 10
DEFAULT_NOISE_STD = 0.01


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for the task weights, the inputs and the label noise."""
    weights, inputs, noise = np.random.SeedSequence(seed).spawn(3)
    return (
        np.random.default_rng(weights),
        np.random.default_rng(inputs),
        np.random.default_rng(noise),
    )


def _equicorrelation_cholesky(num_tasks: int, correlation: float) -> np.ndarray:
    """Lower-triangular L with L L^T = (1 - p) I + p 11^T; zero pivots (p = 1 or p = -1/(T-1),
    the semidefinite ends) give zero columns. For T = 2, L = [[1, 0], [p, sqrt(1 - p^2)]]."""
    gram = np.full((num_tasks, num_tasks), correlation, dtype=np.float64)
    np.fill_diagonal(gram, 1.0)
    factor = np.zeros_like(gram)
    for j in range(num_tasks):  # T x T with T tiny: plain Cholesky that tolerates zero pivots
        pivot = gram[j, j] - factor[j, :j] @ factor[j, :j]
        if pivot <= 1e-12:
            continue
        factor[j, j] = np.sqrt(pivot)
        factor[j + 1 :, j] = (gram[j + 1 :, j] - factor[j + 1 :, :j] @ factor[j, :j]) / factor[j, j]
    return factor


def _check(correlation: float, dim: int, num_tasks: int) -> None:
    if num_tasks < 2:
        raise ValueError(f"num_tasks: must be >= 2; got {num_tasks}")
    if dim < num_tasks:
        raise ValueError(f"dim: {dim} < num_tasks {num_tasks}; allowed: dim >= num_tasks")
    low = -1.0 / (num_tasks - 1)
    if not low <= correlation <= 1.0:
        raise ValueError(
            f"correlation: {correlation} out of range for {num_tasks} tasks; "
            f"allowed: [{low:g}, 1] (pairwise correlations must form a valid Gram matrix)"
        )


def mmoe_task_weights(
    correlation: float,
    seed: int,
    dim: int = 100,
    num_tasks: int = 2,
    scale: float = DEFAULT_SCALE,
) -> np.ndarray:
    """Task weight vectors W float64 [T, dim] with |w_i| = c and cos(w_i, w_j) = p for i != j.

    u_1..u_T are random orthonormal vectors and w_i = c * sum_j L_ij u_j, L the Cholesky factor
    of the equicorrelation matrix; for T = 2 this is the paper's w1 = c u1,
    w2 = c (p u1 + sqrt(1 - p^2) u2) (Ma et al., 2018).
    """
    _check(correlation, dim, num_tasks)
    weights_rng, _, _ = _streams(seed)
    q, r = np.linalg.qr(weights_rng.standard_normal((dim, num_tasks)))
    basis = (q * np.sign(np.diag(r))).T  # rows u_1..u_T: Haar-distributed orthonormal
    return scale * _equicorrelation_cholesky(num_tasks, correlation) @ basis


def make_synthetic_mmoe(
    n: int,
    correlation: float,
    seed: int,
    dim: int = 100,
    num_tasks: int = 2,
    scale: float = DEFAULT_SCALE,
    num_sines: int = DEFAULT_NUM_SINES,
    noise_std: float = DEFAULT_NOISE_STD,
) -> dict[str, np.ndarray]:
    """MMoE synthetic data (Ma et al., 2018): x float32 [n, dim] ~ N(0, I),
    y float32 [n, T] with y_i = w_i^T x + sum_{j=1..m} sin(alpha_j w_i^T x + beta_j) + eps_i.

    Weights from `mmoe_task_weights` (same seed -> same weights), alpha_j = j, beta_j = (j-1)^2,
    eps_i ~ N(0, noise_std^2) independent per task and sample.
    """
    if n < 1:
        raise ValueError(f"n: must be >= 1; got {n}")
    if num_sines < 0:
        raise ValueError(f"num_sines: must be >= 0; got {num_sines}")
    if noise_std < 0:
        raise ValueError(f"noise_std: must be >= 0; got {noise_std}")
    weights = mmoe_task_weights(correlation, seed, dim=dim, num_tasks=num_tasks, scale=scale)
    _, inputs_rng, noise_rng = _streams(seed)
    x = inputs_rng.standard_normal((n, dim))
    linear = x @ weights.T  # [n, T]
    alphas = np.arange(1, num_sines + 1, dtype=np.float64)
    betas = np.arange(num_sines, dtype=np.float64) ** 2
    sines = np.sin(linear[..., None] * alphas + betas).sum(axis=-1)
    y = linear + sines + noise_std * noise_rng.standard_normal((n, num_tasks))
    return {"x": x.astype(np.float32), "y": y.astype(np.float32)}
