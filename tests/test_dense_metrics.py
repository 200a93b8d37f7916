"""Dense scene-understanding losses and metrics: hand-computed answers (MTAN/LibMTL conventions)."""

import math

import pytest
import torch

from mtl_cli.dense_metrics import (
    DepthScore,
    NormalsScore,
    SegmentationScore,
    depth_loss,
    normals_loss,
    segmentation_loss,
)
from mtl_cli.metrics import delta_m, higher_is_better


def one_hot_logits(pred: torch.Tensor, classes: int) -> torch.Tensor:
    """Logits [N, C, H, W] whose argmax is `pred` [N, H, W]."""
    return torch.nn.functional.one_hot(pred, classes).permute(0, 3, 1, 2).float() * 5.0


def test_segmentation_scores_by_hand():
    # truth 2x3:  0 0 1 / 1 2 -1     prediction: 0 1 1 / 1 1 0 (the -1 pixel is ignored)
    truth = torch.tensor([[[0, 0, 1], [1, 2, -1]]])
    pred = torch.tensor([[[0, 1, 1], [1, 1, 0]]])
    score = SegmentationScore(4)
    score.update(one_hot_logits(pred, 4), truth)
    out = score.result()
    # 5 labelled pixels, 3 correct
    assert out["pixel_accuracy"] == pytest.approx(3 / 5)
    # IoU: class 0: TP 1, FP 0, FN 1 -> 1/2; class 1: TP 2, FP 2 (pixels (0,1) and (1,1)), FN 0
    # -> 2/4; class 2: TP 0, FN 1 -> 0; class 3 absent from truth and prediction: left out
    assert out["miou"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)


def test_segmentation_accumulates_over_batches_like_one_batch():
    torch.manual_seed(0)
    truth = torch.randint(-1, 5, (6, 8, 8))
    logits = torch.randn(6, 5, 8, 8)
    whole, parts = SegmentationScore(5), SegmentationScore(5)
    whole.update(logits, truth)
    for i in range(0, 6, 4):
        parts.update(logits[i : i + 4], truth[i : i + 4])
    assert whole.result() == pytest.approx(parts.result())


def test_depth_errors_by_hand():
    truth = torch.tensor([[[[2.0, 4.0], [0.0, 1.0]]]])  # one invalid pixel (0)
    pred = torch.tensor([[[[3.0, 3.0], [9.0, 1.5]]]])
    out = DepthScore()
    out.update(pred, truth)
    result = out.result()
    assert result["abs_error"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert result["rel_error"] == pytest.approx((1 / 2 + 1 / 4 + 0.5 / 1) / 3)
    assert depth_loss(pred, truth).item() == pytest.approx((1 + 1 + 0.5) / 3)


def test_normal_angles_by_hand():
    # 4 pixels: exact, 90 degrees off, 45 degrees off (unnormalised prediction), invalid
    truth = torch.zeros(1, 3, 1, 4)
    truth[0, 2, 0, :3] = -1.0  # facing the camera
    pred = torch.zeros(1, 3, 1, 4)
    pred[0, :, 0, 0] = torch.tensor([0.0, 0.0, -3.0])
    pred[0, :, 0, 1] = torch.tensor([1.0, 0.0, 0.0])
    pred[0, :, 0, 2] = torch.tensor([2.0, 0.0, -2.0])
    pred[0, :, 0, 3] = torch.tensor([1.0, 1.0, 1.0])
    score = NormalsScore()
    score.update(pred, truth)
    out = score.result()
    assert out["mean_angle_error"] == pytest.approx((0 + 90 + 45) / 3, abs=1e-4)
    assert out["median_angle_error"] == pytest.approx(45.0, abs=1e-4)
    assert out["within_11_25"] == pytest.approx(1 / 3)
    assert out["within_22_5"] == pytest.approx(1 / 3)
    assert out["within_30"] == pytest.approx(1 / 3)
    # loss: 1 - cos over valid pixels = (0 + 1 + (1 - cos 45)) / 3
    expected = (0.0 + 1.0 + (1 - math.cos(math.pi / 4))) / 3
    assert normals_loss(pred, truth).item() == pytest.approx(expected, abs=1e-6)


def test_segmentation_loss_ignores_unlabelled_pixels():
    logits = torch.randn(1, 3, 2, 2)
    truth = torch.tensor([[[0, -1], [2, -1]]])
    kept = torch.tensor([[0, 0], [1, 0]])  # (row, col) of labelled pixels
    manual = torch.stack(
        [
            torch.nn.functional.cross_entropy(logits[0, :, r, c][None], truth[0, r, c][None])
            for r, c in kept
        ]
    ).mean()
    assert segmentation_loss(logits, truth).item() == pytest.approx(manual.item(), rel=1e-6)


def test_losses_are_zero_with_no_valid_pixel_and_keep_the_graph():
    pred = torch.randn(1, 3, 2, 2, requires_grad=True)
    assert normals_loss(pred, torch.zeros(1, 3, 2, 2)).item() == 0.0
    assert segmentation_loss(pred, torch.full((1, 2, 2), -1)).requires_grad


def test_every_dense_metric_has_a_direction_and_delta_m_uses_it():
    from mtl_cli.families import DENSE_METRIC_NAMES

    higher = {m for m in DENSE_METRIC_NAMES if higher_is_better(m)}
    assert higher == {"miou", "pixel_accuracy", "within_11_25", "within_22_5", "within_30"}
    # better mIoU (+10 %) and worse depth error (+10 %, lower is better): Δm = 0
    ours = {"segmentation/miou": 0.55, "depth/abs_error": 0.55}
    base = {"segmentation/miou": 0.5, "depth/abs_error": 0.5}
    assert delta_m(ours, base) == pytest.approx(0.0, abs=1e-9)
