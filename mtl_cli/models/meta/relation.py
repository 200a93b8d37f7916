"""Relation networks: a learned comparison of query and class embeddings (Sung et al. 2018)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mtl_cli.models.meta.base import MetaLearner
from mtl_cli.schemas import meta_model as schema

#: the relation module's two conv blocks each halve the map: keep feature maps of at least 4x4
MIN_MAP = 4


class RelationNetwork(MetaLearner):
    """Relation network (Sung, Yang, Zhang, Xiang, Torr & Hospedales 2018, "Learning to Compare:
    Relation Network for Few-Shot Learning", CVPR).

    The embedding module f is the backbone; a class's representation is the element-wise sum of
    its support embeddings (K-shot); the relation module g scores each (query, class) pair from
    the channel concatenation [f(x_j), sum_i f(x_i)]: two conv blocks (conv3x3 with padding 1,
    BatchNorm, ReLU, maxpool2) and two fully connected layers (`relation_hidden` units, ReLU, one
    unit, sigmoid), so the relation scores r_{j,n} lie in [0, 1].

    Feature maps: the paper compares spatial feature maps. When the backbone exposes `blocks` with
    image-shaped `block_out_shapes`, f is its first blocks up to the deepest one whose output map
    is still at least 4x4 (the relation module's two poolings then leave at least 1x1); the later
    blocks are not built into f. Otherwise (vector backbones) f is the whole backbone's flat
    output and g is the two fully connected layers on [f(x_j), sum_i f(x_i)].

    `forward` returns the relation logits (pre-sigmoid) [B, Q, ways]: sigmoid(output) are the
    paper's scores, and argmax is the same for both, so the meta family's accuracy is the paper's
    prediction and its evaluation cross-entropy is a proper loss on the softmax of the logits.
    `loss`: 'mse' (the paper) is the mean squared error of the sigmoid scores against the one-hot
    targets; 'ce' is cross-entropy on the logits.

    Deviations: the paper's omniglot / miniImageNet embedding keeps its spatial size by dropping
    the last poolings; here the cut of the given backbone decides the map (7x7 for conv4 on 28x28
    inputs, 5x5 on 84x84). The BatchNorm of g follows the backbone's `norm` option (none drops it).
    """

    kinds: ClassVar[tuple[str, ...]] = schema.RelationNetwork.kinds

    def __init__(
        self,
        input_shape: tuple[int, ...],
        ways: int,
        kind: str,
        make_backbone: Callable[[], nn.Module],
        relation_hidden: int = 8,
        loss: str = "mse",
    ) -> None:
        super().__init__(input_shape, ways, kind, make_backbone)
        if int(relation_hidden) < 1:
            raise ValueError(f"relation_hidden: {relation_hidden} is below the minimum 1")
        if loss not in schema.RELATION_LOSSES:
            raise ValueError(
                f"loss: invalid value '{loss}'; allowed: {', '.join(schema.RELATION_LOSSES)}"
            )
        self.loss_name = loss
        hidden = int(relation_hidden)
        backbone = make_backbone()
        cut = feature_map_cut(backbone)
        if cut is None:
            self.embedding = backbone
            self.map_shape: tuple[int, ...] | None = None
            width = int(backbone.out_features)
            self.relation = nn.Sequential(
                nn.Linear(2 * width, hidden), nn.ReLU(), nn.Linear(hidden, 1)
            )
        else:
            self.embedding = nn.Sequential(*list(backbone.blocks)[: cut + 1])
            c, h, w = backbone.block_out_shapes[cut]
            self.map_shape = (c, h, w)
            batch_norm = getattr(backbone, "options", {}).get("norm", "batch") == "batch"
            self.relation = nn.Sequential(
                relation_block(2 * c, c, batch_norm),
                relation_block(c, c, batch_norm),
                nn.Flatten(),
                nn.Linear(c * (h // 4) * (w // 4), hidden),
                nn.ReLU(),
                nn.Linear(hidden, 1),
            )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """f on every point of x [B, M, ...]: [B, M, C, H, W] maps or [B, M, F] vectors."""
        b, m = x.shape[:2]
        out = self.embedding(x.reshape(b * m, *x.shape[2:]))
        return out.reshape(b, m, *(self.map_shape or (-1,)))

    def forward(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> torch.Tensor:
        """Relation logits [B, Q, ways]; sigmoid gives the paper's relation scores."""
        self.check_episode(support_x, support_y, query_x)
        s = support_x.shape[1]
        points = self.embed(torch.cat([support_x, query_x], dim=1))
        return self.relation_logits(points[:, :s], support_y, points[:, s:])

    def relation_logits(
        self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor
    ) -> torch.Tensor:
        """g on every (query, class) pair: support [B, S, *E], query [B, Q, *E] -> [B, Q, ways]."""
        b, q = query.shape[:2]
        members = self.label_features(support_y).to(support.dtype)  # [B, S, N]
        classes = (members.transpose(1, 2) @ support.flatten(2)).view(
            b, self.ways, *support.shape[2:]
        )  # sum of each class's support embeddings
        pairs = torch.cat(
            [
                query[:, :, None].expand(b, q, self.ways, *query.shape[2:]),
                classes[:, None].expand(b, q, self.ways, *classes.shape[2:]),
            ],
            dim=3,
        )  # channel (or feature) concatenation [f(x_j), class_n]
        return self.relation(pairs.flatten(0, 2)).view(b, q, self.ways)

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """'mse': mean squared error of sigmoid(prediction) against one-hot targets (the paper);
        'ce': cross-entropy on the relation logits."""
        if self.loss_name == "ce":
            return super().loss(prediction, target)
        one_hot = F.one_hot(target, self.ways).to(prediction.dtype)
        return F.mse_loss(torch.sigmoid(prediction), one_hot)


def relation_block(n_in: int, n_out: int, batch_norm: bool) -> nn.Sequential:
    """conv3x3 (padding 1), BatchNorm, ReLU, maxpool2: one of g's two conv blocks."""
    layers: list[nn.Module] = [nn.Conv2d(n_in, n_out, 3, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(n_out))
    return nn.Sequential(*layers, nn.ReLU(), nn.MaxPool2d(2))


def feature_map_cut(backbone: nn.Module) -> int | None:
    """Index of the deepest block whose output is an image map of at least 4x4, or None."""
    shapes = getattr(backbone, "block_out_shapes", None)
    if not shapes or not hasattr(backbone, "blocks"):
        return None
    cut = None
    for i, shape in enumerate(shapes):
        if len(shape) != 3 or min(shape[1:]) < MIN_MAP:
            break
        cut = i
    return cut
