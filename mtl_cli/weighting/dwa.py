"""Dynamic Weight Average: weights from the rate at which each task's loss falls."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtl_cli.weighting.base import LossWeighting


class DWA(LossWeighting):
    """Liu, Johns & Davison 2019 (MTAN): w_i = K softmax_i(r_i / temp), r_i = L̄_i(t-1) / L̄_i(t-2).

    L̄_i(t) is task i's mean training loss over period t (`period` steps; default the trainer's
    `steps_per_epoch`, i.e. the paper's epoch) and K the number of tasks in the step, so the weights
    sum to K as in the paper. Weights are 1 during the first two periods. With task sampling a task
    absent for a whole period keeps its previous average, and r_i = 1 until the task has two.
    """

    def __init__(
        self,
        num_tasks: int,
        temperature: float = 2.0,
        period: int | None = None,
        task_names: Sequence[str] | None = None,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(num_tasks, task_names=task_names, steps_per_epoch=steps_per_epoch)
        if temperature <= 0:
            raise ValueError(f"loss.temperature: {temperature} must be greater than 0.0")
        period = period if period is not None else steps_per_epoch
        if period is None or int(period) < 1:
            raise ValueError(
                f"loss.period: {period} is not a positive number of steps "
                "(set loss.period or give the trainer steps_per_epoch)"
            )
        self.temperature = float(temperature)
        self.period = int(period)
        t = self.num_tasks
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("periods_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("period_sum", torch.zeros(t, dtype=torch.float64))
        self.register_buffer("period_count", torch.zeros(t, dtype=torch.long))
        # averages of the last two finished periods: row 0 = t-2, row 1 = t-1
        self.register_buffer("history", torch.ones(2, t, dtype=torch.float64))
        self.register_buffer("history_seen", torch.zeros(2, t, dtype=torch.bool))

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        if int(self.step) > 0 and int(self.step) % self.period == 0:
            self._close_period()
        index = index.to(self.period_sum.device)
        self.period_sum[index] += losses.detach().to(self.period_sum)
        self.period_count[index] += 1
        self.step += 1
        if int(self.periods_done) < 2:
            return torch.ones_like(losses)
        ratio = self.history[1, index] / self.history[0, index].clamp_min(1e-12)
        ratio = torch.where(self.history_seen[:, index].all(dim=0), ratio, torch.ones_like(ratio))
        weights = len(index) * torch.softmax(ratio / self.temperature, dim=0)
        return weights.to(losses.device, losses.dtype)

    def _close_period(self) -> None:
        seen = self.period_count > 0
        mean = torch.where(seen, self.period_sum / self.period_count.clamp_min(1), self.history[1])
        self.history.copy_(torch.stack([self.history[1], mean]))
        self.history_seen.copy_(torch.stack([self.history_seen[1], seen | self.history_seen[1]]))
        self.period_sum.zero_()
        self.period_count.zero_()
        self.periods_done += 1
