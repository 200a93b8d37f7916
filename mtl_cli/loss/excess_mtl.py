"""ExcessMTL: robust task weights from each task's estimated excess risk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import torch
from torch import Tensor

from mtl_cli.loss.base import LossWeighting, TaskSetup, weight_diagnostics
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.schemas import loss as schema
from mtl_cli.schemas.checks import check_settings

EPS = 1e-7  # inside the square root of the accumulated squared gradients (the authors' code)


class ExcessMTL(LossWeighting):
    """He, Zhou, Zhang, Yun, Xu, Zeng, Chilimbi & Zhao 2024, "Robust multi-task learning with
    excess risks" (ICML): min_theta max_{alpha in simplex} sum_i alpha_i (L_i - L_i*).

    Each step computes the task gradients g_i on the shared parameters, accumulates
    H_i += g_i * g_i (an AdaGrad-style diagonal estimate of the curvature) and estimates task i's
    excess risk as e_i = g_i^T diag(sqrt(H_i + 1e-7))^{-1} g_i (the second-order bound
    1/2 g^T H^{-1} g up to the constant). e_i is divided by the task's first estimate e_i(0), so
    tasks with different loss scales are comparable, and the weights take one exponentiated
    gradient (mirror ascent) step: alpha_i <- alpha_i exp(`robust_step_size` e_i / e_i(0)),
    renormalised to the simplex (alpha starts uniform; a task's first step only records e_i(0)).
    The network step backpropagates sum_i alpha_i L_i with the updated weights, so every
    parameter, heads included, gets the weighted gradient. With task sampling only the step's
    tasks accumulate and update, and the step's weights are their alphas renormalised to sum 1.

    Cost: T backward passes for the task gradients plus one. State: alpha (kept as log-weights),
    e_i(0) and the T x P accumulator H, all buffers (H is sized at the first step). The authors'
    code keeps the weights summing to T instead of 1 (a T times larger update); the paper's
    weights live on the simplex, as here.
    """

    def __init__(self, robust_step_size: float = schema.ExcessMTL.robust_step_size) -> None:
        super().__init__()
        check_settings(schema.ExcessMTL, robust_step_size=robust_step_size)
        self.robust_step_size = float(robust_step_size)

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        t = self.num_tasks
        #: log alpha up to a constant: alpha = softmax(log_weights)
        self.register_buffer("log_weights", torch.zeros(t, dtype=torch.float64))
        self.register_buffer("initial_risk", torch.zeros(t, dtype=torch.float64))
        self.register_buffer("initial_known", torch.zeros(t, dtype=torch.bool))
        #: sum over steps of g_i * g_i [T, P]; empty until the first step knows P
        self.register_buffer("grad_sq_sum", torch.zeros(0))
        return self

    @property
    def alpha(self) -> Tensor:
        """The weights of all tasks, on the simplex."""
        return torch.softmax(self.log_weights, dim=0)

    def update(self, G: Tensor, index: Tensor) -> Tensor:
        """One step of the weights from the task gradients G [len(index), P]; returns the step's
        weights (sum 1)."""
        G = G.detach().to(torch.promote_types(G.dtype, torch.float32))
        if self.grad_sq_sum.shape != (self.num_tasks, G.shape[1]):
            self.grad_sq_sum = G.new_zeros(self.num_tasks, G.shape[1])
        rows = index.to(self.grad_sq_sum.device)
        accumulated = self.grad_sq_sum[rows] + G * G
        self.grad_sq_sum[rows] = accumulated
        risk = (G * G / torch.sqrt(accumulated + EPS)).sum(dim=1).to(self.log_weights)
        where = index.to(self.log_weights.device)
        known = self.initial_known[where]
        initial = self.initial_risk[where]
        ratio = torch.where(known, risk / torch.where(known, initial, 1.0), 0.0)
        record = ~known & (risk > 0)
        self.initial_risk[where] = torch.where(record, risk, initial)
        self.initial_known[where] = known | record
        self.log_weights[where] += self.robust_step_size * ratio
        self.log_weights -= self.log_weights.max()  # the same alpha, bounded log-weights
        return torch.softmax(self.log_weights[where], dim=0)

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        """The current weights of tasks `index` (sum 1), without a step."""
        return torch.softmax(self.log_weights[index.to(self.log_weights.device)], dim=0).to(losses)

    def backward(
        self,
        losses: Tensor,
        tasks: Sequence[int],
        model: MultiTaskModel,
        representation: Tensor | None = None,
    ) -> dict[str, float]:
        index = self.check_step(losses, tasks)
        if not self.step_is_finite(losses):
            return self.skip_step(model, index)
        self.last_gradients, self.last_tasks = None, None
        shared = [p for p in model.shared_parameters() if p.requires_grad]
        if shared:
            G = self.unscaled_task_gradients(losses, shared, retain_graph=True)
            if not self.step_is_finite(G):  # no state update from an overflow step
                return self.skip_step(model, index)
            if self.keep_task_gradients and len(index) >= 2:
                self.last_gradients, self.last_tasks = G.detach(), index.tolist()
            weights = self.update(G, index).to(losses)
        else:  # no shared parameters: no excess-risk estimate, the weights stay
            weights = self.weights(losses, index)
        self.scaled((weights * losses).sum()).backward()
        return weight_diagnostics(weights, index)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        stored = state_dict.get(prefix + "grad_sq_sum")
        current = getattr(self, "grad_sq_sum", None)
        if stored is not None and current is not None and stored.shape != current.shape:
            self.grad_sq_sum = torch.zeros(stored.shape, dtype=stored.dtype, device=current.device)
        super()._load_from_state_dict(state_dict, prefix, *args)
