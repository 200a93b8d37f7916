"""Down-sampling of dense targets that keeps their meaning: area for images, nearest for labels,
and valid-aware averages for depth and normals (invalid pixels never leak into valid ones)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area (average-pooling) resize of float images [N, C, H, W]."""
    return F.interpolate(x, size=size, mode="area")


def resize_labels(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest resize of integer label maps [N, H, W] (-1 = ignored stays -1)."""
    return F.interpolate(y[:, None].float(), size=size, mode="nearest")[:, 0].round().long()


def resize_valid_mean(
    values: torch.Tensor, valid: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per output pixel, the mean of `values` [N, C, H, W] over the valid input pixels it covers
    (`valid` bool [N, 1, H, W]); 0 and invalid where none is valid."""
    weight = valid.to(values.dtype)
    total = F.interpolate(values * weight, size=size, mode="area")
    count = F.interpolate(weight, size=size, mode="area")
    has_valid = count > 0
    mean = torch.where(has_valid, total / count.clamp_min(1e-12), torch.zeros_like(total))
    return mean, has_valid


def resize_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Depth [N, 1, H, W] (0 = invalid): mean of the valid (> 0) pixels, 0 where none is valid."""
    mean, _ = resize_valid_mean(depth, depth > 0, size)
    return mean


def resize_normals(normals: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Normals [N, 3, H, W] (all-zero = invalid): mean of the valid pixels, renormalised to unit
    length; all-zero where none is valid or the valid ones cancel out."""
    mean, _ = resize_valid_mean(normals, (normals != 0).any(dim=1, keepdim=True), size)
    length = mean.norm(dim=1, keepdim=True)
    return torch.where(length > 1e-6, mean / length.clamp_min(1e-6), torch.zeros_like(mean))
