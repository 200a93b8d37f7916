"""Prototypical networks: classify by distance to class-mean embeddings (Snell et al. 2017)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mtl_cli.models.meta.base import MetaLearner, embed_points
from mtl_cli.schemas import meta_model as schema


class ProtoNet(MetaLearner):
    """Prototypical network (Snell et al. 2017): prototype c_n = mean of class n's embedded support;
    logits = -||f(x) - c_n||^2 (squared Euclidean). Support and queries are embedded in one pass
    (a BatchNorm backbone in training mode sees their joint batch statistics)."""

    kinds: ClassVar[tuple[str, ...]] = schema.ProtoNet.kinds

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module],
    ) -> None:
        super().__init__(input_shape, ways, kind, make_backbone)
        self.backbone = make_backbone()

    def forward(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Logits [B, Q, ways]: minus squared distances to the class prototypes."""
        self.check_episode(support_x, support_y, query_x)
        s = support_x.shape[1]
        points = embed_points(self.backbone, torch.cat([support_x, query_x], dim=1))
        support, query = points[:, :s], points[:, s:]
        members = F.one_hot(support_y, self.ways).to(support.dtype)  # [B, S, N]
        counts = members.sum(dim=1).clamp(min=1.0)  # a class without support gets prototype 0
        prototypes = members.transpose(1, 2) @ support / counts[..., None]  # [B, N, F]
        return -squared_distances(query, prototypes)


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances [B, M, N] between a [B, M, F] and b [B, N, F].

    Both sets are first centred on the mean of b (per episode), then expanded as
    ||a||^2 + ||b||^2 - 2 a.b. Distances do not change under a shared translation, but the
    expansion's cancellation does: on raw embeddings that share an offset (common after a ReLU or
    a bias) its terms grow with the offset squared, and float32 loses the distances (F = 64,
    offset 1000: errors of about 20 against a logit spread of about 40). Centred, the terms are
    of the size of the points' spread around the prototypes, so the error is float32 rounding
    relative to that spread. Chosen over the difference form ((a[:, :, None] - b[:, None]) ** 2)
    .sum(-1), which is as accurate but materialises (and keeps for backward) a [B, M, N, F]
    tensor; this keeps the matmul and O((M + N) F) memory.
    """
    centre = b.mean(dim=1, keepdim=True)
    a, b = a - centre, b - centre
    sq = a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(-1).unsqueeze(1) - 2 * a @ b.transpose(1, 2)
    return sq.clamp(min=0.0)
