"""Euclidean projection onto the probability simplex, shared by the methods that keep task weights
on it (CAGrad's dual, MoCo, MoDo, SDMGrad)."""

from __future__ import annotations

import numpy as np


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """argmin_{w >= 0, sum w = 1} ||w - v|| (sort-based, Held, Wolfe & Crowder 1974)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    k = np.arange(1, len(v) + 1)
    rho = np.nonzero(u - cumulative / k > 0)[0][-1]
    return np.maximum(v - cumulative[rho] / (rho + 1.0), 0.0)
