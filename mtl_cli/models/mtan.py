"""Multi-Task Attention Network: a shared network and per-task soft-attention masks on its features
(Liu, Johns & Davison 2019).

S. Liu, E. Johns, A. J. Davison. End-to-End Multi-Task Learning with Attention. CVPR 2019.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from mtl_cli.models.backbones import (
    Backbone,
    as_int_list,
    check_task_outputs,
    layer_parameters,
    make_head,
    resolve_block_indices,
)
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.schemas import model as schema
from mtl_cli.schemas.checks import check_settings


class AttentionUnit(nn.Module):
    """One task's soft-attention module g (Liu et al. 2019): a mask in (0, 1) for shared features.

    On maps [B, C, H, W]: 1x1 conv (in -> hidden), BN, ReLU, 1x1 conv (hidden -> C), BN, sigmoid
    (the paper's attention block); on vectors [B, F] the same with Linear layers and BatchNorm1d
    (a 1x1 conv on a 1x1 map). `forward(features, previous)` concatenates the features the mask is
    computed from with the task's previous attended features (already brought to the same
    resolution) along dim 1, so an encoder unit (in = C or 2C) and a decoder unit (in = C_up +
    C_prev, as in the paper's dense SegNet MTAN) are the same class.
    """

    def __init__(
        self, in_channels: int, hidden: int, out_channels: int, spatial: bool, norm: str = "batch"
    ) -> None:
        super().__init__()
        linear = (lambda a, b: nn.Conv2d(a, b, kernel_size=1)) if spatial else nn.Linear
        batch_norm = nn.BatchNorm2d if spatial else nn.BatchNorm1d
        layers: list[nn.Module] = [linear(in_channels, hidden)]
        if norm == "batch":
            layers.append(batch_norm(hidden))
        layers += [nn.ReLU(), linear(hidden, out_channels)]
        if norm == "batch":
            layers.append(batch_norm(out_channels))
        layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    @property
    def gate(self) -> nn.Module:
        """The layer just before the sigmoid (its bias sets the mask's offset)."""
        return self.net[-2]

    def forward(self, features: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """The mask (same shape as the output channels of `features`), values in (0, 1)."""
        inp = features if previous is None else torch.cat([features, previous], dim=1)
        return self.net(inp)


class MTAN(MultiTaskModel):
    """MTAN (Liu, Johns & Davison 2019): shared backbone blocks, per-task attention on their outputs.

    The shared network is one backbone (`trunk`), u_j its block j's output. At each attended block
    j_1 < ... < j_m (`attention_layers`), task t computes a mask and its attended features

        a_t^1 = g_t^1(u_{j_1}),   a_t^k = g_t^k([u_{j_k}; f^k(â_t^{k-1})]),   â_t^k = a_t^k ⊙ u_{j_k},

    where g_t^k is task t's `AttentionUnit` and f^k the paper's shared feature extractor that brings
    â_t^{k-1} to block j_k's resolution: a fresh copy of the backbone blocks j_{k-1}+1 .. j_k (with
    every block attended, one copy of block j_k: the paper's 3x3 conv, BN, ReLU and max-pool on conv
    backbones, Linear and activation on the mlp). The task's features â_t^m then pass through the
    trunk's blocks after j_m (none with `all`) and task t's head.

    Shared: the trunk and the f's (shared across tasks as in the official code). Task-specific:
    each task's attention units and head. With masks of 1 the model is `hard_sharing` with the same
    trunk and heads. With one task nothing is shared.

    Deviations: the paper computes each mask from the block's first layer's features and applies
    it to the block's last layer's output; our backbone blocks are single layers, so the mask is
    computed from, and applied to, the block's output. The paper's attention hidden width is the
    block's channel count (SegNet/WRN MTAN; C/4 in the ResNet MTAN): `reduction` 1 (4).
    """

    def __init__(
        self,
        task_outputs: Sequence[int],
        input_shape: Sequence[int],
        make_backbone: Callable[[], Backbone],
        attention_layers: Any = schema.MTANModel.attention_layers,
        reduction: int = schema.MTANModel.reduction,
        norm: str = schema.MTANModel.norm,
        head_hidden: Sequence[int] = (),
    ) -> None:
        super().__init__(check_task_outputs(task_outputs))
        check_settings(schema.MTANModel, reduction=int(reduction), norm=norm)
        head_hidden = as_int_list(head_hidden, "model.head_hidden")
        self.trunk = make_backbone()
        blocks = len(self.trunk.blocks)
        self.layers = resolve_block_indices(attention_layers, blocks, "model.attention_layers")
        spare = make_backbone()  # fresh blocks for the f's (the rest of it is dropped)
        self.encoders = nn.ModuleList(
            [
                nn.Sequential(*spare.blocks[a + 1 : b + 1])
                for a, b in zip(self.layers[:-1], self.layers[1:], strict=True)
            ]
        )
        shapes = self.trunk.block_out_shapes
        self.attention = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        AttentionUnit(
                            shapes[j][0] * (1 if k == 0 else 2),
                            max(1, shapes[j][0] // int(reduction)),
                            shapes[j][0],
                            spatial=len(shapes[j]) == 3,
                            norm=norm,
                        )
                        for k, j in enumerate(self.layers)
                    ]
                )
                for _ in self.task_outputs
            ]
        )
        self.heads = nn.ModuleList(
            [make_head(self.trunk.out_features, head_hidden, n) for n in self.task_outputs]
        )

    def shared_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The trunk's block outputs u_0 .. u_{j_m} (up to the last attended block)."""
        out, h = [], x
        for block in self.trunk.blocks[: self.layers[-1] + 1]:
            h = block(h)
            out.append(h)
        return out

    def _attend(
        self, shared: list[torch.Tensor], task: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Task `task`'s attended features after the last attended block, and its masks."""
        masks, attended = [], None
        for k, (j, unit) in enumerate(zip(self.layers, self.attention[task], strict=True)):
            mask = unit(shared[j]) if k == 0 else unit(shared[j], self.encoders[k - 1](attended))
            attended = mask * shared[j]
            masks.append(mask)
        return attended, masks

    def attention_masks(self, x: torch.Tensor, task: int) -> list[torch.Tensor]:
        """Task `task`'s mask at each attended block (shapes of the blocks' outputs)."""
        return self._attend(self.shared_features(x), task)[1]

    def _task_output(self, shared: list[torch.Tensor], task: int) -> torch.Tensor:
        h, _ = self._attend(shared, task)
        for block in self.trunk.blocks[self.layers[-1] + 1 :]:
            h = block(h)
        return self.heads[task](h.flatten(1))

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Shared blocks, task `task`'s attention and head."""
        return self._task_output(self.shared_features(x), task)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The shared blocks once, then every task's attention and head."""
        shared = self.shared_features(x)
        return [self._task_output(shared, t) for t in range(self.num_tasks)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The trunk and the shared feature extractors f; nothing with one task."""
        if self.num_tasks < 2:
            return []
        return [*self.trunk.parameters(), *self.encoders.parameters()]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weight (+bias) of the trunk's last Linear/Conv2d layer."""
        if self.num_tasks < 2:
            return []
        return layer_parameters(self.trunk.blocks[-1])
