"""Batch and task sampling with explicit generators, so a resumed run draws the same batches."""

from __future__ import annotations

import torch

from mtl_cli.errors import UserError


class EpochSampler:
    """Index batches that go through a dataset of n items in a fresh random order each epoch.

    The order is drawn on the CPU from the run's CPU generator (its state is in the checkpoint,
    and `order` too, so a resumed run draws the same batches) and sent to `device` once per epoch,
    in one small copy (pinned and non-blocking on CUDA). Each step's batch is then a slice of that
    device copy: a view, no host-to-device copy per step, and indexing the family's device-resident
    split with it gathers the batch on the device.
    """

    def __init__(self, n: int, batch_size: int, device: torch.device | str = "cpu") -> None:
        if n < 1:
            raise UserError("data: a task has no training examples")
        self.n = n
        self.batch_size = min(batch_size, n)
        self.device = torch.device(device)
        self.order = torch.empty(0, dtype=torch.long)  # on the CPU: what checkpoints hold
        self._device_order = self.order.to(self.device)
        self.cursor = 0

    def _set_order(self, order: torch.Tensor) -> None:
        from mtl_cli.data.episodes import to_device

        self.order = order
        (self._device_order,) = to_device((order,), self.device)

    def next(self, generator: torch.Generator) -> torch.Tensor:
        """The next batch of indices, on `device`."""
        if self.cursor + self.batch_size > len(self.order):
            self._set_order(torch.randperm(self.n, generator=generator))
            self.cursor = 0
        batch = self._device_order[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"order": self.order.clone(), "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self._set_order(state["order"].cpu().clone())
        self.cursor = int(state["cursor"])


class TaskSampler:
    """Which tasks a step trains on (CS330: sample a mini-batch of tasks, then data per task).

    all: every task; uniform: `k` tasks uniformly without replacement; proportional: `k` tasks
    without replacement with probability proportional to each task's training-set size.
    """

    def __init__(self, mode: str, k: int, sizes: list[int]) -> None:
        if mode != "all" and k > len(sizes):
            raise UserError(
                f"trainer.tasks_per_step: {k} exceeds the number of tasks ({len(sizes)})"
            )
        self.mode = mode
        self.k = k
        self.all = list(range(len(sizes)))
        self.weights = torch.tensor(sizes, dtype=torch.float64)

    def sample(self, generator: torch.Generator) -> list[int]:
        if self.mode == "all":
            return self.all
        if self.mode == "uniform":
            chosen = torch.randperm(len(self.all), generator=generator)[: self.k]
        else:
            chosen = torch.multinomial(self.weights, self.k, replacement=False, generator=generator)
        return sorted(chosen.tolist())
