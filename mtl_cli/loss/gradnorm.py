"""GradNorm: learn loss weights that balance the tasks' gradient norms by their training rates."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Self

import torch
from torch import Tensor

from mtl_cli.loss.base import TaskSetup, Weighting, weight_diagnostics
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings

MIN_WEIGHT = 1e-4  # weights are clamped here before renormalising, so they stay positive


class GradNorm(Weighting):
    """Chen, Badrinarayanan, Lee & Rabinovich 2018: the network minimises sum_i w_i L_i; the w_i
    minimise L_grad = sum_i | G_i - mean_j(G_j) r_i^alpha |, G_i = ||grad_W w_i L_i|| at the last
    shared layer W, r_i = (L_i / L_i(0)) / mean_j(L_j / L_j(0)) (the target is held constant).

    The weights take one step of their own Adam optimizer (`lr`) per training step and are then
    renormalised to sum to T (the number of tasks), as in the paper. L_i(0) is task i's first
    observed loss. The weights are a buffer, not a parameter: the trainer's optimizer never sees
    them. With a loss scale (16-mixed) the norms are taken on unscaled gradients; a step with
    non-finite losses or norms updates nothing and leaves NaN gradients (skipped).
    """

    def __init__(
        self, alpha: float = schema.GradNorm.alpha, lr: float = schema.GradNorm.lr
    ) -> None:
        super().__init__()
        check_settings(schema.GradNorm, alpha=alpha, lr=lr)
        self.alpha = float(alpha)
        self.lr = float(lr)
        self._optimizer: torch.optim.Optimizer | None = None
        self._optimizer_state: dict | None = None  # loaded before the optimizer exists

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        t = self.num_tasks
        self.register_buffer("loss_weights", torch.ones(t))
        self.register_buffer("initial_losses", torch.ones(t, dtype=torch.float64))
        self.register_buffer("initial_seen", torch.zeros(t, dtype=torch.bool))
        return self

    def backward(
        self,
        losses: Tensor,
        tasks: Sequence[int],
        model: MultiTaskModel,
        representation: Tensor | None = None,
    ) -> dict[str, float]:
        index = self.check_step(losses, tasks).to(self.loss_weights.device)
        if not self.step_is_finite(losses):
            return self.skip_step(model, index)
        last_shared = [p for p in model.last_shared_parameters() if p.requires_grad]
        norms = None
        if last_shared:
            norms = self.unscaled_task_gradients(losses, last_shared).norm(dim=1)
            if not self.step_is_finite(norms):  # before any state changes
                return self.skip_step(model, index)
        self.keep_gradients_before_backward(losses, index, model)
        weights = self.loss_weights[index].to(losses.device, losses.dtype)  # a copy: used this step
        detached = losses.detach().to(self.initial_losses)
        new = ~self.initial_seen[index]
        self.initial_losses[index[new]] = detached[new]
        self.initial_seen[index] = True
        if norms is not None:
            self._update_weights(index, norms.to(self.initial_losses), detached)
        self.scaled((weights * losses).sum()).backward()
        return weight_diagnostics(weights, index)

    def _update_weights(self, index: Tensor, norms: Tensor, losses: Tensor) -> None:
        weights = self.loss_weights[index].to(norms)
        inverse_rate = losses / self.initial_losses[index].clamp_min(1e-12)
        relative = inverse_rate / inverse_rate.mean().clamp_min(1e-12)
        target = (weights * norms).mean() * relative**self.alpha
        # d/dw_i |w_i n_i - target_i| = n_i sign(w_i n_i - target_i)
        grad = torch.zeros_like(self.loss_weights)
        grad[index] = (norms * torch.sign(weights * norms - target)).to(grad)
        optimizer = self._weight_optimizer()
        self.loss_weights.grad = grad
        optimizer.step()
        self.loss_weights.grad = None
        with torch.no_grad():
            self.loss_weights.clamp_(min=MIN_WEIGHT)
            self.loss_weights.mul_(self.num_tasks / self.loss_weights.sum())

    def _weight_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the weight buffer, (re)built when the buffer moved (e.g. `.to(device)`)."""
        if self._optimizer is not None and self._optimizer.param_groups[0]["params"][0] is not (
            self.loss_weights
        ):
            self._optimizer_state = self._optimizer.state_dict()
            self._optimizer = None
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam([self.loss_weights], lr=self.lr)
            if self._optimizer_state is not None:
                self._optimizer.load_state_dict(self._optimizer_state)
                self._optimizer_state = None
        return self._optimizer

    def get_extra_state(self) -> dict:
        state = self._optimizer.state_dict() if self._optimizer else self._optimizer_state
        return {"optimizer": state}

    def set_extra_state(self, state: dict) -> None:
        self._optimizer = None
        self._optimizer_state = copy.deepcopy(state["optimizer"])
