"""Schemas of the `backbone` group: feature extractors built with `input_shape` at run time."""

from dataclasses import dataclass, field
from typing import ClassVar

CONV_NORMS = ["batch", "none"]


@dataclass
class MLPBackbone:
    """Multi-layer perceptron, flattens images; works on vectors too (Rumelhart et al. 1986)."""

    group: ClassVar[str] = "backbone"
    name: ClassVar[str] = "mlp"
    inputs: ClassVar[tuple[str, ...]] = ("image", "vector")

    _target_: str = "mtl_cli.models.backbones.MLP"
    hidden: list[int] = field(default_factory=lambda: [256, 256])  # one block per entry
    activation: str = field(default="relu", metadata={"choices": ["relu", "gelu", "tanh"]})
    dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.99})
    norm: str = field(default="none", metadata={"choices": ["none", "batch", "layer"]})


@dataclass
class ConvBackbone:
    """Small CNN for 28x28 images: conv blocks, then fc (LeCun et al. 1998)."""

    group: ClassVar[str] = "backbone"
    name: ClassVar[str] = "conv"
    inputs: ClassVar[tuple[str, ...]] = ("image",)

    _target_: str = "mtl_cli.models.backbones.ConvNet"
    channels: list[int] = field(default_factory=lambda: [32, 64])
    kernel_size: int = field(default=3, metadata={"min": 1})  # odd
    norm: str = field(default="batch", metadata={"choices": CONV_NORMS})
    fc_features: int = field(default=128, metadata={"min": 0})  # 0 = global average pooling


@dataclass
class LeNetBackbone:
    """MultiLeNet: 2 conv k5 + maxpool, fc to 50 (Sener & Koltun 2018)."""

    group: ClassVar[str] = "backbone"
    name: ClassVar[str] = "lenet"
    inputs: ClassVar[tuple[str, ...]] = ("image",)

    _target_: str = "mtl_cli.models.backbones.LeNet"
    features: int = field(default=50, metadata={"min": 1})


@dataclass
class Conv4Backbone:
    """Conv-4: 4 x [conv3x3 64, BN, ReLU, maxpool2] (Vinyals et al. 2016; Snell et al. 2017)."""

    group: ClassVar[str] = "backbone"
    name: ClassVar[str] = "conv4"
    inputs: ClassVar[tuple[str, ...]] = ("image",)

    _target_: str = "mtl_cli.models.backbones.Conv4"
    hidden_channels: int = field(default=64, metadata={"min": 1})
    norm: str = field(default="batch", metadata={"choices": CONV_NORMS})


@dataclass
class SegNetBackbone:
    """SegNet encoder-decoder: conv blocks with max-pool indices, max-unpool decoder, a full
    resolution feature map; heads conv3x3 + conv1x1 (Badrinarayanan et al. 2017; Liu et al. 2019)."""

    group: ClassVar[str] = "backbone"
    name: ClassVar[str] = "segnet"
    inputs: ClassVar[tuple[str, ...]] = ("image",)
    output: ClassVar[str] = "map"

    _target_: str = "mtl_cli.models.dense_backbones.SegNet"
    # channels per level (the paper's VGG-16 SegNet, as in MTAN: [64, 128, 256, 512, 512])
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    # 3x3 convs per level, one entry per level (the paper's: [2, 2, 3, 3, 3])
    convs_per_block: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    norm: str = field(default="batch", metadata={"choices": CONV_NORMS})


@dataclass
class ResNetDilatedBackbone:
    """Dilated residual network, output stride 8 or 16, with ASPP task heads (Yu et al. 2017;
    Chen et al. 2018)."""

    group: ClassVar[str] = "backbone"
    name: ClassVar[str] = "resnet_dilated"
    inputs: ClassVar[tuple[str, ...]] = ("image",)
    output: ClassVar[str] = "map"

    _target_: str = "mtl_cli.models.dense_backbones.ResNetDilated"
    # channels per stage (ResNet: [64, 128, 256, 512] x expansion)
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    # BasicBlocks per stage (ResNet-18: [2, 2, 2, 2]; ResNet-50 uses [3, 4, 6, 3] Bottlenecks)
    blocks_per_stage: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    output_stride: int = field(default=8, metadata={"choices": [8, 16]})  # DeepLab: 8 or 16
    norm: str = field(default="batch", metadata={"choices": CONV_NORMS})
    # ASPP head: dilation rates of its 3x3 branches (DeepLabv3: [6, 12, 18] at output stride 16)
    aspp_rates: list[int] = field(default_factory=lambda: [1, 2, 3])
    aspp_channels: int = field(default=64, metadata={"min": 1})  # per branch (DeepLabv3: 256)
