"""Multi-gate mixture of experts: shared experts, a gate and a tower per task (Ma et al. 2018)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from mtl_cli.models.backbones import (
    Backbone,
    as_int_list,
    as_shape,
    check_task_outputs,
    make_head,
    require_vector_backbone,
)
from mtl_cli.models.base import MultiTaskModel


class MMoE(MultiTaskModel):
    """MMoE (Ma et al. 2018): y_t = tower_t(sum_e softmax(W_t x)_e expert_e(x)).

    Shared: the experts (backbones). Task-specific: the gates (linear on the flattened input) and
    the towers.
    """

    def __init__(
        self,
        task_outputs: Sequence[int],
        input_shape: Sequence[int],
        make_backbone: Callable[[], Backbone],
        num_experts: int = 4,
        tower_hidden: Sequence[int] = (64,),
    ) -> None:
        super().__init__(check_task_outputs(task_outputs))
        num_experts = int(num_experts)
        if num_experts < 1:
            raise ValueError(f"model.num_experts: {num_experts} is below the minimum 1")
        tower_hidden = as_int_list(tower_hidden, "model.tower_hidden")
        input_features = math.prod(as_shape(input_shape, "model=mmoe"))
        self.experts = nn.ModuleList([make_backbone() for _ in range(num_experts)])
        require_vector_backbone(self.experts[0], self)
        expert_size = self.experts[0].out_features
        self.gates = nn.ModuleList([nn.Linear(input_features, num_experts) for _ in task_outputs])
        self.towers = nn.ModuleList(
            [make_head(expert_size, tower_hidden, n) for n in self.task_outputs]
        )

    def expert_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every expert on x: [B, num_experts, expert_size]."""
        return torch.stack([expert(x) for expert in self.experts], dim=1)

    def gate_weights(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Task `task`'s mixture weights over the experts: [B, num_experts], rows sum to 1."""
        return torch.softmax(self.gates[task](x.flatten(1)), dim=-1)

    def _tower(self, experts: torch.Tensor, x: torch.Tensor, task: int) -> torch.Tensor:
        mixed = torch.einsum("be,bef->bf", self.gate_weights(x, task), experts)
        return self.towers[task](mixed)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Experts, task `task`'s gate and tower."""
        return self._tower(self.expert_outputs(x), x, task)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Experts once, then every task's gate and tower."""
        experts = self.expert_outputs(x)
        return [self._tower(experts, x, t) for t in range(self.num_tasks)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every expert parameter."""
        return list(self.experts.parameters())

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weight (+bias) of each expert's last Linear/Conv2d layer."""
        return [p for expert in self.experts for p in expert.last_layer_parameters()]
