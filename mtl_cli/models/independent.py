"""Single-task baseline: one backbone and one head per task, nothing shared (CS330 lecture 2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from mtl_cli.models.backbones import Backbone, as_int_list, check_task_outputs
from mtl_cli.models.base import MultiTaskModel


class Independent(MultiTaskModel):
    """T separate networks (backbone + head), the single-task learning baseline (Caruana 1997).

    Heads come from the backbone (`make_head`): an MLP on vector backbones, a per-pixel head on
    dense ones (segnet, resnet_dilated)."""

    def __init__(
        self,
        task_outputs: Sequence[int],
        input_shape: Sequence[int],
        make_backbone: Callable[[], Backbone],
        head_hidden: Sequence[int] = (),
    ) -> None:
        super().__init__(check_task_outputs(task_outputs))
        head_hidden = as_int_list(head_hidden, "model.head_hidden")
        self.columns = nn.ModuleList([make_backbone() for _ in self.task_outputs])
        self.heads = nn.ModuleList(
            [
                column.make_head(head_hidden, n)
                for column, n in zip(self.columns, self.task_outputs, strict=True)
            ]
        )

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Runs only column `task` and its head."""
        return self.heads[task](self.columns[task](x))

    def shared_parameters(self) -> list[nn.Parameter]:
        """Nothing is shared."""
        return []
