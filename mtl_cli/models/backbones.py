"""Feature extractors for the multi-task models: mlp, conv, lenet, conv4 (config group `backbone`;
the dense ones, returning feature maps, are in `dense_backbones.py`).

A backbone is a sequence of `blocks`; `forward(x)` applies them in order, then flattens to
[B, out_features]. `block_in_shapes[i]` / `block_out_shapes[i]` are each block's per-sample input
and output shapes, so sharing schemes (cross-stitch, conditioning) can act between blocks. Every
block starts with its parameterised layer (Linear or Conv2d), which `widened(extra)` rebuilds with
`extra[i]` more input features/channels (concatenation conditioning, Dumoulin et al. 2018).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from mtl_cli.schemas import backbone as backbone_schemas

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
MLP_NORMS = ("none", "batch", "layer")
CONV_NORMS = ("none", "batch")


def as_shape(input_shape: Sequence[int], owner: str) -> tuple[int, ...]:
    """`input_shape` as a tuple of positive ints (accepts lists and OmegaConf ListConfigs)."""
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}: input_shape must be a sequence of positive ints; got {input_shape!r}"
        ) from None
    if not shape or any(v < 1 for v in shape):
        raise ValueError(
            f"{owner}: input_shape must be (D,) or (C, H, W) of positive ints; got {shape}"
        )
    return shape


def as_int_list(values: Sequence[int], key: str, minimum: int = 1) -> list[int]:
    """A config list (list, tuple or ListConfig) as a list of ints >= `minimum`."""
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{key}: must be a list of ints; got {values!r}") from None
    bad = [v for v in out if v < minimum]
    if bad:
        raise ValueError(f"{key}: every entry must be >= {minimum}; got {out}")
    return out


def check_task_outputs(task_outputs: Sequence[int]) -> list[int]:
    """`task_outputs` as a list of ints >= 1 (one entry per task: classes, or 1 for a scalar)."""
    return as_int_list(task_outputs, "task_outputs")


def resolve_block_indices(value: Any, num_blocks: int, key: str) -> list[int]:
    """'all' -> every block index; a list of indices -> sorted unique indices in [0, num_blocks)."""
    if isinstance(value, str):
        if value != "all":
            raise ValueError(f"{key}: invalid value '{value}'; allowed: 'all' or a list of indices")
        return list(range(num_blocks))
    if isinstance(value, int):
        value = [value]
    indices = sorted(set(as_int_list(value, key, minimum=0)))
    if not indices:
        raise ValueError(f"{key}: empty list; give block indices in 0..{num_blocks - 1} or 'all'")
    if indices[-1] >= num_blocks:
        raise ValueError(
            f"{key}: block index {indices[-1]} out of range for a backbone with {num_blocks} "
            f"blocks; allowed: 0..{num_blocks - 1} or 'all'"
        )
    return indices


def make_head(in_features: int, hidden: Sequence[int], out_features: int) -> nn.Sequential:
    """Task head / tower: [Linear, ReLU] per hidden size, then a Linear to `out_features`."""
    sizes = [in_features, *hidden]
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], out_features))
    return nn.Sequential(*layers)


def require_vector_backbone(backbone: Backbone, model: nn.Module) -> None:
    """Refuse a backbone whose output is a feature map for a model built on feature vectors."""
    if backbone.output == "vector":
        return
    from mtl_cli.registry import schema_choices

    target = f"{type(model).__module__}.{type(model).__qualname__}"
    names = [c.name for c in schema_choices("model") if c.fact("_target_") == target]
    name = names[0] if names else type(model).__name__
    vectors = [c.name for c in schema_choices("backbone") if c.fact("output", "vector") == "vector"]
    raise ValueError(
        f"model={name}: backbone={backbone.name} returns a feature {backbone.output}; this model "
        f"needs a vector backbone; allowed: {', '.join(vectors)}"
    )


def layer_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Weight (+bias) of the last Linear/Conv2d inside `module` (GradNorm's "last shared layer")."""
    layers = [m for m in module.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    if not layers:
        return []
    return [p for p in (layers[-1].weight, layers[-1].bias) if p is not None]


class Backbone(nn.Module):
    """Base class: blocks applied in order, output flattened to [B, out_features]."""

    #: the schema of this backbone's choice: its `name` and the input kinds it accepts
    #: (`inputs`: "image" = (C, H, W), "vector" = (D,)) live there, once
    schema: ClassVar[type]

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.schema.inputs

    @property
    def output(self) -> str:
        """`vector` ([B, out_features]) or `map` ([B, out_features, H, W]): the schema's `output`
        class variable, `vector` where it has none."""
        return getattr(self.schema, "output", "vector")

    blocks: nn.ModuleList
    block_in_shapes: list[tuple[int, ...]]
    block_out_shapes: list[tuple[int, ...]]
    out_features: int

    def __init__(self, input_shape: Sequence[int], options: dict[str, Any]) -> None:
        super().__init__()
        self.input_shape = as_shape(input_shape, f"backbone={self.name}")
        if "vector" not in self.inputs and len(self.input_shape) != 3:
            raise ValueError(
                f"backbone={self.name}: needs an image input (C, H, W); got input shape "
                f"{self.input_shape} (use backbone=mlp for vector inputs)"
            )
        if len(self.input_shape) not in (1, 3):
            raise ValueError(
                f"backbone={self.name}: input shape must be (D,) or (C, H, W); "
                f"got {self.input_shape}"
            )
        #: constructor options, so `widened` can rebuild the same architecture.
        self.options = dict(options)

    def _extra(self, extra_inputs: Sequence[int] | None, num_blocks: int) -> list[int]:
        if extra_inputs is None:
            return [0] * num_blocks
        extra = as_int_list(extra_inputs, "extra_inputs", minimum=0)
        if len(extra) != num_blocks:
            raise ValueError(
                f"extra_inputs: need one entry per block ({num_blocks}); got {len(extra)}"
            )
        return extra

    def widened(self, extra_inputs: Sequence[int]) -> Backbone:
        """A fresh backbone, same architecture, whose block i takes extra_inputs[i] more inputs."""
        return type(self)(self.input_shape, **self.options, extra_inputs=list(extra_inputs))

    def run_block(self, index: int, h: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        """Block `index` on h. `state` is one fresh dict per forward pass, where blocks that need
        it keep what later blocks use (SegNet's pooling indices); plain blocks ignore it."""
        return self.blocks[index](h)

    def finish(self, h: torch.Tensor) -> torch.Tensor:
        """The last block's output as this backbone's features (flattened for vector backbones)."""
        return h.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, *input_shape] -> [B, out_features] (vector) or [B, out_features, H, W] (map)."""
        state: dict[str, Any] = {}
        for i in range(len(self.blocks)):
            x = self.run_block(i, x, state)
        return self.finish(x)

    def make_head(self, hidden: Sequence[int], out_features: int) -> nn.Module:
        """A task head on this backbone's features: the MLP `make_head` for vector backbones."""
        return make_head(self.out_features, hidden, out_features)

    def last_layer_parameters(self) -> list[nn.Parameter]:
        """Weight (+bias) of the last Linear/Conv2d of the last block."""
        return layer_parameters(self.blocks[-1])


class MLP(Backbone):
    """Multi-layer perceptron (Rumelhart, Hinton & Williams 1986); flattens images.

    One block per hidden size (the first one flattens its input): Linear, optional BatchNorm
    (Ioffe & Szegedy 2015) or LayerNorm (Ba et al. 2016), activation, dropout.
    """

    schema = backbone_schemas.MLPBackbone

    def __init__(
        self,
        input_shape: Sequence[int],
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        extra_inputs: Sequence[int] | None = None,
    ) -> None:
        hidden = as_int_list(hidden, "backbone.hidden")
        super().__init__(
            input_shape,
            dict(hidden=hidden, activation=activation, dropout=float(dropout), norm=norm),
        )
        if not hidden:
            raise ValueError("backbone.hidden: need at least one hidden size, e.g. [256, 256]")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"backbone.activation: unknown activation '{activation}'; "
                f"allowed: {', '.join(ACTIVATIONS)}"
            )
        if norm not in MLP_NORMS:
            raise ValueError(
                f"backbone.norm: invalid value '{norm}'; allowed: {', '.join(MLP_NORMS)}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"backbone.dropout: {dropout} is outside [0, 1)")
        extra = self._extra(extra_inputs, len(hidden))
        sizes = [math.prod(self.input_shape), *hidden]
        blocks = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers: list[nn.Module] = [nn.Linear(n_in + extra[i], n_out)]
            if i == 0:
                layers.insert(0, nn.Flatten())
            if norm == "batch":
                layers.append(nn.BatchNorm1d(n_out))
            elif norm == "layer":
                layers.append(nn.LayerNorm(n_out))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(float(dropout)))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.block_in_shapes = [(n,) for n in sizes[:-1]]
        self.block_out_shapes = [(n,) for n in sizes[1:]]
        self.out_features = hidden[-1]


def _conv_block(
    n_in: int, n_out: int, kernel_size: int, padding: int, norm: str, pool_first: bool = False
) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(n_in, n_out, kernel_size, padding=padding)]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(n_out))
    if pool_first:  # LeNet order: conv, maxpool, relu
        layers += [nn.MaxPool2d(2), nn.ReLU()]
    else:
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers)


def _check_norm(norm: str) -> None:
    if norm not in CONV_NORMS:
        raise ValueError(f"backbone.norm: invalid value '{norm}'; allowed: {', '.join(CONV_NORMS)}")


class ConvNet(Backbone):
    """Small CNN for 28x28 images (LeCun et al. 1998 style): [conv, BN, ReLU, maxpool2] per channel
    count, then a Linear+ReLU to `fc_features` (or global average pooling when fc_features = 0)."""

    schema = backbone_schemas.ConvBackbone

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        norm: str = "batch",
        fc_features: int = 128,
        extra_inputs: Sequence[int] | None = None,
    ) -> None:
        channels = as_int_list(channels, "backbone.channels")
        kernel_size, fc_features = int(kernel_size), int(fc_features)
        super().__init__(
            input_shape,
            dict(channels=channels, kernel_size=kernel_size, norm=norm, fc_features=fc_features),
        )
        _check_norm(norm)
        if not channels:
            raise ValueError("backbone.channels: need at least one conv block, e.g. [32, 64]")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"backbone.kernel_size: must be an odd int >= 1; got {kernel_size}")
        if fc_features < 0:
            raise ValueError(f"backbone.fc_features: {fc_features} is below the minimum 0")
        c, h, w = self.input_shape
        if min(h, w) < 2 ** len(channels):
            raise ValueError(
                f"backbone=conv: input {self.input_shape} too small for {len(channels)} "
                f"max-pool stages (needs H, W >= {2 ** len(channels)})"
            )
        num_blocks = len(channels) + (1 if fc_features > 0 else 0)
        extra = self._extra(extra_inputs, num_blocks)
        blocks, in_shapes, out_shapes = [], [], []
        for i, n_out in enumerate(channels):
            blocks.append(_conv_block(c + extra[i], n_out, kernel_size, kernel_size // 2, norm))
            in_shapes.append((c, h, w))
            c, h, w = n_out, h // 2, w // 2
            out_shapes.append((c, h, w))
        if fc_features > 0:
            last = len(channels)
            blocks.append(
                nn.Sequential(
                    nn.Flatten(), nn.Linear((c + extra[last]) * h * w, fc_features), nn.ReLU()
                )
            )
            in_shapes.append((c, h, w))
            out_shapes.append((fc_features,))
        else:
            blocks[-1].append(nn.AdaptiveAvgPool2d(1))
            out_shapes[-1] = (c, 1, 1)
        self.blocks = nn.ModuleList(blocks)
        self.block_in_shapes, self.block_out_shapes = in_shapes, out_shapes
        self.out_features = math.prod(out_shapes[-1])


class LeNet(Backbone):
    """MultiLeNet (Sener & Koltun 2018; Lin et al. 2019): conv 10 k5, maxpool2, ReLU, conv 20 k5,
    maxpool2, ReLU, Linear -> 50, ReLU. On 28x28 the Linear sees 20x4x4 = 320 features."""

    schema = backbone_schemas.LeNetBackbone

    def __init__(
        self,
        input_shape: Sequence[int],
        features: int = 50,
        extra_inputs: Sequence[int] | None = None,
    ) -> None:
        features = int(features)
        super().__init__(input_shape, dict(features=features))
        if features < 1:
            raise ValueError(f"backbone.features: {features} is below the minimum 1")
        c, h, w = self.input_shape
        if (min(h, w) - 4) // 2 - 4 < 2:
            raise ValueError(
                f"backbone=lenet: input {self.input_shape} too small (needs H, W >= 16)"
            )
        extra = self._extra(extra_inputs, 3)
        h1, w1 = (h - 4) // 2, (w - 4) // 2
        h2, w2 = (h1 - 4) // 2, (w1 - 4) // 2
        self.blocks = nn.ModuleList(
            [
                _conv_block(c + extra[0], 10, 5, 0, "none", pool_first=True),
                _conv_block(10 + extra[1], 20, 5, 0, "none", pool_first=True),
                nn.Sequential(
                    nn.Flatten(), nn.Linear((20 + extra[2]) * h2 * w2, features), nn.ReLU()
                ),
            ]
        )
        self.block_in_shapes = [(c, h, w), (10, h1, w1), (20, h2, w2)]
        self.block_out_shapes = [(10, h1, w1), (20, h2, w2), (features,)]
        self.out_features = features


class Conv4(Backbone):
    """Conv-4 of Vinyals et al. 2016 / Snell et al. 2017: 4 x [conv3x3, BN, ReLU, maxpool2].

    `norm: batch` uses ordinary BatchNorm (batch statistics in training, running ones in eval);
    `norm: none` drops it. The output is the flattened last map (64 features on 28x28).
    """

    schema = backbone_schemas.Conv4Backbone

    def __init__(
        self,
        input_shape: Sequence[int],
        hidden_channels: int = 64,
        norm: str = "batch",
        extra_inputs: Sequence[int] | None = None,
    ) -> None:
        hidden_channels = int(hidden_channels)
        super().__init__(input_shape, dict(hidden_channels=hidden_channels, norm=norm))
        _check_norm(norm)
        if hidden_channels < 1:
            raise ValueError(f"backbone.hidden_channels: {hidden_channels} is below the minimum 1")
        c, h, w = self.input_shape
        if min(h, w) < 16:
            raise ValueError(
                f"backbone=conv4: input {self.input_shape} too small (needs H, W >= 16)"
            )
        extra = self._extra(extra_inputs, 4)
        blocks, in_shapes, out_shapes = [], [], []
        for i in range(4):
            blocks.append(_conv_block(c + extra[i], hidden_channels, 3, 1, norm))
            in_shapes.append((c, h, w))
            c, h, w = hidden_channels, h // 2, w // 2
            out_shapes.append((c, h, w))
        self.blocks = nn.ModuleList(blocks)
        self.block_in_shapes, self.block_out_shapes = in_shapes, out_shapes
        self.out_features = c * h * w
