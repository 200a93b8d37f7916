"""Cross-stitch networks: one column per task, mixed after chosen blocks (Misra et al. 2016)."""

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
    resolve_block_indices,
)
from mtl_cli.models.base import MultiTaskModel


class CrossStitchUnit(nn.Module):
    """Mixes T task activations: h'_t = sum_s alpha[t, s] h_s (Misra et al. 2016).

    alpha is T x T, or C x T x T (one matrix per channel/feature) when `channels` is given; it
    starts with `alpha_self` on the diagonal and (1 - alpha_self) / (T - 1) elsewhere (rows sum
    to 1).
    """

    def __init__(self, num_tasks: int, alpha_self: float, channels: int | None = None) -> None:
        super().__init__()
        off = (1.0 - alpha_self) / (num_tasks - 1) if num_tasks > 1 else 0.0
        alpha = torch.full((num_tasks, num_tasks), off)
        alpha.fill_diagonal_(alpha_self if num_tasks > 1 else 1.0)
        if channels is not None:
            alpha = alpha.expand(channels, -1, -1).clone()
        self.alpha = nn.Parameter(alpha)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: [T, B, C, ...] stacked task activations -> mixed activations of the same shape."""
        if self.alpha.dim() == 2:
            return torch.einsum("ts,sb...->tb...", self.alpha, h)
        # contiguous: einsum returns a permuted view here, and later layers would round differently
        return torch.einsum("cts,sbc...->tbc...", self.alpha, h).contiguous()


class CrossStitch(MultiTaskModel):
    """T backbone columns with cross-stitch units after the chosen blocks (Misra et al. 2016).

    Shared: the units, and every column block up to the last unit (through the units each task's
    loss reaches every column there). Task-specific: heads and column blocks after the last unit.
    With alpha_self = 1 the units are identities and the model equals `independent`.

    Dense backbones: the units mix feature maps between encoder and decoder blocks (each column
    unpools with its own pooling indices); heads come from the backbone (`make_head`).
    """

    def __init__(
        self,
        task_outputs: Sequence[int],
        input_shape: Sequence[int],
        make_backbone: Callable[[], Backbone],
        alpha_self: float = 0.9,
        layers: Any = "all",
        per_channel: bool = False,
        head_hidden: Sequence[int] = (),
    ) -> None:
        super().__init__(check_task_outputs(task_outputs))
        alpha_self = float(alpha_self)
        if not 0.0 <= alpha_self <= 1.0:
            raise ValueError(f"model.alpha_self: {alpha_self} is outside [0, 1]")
        head_hidden = as_int_list(head_hidden, "model.head_hidden")
        self.columns = nn.ModuleList([make_backbone() for _ in self.task_outputs])
        first = self.columns[0]
        self.layers = resolve_block_indices(layers, len(first.blocks), "model.layers")
        self.units = nn.ModuleDict(
            {
                str(i): CrossStitchUnit(
                    self.num_tasks,
                    alpha_self,
                    first.block_out_shapes[i][0] if per_channel else None,
                )
                for i in self.layers
            }
        )
        self.heads = nn.ModuleList([first.make_head(head_hidden, n) for n in self.task_outputs])

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every column block by block, mixing after the stitched blocks; then each task's head."""
        hs = [x] * self.num_tasks
        states: list[dict[str, Any]] = [{} for _ in self.columns]  # per column (pool indices)
        for i in range(len(self.columns[0].blocks)):
            hs = [
                column.run_block(i, h, state)
                for column, h, state in zip(self.columns, hs, states, strict=True)
            ]
            if str(i) in self.units:
                hs = list(self.units[str(i)](torch.stack(hs)).unbind(0))
        return [
            head(column.finish(h))
            for head, column, h in zip(self.heads, self.columns, hs, strict=True)
        ]

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Task `task`'s output (needs every column, so it runs them all)."""
        return self.forward_all(x)[task]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Cross-stitch units and the column blocks up to the last unit."""
        last = self.layers[-1]
        columns = [p for c in self.columns for b in c.blocks[: last + 1] for p in b.parameters()]
        return [*self.units.parameters(), *columns]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weight (+bias) of the last Linear/Conv2d before the last unit, in every column."""
        last = self.layers[-1]
        return [p for column in self.columns for p in layer_parameters(column.blocks[last])]
