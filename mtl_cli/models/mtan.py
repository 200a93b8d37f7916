"""Multi-Task Attention Network: a shared network and per-task soft-attention masks on its features
(Liu, Johns & Davison 2019).

S. Liu, E. Johns, A. J. Davison. End-to-End Multi-Task Learning with Attention. CVPR 2019.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mtl_cli.models.backbones import (
    Backbone,
    as_int_list,
    check_task_outputs,
    layer_parameters,
    resolve_block_indices,
)
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.models.dense_backbones import SegNet, SegNetTrace, conv_layer, xavier_init
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


class SegNetAttention(nn.Module):
    """SegNet-MTAN's attention (Liu et al. 2019, lorenmt/mtan `model_segnet_mtan.py`), for every
    task over every encoder and decoder level of a shared `SegNet` trunk.

    Encoder level j: mask = g_t^j([e_j^first; â_t^{j-1}]) (the level's first conv output, and the
    task's previous attended features), a_t^j = mask ⊙ e_j (the level's output before pooling),
    â_t^j = maxpool(f^j(a_t^j)) with f^j a shared 3x3 conv layer to the next level's channels.
    Decoder level (deepest first): â = f(upsample2x(previous)) (bilinear, shared 3x3 conv layer),
    mask = g_t([u; â]) with u the trunk's unpooled decoder input, a_t = mask ⊙ d (the trunk's
    decoder level output). The last decoder level's a_t feeds task t's head.
    Shared: the f's. Task-specific: the g's.
    """

    def __init__(self, trunk: SegNet, num_tasks: int, reduction: int, norm: str) -> None:
        super().__init__()
        c = trunk.options["channels"]
        levels, trunk_norm = len(c), trunk.options["norm"]

        def unit(n_in: int, n_out: int) -> AttentionUnit:
            return AttentionUnit(n_in, max(1, n_out // reduction), n_out, spatial=True, norm=norm)

        out_channels = [c[max(level - 1, 0)] for level in reversed(range(levels))]  # per decoder
        self.encoder_units = nn.ModuleList(
            [
                nn.ModuleList([unit(c[j] * (1 if j == 0 else 2), c[j]) for j in range(levels)])
                for _ in range(num_tasks)
            ]
        )
        self.decoder_units = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        unit(c[level] + o, o)
                        for level, o in zip(reversed(range(levels)), out_channels, strict=True)
                    ]
                )
                for _ in range(num_tasks)
            ]
        )
        self.encoder_convs = nn.ModuleList(
            [conv_layer(c[j], c[min(j + 1, levels - 1)], trunk_norm) for j in range(levels)]
        )
        self.decoder_convs = nn.ModuleList(
            [
                conv_layer(c[level], o, trunk_norm)
                for level, o in zip(reversed(range(levels)), out_channels, strict=True)
            ]
        )
        xavier_init(self)  # as the official code

    def forward(self, trace: SegNetTrace, task: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Task `task`'s attended full-resolution map, and its masks (encoder, then decoder)."""
        masks, previous = [], None
        for j, g in enumerate(self.encoder_units[task]):
            mask = g(trace.encoder_first[j], previous)
            masks.append(mask)
            previous = F.max_pool2d(self.encoder_convs[j](mask * trace.encoder_out[j]), 2, 2)
        for d, g in enumerate(self.decoder_units[task]):
            up = F.interpolate(previous, scale_factor=2, mode="bilinear", align_corners=True)
            mask = g(trace.decoder_in[d], self.decoder_convs[d](up))
            masks.append(mask)
            previous = mask * trace.decoder_out[d]
        return previous, masks

    def shared_parameters(self) -> list[nn.Parameter]:
        """The f's (every task's attention path runs through them)."""
        return [*self.encoder_convs.parameters(), *self.decoder_convs.parameters()]


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

    Dense backbones: with backbone=segnet the model is the paper's SegNet-MTAN (`SegNetAttention`:
    attention over every encoder and decoder level, `attention_layers` must be "all"); other dense
    backbones (resnet_dilated) use the scheme above on their blocks (stem and stages, masks on the
    stage outputs, f = fresh copies of the next stage), heads from the backbone (`make_head`).
    No single representation feeds every head, so `representation`/`head` do not exist.
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
        self.heads = nn.ModuleList(
            [self.trunk.make_head(head_hidden, n) for n in self.task_outputs]
        )
        self.dense: SegNetAttention | None = None
        if isinstance(self.trunk, SegNet):
            if attention_layers != "all":
                raise ValueError(
                    f"model.attention_layers: SegNet-MTAN attends every encoder and decoder level; "
                    f"got {attention_layers!r}, allowed with backbone={self.trunk.name}: all"
                )
            self.dense = SegNetAttention(self.trunk, self.num_tasks, int(reduction), norm)
            return
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

    def shared_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The trunk's block outputs u_0 .. u_{j_m} (up to the last attended block)."""
        out, h, state = [], x, {}
        for i in range(self.layers[-1] + 1):
            h = self.trunk.run_block(i, h, state)
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
        """Task `task`'s mask at each attended block (shapes of the blocks' outputs); SegNet-MTAN:
        at each encoder level, then each decoder level."""
        if self.dense is not None:
            return self.dense(self.trunk.trace(x), task)[1]
        return self._attend(self.shared_features(x), task)[1]

    def _task_output(self, shared: Any, task: int) -> torch.Tensor:
        if self.dense is not None:
            return self.heads[task](self.dense(shared, task)[0])
        h, _ = self._attend(shared, task)
        for block in self.trunk.blocks[self.layers[-1] + 1 :]:
            h = block(h)
        return self.heads[task](self.trunk.finish(h))

    def _shared(self, x: torch.Tensor) -> Any:
        return self.trunk.trace(x) if self.dense is not None else self.shared_features(x)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Shared blocks, task `task`'s attention and head."""
        return self._task_output(self._shared(x), task)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The shared blocks once, then every task's attention and head."""
        shared = self._shared(x)
        return [self._task_output(shared, t) for t in range(self.num_tasks)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The trunk and the shared feature extractors f; nothing with one task."""
        if self.num_tasks < 2:
            return []
        if self.dense is not None:
            return [*self.trunk.parameters(), *self.dense.shared_parameters()]
        return [*self.trunk.parameters(), *self.encoders.parameters()]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weight (+bias) of the trunk's last Linear/Conv2d layer."""
        if self.num_tasks < 2:
            return []
        return layer_parameters(self.trunk.blocks[-1])
