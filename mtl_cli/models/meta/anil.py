"""ANIL (Almost No Inner Loop): MAML whose inner loop adapts only the head (Raghu et al. 2020)."""

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


class ANIL(MetaLearner):
    """ANIL (Raghu, Raghu, Bengio & Vinyals 2020, "Rapid Learning or Feature Reuse? Towards
    Understanding the Effectiveness of MAML", ICLR): MAML on backbone + linear head in which the
    inner loop adapts only the head; the body (backbone) is trained by the outer loop alone.

    Per episode the body embeds the support and the queries once (its weights are the shared
    ones), then `inner_steps` SGD steps on the support loss adapt the head's weight and bias, and
    the adapted head predicts the queries. The outer gradient reaches the body through the query
    features and, second order, through the support features the head steps depend on;
    `first_order` treats the inner gradients as constants (first-order MAML with a frozen body).
    This equals MAML (mtl_cli/models/meta/maml.py) with the body's inner learning rate set to 0.
    BatchNorm uses each episode's batch statistics (the network of `adaptable_network`, as MAML);
    `bn_mode` says which for the query features, as in MAML (`predict_queries`).
    Defaults: ANIL reuses MAML's hyperparameters (Finn et al. 2017's 5-way Omniglot: 1 inner step
    at 0.4 in training, 3 at evaluation); eval_inner_steps / eval_inner_lr default (None) to the
    training values. Deviation: no learned per-weight rates (Meta-SGD), which the paper lacks.
    """

    kinds = schema.ANIL.kinds

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module],
        inner_steps: int = schema.ANIL.inner_steps,
        inner_lr: float = schema.ANIL.inner_lr,
        eval_inner_steps: int | None = schema.ANIL.eval_inner_steps,
        eval_inner_lr: float | None = schema.ANIL.eval_inner_lr,
        first_order: bool = schema.ANIL.first_order,
        bn_mode: str = schema.ANIL.bn_mode,
    ) -> None:
        super().__init__(input_shape, ways, kind, make_backbone)
        settings = adaptation_settings(inner_steps, inner_lr, eval_inner_steps, eval_inner_lr)
        #: same layout as MAML's: net[0] is the body, net[1] the linear head
        self.net = adaptable_network(make_backbone, self.out_dim)
        self.inner_steps, self.inner_lr, self.eval_inner_steps, self.eval_inner_lr = settings
        self.first_order = bool(first_order)
        self.bn_mode = check_bn_mode(bn_mode)

    @property
    def body(self) -> nn.Module:
        return self.net[0]

    @property
    def head(self) -> nn.Module:
        return self.net[1]

    def forward(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
        inner_steps: int | None = None,
    ) -> torch.Tensor:
        """Query predictions [B, Q, out_dim] of each episode's adapted head; `inner_steps`
        overrides the mode's step count."""
        self.check_episode(support_x, support_y, query_x)
        if inner_steps is None:
            inner_steps = self.inner_steps if self.training else self.eval_inner_steps
        elif inner_steps < 0:
            raise ValueError(f"inner_steps: {inner_steps} is below the minimum 0")
        lr = self.inner_lr if self.training else self.eval_inner_lr
        head = dict(self.head.named_parameters())
        predictions = []
        for sx, sy, qx in zip(support_x, support_y, query_x, strict=True):
            support_features = self.body(sx)
            fast = self._adapt(head, support_features, sy, inner_steps, lr)
            query_features = predict_queries(self.body, sx, qx, self.bn_mode)
            predictions.append(functional_call(self.head, fast, (query_features,)))
        return torch.stack(predictions)

    @torch.compiler.disable  # second order: a double backward, which compiled graphs cannot do
    def _adapt(
        self,
        params: dict[str, torch.Tensor],
        features: torch.Tensor,
        y: torch.Tensor,
        steps: int,
        lr: float,
    ) -> dict[str, torch.Tensor]:
        """`steps` SGD steps of the head on one episode's support features: w <- w - lr dL/dw."""
        outer = torch.is_grad_enabled()
        create_graph = outer and not self.first_order
        fast = params
        with torch.enable_grad():
            if not outer:  # evaluation under no_grad: adapt detached copies of the head
                fast = {name: w.detach().requires_grad_() for name, w in fast.items()}
            for _ in range(steps):
                out = functional_call(self.head, fast, (features,))
                if self.kind == "classification":
                    loss = F.cross_entropy(out, y)
                else:
                    loss = F.mse_loss(out, y)
                grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph)
                fast = {name: w - lr * g for (name, w), g in zip(fast.items(), grads, strict=True)}
                if not outer:
                    fast = {name: w.detach().requires_grad_() for name, w in fast.items()}
        return fast
