"""Dynamic Weight Average: weights from the rate at which each task's loss falls."""

from __future__ import annotations

from typing import Self

import torch
from torch import Tensor

from mtl_cli.loss.base import LossWeighting, TaskSetup
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class DWA(LossWeighting):
    """Liu, Johns & Davison 2019 (MTAN): w_i = K softmax_i(r_i / temp), r_i = L̄_i(t-1) / L̄_i(t-2).

    L̄_i(t) is task i's mean training loss over period t (`period` steps; default the trainer's
    `steps_per_epoch`, i.e. the paper's epoch) and K the number of tasks in the step, so the weights
    sum to K as in the paper. Weights are 1 during the first two periods. With task sampling a task
    absent for a whole period keeps its previous average, and r_i = 1 until the task has two.
    """

    def __init__(
        self,
        temperature: float = schema.DWA.temperature,
        period: int | None = schema.DWA.period,
    ) -> None:
        super().__init__()
        check_settings(schema.DWA, temperature=temperature, period=period)
        self.temperature = float(temperature)
        self.period = None if period is None else int(period)

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        if self.period is None:
            if tasks.steps_per_epoch is None or int(tasks.steps_per_epoch) < 1:
                raise ValueError(
                    f"loss.period: null needs the trainer's steps per epoch, got "
                    f"{tasks.steps_per_epoch}; set loss.period"
                )
            self.period = int(tasks.steps_per_epoch)
        t = self.num_tasks
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("periods_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("period_sum", torch.zeros(t, dtype=torch.float64))
        self.register_buffer("period_count", torch.zeros(t, dtype=torch.long))
        # averages of the last two finished periods: row 0 = t-2, row 1 = t-1
        self.register_buffer("history", torch.ones(2, t, dtype=torch.float64))
        self.register_buffer("history_seen", torch.zeros(2, t, dtype=torch.bool))
        return self

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
