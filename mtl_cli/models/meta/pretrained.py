"""The "pretrained on all tasks" baseline of MAML's sinusoid study (Finn et al. 2017, section 5.1):
plain regression on points pooled across tasks, then fine-tuning on each test task's support."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from mtl_cli.models.meta.base import MetaLearner, adaptable_network, check_adaptation
from mtl_cli.schemas import meta_model as schema


class Pretrained(MetaLearner):
    """Joint-training baseline (Finn et al. 2017, sec. 5.1) on backbone + linear head.

    Training ignores the support: the network regresses every query target of every task, i.e. it
    is trained on points pooled across tasks (it learns the mean function). Evaluation fine-tunes
    a per-episode copy of the weights by `inner_steps` plain SGD steps of rate `inner_lr` on that
    episode's support MSE, then predicts the queries; `forward(..., inner_steps=k)` evaluates
    after any k steps (0 = the pretrained network itself). Fine-tuning is vectorised over the
    episodes (torch.func.vmap of grad) and never changes nor differentiates the trained weights.
    BatchNorm uses each episode's batch statistics (as MAML here). Regression only: with labels
    permuted per episode, pooled classification has no fixed target to learn.
    """

    kinds: ClassVar[tuple[str, ...]] = schema.Pretrained.kinds

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module],
        inner_steps: int = 1,
        inner_lr: float = 0.01,
    ) -> None:
        super().__init__(input_shape, ways, kind, make_backbone)
        check_adaptation(inner_steps, inner_lr)
        self.net = adaptable_network(make_backbone, self.out_dim)
        #: fine-tuning steps at evaluation (training never fine-tunes)
        self.inner_steps = int(inner_steps)
        self.inner_lr = float(inner_lr)

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        inner_steps: int | None = None,
    ) -> torch.Tensor:
        """Query predictions [B, Q, 1]: the pooled-regression network (training mode) or its copy
        fine-tuned on each episode's support (eval mode, or `inner_steps` given)."""
        self.check_episode(support_x, support_y, query_x)
        if inner_steps is None:
            inner_steps = 0 if self.training else self.inner_steps
        elif inner_steps < 0:
            raise ValueError(f"inner_steps: {inner_steps} is below the minimum 0")
        params = dict(self.net.named_parameters())
        if inner_steps == 0:
            return vmap(self._call, in_dims=(None, 0))(params, query_x)
        fast = self.finetuned_parameters(support_x, support_y, inner_steps)
        return vmap(self._call)(fast, query_x)

    def finetuned_parameters(
        self, support_x: torch.Tensor, support_y: torch.Tensor, inner_steps: int
    ) -> dict[str, torch.Tensor]:
        """Per-episode weights {name: [B, *shape]} after `inner_steps` SGD steps on the support
        MSE from the trained weights: w <- w - inner_lr * dL/dw (Finn et al. 2017, sec. 5.1)."""
        batch = len(support_x)
        fast = {n: p.detach().expand(batch, *p.shape) for n, p in self.net.named_parameters()}
        support_grad = vmap(grad(self._support_loss))
        with torch.enable_grad():
            for _ in range(inner_steps):
                grads = support_grad(fast, support_x, support_y)
                fast = {n: w - self.inner_lr * grads[n] for n, w in fast.items()}
        return {n: w.detach() for n, w in fast.items()}

    def _call(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.net, params, (x,))

    def _support_loss(
        self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        return F.mse_loss(self._call(params, x), y)
