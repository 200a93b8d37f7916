"""Random gradient weighting: the shared parameters get a random convex combination of the task
gradients, each head its own task's plain gradient."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtl_cli.loss.base import GradientWeighting, restore_generator, seeded_generator
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class RGW(GradientWeighting):
    """Random Gradient Weighting (Lin, Ye, Zhang & Tsang 2022, "Reasonable effectiveness of
    random weighting: a litmus test for multi-task learning", TMLR).

    Each step draws w = softmax(z), z ~ N(0, I) over the step's tasks (the paper's default
    distribution, as for RLW), and the shared tensors receive d = sum_i w_i g_i; task-specific
    parameters receive their own task's unweighted gradient (as in LibMTL, whose authors wrote
    the paper). That is what separates it from RLW, which backpropagates sum_i w_i L_i and so
    also scales head i's gradient by w_i: with the same draw the two give the same shared
    gradient and different head gradients. Since d is linear in the losses it is computed
    without the T per-task gradients (one backward of sum_i w_i L_i through the shared tensors,
    `reused_weights`): the same d as from the paper's per-task gradients, at 2 passes per step
    instead of T. For the same reason `rep_grad` does not change d. Draws come from the method's
    own generator, seeded with `seed` (None: the run's seed) and checkpointed; a step skipped for
    non-finite gradients has already drawn its weights.
    """

    def __init__(
        self,
        seed: int | None = schema.RGW.seed,
        rep_grad: bool = schema.RGW.rep_grad,
    ) -> None:
        super().__init__(rep_grad=rep_grad)
        check_settings(schema.RGW, seed=seed)
        self.generator = seeded_generator(seed)

    def draw(self, num: int) -> Tensor:
        """softmax(z), z ~ N(0, I_num), float64, from the method's generator."""
        return torch.softmax(torch.randn(num, generator=self.generator, dtype=torch.float64), 0)

    def reused_weights(self, index: Tensor) -> Tensor | None:
        return self.draw(len(index))

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        return self.draw(gram.shape[0]).numpy()

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        restore_generator(self.generator, state["generator"])
