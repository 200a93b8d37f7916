"""The interface of every meta-learner: (support_x, support_y, query_x) -> query predictions.

A learner maps one meta-batch of B episodes (D_i^tr = support, D_i^test = queries; CS330 lecture 2)
to query predictions: logits [B, Q, ways] (classification) or values [B, Q, 1] (regression).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mtl_cli.schemas.meta_model import BN_MODES

KINDS = ("classification", "regression")


class MetaLearner(nn.Module):
    """Base class of the meta-learners (Finn et al. 2017's problem setting): validates the kind and
    the episode shapes, encodes support labels, and gives the per-episode loss."""

    #: task kinds this learner can do: its schema's `kinds` (mtl_cli/schemas/meta_model.py)
    kinds: ClassVar[tuple[str, ...]] = KINDS

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if kind not in self.kinds:
            raise ValueError(
                f"kind: {type(self).__name__} does not do '{kind}' tasks; "
                f"allowed: {', '.join(self.kinds)}"
            )
        shape = tuple(int(s) for s in input_shape)
        if not shape or min(shape) < 1:
            raise ValueError(f"input_shape: need positive sizes; got {tuple(input_shape)}")
        if kind == "classification" and ways < 2:
            raise ValueError(f"ways: {ways} is below the minimum 2 for classification")
        self.input_shape = shape
        self.ways = int(ways)
        self.kind = kind
        #: size of the last axis of `forward`'s output
        self.out_dim = self.ways if kind == "classification" else 1

    @contextmanager
    def episode_ways(self, ways: int) -> Iterator[None]:
        """Predict `ways`-way episodes inside the block (evaluation at `task.eval_ways`): `ways`
        and `out_dim` are set for its duration. Only learners without a ways-sized layer (their
        schema's `any_eval_ways`; mtl_cli.config checks it) give `ways` logits then."""
        saved = self.ways, self.out_dim
        self.ways = self.out_dim = int(ways)
        try:
            yield
        finally:
            self.ways, self.out_dim = saved

    @property
    def input_size(self) -> int:
        """Number of input features once an input is flattened."""
        return math.prod(self.input_shape)

    @property
    def label_size(self) -> int:
        """Width of `label_features`: one-hot (ways) or (target, is-support flag) for regression."""
        return self.ways if self.kind == "classification" else 2

    def forward(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Predictions for the queries: [B, Q, ways] logits or [B, Q, 1] values."""
        raise NotImplementedError

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss over all episodes and points: cross-entropy or MSE (Finn et al. 2017)."""
        if self.kind == "classification":
            return F.cross_entropy(prediction.reshape(-1, self.out_dim), target.reshape(-1))
        return F.mse_loss(prediction, target)

    def label_features(self, support_y: torch.Tensor) -> torch.Tensor:
        """Support labels as inputs [B, S, label_size]: one-hot, or (y, 1) for regression."""
        if self.kind == "classification":
            return F.one_hot(support_y, self.ways).to(torch.get_default_dtype())
        return torch.cat([support_y, torch.ones_like(support_y)], dim=-1)

    def check_episode(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> None:
        """Raise ValueError (one line) when the episode tensors do not fit this learner."""
        if support_x.ndim < 3 or tuple(support_x.shape[2:]) != self.input_shape:
            raise ValueError(
                f"support_x: expected [B, S, {', '.join(map(str, self.input_shape))}]; "
                f"got {tuple(support_x.shape)}"
            )
        b, s = support_x.shape[:2]
        if query_x.ndim < 3 or tuple(query_x.shape[2:]) != self.input_shape or len(query_x) != b:
            raise ValueError(
                f"query_x: expected [{b}, Q, {', '.join(map(str, self.input_shape))}]; "
                f"got {tuple(query_x.shape)}"
            )
        if self.kind == "classification":
            if support_y.shape != (b, s) or support_y.dtype != torch.int64:
                raise ValueError(
                    f"support_y: expected int64 [{b}, {s}] class indices; "
                    f"got {support_y.dtype} {tuple(support_y.shape)}"
                )
        elif support_y.shape != (b, s, 1) or not support_y.is_floating_point():
            raise ValueError(
                f"support_y: expected float [{b}, {s}, 1] targets; "
                f"got {support_y.dtype} {tuple(support_y.shape)}"
            )


def embed_points(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply `encoder` to every point of x [B, M, ...] in one pass: [B, M, features]."""
    b, m = x.shape[:2]
    return encoder(x.reshape(b * m, *x.shape[2:])).reshape(b, m, -1)


def make_encoder(
    name: str, input_shape: tuple[int, ...], make_backbone: Callable[[], nn.Module] | None
) -> tuple[nn.Module, int]:
    """The input encoder of a black-box learner and its output width: 'flatten' (raw inputs, as in
    the CS330 homework) or 'backbone' (the configured backbone, e.g. conv4 as in SNAIL)."""
    if name == "flatten":
        return nn.Flatten(), math.prod(input_shape)
    if name == "backbone":
        if make_backbone is None:
            raise ValueError("encoder: 'backbone' needs make_backbone; none was given")
        backbone = make_backbone()
        return backbone, int(backbone.out_features)
    raise ValueError(f"encoder: unknown encoder '{name}'; allowed: flatten, backbone")


def adaptable_network(make_backbone: Callable[[], nn.Module], out_dim: int) -> nn.Sequential:
    """Backbone + linear head for learners that adapt weights per episode (MAML, fine-tuning).

    BatchNorm always uses the current batch's statistics (running statistics removed), so the
    per-episode functional calls are transductive and stateless, as in the original MAML code."""
    from torch.func import replace_all_batch_norm_modules_

    backbone = make_backbone()
    net = nn.Sequential(backbone, nn.Linear(int(backbone.out_features), out_dim))
    replace_all_batch_norm_modules_(net)
    return net


def adaptation_settings(
    inner_steps: int, inner_lr: float, eval_inner_steps: int | None, eval_inner_lr: float | None
) -> tuple[int, float, int, float]:
    """(inner_steps, inner_lr, eval_inner_steps, eval_inner_lr), checked, the eval values
    defaulting (None) to the training ones: the gradient-adapting learners (MAML, ANIL, Reptile)."""
    check_adaptation(inner_steps, inner_lr)
    steps = int(inner_steps if eval_inner_steps is None else eval_inner_steps)
    rate = float(inner_lr if eval_inner_lr is None else eval_inner_lr)
    check_adaptation(steps, rate, prefix="eval_")
    return int(inner_steps), float(inner_lr), steps, rate


def check_adaptation(inner_steps: int, inner_lr: float, prefix: str = "") -> None:
    """One-line errors for a negative step count or a non-positive step size."""
    if inner_steps < 0:
        raise ValueError(f"{prefix}inner_steps: {inner_steps} is below the minimum 0")
    if inner_lr <= 0:
        raise ValueError(f"{prefix}inner_lr: {inner_lr} must be greater than 0")


def check_bn_mode(bn_mode: str) -> str:
    """`bn_mode`, or a one-line ValueError naming the allowed values."""
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode: invalid value '{bn_mode}'; allowed: {', '.join(BN_MODES)}")
    return bn_mode


def predict_queries(
    call: Callable[[torch.Tensor], torch.Tensor],
    support_x: torch.Tensor,
    query_x: torch.Tensor,
    bn_mode: str,
) -> torch.Tensor:
    """`call` (a network whose BatchNorm uses batch statistics) on one episode's queries [Q, ...].

    `transductive` (Finn et al. 2017's code): one batch of all queries, so each prediction
    depends on the other queries through the statistics. `per_example` (Nichol et al. 2018,
    "transduction"; non-transductive): each query in its own batch with the support, statistics
    from the support plus that query, and its own output kept (vectorised with torch.func.vmap);
    a prediction then never depends on the other queries. Without BatchNorm both are equal."""
    if bn_mode == "transductive":
        return call(query_x)

    def one(query: torch.Tensor) -> torch.Tensor:
        return call(torch.cat([support_x, query.unsqueeze(0)]))[-1]

    return torch.func.vmap(one, randomness="same")(query_x)
