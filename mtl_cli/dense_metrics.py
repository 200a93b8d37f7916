"""Metrics of dense scene understanding, accumulated over a split in batches.

Conventions (those of MTAN, Liu et al. 2019, and LibMTL, Lin & Zhang 2023, for NYUv2/Cityscapes):

- segmentation: pixel accuracy = correct / labelled pixels; mIoU = mean over classes of
  TP / (TP + FP + FN) from one confusion matrix over the whole split. Pixels labelled -1 are
  ignored; a class absent from both the labels and the predictions of the split (union 0) is left
  out of the mean (MTAN's nanmean).
- depth: absolute error mean |d̂ - d| and relative error mean |d̂ - d| / d over valid pixels
  (d > 0). We average over every valid pixel of the split; MTAN/LibMTL average per-batch pixel
  means weighted by batch size, which differs only when batches hold different numbers of valid
  pixels.
- normals: the angle in degrees between the predicted normal (normalised to unit length) and the
  true one, over valid pixels (non-zero target): its mean and median, and the share of pixels
  within 11.25°, 22.5° and 30° (as fractions in [0, 1], like LibMTL).

Higher is better for miou, pixel_accuracy and within_*; lower for the errors (mtl_cli.metrics
`higher_is_better`), so Δm takes every one of them with its direction.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mtl_cli.families import DENSE_TASK_METRICS

#: per-task metric names, in report order; the first is the task's headline
DENSE_METRICS = DENSE_TASK_METRICS
ANGLE_THRESHOLDS = {"within_11_25": 11.25, "within_22_5": 22.5, "within_30": 30.0}


def normals_valid(target: torch.Tensor) -> torch.Tensor:
    """Valid pixels of a normals target [N, 3, H, W]: a non-zero vector -> bool [N, H, W]."""
    return target.abs().sum(1) > 0


def depth_valid(target: torch.Tensor) -> torch.Tensor:
    """Valid pixels of a depth target [N, 1, H, W]: depth > 0 -> bool [N, H, W]."""
    return target[:, 0] > 0


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over labelled pixels (label -1 ignored); 0 when no pixel is labelled."""
    if not bool((target >= 0).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, ignore_index=-1)


def depth_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between predicted and true depth over valid pixels (MTAN, LibMTL)."""
    valid = depth_valid(target)
    if not bool(valid.any()):
        return prediction.sum() * 0.0
    return (prediction[:, 0] - target[:, 0]).abs()[valid].mean()


def normals_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cosine between the normalised prediction and the true unit normal, valid pixels only."""
    valid = normals_valid(target)
    if not bool(valid.any()):
        return prediction.sum() * 0.0
    unit = F.normalize(prediction, dim=1)
    return 1.0 - (unit * target).sum(1)[valid].mean()


DENSE_LOSSES = {
    "segmentation": segmentation_loss,
    "depth": depth_loss,
    "normals": normals_loss,
}


class SegmentationScore:
    """Confusion matrix over a split -> mIoU and pixel accuracy."""

    def __init__(self, classes: int) -> None:
        self.classes = int(classes)
        self.confusion = torch.zeros(self.classes, self.classes, dtype=torch.float64)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        labelled = target >= 0
        truth = target[labelled].long()
        pred = logits.argmax(1)[labelled].long()
        counts = torch.bincount(truth * self.classes + pred, minlength=self.classes**2)
        self.confusion += counts.reshape(self.classes, self.classes).double().cpu()

    def result(self) -> dict[str, float]:
        cm = self.confusion
        tp = cm.diag()
        union = cm.sum(0) + cm.sum(1) - tp
        present = union > 0
        total = float(cm.sum())
        miou = float((tp[present] / union[present]).mean()) if bool(present.any()) else math.nan
        return {
            "miou": miou,
            "pixel_accuracy": float(tp.sum()) / total if total else math.nan,
        }


class DepthScore:
    """Absolute and relative depth error over every valid pixel of a split."""

    def __init__(self) -> None:
        self.abs_sum = 0.0
        self.rel_sum = 0.0
        self.count = 0

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        valid = depth_valid(target)
        d = target[:, 0][valid].double()
        diff = (prediction[:, 0][valid].double() - d).abs()
        self.abs_sum += float(diff.sum())
        self.rel_sum += float((diff / d).sum())
        self.count += int(valid.sum())

    def result(self) -> dict[str, float]:
        n = self.count
        return {
            "abs_error": self.abs_sum / n if n else math.nan,
            "rel_error": self.rel_sum / n if n else math.nan,
        }


class NormalsScore:
    """Angle errors (degrees) of every valid pixel of a split: mean, median, within thresholds."""

    def __init__(self) -> None:
        self.angles: list[torch.Tensor] = []

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        valid = normals_valid(target)
        unit = F.normalize(prediction.double(), dim=1)
        cosine = (unit * target.double()).sum(1)[valid].clamp(-1.0, 1.0)
        self.angles.append(torch.rad2deg(torch.acos(cosine)).float().cpu())

    def result(self) -> dict[str, float]:
        angles = torch.cat(self.angles) if self.angles else torch.zeros(0)
        if not len(angles):
            return {k: math.nan for k in DENSE_METRICS["normals"]}
        out = {
            "mean_angle_error": float(angles.double().mean()),
            # numpy's median: the mean of the two middle values for an even count
            "median_angle_error": float(angles.double().quantile(0.5)),
        }
        for key, degrees in ANGLE_THRESHOLDS.items():
            out[key] = float((angles < degrees).double().mean())
        return out


def dense_scores(task: str, classes: int):
    """A fresh accumulator for `task`."""
    if task == "segmentation":
        return SegmentationScore(classes)
    if task == "depth":
        return DepthScore()
    if task == "normals":
        return NormalsScore()
    raise ValueError(f"task: unknown dense task '{task}'; allowed: {', '.join(DENSE_METRICS)}")
