"""Hard parameter sharing: one trunk for every task, one head per task (Caruana 1997)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from mtl_cli.models.backbones import (
    Backbone,
    as_int_list,
    check_task_outputs,
    layer_parameters,
)
from mtl_cli.models.base import MultiTaskModel


class HardSharing(MultiTaskModel):
    """Shared backbone trunk z = f(x) and per-task heads y_t = g_t(z) (Caruana 1997).

    Heads come from the backbone (`make_head`): an MLP on a vector z, a per-pixel head on the
    feature map z of a dense backbone (segnet, resnet_dilated)."""

    has_shared_representation = True

    def __init__(
        self,
        task_outputs: Sequence[int],
        input_shape: Sequence[int],
        make_backbone: Callable[[], Backbone],
        head_hidden: Sequence[int] = (),
    ) -> None:
        super().__init__(check_task_outputs(task_outputs))
        head_hidden = as_int_list(head_hidden, "model.head_hidden")
        self.trunk = make_backbone()
        self.heads = nn.ModuleList(
            [self.trunk.make_head(head_hidden, n) for n in self.task_outputs]
        )

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's features z = f(x): [B, out_features] (a map [B, C, H', W'] when dense)."""
        return self.trunk(x)

    def head(self, z: torch.Tensor, task: int) -> torch.Tensor:
        """Task `task`'s head on the shared features."""
        return self.heads[task](z)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Trunk, then task `task`'s head."""
        return self.head(self.representation(x), task)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One trunk pass shared by every head."""
        z = self.representation(x)
        return [self.head(z, t) for t in range(self.num_tasks)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every trunk parameter."""
        return list(self.trunk.parameters())

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weight (+bias) of the trunk's last Linear/Conv2d layer."""
        return layer_parameters(self.trunk.blocks[-1])
