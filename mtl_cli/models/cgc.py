"""Customized Gate Control: shared and task-specific experts, a gate and a tower per task
(Tang et al. 2020)."""

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
from mtl_cli.schemas import model as schema
from mtl_cli.schemas.checks import check_settings


def mix(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Gated mixture: weights [B, E] (rows sum to 1), experts [B, E, *shape] -> [B, *shape]."""
    return torch.einsum("be,be...->b...", weights, experts)


class CGC(MultiTaskModel):
    """Customized Gate Control (Tang, Liu, Zhao & Gong 2020, "Progressive Layered Extraction
    (PLE): A Novel Multi-Task Learning (MTL) Model for Personalized Recommendations", RecSys).

    `num_shared_experts` experts serve every task and `num_task_experts` experts belong to each
    task; every expert is one backbone built by `make_backbone()`. Task t's gate is a softmax over
    a linear map of the flattened input that mixes the shared experts and task t's own experts
    (in that order), and task t's tower reads the mixture:

        y_t = tower_t(sum_e softmax(W_t x + b_t)_e expert_e(x)),  e in shared + task t's experts.

    With `num_task_experts = 0` this is MMoE (Ma et al. 2018) with `num_shared_experts` experts.

    Shared: the shared experts. Task-specific: each task's experts, gate and tower (task t's loss
    never reaches another task's experts). Last shared layer: each shared expert's last
    Linear/Conv2d.

    Deviations: the gate has a bias (as mtl_cli's MMoE and LibMTL's CGC; the paper writes
    softmax(W x)). Defaults (1 shared expert, 1 expert per task, towers with one hidden layer of
    64) are DeepCTR's PLE defaults; the paper sizes its experts per experiment.
    """

    def __init__(
        self,
        task_outputs: Sequence[int],
        input_shape: Sequence[int],
        make_backbone: Callable[[], Backbone],
        num_shared_experts: int = schema.CGCModel.num_shared_experts,
        num_task_experts: int = schema.CGCModel.num_task_experts,
        tower_hidden: Sequence[int] = (64,),
    ) -> None:
        super().__init__(check_task_outputs(task_outputs))
        num_shared_experts, num_task_experts = int(num_shared_experts), int(num_task_experts)
        check_settings(
            schema.CGCModel,
            num_shared_experts=num_shared_experts,
            num_task_experts=num_task_experts,
        )
        tower_hidden = as_int_list(tower_hidden, "model.tower_hidden")
        input_features = math.prod(as_shape(input_shape, "model=cgc"))
        self.num_shared_experts, self.num_task_experts = num_shared_experts, num_task_experts
        self.shared_experts = nn.ModuleList([make_backbone() for _ in range(num_shared_experts)])
        require_vector_backbone(self.shared_experts[0], self)
        self.task_experts = nn.ModuleList(
            [
                nn.ModuleList([make_backbone() for _ in range(num_task_experts)])
                for _ in self.task_outputs
            ]
        )
        expert_size = self.shared_experts[0].out_features
        mixed = num_shared_experts + num_task_experts
        self.gates = nn.ModuleList([nn.Linear(input_features, mixed) for _ in self.task_outputs])
        self.towers = nn.ModuleList(
            [make_head(expert_size, tower_hidden, n) for n in self.task_outputs]
        )

    def shared_expert_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every shared expert on x: [B, num_shared_experts, expert_size]."""
        return torch.stack([expert(x) for expert in self.shared_experts], dim=1)

    def gate_weights(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Task `task`'s mixture weights [B, num_shared_experts + num_task_experts] (shared
        experts first); rows sum to 1."""
        return torch.softmax(self.gates[task](x.flatten(1)), dim=-1)

    def _tower(self, shared: torch.Tensor, x: torch.Tensor, task: int) -> torch.Tensor:
        experts = shared
        if self.num_task_experts:
            own = torch.stack([expert(x) for expert in self.task_experts[task]], dim=1)
            experts = torch.cat([shared, own], dim=1)
        return self.towers[task](mix(self.gate_weights(x, task), experts))

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Shared experts, task `task`'s experts, gate and tower."""
        return self._tower(self.shared_expert_outputs(x), x, task)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Shared experts once, then every task's experts, gate and tower."""
        shared = self.shared_expert_outputs(x)
        return [self._tower(shared, x, t) for t in range(self.num_tasks)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every shared expert parameter."""
        return list(self.shared_experts.parameters())

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weight (+bias) of each shared expert's last Linear/Conv2d layer."""
        return [p for expert in self.shared_experts for p in expert.last_layer_parameters()]
