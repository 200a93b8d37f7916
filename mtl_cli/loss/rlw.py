"""Random loss weighting."""

from __future__ import annotations

import torch
from torch import Tensor

from mtl_cli.loss.base import LossWeighting, restore_generator, seeded_generator
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class RLW(LossWeighting):
    """Random Loss Weighting (Lin et al. 2021, "Reasonable effectiveness of random weighting").

    Each step draws w = softmax(z), z ~ N(0, I) over the step's tasks (the paper's default
    distribution), so the weights sum to 1. The draws come from the method's own generator,
    seeded with `seed` (None: the run's seed) and checkpointed.
    """

    def __init__(self, seed: int | None = schema.RLW.seed) -> None:
        super().__init__()
        check_settings(schema.RLW, seed=seed)
        self.generator = seeded_generator(seed)

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        draws = torch.randn(len(index), generator=self.generator, dtype=torch.float64)
        return torch.softmax(draws, dim=0).to(losses.device, losses.dtype)

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        restore_generator(self.generator, state["generator"])
