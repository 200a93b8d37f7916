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
