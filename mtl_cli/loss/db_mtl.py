"""DB-MTL: log-transformed losses, and task gradients rescaled to the largest (EMA) gradient norm."""

from __future__ import annotations

from typing import Self

import torch
from torch import Tensor

from mtl_cli.loss.base import GradientWeighting, TaskSetup
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings

LOG_EPS = 1e-8  # log(L + eps), as in the authors' code (LibMTL)
NORM_EPS = 1e-8  # max_j ||g_j|| / (||g_i|| + eps), as in the authors' code


class DBMTL(GradientWeighting):
    """Lin, Jiang, Ye, Zhang, Chen, Chen, Liu, Tsang & Kwok 2023, "Dual-Balancing for Multi-Task
    Learning" (DB-MTL; arXiv 2308.12029, Neural Networks).

    Loss-scale balancing: each task contributes log(L_i + eps), whose gradient is
    g_i / (L_i + eps) (g_i: the task gradient of the shared parameters), so multiplying a task's
    loss by a constant changes nothing. Gradient-magnitude balancing: an exponential moving
    average of each task's log-loss gradient, h_i <- beta_k h_i + (1 - beta_k) g_i / (L_i + eps)
    with beta_k = `beta` / k^`beta_sigma` at the task's k-th update (h_i starts at 0, no bias
    correction), and d = sum_i (max_j ||h_j|| / ||h_i||) h_i: every task's averaged gradient is
    rescaled to the largest norm before summing. The defaults (beta 0.9, beta_sigma 0) are those
    of the authors' library LibMTL (DB_MTL.py), which this follows.

    The combination needs the task gradients themselves (their running average), not only their
    Gram matrix, so this overrides `_aggregate`. The logged `weight/<task>` is the rescaling
    factor max_j ||h_j|| / ||h_i|| (1 for the task with the largest averaged gradient). With task
    sampling only the step's tasks are averaged and rescaled, each with its own count k. The
    averages (T x P, P = number of shared parameters) are checkpointed in the extra state.

    Deviation: with `rep_grad=true` (which LibMTL refuses) the gradients are those of the shared
    representation of this step's batch, whose coordinates are different samples at each step;
    they are not averaged across steps (as if beta = 0), only rescaled to the largest norm.
    """

    def __init__(
        self,
        beta: float = schema.DBMTL.beta,
        beta_sigma: float = schema.DBMTL.beta_sigma,
        rep_grad: bool = schema.DBMTL.rep_grad,
    ) -> None:
        super().__init__(rep_grad=rep_grad)
        check_settings(schema.DBMTL, beta=beta, beta_sigma=beta_sigma)
        self.beta = float(beta)
        self.beta_sigma = float(beta_sigma)
        #: h [T, P]: the running averages of the log-loss gradients (None before the first step)
        self.average: Tensor | None = None

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        self.register_buffer("updates", torch.zeros(self.num_tasks, dtype=torch.long))
        return self

    def _aggregate(
        self, G: Tensor, losses: Tensor, index: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        if index is None:
            index = torch.arange(G.shape[0])
        log_grads = G / (losses.detach().to(G).reshape(-1, 1) + LOG_EPS)
        if self.rep_grad:
            averaged = log_grads
        else:
            averaged = self._update_average(log_grads, index.to(self.updates.device))
        norms = averaged.norm(dim=1)
        scales = norms.max() / (norms + NORM_EPS)
        return self.finalize(scales @ averaged), scales

    def _update_average(self, log_grads: Tensor, index: Tensor) -> Tensor:
        """h_i <- beta_k h_i + (1 - beta_k) g_i for the step's tasks; returns their rows of h."""
        shape = (self.num_tasks, log_grads.shape[1])
        if self.average is None or tuple(self.average.shape) != shape:
            if self.average is not None:
                raise RuntimeError(
                    f"{type(self).__name__}: the shared gradient has {shape[1]} entries, the "
                    f"running averages {self.average.shape[1]}"
                )
            self.average = log_grads.new_zeros(shape)
        self.average = self.average.to(log_grads)
        self.updates[index] += 1
        k = self.updates[index].to(torch.float64)
        beta = (self.beta / k**self.beta_sigma).to(log_grads).reshape(-1, 1)
        rows = index.to(log_grads.device)
        self.average[rows] = beta * self.average[rows] + (1.0 - beta) * log_grads
        return self.average[rows]

    def get_extra_state(self) -> dict:
        return {"average": self.average}

    def set_extra_state(self, state: dict) -> None:
        average = state["average"]
        self.average = None if average is None else average.clone()
