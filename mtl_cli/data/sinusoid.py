"""Sinusoid regression tasks (Finn et al. 2017, MAML section 5.1).

Each task is y = A sin(x - phi) with amplitude A ~ U[amp], phase phi ~ U[phase] and inputs
x ~ U[x_range], drawn independently for support and query points (the MAML code's convention).
"""

from __future__ import annotations

import math

import torch

from mtl_cli.data.episodes import Episode


def _check_range(key: str, value: tuple[float, float], strict: bool) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if low > high or (strict and low == high):
        rel = "<" if strict else "<="
        raise ValueError(f"{key}: need (low, high) with low {rel} high; got ({low}, {high})")
    return low, high


class SinusoidTasks:
    """A distribution over sinusoid regression tasks (Finn et al. 2017): K support and Q query
    points per task; inputs and targets are float32 [B, K, 1] / [B, Q, 1]."""

    def __init__(
        self,
        shots: int,
        queries: int,
        amp: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        if shots < 1:
            raise ValueError(f"shots: {shots} is below the minimum 1")
        if queries < 1:
            raise ValueError(f"queries: {queries} is below the minimum 1")
        self.shots, self.queries = shots, queries
        self.amp = _check_range("amp", amp, strict=False)
        self.phase = _check_range("phase", phase, strict=False)
        self.x_range = _check_range("x_range", x_range, strict=True)

    def sample(self, batch: int, generator: torch.Generator) -> Episode:
        """Draw `batch` tasks with their support and query points."""
        if batch < 1:
            raise ValueError(f"batch: {batch} is below the minimum 1")
        amp, phase, x = self.sample_with_parameters(batch, generator)
        y = self.targets(amp, phase, x)
        k = self.shots
        return Episode(x[:, :k], y[:, :k], x[:, k:], y[:, k:])

    def sample_with_parameters(
        self, batch: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(amplitude [B, 1, 1], phase [B, 1, 1], inputs [B, K+Q, 1]) as used by `sample`."""
        n = self.shots + self.queries

        def uniform(shape: tuple[int, ...], bounds: tuple[float, float]) -> torch.Tensor:
            u = torch.rand(shape, generator=generator, device=generator.device)
            return bounds[0] + (bounds[1] - bounds[0]) * u

        amp = uniform((batch, 1, 1), self.amp)
        phase = uniform((batch, 1, 1), self.phase)
        x = uniform((batch, n, 1), self.x_range)
        return amp, phase, x

    @staticmethod
    def targets(amp: torch.Tensor, phase: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The task's function y = A sin(x - phi) (for plots of the true curve)."""
        return amp * torch.sin(x - phase)
