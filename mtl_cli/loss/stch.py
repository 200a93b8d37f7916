"""Smooth Tchebycheff scalarisation of the (normalised, log) task losses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import torch
from torch import Tensor

from mtl_cli.loss.base import LossWeighting, TaskSetup
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings

LOG_EPS = 1e-20  # log(L + eps) and log(L / n + eps), as in the official code


class STCH(LossWeighting):
    """Lin, Zhang, Zhou, Zhang & Zhang 2024, "Smooth Tchebycheff Scalarization for Multi-Objective
    Optimization" (ICML 2024): minimise mu log sum_i exp(lambda_i (f_i - z_i) / mu), the smooth
    version of max_i lambda_i (f_i - z_i) (it tends to it as mu -> 0).

    As in the paper's multi-task code (Xi-L/STCH, STCH_MTL, also LibMTL's STCH.py), the objectives
    are log losses normalised by a nadir point, f_i - z_i = log(L_i / n_i), and the scalarisation
    is multiplied by the number of tasks T: T mu log sum_i exp(lambda_i log(L_i / n_i) / mu). Its
    gradient is sum_i T lambda_i s_i grad log L_i with s = softmax(lambda log(L / n) / mu), so the
    logged weights (on L_i) are w_i = T lambda_i s_i / L_i. Warm-up: during the first
    `warmup_epochs` epochs, and the one after them, the objective is sum_i log L_i (w_i = 1 / L_i);
    in that last warm-up epoch each task's losses are averaged, and the average is its nadir n_i.
    An epoch is `period` steps (default: the trainer's steps per epoch). With task sampling, s is
    a softmax over the step's tasks, and a task absent from the recording epoch takes its first
    later loss as its nadir. `preference` gives lambda_i per task name (unlisted tasks 1.0; the
    official code's uniform preference). Nadir, averages and step count are checkpointed.
    """

    def __init__(
        self,
        mu: float = schema.STCH.mu,
        warmup_epochs: int = schema.STCH.warmup_epochs,
        period: int | None = schema.STCH.period,
        preference: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        check_settings(schema.STCH, mu=mu, warmup_epochs=warmup_epochs, period=period)
        self.mu = float(mu)
        self.warmup_epochs = int(warmup_epochs)
        self.period = None if period is None else int(period)
        self.given_preference = {str(k): float(v) for k, v in dict(preference or {}).items()}
        bad = {k: v for k, v in self.given_preference.items() if not v > 0}
        if bad:
            name, value = next(iter(bad.items()))
            raise ValueError(f"loss.preference.{name}: {value} must be greater than 0.0")

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        unknown = sorted(set(self.given_preference) - set(self.task_names))
        if unknown:
            raise ValueError(
                f"loss.preference: unknown task name(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(self.task_names)}"
            )
        if self.period is None:
            if tasks.steps_per_epoch is None or int(tasks.steps_per_epoch) < 1:
                raise ValueError(
                    f"loss.period: null needs the trainer's steps per epoch, got "
                    f"{tasks.steps_per_epoch}; set loss.period"
                )
            self.period = int(tasks.steps_per_epoch)
        t = self.num_tasks
        values = [self.given_preference.get(n, 1.0) for n in self.task_names]
        self.register_buffer(
            "preference", torch.tensor(values, dtype=torch.float64), persistent=False
        )
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("loss_sum", torch.zeros(t, dtype=torch.float64))
        self.register_buffer("loss_count", torch.zeros(t, dtype=torch.long))
        self.register_buffer("nadir", torch.ones(t, dtype=torch.float64))
        self.register_buffer("nadir_known", torch.zeros(t, dtype=torch.bool))
        return self

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        epoch = int(self.step) // self.period
        self.step += 1
        index = index.to(self.nadir.device)
        values = losses.detach().to(self.nadir)
        if epoch <= self.warmup_epochs:  # sum_i log L_i
            if epoch == self.warmup_epochs:  # the last warm-up epoch records the nadir
                self.loss_sum[index] += values
                self.loss_count[index] += 1
            return (1.0 / (values + LOG_EPS)).to(losses.device, losses.dtype)
        self._close_recording()
        new = ~self.nadir_known[index]
        self.nadir[index[new]] = values[new]
        self.nadir_known[index] = True
        nadir = self.nadir[index]
        preference = self.preference[index]
        log_ratio = torch.log(values / nadir + LOG_EPS)
        s = torch.softmax(preference * log_ratio / self.mu, dim=0)
        # d/dL_i of T mu log sum exp(lambda log(L / n + eps) / mu) = T lambda_i s_i / (L_i + eps n_i)
        weights = len(index) * preference * s / (values + LOG_EPS * nadir)
        return weights.to(losses.device, losses.dtype)

    def _close_recording(self) -> None:
        """Turn the recorded averages into nadir values (once, after the recording epoch)."""
        recorded = self.loss_count > 0
        if bool(recorded.any()):
            self.nadir[recorded] = self.loss_sum[recorded] / self.loss_count[recorded]
            self.nadir_known |= recorded
            self.loss_sum.zero_()
            self.loss_count.zero_()
