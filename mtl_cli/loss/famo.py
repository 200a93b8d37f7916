"""FAMO: task weights from the rate at which each task's log loss falls, at O(1) cost per step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import numpy as np
import torch
from torch import Tensor

from mtl_cli.loss.base import LossWeighting, TaskSetup
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings

#: Adam's constants for the logits (torch.optim.Adam's defaults, as in the official code)
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class FAMO(LossWeighting):
    """Liu, Feng, Stone & Liu 2023, "FAMO: Fast Adaptive Multitask Optimization" (NeurIPS 2023).

    Task logits xi, weights z = softmax(xi). The network minimises c sum_i z_i log D_i with
    D_i = L_i - b_i + eps (b_i = `min_losses`, 0 by default) and c = 1 / sum_i z_i / D_i held
    constant, i.e. sum_i w_i L_i with w_i = c z_i / D_i (the logged weights; they sum to 1). The
    logits then take one Adam step (`w_lr`, L2 weight decay `gamma`, Algorithm 2 of the paper) on
    the gradient J_softmax(xi)^T delta, delta_i = log D_i(before) - log D_i(after): tasks whose
    log loss fell less gain weight.

    Deviation from the paper and its code: both measure delta on the same batch before and after
    the model step, which costs a second forward pass. Here `backward` receives one loss vector
    per step, so delta is measured across consecutive steps: at step t the logits are first
    updated from the previous step's stored losses and this step's losses (different batches),
    then they weigh this step's losses. The logits therefore take the same sequence of updates
    as in the official code, each measured one step later in the data. As in the paper, the
    decay is Adam's coupled L2 term: where the deltas balance exactly (J^T delta = 0) Adam
    rescales the tiny gradient gamma xi by lr / 1e-8, so round-off moves the logits by up to
    ~lr instead of leaving them at the fixed point (tests/test_weighting_balancing.py).

    Task sampling: the update uses the tasks I present in both the previous step and this step;
    it is the FAMO update of the sub-problem on I (softmax over xi_I, delta_I), applied with a
    per-logit Adam (each logit keeps its own moments and step count, so a logit outside I does
    not move, decay or age). With every task in every step this is exactly torch.optim.Adam on xi.
    The logits, their Adam state and the previous losses are checkpointed (extra state): resume is
    exact.
    """

    def __init__(
        self,
        w_lr: float = schema.FAMO.w_lr,
        gamma: float = schema.FAMO.gamma,
        min_losses: Mapping[str, float] | None = None,
        eps: float = schema.FAMO.eps,
    ) -> None:
        super().__init__()
        check_settings(schema.FAMO, w_lr=w_lr, gamma=gamma, eps=eps)
        self.w_lr = float(w_lr)
        self.gamma = float(gamma)
        self.eps = float(eps)
        self.given_min_losses = {str(k): float(v) for k, v in dict(min_losses or {}).items()}

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        unknown = sorted(set(self.given_min_losses) - set(self.task_names))
        if unknown:
            raise ValueError(
                f"loss.min_losses: unknown task name(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(self.task_names)}"
            )
        t = self.num_tasks
        #: per-task state, float64 CPU tensors worked on through numpy views (the update is a
        #: few operations on T numbers: numpy keeps FAMO's cost at that of equal weighting);
        #: checkpointed through get_extra_state, and never moved to the model's device
        self.min_loss = torch.tensor(
            [self.given_min_losses.get(n, 0.0) for n in self.task_names], dtype=torch.float64
        )
        self.logits = torch.zeros(t, dtype=torch.float64)
        self.adam_m = torch.zeros(t, dtype=torch.float64)
        self.adam_v = torch.zeros(t, dtype=torch.float64)
        self.adam_steps = torch.zeros(t, dtype=torch.long)
        self.previous_log_gap = torch.zeros(t, dtype=torch.float64)
        self.previous_step = torch.zeros(t, dtype=torch.bool)
        return self

    _STATE = ("logits", "adam_m", "adam_v", "adam_steps", "previous_log_gap", "previous_step")

    def get_extra_state(self) -> dict[str, Tensor]:
        return {name: getattr(self, name).clone() for name in self._STATE}

    def set_extra_state(self, state: dict[str, Tensor]) -> None:
        for name in self._STATE:
            getattr(self, name).copy_(state[name].cpu())

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        where = index.cpu().numpy()
        values = losses.detach().double().cpu().numpy()
        gap = np.maximum(values - self.min_loss.numpy()[where], 0.0) + self.eps
        log_gap = np.log(gap)
        previous = self.previous_step.numpy()
        both = previous[where]
        if both.any():
            delta = self.previous_log_gap.numpy()[where[both]] - log_gap[both]
            self._update_logits(where[both], delta)
        previous[:] = False
        previous[where] = True
        self.previous_log_gap.numpy()[where] = log_gap
        z = _softmax(self.logits.numpy()[where])
        w = z / gap
        return torch.from_numpy(w / w.sum()).to(losses.device, losses.dtype)

    def _update_logits(self, where: np.ndarray, delta: np.ndarray) -> None:
        """One Adam step (L2 decay `gamma`) on the logits `where` with the softmax VJP of delta."""
        logits, m_all, v_all = self.logits.numpy(), self.adam_m.numpy(), self.adam_v.numpy()
        steps_all = self.adam_steps.numpy()
        xi = logits[where]
        z = _softmax(xi)
        grad = z * (delta - (z * delta).sum()) + self.gamma * xi
        beta1, beta2 = ADAM_BETAS
        m = beta1 * m_all[where] + (1.0 - beta1) * grad
        v = beta2 * v_all[where] + (1.0 - beta2) * grad * grad
        steps = steps_all[where] + 1
        correction1 = 1.0 - beta1**steps
        correction2 = 1.0 - beta2**steps
        denom = np.sqrt(v) / np.sqrt(correction2) + ADAM_EPS
        logits[where] = xi - (self.w_lr / correction1) * m / denom
        m_all[where] = m
        v_all[where] = v
        steps_all[where] = steps

    @property
    def task_weights(self) -> Tensor:
        """z = softmax(xi) over all tasks (the logits' weights, before the 1/D_i rescaling)."""
        return torch.softmax(self.logits, dim=0)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()
