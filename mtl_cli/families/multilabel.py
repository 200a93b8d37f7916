"""Multi-label: one shared p(x), one binary label per task, per-label BCE (CS330 lecture 2)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mtl_cli.errors import UserError
from mtl_cli.families.base import Family
from mtl_cli.families.sampling import EpochSampler
from mtl_cli.families.task_data import MultiLabelData


class MultiLabelFamily(Family):
    """Each step: one shared batch, every label's logit from the model, one BCE loss per label.

    `pos_weight` (null | "auto" | one number per label) weights positives in BCE; "auto" uses
    (negatives / positives) from the training split. `threshold` is a fixed probability or
    "val_f1": per-label thresholds tuned on the validation split, applied unchanged to test.
    """

    name = "multilabel"

    def __init__(self, data: MultiLabelData, trainer: Any, device: torch.device) -> None:
        self.data = data
        self.task_names = data.task_names
        self.device = device
        # every split on the run's device once: a step only indexes it (no host-to-device copy)
        self.splits = {s: part.to(device) for s, part in data.splits.items()}
        self.batches = EpochSampler(len(self.splits["train"]), int(trainer.batch_size), device)
        self.eval_batch_size = int(trainer.eval_batch_size)
        self.pos_weight = self._pos_weight(data.info.get("pos_weight"))
        self.threshold = data.info.get("threshold", 0.5)

    def _pos_weight(self, option) -> torch.Tensor | None:
        if option is None:
            return None
        labels = len(self.task_names)
        if option == "auto":
            y = self.splits["train"].y
            positives = y.sum(0)
            return ((len(y) - positives) / positives.clamp(min=1)).to(self.device)
        values = list(option)
        if len(values) != labels or min(values) <= 0:
            raise UserError(
                f"task.pos_weight: expected null, auto or {labels} positive numbers, got {values}"
            )
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def _logits(self, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if model.has_shared_representation:
            z = model.representation(x)
            return torch.cat([model.head(z, t) for t in range(model.num_tasks)], dim=1), z
        return torch.cat(model.forward_all(x), dim=1), None

    def _losses(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        per_item = F.binary_cross_entropy_with_logits(
            logits, y, pos_weight=self.pos_weight, reduction="none"
        )
        return per_item.mean(0)  # one loss per label

    def train_losses(self, model, generator):
        part = self.splits["train"]
        idx = self.batches.next(generator)  # on the device (see EpochSampler)
        logits, z = self._logits(model, part.x[idx])
        return self._losses(logits, part.y[idx]), list(range(len(self.task_names))), z

    @torch.no_grad()
    def scores(self, model, split: str) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        part = self.splits[split]
        chunks, losses = (
            [],
            torch.zeros(len(self.task_names), device=self.device, dtype=torch.float64),
        )
        for start in range(0, len(part), self.eval_batch_size):
            x = part.x[start : start + self.eval_batch_size]
            y = part.y[start : start + self.eval_batch_size]
            logits, _ = self._logits(model, x)
            losses += self._losses(logits, y).double() * len(y)
            chunks.append(torch.sigmoid(logits.float()))  # float32 under autocast too (numpy)
        probs = torch.cat(chunks).cpu().numpy()
        return probs, part.y.cpu().numpy() > 0.5, losses / max(len(part), 1)

    @torch.no_grad()
    def evaluate(self, model, split):
        from mtl_cli.metrics import multilabel_metrics, tune_thresholds

        probs, targets, losses = self.scores(model, split)
        if self.threshold == "val_f1":
            val_probs, val_targets, _ = (
                self.scores(model, "val") if split != "val" else (probs, targets, None)
            )
            thresholds = tune_thresholds(val_probs, val_targets)
        else:
            thresholds = float(self.threshold)
        out = multilabel_metrics(probs, targets, thresholds, label_names=self.task_names)
        out = {k: v for k, v in out.items() if v is not None}
        if self.threshold == "val_f1":  # the tuned thresholds, so a result can be reproduced
            for name, value in zip(self.task_names, np.asarray(thresholds).tolist(), strict=True):
                out[f"{name}/threshold"] = float(value)
        for name, value in zip(self.task_names, losses.tolist(), strict=True):
            out[f"{name}/loss"] = value
        out["loss"] = float(losses.mean())
        return out

    def state_dict(self):
        return {"batches": self.batches.state_dict()}

    def load_state_dict(self, state):
        self.batches.load_state_dict(state["batches"])
