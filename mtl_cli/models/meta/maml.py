"""MAML: learn an initialisation that adapts to a task in a few gradient steps (Finn et al. 2017),
with first-order MAML and Meta-SGD's learned per-parameter inner learning rates (Li et al. 2017)."""

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


class MAML(MetaLearner):
    """MAML (Finn et al. 2017) on backbone + linear head: per episode, `inner_steps` SGD steps on
    the support loss from the shared initialisation, then predict the queries with adapted weights.

    Episodes are adapted one after another (torch.autograd.grad + functional_call, no module
    copies): torch.func.vmap gives wrong second-order gradients through batch norm
    (pytorch/functorch issue 534; reproduced with torch 2.13) and was slower on CPU.
    `first_order` drops second-order terms (inner gradients detached; Finn et al. 2017 sec. 5.2);
    `learn_inner_lr` learns one rate per weight, initialised to `inner_lr` (Meta-SGD, Li et al.
    2017) and used in training and evaluation. BatchNorm uses batch statistics (running statistics
    removed): the support batch in the inner loop; for the queries, `bn_mode` "transductive" (the
    query batch, as the original MAML code) or "per_example" (the support plus that one query:
    Nichol et al. 2018's non-transductive evaluation; `predict_queries`).
    Training mode uses (inner_steps, inner_lr); eval mode (eval_inner_steps, eval_inner_lr), each
    defaulting to its training value when None (Finn et al. evaluate with more steps than they
    train with, e.g. 10 vs 1-5).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module],
        inner_steps: int = 1,
        inner_lr: float = 0.4,
        eval_inner_steps: int | None = 3,
        eval_inner_lr: float | None = None,
        first_order: bool = False,
        learn_inner_lr: bool = False,
        bn_mode: str = "transductive",
    ) -> None:
        super().__init__(input_shape, ways, kind, make_backbone)
        settings = adaptation_settings(inner_steps, inner_lr, eval_inner_steps, eval_inner_lr)
        if learn_inner_lr and eval_inner_lr is not None:
            raise ValueError(
                f"eval_inner_lr: must be null with learn_inner_lr=true (the learned rates are "
                f"used in evaluation too); got {eval_inner_lr}"
            )
        self.net = adaptable_network(make_backbone, self.out_dim)
        self.inner_steps, self.inner_lr, self.eval_inner_steps, self.eval_inner_lr = settings
        self.first_order = bool(first_order)
        self.bn_mode = check_bn_mode(bn_mode)
        self.inner_lrs: nn.ParameterList | None = None
        if learn_inner_lr:
            self.inner_lrs = nn.ParameterList(
                [nn.Parameter(torch.full_like(p, self.inner_lr)) for p in self.net.parameters()]
            )

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        inner_steps: int | None = None,
    ) -> torch.Tensor:
        """Query predictions [B, Q, out_dim] after adapting to each episode's support;
        `inner_steps` overrides the mode's step count (e.g. sinusoid evaluation at 1 and 10)."""
        self.check_episode(support_x, support_y, query_x)
        if inner_steps is None:
            inner_steps = self.inner_steps if self.training else self.eval_inner_steps
        elif inner_steps < 0:
            raise ValueError(f"inner_steps: {inner_steps} is below the minimum 0")
        params = dict(self.net.named_parameters())
        rates = self._inner_rates()
        predictions = []
        for sx, sy, qx in zip(support_x, support_y, query_x, strict=True):
            fast = self._adapt(params, rates, sx, sy, inner_steps)
            predictions.append(
                predict_queries(
                    lambda x, fast=fast: functional_call(self.net, fast, (x,)), sx, qx, self.bn_mode
                )
            )
        return torch.stack(predictions)

    def adapted_parameters(
        self, support_x: torch.Tensor, support_y: torch.Tensor, inner_steps: int
    ) -> dict[str, torch.Tensor]:
        """Per-episode adapted weights {name: [B, *shape]} (for inspection and tests)."""
        params = dict(self.net.named_parameters())
        rates = self._inner_rates()
        adapted = [
            self._adapt(params, rates, sx, sy, inner_steps)
            for sx, sy in zip(support_x, support_y, strict=True)
        ]
        return {name: torch.stack([fast[name] for fast in adapted]) for name in params}

    def _adapt(
        self,
        params: dict[str, torch.Tensor],
        rates: dict[str, torch.Tensor | float],
        x: torch.Tensor,
        y: torch.Tensor,
        steps: int,
    ) -> dict[str, torch.Tensor]:
        """`steps` gradient steps on one episode's support loss: w <- w - rate * dL/dw.

        With outer gradients on, the steps stay in the graph (second order unless `first_order`,
        whose inner gradients are constants); under torch.no_grad only the adapted values are kept.
        """
        outer = torch.is_grad_enabled()
        create_graph = outer and not self.first_order
        # second order: the support loss's backward is differentiated again, which compiled
        # graphs (torch.compile's AOTAutograd) cannot do: that loss always runs eager
        support_loss = self._support_loss_eager if create_graph else self._support_loss
        fast = params
        with torch.enable_grad():
            for _ in range(steps):
                loss = support_loss(fast, x, y)
                grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph)
                fast = {
                    name: w - rates[name] * g
                    for (name, w), g in zip(fast.items(), grads, strict=True)
                }
                if not outer:
                    fast = {name: w.detach().requires_grad_() for name, w in fast.items()}
        return fast

    def _inner_rates(self) -> dict[str, torch.Tensor | float]:
        names = [name for name, _ in self.net.named_parameters()]
        if self.inner_lrs is not None:
            return dict(zip(names, self.inner_lrs, strict=True))
        lr = self.inner_lr if self.training else self.eval_inner_lr
        return dict.fromkeys(names, lr)

    def _support_loss(
        self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        out = functional_call(self.net, params, (x,))
        if self.kind == "classification":
            return F.cross_entropy(out, y)
        return F.mse_loss(out, y)

    @torch.compiler.disable
    def _support_loss_eager(
        self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """`_support_loss`, never inside a torch.compile graph (no double backward there)."""
        return self._support_loss(params, x, y)
