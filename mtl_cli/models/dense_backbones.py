"""Dense backbones (config group `backbone`, `output = "map"`): segnet, resnet_dilated.

They return a feature map [B, C, H', W'] instead of a vector, and build their own task heads
(`make_head`) that give per-pixel outputs [B, out, H, W] at the input resolution, so the sharing
models (independent, hard sharing, cross-stitch, MTAN) serve scene-understanding tasks unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mtl_cli.models.backbones import Backbone, _check_norm, as_int_list
from mtl_cli.schemas import backbone as backbone_schemas


def conv_layer(
    n_in: int, n_out: int, norm: str, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    """3x3 conv (padding = dilation keeps the size at stride 1), optional BatchNorm, ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(n_in, n_out, 3, stride=stride, padding=dilation, dilation=dilation)
    ]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(n_out))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _refuse_head_hidden(hidden: Sequence[int], backbone: str, head: str) -> None:
    if list(hidden):
        raise ValueError(
            f"model.head_hidden: backbone={backbone} builds its own per-pixel heads ({head}); "
            f"got {list(hidden)}, allowed: []"
        )


def _check_divisible(shape: tuple[int, ...], factor: int, backbone: str, why: str) -> None:
    _, h, w = shape
    if h % factor or w % factor:
        raise ValueError(
            f"backbone={backbone}: input height and width must be divisible by {factor} ({why}); "
            f"got {h}x{w}"
        )


def xavier_init(module: nn.Module) -> None:
    """MTAN's initialisation: Xavier-normal conv weights, zero biases, BatchNorm at (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class SegNetStage(nn.Module):
    """One SegNet level: a first 3x3 conv layer that changes the channel count, then the rest of
    the level's conv layers (MTAN computes its attention mask from `first`'s output)."""

    def __init__(self, n_in: int, n_out: int, convs: int, norm: str) -> None:
        super().__init__()
        self.first = conv_layer(n_in, n_out, norm)
        self.rest = nn.Sequential(*[conv_layer(n_out, n_out, norm) for _ in range(convs - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.first(x))


@dataclass
class SegNetTrace:
    """The intermediate maps of one SegNet pass, per level (what SegNet-MTAN attends)."""

    encoder_first: list[torch.Tensor] = field(default_factory=list)  # first conv of each level
    encoder_out: list[torch.Tensor] = field(default_factory=list)  # level output, before pooling
    decoder_in: list[torch.Tensor] = field(default_factory=list)  # unpooled decoder input
    decoder_out: list[torch.Tensor] = field(default_factory=list)  # decoder level output


class SegNet(Backbone):
    """SegNet (Badrinarayanan, Kendall & Cipolla 2017) as used by MTAN (Liu, Johns & Davison 2019,
    lorenmt/mtan `model_segnet_*.py`) and LibMTL's NYUv2 example.

    Encoder level i: a 3x3 conv channels[i-1] -> channels[i] and convs_per_block[i] - 1 more 3x3
    convs (each with BatchNorm and ReLU), then 2x2 max-pooling that keeps its indices. Decoder,
    deepest level first: 2x2 max-unpooling with the mirrored encoder level's indices (values go
    back to the argmax positions, zeros elsewhere), a 3x3 conv channels[i] -> channels[i-1] (the
    top level keeps channels[0]) and convs_per_block[i] - 1 more. Output: [B, channels[0], H, W].
    Blocks: one per encoder and one per decoder level (2 x levels), so cross-stitch units mix
    maps between them. Heads (`make_head`): MTAN's prediction layer, 3x3 conv C -> C, then 1x1
    conv C -> out, no activation between them.

    Paper: channels [64, 128, 256, 512, 512], convs_per_block [2, 2, 3, 3, 3] (VGG-16). Defaults
    [16, 32, 64, 128] and [2, 2, 2, 2] are sized for a CPU at 64x64. H and W must be divisible by
    2^levels. Initialisation as MTAN's code (Xavier-normal weights, zero biases).
    """

    schema = backbone_schemas.SegNetBackbone

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int] = (16, 32, 64, 128),
        convs_per_block: Sequence[int] = (2, 2, 2, 2),
        norm: str = "batch",
    ) -> None:
        channels = as_int_list(channels, "backbone.channels")
        convs = as_int_list(convs_per_block, "backbone.convs_per_block")
        super().__init__(input_shape, dict(channels=channels, convs_per_block=convs, norm=norm))
        _check_norm(norm)
        if not channels:
            raise ValueError("backbone.channels: need at least one level, e.g. [16, 32, 64, 128]")
        if len(convs) != len(channels):
            raise ValueError(
                f"backbone.convs_per_block: need one entry per level ({len(channels)}, as in "
                f"backbone.channels); got {convs}"
            )
        self.levels = len(channels)
        _check_divisible(self.input_shape, 2**self.levels, self.name, f"{self.levels} poolings")
        c_in, h, w = self.input_shape
        encoder, in_shapes, out_shapes = [], [], []
        for i, (n_out, k) in enumerate(zip(channels, convs, strict=True)):
            n_in = c_in if i == 0 else channels[i - 1]
            encoder.append(SegNetStage(n_in, n_out, k, norm))
            in_shapes.append((n_in, h >> i, w >> i))
            out_shapes.append((n_out, h >> (i + 1), w >> (i + 1)))
        decoder = []
        for level in reversed(range(self.levels)):
            n_out = channels[max(level - 1, 0)]
            decoder.append(SegNetStage(channels[level], n_out, convs[level], norm))
            in_shapes.append((channels[level], h >> (level + 1), w >> (level + 1)))
            out_shapes.append((n_out, h >> level, w >> level))
        self.blocks = nn.ModuleList([*encoder, *decoder])
        self.block_in_shapes, self.block_out_shapes = in_shapes, out_shapes
        self.out_features = channels[0]
        xavier_init(self)

    def run_block(self, index: int, h: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        """Encoder blocks pool and push their indices on `state`; decoder blocks pop and unpool."""
        if index < self.levels:
            pooled, indices = F.max_pool2d(self.blocks[index](h), 2, 2, return_indices=True)
            state.setdefault("indices", []).append(indices)
            return pooled
        return self.blocks[index](F.max_unpool2d(h, state["indices"].pop(), 2, 2))

    def finish(self, h: torch.Tensor) -> torch.Tensor:
        """The decoder's full-resolution map [B, channels[0], H, W]."""
        return h

    def trace(self, x: torch.Tensor) -> SegNetTrace:
        """One pass, keeping every level's maps (SegNet-MTAN attends them)."""
        out, indices = SegNetTrace(), []
        h = x
        for stage in self.blocks[: self.levels]:
            first = stage.first(h)
            last = stage.rest(first)
            h, idx = F.max_pool2d(last, 2, 2, return_indices=True)
            out.encoder_first.append(first)
            out.encoder_out.append(last)
            indices.append(idx)
        for stage in self.blocks[self.levels :]:
            h = F.max_unpool2d(h, indices.pop(), 2, 2)
            out.decoder_in.append(h)
            h = stage(h)
            out.decoder_out.append(h)
        return out

    def make_head(self, hidden: Sequence[int], out_features: int) -> nn.Module:
        """MTAN's prediction layer: 3x3 conv C -> C, 1x1 conv C -> out_features."""
        _refuse_head_hidden(hidden, self.name, "3x3 conv, 1x1 conv")
        c = self.out_features
        head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, out_features, 1))
        xavier_init(head)
        return head


class BasicBlock(nn.Module):
    """Residual block (He et al. 2016) with dilated 3x3 convs (Yu, Koltun & Funkhouser 2017)."""

    def __init__(self, n_in: int, n_out: int, stride: int, dilation: int, norm: str) -> None:
        super().__init__()
        bn = norm == "batch"

        def norm_layer(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if bn else nn.Identity()

        self.conv1 = nn.Conv2d(
            n_in, n_out, 3, stride, padding=dilation, dilation=dilation, bias=not bn
        )
        self.bn1 = norm_layer(n_out)
        self.conv2 = nn.Conv2d(n_out, n_out, 3, padding=dilation, dilation=dilation, bias=not bn)
        self.bn2 = norm_layer(n_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(n_in, n_out, 1, stride, bias=not bn), norm_layer(n_out))
            if stride != 1 or n_in != n_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class ASPPHead(nn.Module):
    """DeepLabv3 head (Chen et al. 2017/2018): atrous spatial pyramid pooling, i.e. parallel 1x1
    conv, 3x3 convs at `rates` and image pooling (global average, 1x1 conv, broadcast back),
    concatenated, a 1x1 projection, a 1x1 classifier, bilinear upsampling by `upsample`."""

    def __init__(
        self,
        n_in: int,
        out_features: int,
        rates: Sequence[int],
        channels: int,
        norm: str,
        upsample: int,
    ) -> None:
        super().__init__()
        bn = norm == "batch"

        def branch(conv: nn.Conv2d) -> nn.Sequential:
            return nn.Sequential(conv, *([nn.BatchNorm2d(channels)] if bn else []), nn.ReLU())

        self.branches = nn.ModuleList(
            [branch(nn.Conv2d(n_in, channels, 1, bias=not bn))]
            + [
                branch(nn.Conv2d(n_in, channels, 3, padding=r, dilation=r, bias=not bn))
                for r in rates
            ]
        )
        self.pooling = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(n_in, channels, 1), nn.ReLU()
        )
        self.project = branch(nn.Conv2d(channels * (len(rates) + 2), channels, 1, bias=not bn))
        self.classifier = nn.Conv2d(channels, out_features, 1)
        self.upsample = upsample

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h, w = z.shape[-2:]
        pooled = self.pooling(z).expand(-1, -1, h, w)
        y = self.classifier(self.project(torch.cat([*(b(z) for b in self.branches), pooled], 1)))
        size = (h * self.upsample, w * self.upsample)
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class ResNetDilated(Backbone):
    """Dilated residual network (Yu, Koltun & Funkhouser 2017) in the DeepLab setting (Chen et al.
    2018) used for dense multi-task learning by LibMTL and Nash-MTL (ResNet-50 dilated, ASPP heads).

    Stem: 3x3 conv stride 2, BN, ReLU, 3x3 max-pool stride 2 (ResNet's stem with a 3x3 conv for
    small images). Stages of BasicBlocks (He et al. 2016) with channels[s]; stage 0 keeps the
    stride, each later one halves the map until the output stride `output_stride` is reached,
    after which stages keep the resolution and double their dilation instead (8: the last two
    stages dilated 2 and 4, as DeepLab). Output: [B, channels[-1], H / os, W / os]. Blocks: the
    stem and one per stage. Heads (`make_head`): ASPP (1x1 branch, 3x3 branches at `aspp_rates`,
    image pooling), 1x1 projection, 1x1 classifier, bilinear upsampling to the input size.

    Paper settings: ResNet-50 (Bottleneck blocks [3, 4, 6, 3], channels 256..2048), output stride
    8, ASPP rates [12, 24, 36] at output stride 8 ([6, 12, 18] at 16) with 256 channels. Defaults
    here (channels [16, 32, 64, 64], 2 blocks per stage, rates [1, 2, 3], 64 channels) suit a 8x8
    map from a 64x64 input on a CPU. Deviations: every conv of a dilated stage uses the stage's
    dilation (DRN) rather than the previous one in the first block (torchvision); the image-pooling
    branch has no BatchNorm (a 1x1 map would make training with batch size 1 fail); no dropout.
    """

    schema = backbone_schemas.ResNetDilatedBackbone

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int] = (16, 32, 64, 64),
        blocks_per_stage: Sequence[int] = (2, 2, 2, 2),
        output_stride: int = 8,
        norm: str = "batch",
        aspp_rates: Sequence[int] = (1, 2, 3),
        aspp_channels: int = 64,
    ) -> None:
        channels = as_int_list(channels, "backbone.channels")
        blocks_per_stage = as_int_list(blocks_per_stage, "backbone.blocks_per_stage")
        rates = as_int_list(aspp_rates, "backbone.aspp_rates")
        output_stride, aspp_channels = int(output_stride), int(aspp_channels)
        super().__init__(
            input_shape,
            dict(
                channels=channels,
                blocks_per_stage=blocks_per_stage,
                output_stride=output_stride,
                norm=norm,
                aspp_rates=rates,
                aspp_channels=aspp_channels,
            ),
        )
        _check_norm(norm)
        if output_stride not in (8, 16):
            raise ValueError(
                f"backbone.output_stride: invalid value '{output_stride}'; allowed: 8, 16"
            )
        if not channels or len(blocks_per_stage) != len(channels):
            raise ValueError(
                "backbone.blocks_per_stage: need one entry per stage of backbone.channels "
                f"({len(channels)}); got {blocks_per_stage}"
            )
        natural = 4 * 2 ** (len(channels) - 1)
        if natural < output_stride:
            raise ValueError(
                f"backbone.output_stride: {output_stride} needs at least "
                f"{output_stride.bit_length() - 2} stages; backbone.channels has {len(channels)}"
            )
        if aspp_channels < 1:
            raise ValueError(f"backbone.aspp_channels: {aspp_channels} is below the minimum 1")
        _check_divisible(self.input_shape, output_stride, self.name, "the output stride")
        c, h, w = self.input_shape
        bn = norm == "batch"
        stem = nn.Sequential(
            nn.Conv2d(c, channels[0], 3, stride=2, padding=1, bias=not bn),
            *([nn.BatchNorm2d(channels[0])] if bn else []),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        blocks: list[nn.Module] = [stem]
        in_shapes = [(c, h, w)]
        stride, dilation = 4, 1
        out_shapes = [(channels[0], h // stride, w // stride)]
        n_in = channels[0]
        for s, (n_out, count) in enumerate(zip(channels, blocks_per_stage, strict=True)):
            step = 1
            if s > 0 and stride * 2 <= output_stride:
                step, stride = 2, stride * 2
            elif s > 0:
                dilation *= 2
            stage = [BasicBlock(n_in, n_out, step, dilation, norm)]
            stage += [BasicBlock(n_out, n_out, 1, dilation, norm) for _ in range(count - 1)]
            blocks.append(nn.Sequential(*stage))
            in_shapes.append(out_shapes[-1])
            out_shapes.append((n_out, h // stride, w // stride))
            n_in = n_out
        self.blocks = nn.ModuleList(blocks)
        self.block_in_shapes, self.block_out_shapes = in_shapes, out_shapes
        self.out_features = channels[-1]
        self.output_stride = output_stride
        for m in self.modules():  # torchvision's ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def finish(self, h: torch.Tensor) -> torch.Tensor:
        """The last stage's map [B, channels[-1], H / output_stride, W / output_stride]."""
        return h

    def make_head(self, hidden: Sequence[int], out_features: int) -> nn.Module:
        """ASPP head giving [B, out_features, H, W] at the input resolution."""
        _refuse_head_hidden(hidden, self.name, "ASPP, 1x1 classifier")
        o = self.options
        return ASPPHead(
            self.out_features,
            out_features,
            o["aspp_rates"],
            o["aspp_channels"],
            o["norm"],
            self.output_stride,
        )
