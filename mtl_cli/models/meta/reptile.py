"""Reptile: move the initialisation towards the weights SGD reaches on each task (Nichol et al.
2018)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from mtl_cli.models.meta.base import (
    MetaLearner,
    adaptable_network,
    adaptation_settings,
    check_bn_mode,
    predict_queries,
)
from mtl_cli.schemas import meta_model as schema


class Reptile(MetaLearner):
    """Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms") on
    backbone + linear head: per episode, `inner_steps` full-batch SGD steps at `inner_lr` on the
    support loss from the shared weights theta give adapted weights phi_i; the meta-update is
    theta <- theta + epsilon (mean_i phi_i - theta).

    In the trainer's loss/backward/optimizer step: `forward` (training mode) adapts every episode
    without an outer graph, keeps mean_i phi_i, and returns the queries' predictions by the
    adapted weights (for metrics); `loss` then returns the pseudo-loss
    0.5 * sum ||theta - stop_grad(mean phi)||^2, whose gradient w.r.t. theta is exactly
    theta - mean phi. With `optim=sgd` (no momentum, no weight decay) the optimizer's learning rate
    is Reptile's outer step size epsilon, so one optimizer step is exactly Reptile's update (the
    paper's batched version, Algorithm 2); other optimizers treat theta - mean phi as a gradient
    (as the paper's Adam-outer variant does). No separate `outer_step_size` option: the paper's
    epsilon (1.0 annealed linearly to 0 in the official few-shot code; 0.1 in its sinusoid demo)
    is the optimizer's lr (and its schedule). The queries never enter training, as in the paper
    (the task's training set is the support). Evaluation (eval mode): `eval_inner_steps` SGD steps
    at `eval_inner_lr` on the support, then predict the queries; `inner_steps=` overrides it.
    BatchNorm uses each batch's statistics (`adaptable_network`); for the queries, `bn_mode`
    "transductive" (the query batch) or "per_example" (the support plus that one query: the
    paper's non-transductive evaluation, its section "transduction"; `predict_queries`).

    Defaults: inner_steps=5 (official 5-way Omniglot), eval_inner_steps=50 (the paper's
    evaluation), inner_lr=0.02 (SGD; the official sinusoid demo). Deviations: the inner optimizer
    is plain SGD (the paper's few-shot runs use Adam with beta1=0 whose state the official code
    carries across tasks; not reproduced) and each step uses the whole support rather than
    mini-batches of `inner_batch` points.
    """

    kinds = schema.Reptile.kinds

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module],
        inner_steps: int = schema.Reptile.inner_steps,
        inner_lr: float = schema.Reptile.inner_lr,
        eval_inner_steps: int | None = schema.Reptile.eval_inner_steps,
        eval_inner_lr: float | None = schema.Reptile.eval_inner_lr,
        bn_mode: str = schema.Reptile.bn_mode,
    ) -> None:
        super().__init__(input_shape, ways, kind, make_backbone)
        settings = adaptation_settings(inner_steps, inner_lr, eval_inner_steps, eval_inner_lr)
        self.net = adaptable_network(make_backbone, self.out_dim)
        self.inner_steps, self.inner_lr, self.eval_inner_steps, self.eval_inner_lr = settings
        self.bn_mode = check_bn_mode(bn_mode)
        #: mean adapted weights of the last training forward (the target of the meta-update)
        self._target: dict[str, torch.Tensor] | None = None

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        inner_steps: int | None = None,
    ) -> torch.Tensor:
        """Query predictions [B, Q, out_dim] of the weights adapted to each episode's support."""
        self.check_episode(support_x, support_y, query_x)
        if inner_steps is None:
            inner_steps = self.inner_steps if self.training else self.eval_inner_steps
        elif inner_steps < 0:
            raise ValueError(f"inner_steps: {inner_steps} is below the minimum 0")
        lr = self.inner_lr if self.training else self.eval_inner_lr
        adapted = self.adapted_parameters(support_x, support_y, inner_steps, lr)
        with torch.no_grad():
            predictions = torch.stack(
                [
                    predict_queries(
                        lambda x, i=i: functional_call(
                            self.net, {k: w[i] for k, w in adapted.items()}, (x,)
                        ),
                        sx,
                        qx,
                        self.bn_mode,
                    )
                    for i, (sx, qx) in enumerate(zip(support_x, query_x, strict=True))
                ]
            )
        if self.training:
            self._target = {name: w.mean(0) for name, w in adapted.items()}
        return predictions

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Training (after a training forward): 0.5 * sum ||theta - mean phi||^2, gradient
        theta - mean phi; otherwise the query loss of `MetaLearner.loss`."""
        if not self.training or self._target is None:
            return super().loss(prediction, target)
        total = prediction.new_zeros(())
        for name, theta in self.net.named_parameters():
            total = total + 0.5 * (theta - self._target[name]).pow(2).sum()
        return total

    def adapted_parameters(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        inner_steps: int,
        inner_lr: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-episode adapted weights phi {name: [B, *shape]}, detached (Reptile is first order)."""
        if inner_lr is None:
            inner_lr = self.inner_lr if self.training else self.eval_inner_lr
        lr = inner_lr
        theta = {name: w.detach() for name, w in self.net.named_parameters()}
        adapted = [
            self._adapt(theta, sx, sy, inner_steps, lr)
            for sx, sy in zip(support_x, support_y, strict=True)
        ]
        return {name: torch.stack([fast[name] for fast in adapted]) for name in theta}

    @torch.compiler.disable
    def _adapt(
        self,
        theta: dict[str, torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        steps: int,
        lr: float,
    ) -> dict[str, torch.Tensor]:
        """`steps` SGD steps on one episode's support loss from theta: w <- w - lr dL/dw."""
        fast = theta
        with torch.enable_grad():
            for _ in range(steps):
                fast = {name: w.detach().requires_grad_() for name, w in fast.items()}
                out = functional_call(self.net, fast, (x,))
                loss = (
                    F.cross_entropy(out, y) if self.kind == "classification" else F.mse_loss(out, y)
                )
                grads = torch.autograd.grad(loss, list(fast.values()))
                fast = {
                    name: (w - lr * g).detach()
                    for (name, w), g in zip(fast.items(), grads, strict=True)
                }
        return fast
