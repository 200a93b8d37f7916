"""SDMGrad: stochastic direction-oriented multi-objective gradient descent."""

from __future__ import annotations

from typing import Self

import numpy as np
import torch
from torch import Tensor

from mtl_cli.loss.base import GradientWeighting, TaskSetup
from mtl_cli.loss.simplex import project_to_simplex
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class SDMGrad(GradientWeighting):
    """Xiao, Ban & Ji 2023, "Direction-oriented Multi-objective Learning: Simple and Provable
    Stochastic Algorithms" (NeurIPS), SDMGrad with its stochastic double sampling.

    The update d = (G(zeta)^T w + lamda g0(zeta)) / (1 + lamda) stays near the mean gradient g0
    (regularisation `lamda`; 0 gives an MGDA-like direction, large values the mean). The weights w
    on the simplex take `niter` projected steps of heavy-ball SGD (rate `w_lr`, momentum
    `w_momentum`, momentum restarted each step, w itself kept across steps and checkpointed) on
    the objective whose gradient is M w + lamda M 1/T, with M = G(xi1) G(xi2)^T normalised by the
    squared mean task-gradient norm: double sampling makes M an unbiased estimate of G G^T.
    zeta is the step's first batch (`losses`; task-specific parameters get its gradient), xi1,
    xi2 the `extra_losses`; with no extra samples the step's G serves as all three. Defaults as in
    the authors' code (released in LibMTL): lamda 0.3, niter 20, w_lr 5, w_momentum 0.5.
    Cost: three forward passes and 3T backward passes per step.
    """

    samples_per_step = schema.SDMGrad.samples_per_step

    def __init__(
        self,
        lamda: float = schema.SDMGrad.lamda,
        niter: int = schema.SDMGrad.niter,
        w_lr: float = schema.SDMGrad.w_lr,
        w_momentum: float = schema.SDMGrad.w_momentum,
    ) -> None:
        super().__init__(rep_grad=False)
        check_settings(schema.SDMGrad, lamda=lamda, niter=niter, w_lr=w_lr, w_momentum=w_momentum)
        self.lamda = float(lamda)
        self.niter = int(niter)
        self.w_lr = float(w_lr)
        self.w_momentum = float(w_momentum)

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        self.register_buffer(
            "weights_", torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=torch.float64)
        )
        return self

    def _aggregate(
        self, G: Tensor, losses: Tensor, index: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        if index is None:
            index = torch.arange(G.shape[0])
        first, second = (self.sample_gradients + [G, G])[:2]
        cross = (first @ second.T).detach().double().cpu().numpy()
        where = index.to(self.weights_.device)
        w = sdmgrad_weights(cross, self.weights_[where].cpu().numpy(), self)
        self.weights_[where] = torch.as_tensor(w, dtype=self.weights_.dtype).to(where.device)
        num = G.shape[0]
        effective = (w + self.lamda / num) / (1.0 + self.lamda)  # d = effective @ G
        weights = torch.as_tensor(effective, dtype=G.dtype, device=G.device)
        return weights @ G, weights

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        raise NotImplementedError("SDMGrad combines the samples' task gradients in _aggregate")


def sdmgrad_weights(cross: np.ndarray, w: np.ndarray, options: SDMGrad) -> np.ndarray:
    """`niter` projected heavy-ball steps on w from the cross-sample matrix G(xi1) G(xi2)^T."""
    norms = np.sqrt(np.clip(np.diag(cross), 0.0, None))
    scale = float(norms.mean()) ** 2 + 1e-8
    m = cross / scale
    pull = m.mean(axis=1)  # M 1/T: the direction-oriented term
    velocity = np.zeros_like(w)
    for _ in range(options.niter):
        gradient = m @ w + options.lamda * pull
        velocity = options.w_momentum * velocity + gradient  # torch.optim.SGD's heavy ball
        w = project_to_simplex(w - options.w_lr * velocity)
    return w
