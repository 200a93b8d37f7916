"""Dense scene understanding: one image, per-pixel tasks with their own losses (CS330 lecture 2).

Semantic segmentation (cross-entropy), depth (L1) and surface normals (1 - cosine) read one shared
batch; their losses differ in kind and scale, which is where task weighting matters (Liu et al.
2019, MTAN; Lin & Zhang 2023, LibMTL). Losses and metrics: mtl_cli.dense_metrics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from mtl_cli.dense_metrics import (
    DENSE_LOSSES,
    DENSE_METRICS,
    dense_scores,
    depth_valid,
    normals_valid,
)
from mtl_cli.families.base import Family
from mtl_cli.families.sampling import EpochSampler
from mtl_cli.families.task_data import DenseData


class DenseFamily(Family):
    """Each step: one shared batch of images, every task's map from the model, one loss per task."""

    name = "dense"
    kind = "dense"

    def __init__(self, data: DenseData, trainer: Any, device: torch.device) -> None:
        self.data = data
        self.task_names = list(data.task_names)
        self.device = device
        # every split on the run's device once: a step only indexes it
        self.splits = {s: part.to(device) for s, part in data.splits.items()}
        self.batches = EpochSampler(len(self.splits["train"]), int(trainer.batch_size), device)
        self.eval_batch_size = int(trainer.eval_batch_size)

    @property
    def metrics(self) -> tuple[str, ...]:
        """ "loss" (mean task loss), then the metrics of the chosen tasks (also per task)."""
        chosen = {m for t in self.task_names for m in DENSE_METRICS[t]}
        return tuple(m for m in self.facts.metrics_of(self.kind) if m == "loss" or m in chosen)

    def _outputs(self, model, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        if model.has_shared_representation:
            z = model.representation(x)
            return [model.head(z, t) for t in range(model.num_tasks)], z
        return list(model.forward_all(x)), None

    def _losses(self, outputs: list[torch.Tensor], targets: dict[str, torch.Tensor]):
        return torch.stack(
            [
                DENSE_LOSSES[task](out.float(), targets[task])
                for task, out in zip(self.task_names, outputs, strict=True)
            ]
        )

    def train_losses(self, model, generator):
        part = self.splits["train"]
        idx = self.batches.next(generator)
        outputs, z = self._outputs(model, part.x[idx])
        targets = {task: part.targets[task][idx] for task in self.task_names}
        return self._losses(outputs, targets), list(range(len(self.task_names))), z

    @torch.no_grad()
    def predict(self, model, x: torch.Tensor) -> list[torch.Tensor]:
        """Each task's output map for images x [B, 3, H, W] (float32)."""
        return [out.float() for out in self._outputs(model, x)[0]]

    @torch.no_grad()
    def evaluate(self, model, split):
        part = self.splits[split]
        scores = {t: dense_scores(t, self.data.classes) for t in self.task_names}
        losses = torch.zeros(len(self.task_names), dtype=torch.float64, device=self.device)
        for start in range(0, len(part), self.eval_batch_size):
            x = part.x[start : start + self.eval_batch_size]
            targets = {t: part.targets[t][start : start + len(x)] for t in self.task_names}
            outputs = self.predict(model, x)
            losses += self._losses(outputs, targets).double() * len(x)
            for task, out in zip(self.task_names, outputs, strict=True):
                scores[task].update(out, targets[task])
        losses /= max(len(part), 1)
        out: dict[str, float] = {}
        for i, task in enumerate(self.task_names):
            for key, value in scores[task].result().items():
                out[f"{task}/{key}"] = value
                out[key] = value  # each metric belongs to one task: also an aggregate key
            out[f"{task}/loss"] = float(losses[i])
        out["loss"] = float(losses.mean())
        return out

    @torch.no_grad()
    def pictures(self, model, count: int, split: str = "test") -> list[list[tuple]]:
        """Rows of (title, array, style) for the first `count` images of `split`: the input, then
        each task's ground truth and prediction. Styles: "rgb" [H, W, 3] in [0, 1], "labels"
        [H, W] ints (-1 = none), "values" [H, W] floats (NaN = invalid)."""
        part = self.splits[split]
        x = part.x[:count]
        outputs = self.predict(model, x)
        rows = []
        for i in range(len(x)):
            row = [("input", _rgb(x[i]), "rgb")]
            for task, out in zip(self.task_names, outputs, strict=True):
                truth, pred = part.targets[task][i], out[i]
                row += [(f"{task} (truth)", *_picture(task, truth, truth))]
                row += [(f"{task} (predicted)", *_picture(task, pred, truth))]
            rows.append(row)
        return rows

    def state_dict(self):
        return {"batches": self.batches.state_dict()}

    def load_state_dict(self, state):
        self.batches.load_state_dict(state["batches"])


def _rgb(image: torch.Tensor) -> np.ndarray:
    return image.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def _picture(task: str, value: torch.Tensor, truth: torch.Tensor) -> tuple[np.ndarray, str]:
    """One map as an array and its style; predictions are masked where the truth is invalid."""
    if task == "segmentation":
        labels = value.argmax(0) if value.dim() == 3 else value
        return labels.masked_fill(truth < 0, -1).cpu().numpy(), "labels"
    if task == "depth":
        depth = value[0].float().masked_fill(~depth_valid(truth[None])[0], math.nan)
        return depth.cpu().numpy(), "values"
    unit = torch.nn.functional.normalize(value.float(), dim=0)
    unit = unit * normals_valid(truth[None])[0]
    return ((unit + 1) / 2).clamp(0, 1).permute(1, 2, 0).cpu().numpy(), "rgb"
