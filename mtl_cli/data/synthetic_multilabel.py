"""Synthetic multi-label data from a latent-factor probit model with tunable label correlation and
cardinality (the multivariate-probit construction of Ashford & Sowden, 1970, over linear
features)."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

DEFAULT_SCALE = 3.0  # signal standard deviation of each logit, relative to unit probit noise


def label_directions(num_labels: int, dim: int, correlation: float, seed: int) -> np.ndarray:
    """Unit label directions W float64 [L, dim]: w_l = sqrt(rho) v_0 + sqrt(1 - rho) v_l with v_0
    a shared unit vector and v_l unit vectors orthogonal to v_0 (mutually orthonormal too when
    dim > L), so cos(w_l, w_k) = rho exactly in that case."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])
    shared = rng.standard_normal(dim)
    shared /= np.linalg.norm(shared)
    own = rng.standard_normal((num_labels, dim))
    own -= np.outer(own @ shared, shared)
    if dim > num_labels:
        q, r = np.linalg.qr(own.T)
        own = (q * np.sign(np.diag(r))).T  # orthonormal and still orthogonal to `shared`
    else:
        own /= np.linalg.norm(own, axis=1, keepdims=True)
    return np.sqrt(correlation) * shared + np.sqrt(1.0 - correlation) * own


def make_synthetic_multilabel(
    n: int,
    num_labels: int,
    dim: int,
    correlation: float,
    cardinality: float,
    seed: int,
    scale: float = DEFAULT_SCALE,
) -> dict[str, np.ndarray]:
    """x float32 [n, dim] ~ N(0, I); y bool [n, L] with y_l = [scale * w_l^T x + b + e_l > 0],
    e_l ~ N(0, 1) independent, w_l from `label_directions`.

    Every label has prior P(y_l) = cardinality / L: b = sqrt(1 + scale^2) * Phi^-1(cardinality/L)
    (w_l^T x ~ N(0, 1)), so the expected number of positive labels is exactly `cardinality`.
    The latent logits correlate by rho * scale^2 / (1 + scale^2) between labels.
    """
    if n < 1:
        raise ValueError(f"n: must be >= 1; got {n}")
    if num_labels < 1:
        raise ValueError(f"num_labels: must be >= 1; got {num_labels}")
    if dim < 2:
        raise ValueError(f"dim: must be >= 2; got {dim}")
    if not 0.0 <= correlation <= 1.0:
        raise ValueError(f"correlation: {correlation} out of range; allowed: [0, 1]")
    if not 0.0 < cardinality < num_labels:
        raise ValueError(
            f"cardinality: {cardinality} out of range; allowed: 0 < cardinality < {num_labels}"
        )
    if scale < 0:
        raise ValueError(f"scale: must be >= 0; got {scale}")
    weights = label_directions(num_labels, dim, correlation, seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    x = rng.standard_normal((n, dim))
    bias = np.sqrt(1.0 + scale**2) * NormalDist().inv_cdf(cardinality / num_labels)
    logits = scale * (x @ weights.T) + bias + rng.standard_normal((n, num_labels))
    return {"x": x.astype(np.float32), "y": logits > 0}
