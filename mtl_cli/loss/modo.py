"""MoDo: multi-objective gradient with double sampling."""

from __future__ import annotations

from typing import Self

import numpy as np
import torch
from torch import Tensor

from mtl_cli.loss.base import GradientWeighting, TaskSetup
from mtl_cli.loss.simplex import project_to_simplex
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class MoDo(GradientWeighting):
    """Chen, Fernando, Ying & Chen 2023, "Three-Way Trade-Off in Multi-Objective Learning:
    Optimization, Generalization and Conflict-Avoidance" (NeurIPS), Algorithm 1.

    Each step draws three independent batches z1, z2, z3 of the same tasks (the trainer does,
    from `samples_per_step`): the weights take one projected step
    lambda <- Proj_simplex(lambda - gamma (G(z1) G(z2)^T lambda + rho lambda)), and the update is
    d = G(z3)^T lambda with the new weights. Double sampling makes G(z1) G(z2)^T an unbiased
    estimate of the Gram matrix, which a single batch's G G^T is not. lambda starts at 1/T and is
    checkpointed. Here z3 is the step's first batch (`losses`, whose task-specific parameters get
    their own gradient, as the paper updates all parameters with z3) and z1, z2 are
    `extra_losses`; with no extra samples (a direct call) the step's G serves as all three, the
    full-batch limit. `gamma` and `rho` defaults: the authors' code as released in LibMTL
    (gamma 1e-3, rho 0.1). Cost: three forward passes and 3T backward passes per step.
    """

    samples_per_step = schema.MoDo.samples_per_step

    def __init__(self, gamma: float = schema.MoDo.gamma, rho: float = schema.MoDo.rho) -> None:
        super().__init__(rep_grad=False)
        check_settings(schema.MoDo, gamma=gamma, rho=rho)
        self.gamma = float(gamma)
        self.rho = float(rho)

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
        cross = (first @ second.T).detach().double().cpu().numpy()  # G(z1) G(z2)^T [T, T]
        where = index.to(self.weights_.device)
        lam = self.weights_[where].cpu().numpy()
        lam = project_to_simplex(lam - self.gamma * (cross @ lam + self.rho * lam))
        self.weights_[where] = torch.as_tensor(lam, dtype=self.weights_.dtype).to(where.device)
        weights = torch.as_tensor(lam, dtype=G.dtype, device=G.device)
        return weights @ G, weights

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        raise NotImplementedError("MoDo combines the samples' task gradients in _aggregate")
