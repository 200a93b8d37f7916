"""Multi-task classification/regression: each task its own p_i(x), labels and head (CS330 lecture 2)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mtl_cli.families.base import Family
from mtl_cli.families.sampling import EpochSampler, TaskSampler
from mtl_cli.families.task_data import MultiTaskData


class MultiTaskFamily(Family):
    """Each step: choose tasks (`trainer.task_sampling`), draw a batch per task, one loss per task."""

    name = "multitask"

    def __init__(self, data: MultiTaskData, trainer: Any, device: torch.device) -> None:
        self.data = data
        self.task_names = data.task_names
        self.device = device
        self.kind = data.kind
        self.regression = data.kind == "regression"
        # every split on the run's device once: a step only indexes it (no host-to-device copy)
        self.splits = {s: [p.to(device) for p in parts] for s, parts in data.splits.items()}
        sizes = [len(p) for p in self.splits["train"]]
        self.batches = [EpochSampler(n, int(trainer.batch_size), device) for n in sizes]
        self.tasks = TaskSampler(str(trainer.task_sampling), int(trainer.tasks_per_step), sizes)
        self.eval_batch_size = int(trainer.eval_batch_size)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.regression:
            return F.mse_loss(out.reshape(y.shape), y)
        return F.cross_entropy(out, y)

    def train_losses(self, model, generator):
        tasks = self.tasks.sample(generator)
        losses = []
        for t in tasks:
            part = self.splits["train"][t]
            idx = self.batches[t].next(generator)  # on the device (see EpochSampler)
            losses.append(self._loss(model(part.x[idx], t), part.y[idx]))
        return torch.stack(losses), tasks, None

    @torch.no_grad()
    def evaluate(self, model, split):
        out: dict[str, float] = {}
        per_task = {m: [] for m in self.metrics}
        for t, name in enumerate(self.task_names):
            part = self.splits[split][t]
            total_loss = torch.zeros((), device=self.device, dtype=torch.float64)
            correct = torch.zeros((), device=self.device, dtype=torch.float64)
            for start in range(0, len(part), self.eval_batch_size):
                x = part.x[start : start + self.eval_batch_size]
                y = part.y[start : start + self.eval_batch_size]
                pred = model(x, t)
                total_loss += self._loss(pred, y).double() * len(y)
                if not self.regression:
                    correct += (pred.argmax(-1) == y).sum()
            n = max(len(part), 1)
            values = (
                {"mse": total_loss / n}
                if self.regression
                else {
                    "accuracy": correct / n,
                    "loss": total_loss / n,
                }
            )
            for metric, value in values.items():
                out[f"{name}/{metric}"] = float(value)
                per_task[metric].append(float(value))
        for metric, values in per_task.items():
            out[metric] = sum(values) / len(values)
        return out

    def state_dict(self):
        return {"batches": [b.state_dict() for b in self.batches]}

    def load_state_dict(self, state):
        for sampler, s in zip(self.batches, state["batches"], strict=True):
            sampler.load_state_dict(s)
