"""The interface every weighting method implements, and the two kinds of method.

- `LossWeighting`: backward of a weighted sum of losses, sum_i w_i L_i (every parameter, heads
  included, receives the weighted gradient).
- `GradientWeighting`: the per-task gradients of the shared tensors (parameters, or the shared
  representation z with `rep_grad`) form G [T, P]; the method picks coefficients w from the Gram
  matrix G G^T and the shared tensors receive d = w G. Task-specific parameters receive their own
  task's plain gradient (one backward of sum_i L_i restricted to them).

Loss scaling (`trainer.precision=16-mixed`): the trainer sets `loss_scale` (its gradient scaler's
scale, else 1.0) before `backward`. Every autograd call here backpropagates `loss_scale * (...)`,
so float16 gradients do not underflow and every `.grad` is in the scaler's scaled space (the
trainer unscales them before clipping and stepping). What a method sees is unscaled: G is divided
by `loss_scale` before any method combines it or it is kept in `last_gradients`, losses are never
scaled (loss-weighting methods compute their weights from them), and the combined shared direction
d is multiplied by `loss_scale` again when it is written into `.grad`. A step whose losses or
task gradients are not finite (a float16 overflow) is skipped: no combination, no method state
update where the method's state changes only in its combination (Nash-MTL's alpha, PCGrad's
generator), and NaN in the `.grad` of every trainable model parameter, so that the scaler's
`unscale_`/`step` skips the optimizer step as it does for any overflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import torch
from torch import Tensor, nn

from mtl_cli.loss.task_gradients import (
    accumulate_flat_gradient,
    flat_gradient,
    task_gradients,
)
from mtl_cli.models.base import MultiTaskModel

REP_GRAD_ERROR = (
    "loss.rep_grad=true needs a model with a shared representation and a shared batch "
    "(multi-label family); set loss.rep_grad=false"
)


@dataclass(frozen=True)
class TaskSetup:
    """The run facts a method may need, handed over once by `Weighting.setup` (never to __init__).

    `names`: the task names, in task-index order; `steps_per_epoch`: the trainer's evaluation
    period (DWA's epoch when `loss.period` is not set).
    """

    names: tuple[str, ...]
    steps_per_epoch: int | None = None

    @property
    def num_tasks(self) -> int:
        return len(self.names)

    @classmethod
    def count(cls, num_tasks: int, steps_per_epoch: int | None = None) -> TaskSetup:
        """Tasks named task0, task1, ... (for methods used outside a run)."""
        return cls(tuple(f"task{i}" for i in range(int(num_tasks))), steps_per_epoch)


class Weighting(nn.Module):
    """Turns one step's per-task losses into `.grad` on the model (and on its own parameters).

    The constructor takes the method's own settings only (the fields of its schema in
    mtl_cli/schemas/loss.py); the run's facts arrive through the one hook `setup(TaskSetup)`, which
    the trainer calls before building the optimizer and which allocates any per-task state. All
    state lives in parameters, buffers or `get_extra_state`, so `state_dict()` round-trips and a
    resumed run is bit-identical.

    When the trainer sets `keep_task_gradients` before `backward`, the method leaves the
    task-gradient matrix G of the shared parameters in `last_gradients` (rows: `last_tasks`),
    reusing the one it computed itself when it did, so a step never pays for G twice.

    `loss_scale` (set by the trainer before `backward`, 1.0 unless a gradient scaler is used):
    autograd runs on `loss_scale * (...)` and `.grad` ends in that scaled space, while methods
    see unscaled losses and gradients (module docstring). `last_step_skipped` says whether the
    latest `backward` met non-finite losses or gradients and left NaN gradients instead.
    """

    #: per-step scratch attributes (set every step by the trainer or the method): stored as plain
    #: attributes, skipping nn.Module.__setattr__'s parameter/buffer/module bookkeeping, which
    #: costs more than a small method's whole combination
    _STEP_ATTRIBUTES = frozenset(
        {
            "keep_task_gradients",
            "loss_scale",
            "last_step_skipped",
            "last_gradients",
            "last_tasks",
            "extra_losses",
            "sample_gradients",
        }
    )

    def __setattr__(self, name: str, value) -> None:
        if name in self._STEP_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    #: independent training samples one step needs (double sampling: MoDo, SDMGrad); the
    #: trainer draws that many batches of the same tasks, passes the first as `losses` and the
    #: others' losses in `extra_losses`
    samples_per_step: int = 1

    def __init__(self) -> None:
        super().__init__()
        self.extra_losses: list[Tensor] = []
        self.num_tasks = 0
        self.task_names: list[str] = []
        self.steps_per_epoch: int | None = None
        self.keep_task_gradients = False
        #: multiplier of every backward (a gradient scaler's scale); methods see unscaled values
        self.loss_scale: float = 1.0
        #: whether the latest `backward` skipped a non-finite step (NaN left in `.grad`)
        self.last_step_skipped = False
        #: G [T, P] of the latest step on the shared parameters (detached, unscaled), or None
        self.last_gradients: Tensor | None = None
        self.last_tasks: list[int] | None = None

    def setup(self, tasks: TaskSetup) -> Self:
        """Receive the run's tasks; subclasses that keep per-task state extend this (call super)."""
        if self.num_tasks:
            raise RuntimeError(f"{type(self).__name__}.setup: already set up")
        if tasks.num_tasks < 1:
            raise ValueError(f"tasks: {tasks.num_tasks} tasks; need at least 1")
        self.num_tasks = tasks.num_tasks
        self.task_names = list(tasks.names)
        self.steps_per_epoch = tasks.steps_per_epoch
        return self

    def backward(
        self,
        losses: Tensor,
        tasks: Sequence[int],
        model: MultiTaskModel,
        representation: Tensor | None = None,
    ) -> dict[str, float]:
        """Leave `.grad` on the model's parameters for this step; return diagnostics (floats)."""
        raise NotImplementedError

    def keep_gradients_before_backward(
        self, losses: Tensor, index: Tensor, model: MultiTaskModel
    ) -> None:
        """Compute G of the shared parameters now (graph kept) when the trainer asked for it."""
        self.last_gradients, self.last_tasks = None, None
        if not self.keep_task_gradients or len(index) < 2:
            return
        shared = _trainable(model.shared_parameters())
        if shared:
            G = self.unscaled_task_gradients(losses, shared, retain_graph=True)
            if bool(torch.isfinite(G).all()):  # an overflow step has no statistics
                self.last_gradients, self.last_tasks = G.detach(), index.tolist()

    # -- loss scaling ------------------------------------------------------------------------------

    def scaled(self, value: Tensor) -> Tensor:
        """`loss_scale * value`: what every backward of a method differentiates."""
        return value if self.loss_scale == 1.0 else value * self.loss_scale

    def unscaled(self, gradient: Tensor) -> Tensor:
        """A gradient of `scaled(...)` divided back by `loss_scale` (in place)."""
        return gradient if self.loss_scale == 1.0 else gradient.div_(self.loss_scale)

    def unscaled_task_gradients(
        self, losses: Tensor, inputs: Sequence[Tensor], retain_graph: bool = True
    ) -> Tensor:
        """G [T, P] of the losses w.r.t. `inputs`: computed on `loss_scale * L_t` (float16
        gradients do not underflow), returned divided by `loss_scale`."""
        G = task_gradients(losses, inputs, retain_graph=retain_graph, scale=self.loss_scale)
        return self.unscaled(G)

    def step_is_finite(self, *tensors: Tensor) -> bool:
        """True when every value is finite; otherwise the step will be skipped (recorded in
        `last_step_skipped`)."""
        finite = all(_all_finite(t.detach()) for t in tensors)
        self.last_step_skipped = not finite
        return finite

    def skip_step(self, model: MultiTaskModel, index: Tensor) -> dict[str, float]:
        """Leave NaN in the `.grad` of every trainable model parameter (an overflow step: a
        gradient scaler skips the optimizer step) and return NaN weights."""
        self.last_step_skipped = True
        self.last_gradients, self.last_tasks = None, None
        for p in _trainable(model.parameters()):
            p.grad = torch.full_like(p, math.nan)
        return weight_diagnostics(torch.full((len(index),), math.nan), index)

    def check_step(self, losses: Tensor, tasks: Sequence[int]) -> Tensor:
        """Validate one step's losses and task indices; return the indices as a long tensor."""
        if losses.dim() != 1:
            raise ValueError(
                f"losses: expected a 1-D tensor of per-task losses, got shape {tuple(losses.shape)}"
            )
        if not self.num_tasks:
            raise RuntimeError(f"{type(self).__name__}: call setup(TaskSetup) before backward")
        if isinstance(tasks, Tensor):
            index = tasks.detach().to("cpu", torch.long).reshape(-1)
        else:
            index = torch.as_tensor([int(t) for t in tasks], dtype=torch.long)
        if index.numel() != losses.shape[0] or index.numel() == 0:
            raise ValueError(
                f"tasks: {index.numel()} task indices for {losses.shape[0]} losses; need one each"
            )
        if int(index.min()) < 0 or int(index.max()) >= self.num_tasks:
            raise ValueError(
                f"tasks: index out of range in {index.tolist()}; allowed: 0..{self.num_tasks - 1}"
            )
        if index.unique().numel() != index.numel():
            raise ValueError(f"tasks: repeated task index in {index.tolist()}")
        return index


def weight_diagnostics(weights: Tensor, index: Tensor) -> dict[str, float]:
    """`weight/<task index>` for each task of the step."""
    values = weights.detach().double().cpu().tolist()
    return {f"weight/{t}": float(v) for t, v in zip(index.tolist(), values, strict=True)}


class LossWeighting(Weighting):
    """Methods that minimise sum_i w_i L_i with weights chosen per step (or a similar objective)."""

    def weights(self, losses: Tensor, index: Tensor) -> Tensor:
        """Weights [len(index)] of this step's (detached) losses of tasks `index`."""
        raise NotImplementedError

    def objective(self, losses: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        """Scalar to backpropagate and the effective weights; default sum_i w_i L_i."""
        weights = self.weights(losses.detach(), index).to(losses.dtype)
        return (weights * losses).sum(), weights

    def backward(
        self,
        losses: Tensor,
        tasks: Sequence[int],
        model: MultiTaskModel,
        representation: Tensor | None = None,
    ) -> dict[str, float]:
        index = self.check_step(losses, tasks)
        if not self.step_is_finite(losses):  # weights (and their state) only from finite losses
            return self.skip_step(model, index)
        self.keep_gradients_before_backward(losses, index, model)
        total, weights = self.objective(losses, index.to(losses.device))
        self.scaled(total).backward()
        return weight_diagnostics(weights, index)


class GradientWeighting(Weighting):
    """Methods that combine the task gradients of the shared tensors: d = sum_i w_i g_i.

    Subclasses implement `combination(gram, losses, index) -> w` (numpy, float64) on the Gram
    matrix G G^T; `aggregate(G, losses)` is the resulting pure map G -> d. With `rep_grad` the
    shared tensor is the representation z the heads consumed (MGDA-UB, Sener & Koltun 2018): the
    combined gradient of z is backpropagated through the trunk.
    """

    def __init__(self, rep_grad: bool = False) -> None:
        super().__init__()
        self.rep_grad = bool(rep_grad)
        #: G [T, P] of each of the step's `extra_losses` on the shared parameters (unscaled)
        self.sample_gradients: list[Tensor] = []

    # -- the method ------------------------------------------------------------------------------

    def combination(self, gram: np.ndarray, losses: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Coefficients w [T] of the task gradients, from the Gram matrix G G^T [T, T] (float64)."""
        raise NotImplementedError

    def reused_weights(self, index: Tensor) -> Tensor | None:
        """Weights to use without computing G this step (e.g. Nash-MTL between updates), or None."""
        return None

    def finalize(self, direction: Tensor) -> Tensor:
        """Last transformation of the combined shared gradient (default: none)."""
        return direction

    def solver_diagnostics(self) -> dict[str, float]:
        """Extra floats for this step's diagnostics (e.g. a solver's residual); default none."""
        return {}

    def aggregate(self, G: Tensor, losses: Tensor, index: Tensor | None = None) -> Tensor:
        """Combined shared gradient d [P] from the task gradients G [T, P] and the losses [T]."""
        return self._aggregate(G, losses, index)[0]

    # -- plumbing --------------------------------------------------------------------------------

    def _aggregate(
        self, G: Tensor, losses: Tensor, index: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        if index is None:
            index = torch.arange(G.shape[0])
        gram = (G @ G.T).detach().double().cpu().numpy()
        loss_values = losses.detach().double().cpu().numpy()
        weights = self.combination(gram, loss_values, index.cpu().numpy())
        weights = torch.as_tensor(weights, dtype=G.dtype, device=G.device)
        return self.finalize(weights @ G), weights

    def backward(
        self,
        losses: Tensor,
        tasks: Sequence[int],
        model: MultiTaskModel,
        representation: Tensor | None = None,
    ) -> dict[str, float]:
        index = self.check_step(losses, tasks)
        if self.rep_grad and representation is None:
            raise ValueError(REP_GRAD_ERROR)
        if not self.step_is_finite(losses):
            return self.skip_step(model, index)
        shared = [representation] if self.rep_grad else _trainable(model.shared_parameters())
        shared_ids = {id(p) for p in model.shared_parameters()}
        specific = [p for p in _trainable(model.parameters()) if id(p) not in shared_ids]
        weights = self.reused_weights(index) if shared else None
        computes_shared_G = bool(shared) and not self.rep_grad and weights is None
        if computes_shared_G:
            self.last_gradients, self.last_tasks = None, None
        else:  # G of the shared parameters only if the trainer asked for it
            self.keep_gradients_before_backward(losses, index, model)

        if specific:  # each head depends on its own loss only: d(sum L)/d(head t) = dL_t/d(head t)
            grads = torch.autograd.grad(
                self.scaled(losses.sum()), specific, retain_graph=bool(shared), allow_unused=True
            )
            for p, g in zip(specific, grads, strict=True):
                if g is not None:
                    p.grad = g if p.grad is None else p.grad.add_(g)
        if not shared:  # no shared tensor (independent networks): nothing to combine
            return weight_diagnostics(torch.ones(len(index)), index)

        if weights is None:
            G = self.unscaled_task_gradients(losses, shared, retain_graph=self.rep_grad)
            # independent samples of the same step (MoDo, SDMGrad): their task gradients too
            self.sample_gradients = [
                self.unscaled_task_gradients(extra, shared, retain_graph=False)
                for extra in self.extra_losses
            ]
            if not self.step_is_finite(G, *self.sample_gradients):  # the state stays put
                return self.skip_step(model, index)
            direction, weights = self._aggregate(G, losses, index)
            if computes_shared_G:
                self.last_gradients, self.last_tasks = G.detach(), index.tolist()
        else:
            weights = weights.to(losses.dtype).to(losses.device)
            combined = self.scaled((weights * losses).sum())
            direction = self.unscaled(flat_gradient(combined, shared, retain_graph=self.rep_grad))
            if not self.step_is_finite(direction):
                return self.skip_step(model, index)
            direction = self.finalize(direction)
        direction = self.scaled(direction)  # into the scaler's space, like every other .grad
        if self.rep_grad:
            representation.backward(direction.view_as(representation))
        else:
            accumulate_flat_gradient(shared, direction)
        return weight_diagnostics(weights, index) | self.solver_diagnostics()


def _all_finite(values: Tensor) -> bool:
    """Whether every value is finite. A sum reduction is one fast pass (isfinite materialises a
    mask, 0.6 ms on a [2, 267k] G: a third of a training step); only when the sum is not finite is
    the exact, slow check needed, since a sum of finite values can overflow."""
    total = values.sum()
    if bool(torch.isfinite(total)):
        return True
    return bool(torch.isfinite(values).all())


def _trainable(params) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad]


def restore_generator(generator: torch.Generator, state: Tensor) -> None:
    """Set a CPU generator's state from a checkpoint, wherever `map_location` put the tensor
    (torch.Generator.set_state takes only a CPU ByteTensor)."""
    generator.set_state(state.cpu())


def seeded_generator(seed: int | None) -> torch.Generator:
    """CPU generator for a method's own randomness; seed None: the run's seed (initial_seed)."""
    generator = torch.Generator()
    generator.manual_seed(int(torch.initial_seed() if seed is None else seed))
    return generator
