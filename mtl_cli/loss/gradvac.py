"""GradVac: pull each task gradient towards an adaptive target cosine with every other task."""

from __future__ import annotations

import math
from typing import Self

import numpy as np
import torch

from mtl_cli.loss.base import GradientWeighting, TaskSetup, restore_generator, seeded_generator
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings


class GradVac(GradientWeighting):
    """Wang, Tsvetkov, Firat & Cao 2021, "Gradient Vaccine: investigating and improving multi-task
    optimization in massively multilingual models" (Algorithm 1).

    For each task i, for the other tasks j in a random order: phi_ij = cos(g_i', g_j) (g_i' the
    partly corrected gradient of task i, g_j the original one); if phi_ij < phi^_ij (the pair's
    target), g_i' += ||g_i'|| (phi^ sqrt(1 - phi^2) - phi sqrt(1 - phi^^2))
    / (||g_j|| sqrt(1 - phi^^2)) g_j, after which cos(g_i', g_j) = phi^_ij exactly; then, whether
    or not g_i' changed, phi^_ij <- (1 - beta) phi^_ij + beta phi_ij (targets start at 0, so the
    first correction of a conflicting pair is PCGrad's projection). The update is sum_i g_i'.
    Computed in coefficient space (g_i' = sum_k C_ik g_k) from the Gram matrix; the effective
    weights are the column sums of C. The T x T targets are a buffer indexed by task (a step
    with a subset of the tasks reads and updates only its pairs); the orders come from the
    method's own generator (seeded with `seed`, None: the run's seed), which is checkpointed.

    Deviations: the paper applies the rule per model component (layer or matrix); here it is
    applied once to the whole shared gradient (LibMTL's default granularity, and the only one
    with `rep_grad`). A pair in which either gradient is zero has no cosine: no correction and no
    target update; a target of exactly +-1 (reachable only with beta = 1) has no finite
    correction and is not applied. LibMTL updates the target only when it corrected the pair, with beta = 0.5 by
    default; the paper's Algorithm 1 updates it at every visit, and beta = 0.01 follows the
    paper (as TorchJD does).
    """

    def __init__(
        self,
        beta: float = schema.GradVac.beta,
        seed: int | None = schema.GradVac.seed,
        rep_grad: bool = schema.GradVac.rep_grad,
    ) -> None:
        super().__init__(rep_grad=rep_grad)
        check_settings(schema.GradVac, beta=beta, seed=seed)
        self.beta = float(beta)
        self.generator = seeded_generator(seed)

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        t = self.num_tasks
        #: phi^_ij, the EMA target cosine of pair (i, j) (row i: the task being corrected)
        self.register_buffer("targets", torch.zeros(t, t, dtype=torch.float64))
        return self

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        num = gram.shape[0]
        order = torch.rand(num, num, generator=self.generator).argsort(dim=1).numpy()
        where = torch.as_tensor(index, device=self.targets.device)
        targets = self.targets[where][:, where].cpu().numpy()
        coeffs = gradvac_coefficients(gram, order, targets, self.beta)  # updates `targets`
        self.targets[where.unsqueeze(1), where] = torch.as_tensor(targets).to(self.targets)
        return coeffs.sum(axis=0)

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        restore_generator(self.generator, state["generator"])


def gradvac_coefficients(
    gram: np.ndarray, order: np.ndarray, targets: np.ndarray, beta: float
) -> np.ndarray:
    """C [T, T] with g_i' = sum_k C_ik g_k, correcting task i in the order `order[i]` (task i
    itself is skipped). `targets` [T, T] (phi^) is updated in place by the EMA with rate `beta`."""
    num = gram.shape[0]
    coeffs = np.eye(num)
    sq_norms = np.diag(gram)
    for i in range(num):
        for j in order[i]:
            if j == i:
                continue
            norm_i_sq = float(coeffs[i] @ gram @ coeffs[i])  # ||g_i'||^2
            if norm_i_sq <= 0.0 or sq_norms[j] <= 0.0:
                continue  # no cosine: neither a correction nor a target update
            norm_i, norm_j = math.sqrt(norm_i_sq), math.sqrt(float(sq_norms[j]))
            phi = float(np.clip((coeffs[i] @ gram[:, j]) / (norm_i * norm_j), -1.0, 1.0))
            target = float(targets[i, j])
            if phi < target and abs(target) < 1.0:
                root = math.sqrt(1.0 - target**2)
                numerator = target * math.sqrt(1.0 - phi**2) - phi * root
                coeffs[i, j] += norm_i * numerator / (norm_j * root)
            targets[i, j] = (1.0 - beta) * target + beta * phi
    return coeffs
