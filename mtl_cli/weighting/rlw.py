"""Random loss weighting."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtl_cli.weighting.base import LossWeighting, seeded_generator


class RLW(LossWeighting):
    """Random Loss Weighting (Lin et al. 2021, "Reasonable effectiveness of random weighting").

    Each step draws w = softmax(z), z ~ N(0, I) over the step's tasks (the paper's default
    distribution), so the weights sum to 1. The draws come from the method's own generator,
    seeded with `seed` (None: the run's seed) and checkpointed.
    """

    def __init__(
        self,
        num_tasks: int,
        seed: int | None = None,
        task_names: Sequence[str] | None = None,
        steps_per_epoch: int | None = None,
    ) -> None:
        super().__init__(num_tasks, task_names=task_names, steps_per_epoch=steps_per_epoch)
        self.generator = seeded_generator(seed)

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        draws = torch.randn(len(index), generator=self.generator, dtype=torch.float64)
        return torch.softmax(draws, dim=0).to(losses.device, losses.dtype)

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
