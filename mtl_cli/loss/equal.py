"""Equal weighting: the plain mean (or sum) of the task losses."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_cli.loss.base import LossWeighting
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class Equal(LossWeighting):
    """Uniform task weights (the linear-scalarisation baseline, e.g. Caruana 1997).

    `reduction="mean"` (default): w_i = 1/T for the T tasks of the step; `"sum"`: w_i = 1.
    """

    def __init__(self, reduction: str = schema.Equal.reduction) -> None:
        super().__init__()
        check_settings(schema.Equal, reduction=reduction)
        self.reduction = reduction

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        value = 1.0 / len(index) if self.reduction == "mean" else 1.0
        return torch.full_like(losses, value)
