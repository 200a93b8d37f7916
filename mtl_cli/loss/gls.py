"""Geometric Loss Strategy: minimise the geometric mean of the task losses."""

from __future__ import annotations

from torch import Tensor

from mtl_cli.loss.base import LossWeighting

MIN_LOSS = 1e-12  # losses are floored here inside the logarithm (a zero loss has no log)


class GLS(LossWeighting):
    """Chennupati, Sistu, Yogamani & Rawashdeh 2019, "MultiNet++: Multi-Stream Feature
    Aggregation and Geometric Loss Strategy for Multi-Task Learning" (CVPR 2019 workshops):
    minimise the geometric mean of the step's T task losses, GM = (prod_i L_i)^(1/T).

    Its gradient is sum_i w_i grad L_i with w_i = GM / (T L_i) (the logged weights): a task's
    weight falls as its loss grows, and scaling one task's loss by c scales the whole update by
    c^(1/T) without turning it, so the direction does not depend on the losses' units. GM is
    computed as exp(mean_i log L_i) and backpropagated as sum_i w_i L_i (same gradient, no
    overflow or underflow of the product). LibMTL's GLS.py logs L_i / (T prod_j L_j) as the
    weights; those are not the coefficients of its own update, which are the w_i above.
    """

    def objective(self, losses: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        values = losses.detach().double().clamp_min(MIN_LOSS)
        geometric_mean = values.log().mean().exp()
        weights = (geometric_mean / (len(values) * values)).to(losses.dtype)
        return (weights * losses).sum(), weights
