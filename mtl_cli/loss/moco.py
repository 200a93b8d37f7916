"""MoCo: a min-norm combination of tracked (averaged) task gradients, with weights that move by
projected gradient steps."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import torch
from torch import Tensor

from mtl_cli.loss.base import GradientWeighting, TaskSetup
from mtl_cli.loss.simplex import project_to_simplex
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class MoCo(GradientWeighting):
    """Fernando, Shen, Liu, Chaudhury, Murugesan & Chen 2023, "Mitigating gradient bias in
    multi-objective learning: a provably convergent approach" (ICLR; Algorithm 1, MoCo).

    At step k (from 1) with task gradients G [T, P] on the shared parameters:
    Y <- Y - beta_k (Y - G) (tracking variables, Y starts at 0),
    lambda <- Proj_simplex(lambda - gamma_k (Y Y^T + rho I) lambda) (lambda starts uniform),
    and the shared parameters receive d = Y^T lambda. beta_k = `beta` / k^`beta_decay` and
    gamma_k = `gamma` / k^`gamma_decay` (0: constant). With beta_k = 1 and rho = 0 the lambda
    iteration is projected gradient descent on 1/2 ||G^T lambda||^2, whose fixed point is MGDA's
    min-norm weights. The logged weights are lambda (d combines Y, not this step's G).

    Y [T, P] and lambda [T] are buffers (Y is sized at the first step), indexed by task: a step
    with a subset of the tasks updates only their rows and uses their lambdas projected onto the
    simplex of the step's tasks. Needs G itself, so it overrides `_aggregate`. `rep_grad` is
    refused: tracked gradients of the representation would average different examples' features
    (LibMTL refuses it too). Defaults are those of the authors' shared code as released in LibMTL
    (beta 0.5 and gamma 0.1, both decaying as k^-0.5, rho 0). Deviations from that code: lambda
    is projected onto the simplex as in the paper (LibMTL takes a softmax), and G is used as is
    (LibMTL rescales each g_i to norm L_i first).
    """

    def __init__(
        self,
        beta: float = schema.MoCo.beta,
        beta_decay: float = schema.MoCo.beta_decay,
        gamma: float = schema.MoCo.gamma,
        gamma_decay: float = schema.MoCo.gamma_decay,
        rho: float = schema.MoCo.rho,
        rep_grad: bool = schema.MoCo.rep_grad,
    ) -> None:
        check_settings(
            schema.MoCo,
            beta=beta,
            beta_decay=beta_decay,
            gamma=gamma,
            gamma_decay=gamma_decay,
            rho=rho,
            rep_grad=rep_grad,
        )
        super().__init__(rep_grad=rep_grad)
        self.beta = float(beta)
        self.beta_decay = float(beta_decay)
        self.gamma = float(gamma)
        self.gamma_decay = float(gamma_decay)
        self.rho = float(rho)

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        t = self.num_tasks
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("lambdas", torch.full((t,), 1.0 / t, dtype=torch.float64))
        #: the tracking variables Y [T, P]; empty until the first step knows P
        self.register_buffer("tracked", torch.zeros(0))
        return self

    def _aggregate(
        self, G: Tensor, losses: Tensor, index: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        if index is None:
            index = torch.arange(G.shape[0])
        G = G.detach()
        if self.tracked.shape != (self.num_tasks, G.shape[1]):
            self.tracked = G.new_zeros(self.num_tasks, G.shape[1])
        self.step += 1
        k = float(self.step)
        beta_k = self.beta / k**self.beta_decay
        gamma_k = self.gamma / k**self.gamma_decay
        rows = index.to(self.tracked.device)
        Y = self.tracked[rows].to(G.dtype)
        Y = Y - beta_k * (Y - G)
        self.tracked[rows] = Y.to(self.tracked.dtype)
        where = index.to(self.lambdas.device)
        lam = project_to_simplex(self.lambdas[where].cpu().numpy())
        gram = (Y @ Y.T).double().cpu().numpy() + self.rho * np.eye(len(lam))
        lam = project_to_simplex(lam - gamma_k * gram @ lam)
        self.lambdas[where] = torch.as_tensor(lam).to(self.lambdas)
        weights = torch.as_tensor(lam, dtype=G.dtype, device=G.device)
        return self.finalize(weights @ Y), weights

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        raise NotImplementedError("MoCo combines its tracked gradients Y: see _aggregate")

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        stored = state_dict.get(prefix + "tracked")
        current = getattr(self, "tracked", None)
        if stored is not None and current is not None and stored.shape != current.shape:
            self.tracked = torch.zeros(stored.shape, dtype=stored.dtype, device=current.device)
        super()._load_from_state_dict(state_dict, prefix, *args)
