"""One network for all tasks, fed a task descriptor z_t (CS330 lecture 2; Perez et al. 2018).

The descriptor z_t (one-hot, or a learned embedding) acts on the features h entering the chosen
backbone blocks in one of four ways (Dumoulin et al. 2018, "Feature-wise transformations"):

- concat:          [h; z]  (for a map [C, H, W], z is broadcast as extra channels)
- additive:        h + W z
- multiplicative:  h * (1 + W z)                      (a gate that starts near 1)
- film:            (1 + W_g z) * h + W_b z           (per channel for maps, per feature for vectors)

Every W is initialised so that W z has std 0.1 per entry (gates start within about ±0.2 of 1).
"""

from __future__ import annotations

import math
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
    require_vector_backbone,
    resolve_block_indices,
)
from mtl_cli.models.base import MultiTaskModel

DESCRIPTORS = ("onehot", "embedding")
CONDITIONINGS = ("concat", "additive", "multiplicative", "film")
HEADS = ("shared", "per_task")
_INIT_STD = 0.1  # std of each entry of W z at initialisation


class TaskConditioning(nn.Module):
    """Applies the task descriptor z to the features h entering one block (Dumoulin et al. 2018)."""

    def __init__(self, kind: str, descriptor_dim: int, in_shape: tuple[int, ...], z_norm2: float):
        super().__init__()
        self.kind = kind
        self.in_shape = in_shape
        channels = in_shape[0]
        std = _INIT_STD / math.sqrt(z_norm2)
        names = {"additive": ["shift"], "multiplicative": ["scale"], "film": ["scale", "shift"]}
        for name in names.get(kind, []):
            layer = nn.Linear(descriptor_dim, channels, bias=False)
            nn.init.normal_(layer.weight, std=std)
            setattr(self, name, layer)

    def _per_channel(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return v.view(*v.shape, *([1] * (h.dim() - 2)))

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """h: [B, *in_shape] (vectors may arrive unflattened), z: [B, descriptor_dim]."""
        if len(self.in_shape) == 1:
            h = h.flatten(1)
        if self.kind == "concat":
            z = z.view(*z.shape, *([1] * (h.dim() - 2))).expand(-1, -1, *h.shape[2:])
            return torch.cat([h, z], dim=1)
        if self.kind == "additive":
            return h + self._per_channel(self.shift(z), h)
        if self.kind == "multiplicative":
            return h * (1 + self._per_channel(self.scale(z), h))
        return (1 + self._per_channel(self.scale(z), h)) * h + self._per_channel(self.shift(z), h)


class Conditioned(MultiTaskModel):
    """A single network f(x, z_t) fed a task descriptor z_t (CS330 lecture 2; Perez et al. 2018).

    Shared: the backbone, every conditioning projection W and, with `heads=shared`, the head.
    Task-specific: per-task heads and the learned embedding vector of each task (one Parameter per
    task, so only task t's loss reaches z_t).
    """

    def __init__(
        self,
        task_outputs: Sequence[int],
        input_shape: Sequence[int],
        make_backbone: Callable[[], Backbone],
        descriptor: str = "onehot",
        embedding_dim: int = 16,
        conditioning: str = "film",
        layers: Any = "all",
        heads: str = "per_task",
        head_hidden: Sequence[int] = (),
    ) -> None:
        super().__init__(check_task_outputs(task_outputs))
        for key, value, allowed in (
            ("descriptor", descriptor, DESCRIPTORS),
            ("conditioning", conditioning, CONDITIONINGS),
            ("heads", heads, HEADS),
        ):
            if value not in allowed:
                raise ValueError(
                    f"model.{key}: invalid value '{value}'; allowed: {', '.join(allowed)}"
                )
        embedding_dim = int(embedding_dim)
        if descriptor == "embedding" and embedding_dim < 1:
            raise ValueError(f"model.embedding_dim: {embedding_dim} is below the minimum 1")
        head_hidden = as_int_list(head_hidden, "model.head_hidden")
        self.descriptor, self.conditioning, self.shared_head = (
            descriptor,
            conditioning,
            heads == "shared",
        )

        backbone = make_backbone()
        require_vector_backbone(backbone, self)
        self.layers = resolve_block_indices(layers, len(backbone.blocks), "model.layers")
        if descriptor == "onehot":
            dim, z_norm2 = self.num_tasks, 1.0
            self.register_buffer("onehot", torch.eye(self.num_tasks), persistent=False)
        else:  # entries ~ N(0, 1), like nn.Embedding; one Parameter per task
            dim, z_norm2 = embedding_dim, float(embedding_dim)
            self.task_embeddings = nn.ParameterList(
                [nn.Parameter(torch.randn(embedding_dim)) for _ in self.task_outputs]
            )
        if conditioning == "concat":
            if not isinstance(backbone, Backbone):
                raise ValueError(
                    "model.conditioning: concat needs a mtl_cli Backbone; "
                    f"got {type(backbone).__name__}"
                )
            extra = [dim if i in self.layers else 0 for i in range(len(backbone.blocks))]
            backbone = backbone.widened(extra)
        self.backbone = backbone
        self.conditions = nn.ModuleDict(
            {
                str(i): TaskConditioning(conditioning, dim, backbone.block_in_shapes[i], z_norm2)
                for i in self.layers
            }
        )
        out = backbone.out_features
        if self.shared_head:
            self.heads = nn.ModuleList([make_head(out, head_hidden, max(self.task_outputs))])
        else:
            self.heads = nn.ModuleList([make_head(out, head_hidden, n) for n in self.task_outputs])

    def task_descriptor(self, task: int, batch_size: int) -> torch.Tensor:
        """z_task repeated for the batch: [batch_size, descriptor_dim]."""
        z = self.onehot[task] if self.descriptor == "onehot" else self.task_embeddings[task]
        return z.expand(batch_size, -1)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """f(x, z_task); with a shared head, task t reads its first task_outputs[t] units."""
        z = self.task_descriptor(task, x.shape[0])
        h = x
        for i, block in enumerate(self.backbone.blocks):
            if str(i) in self.conditions:
                h = self.conditions[str(i)](h, z)
            h = block(h)
        out = self.heads[0 if self.shared_head else task](h.flatten(1))
        return out[:, : self.task_outputs[task]] if self.shared_head else out

    def shared_parameters(self) -> list[nn.Parameter]:
        """Backbone, conditioning projections and (heads=shared) the head."""
        params = [*self.backbone.parameters(), *self.conditions.parameters()]
        return params + (list(self.heads.parameters()) if self.shared_head else [])

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The shared head's output layer, or else the backbone's last Linear/Conv2d layer."""
        if self.shared_head:
            return layer_parameters(self.heads[0])
        return layer_parameters(self.backbone.blocks[-1])
