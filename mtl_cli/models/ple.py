"""Progressive Layered Extraction: stacked CGC levels with shared gates in between
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
    layer_parameters,
    make_head,
    require_vector_backbone,
)
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.models.cgc import mix
from mtl_cli.schemas import model as schema
from mtl_cli.schemas.checks import check_settings


class ExtractionLevel(nn.Module):
    """One PLE level: shared experts, each task's experts, a softmax gate per task over the shared
    and its own experts, and (except on the last level) a shared gate over every expert."""

    def __init__(
        self,
        make_expert: Callable[[], nn.Module],
        num_shared: int,
        num_own: int,
        num_tasks: int,
        gate_features: int,
        last: bool,
    ) -> None:
        super().__init__()
        self.last = last
        self.shared_experts = nn.ModuleList([make_expert() for _ in range(num_shared)])
        self.task_experts = nn.ModuleList(
            [nn.ModuleList([make_expert() for _ in range(num_own)]) for _ in range(num_tasks)]
        )
        self.task_gates = nn.ModuleList(
            [nn.Linear(gate_features, num_shared + num_own) for _ in range(num_tasks)]
        )
        every = num_shared + num_own * num_tasks
        self.shared_gate = None if last else nn.Linear(gate_features, every)

    def task_gate_weights(self, h: torch.Tensor, task: int) -> torch.Tensor:
        """Task `task`'s weights [B, shared + own experts] (shared first) from its path's input."""
        return torch.softmax(self.task_gates[task](h.flatten(1)), dim=-1)

    def shared_gate_weights(self, h: torch.Tensor) -> torch.Tensor:
        """The shared gate's weights [B, every expert] (shared, then task 0's, task 1's, ...)."""
        return torch.softmax(self.shared_gate(h.flatten(1)), dim=-1)

    def forward(
        self, task_inputs: list[torch.Tensor | None], shared_input: torch.Tensor
    ) -> tuple[list[torch.Tensor | None], torch.Tensor | None]:
        """Fused outputs of every task whose input is given (None elsewhere) and, on a level that
        is not the last, the shared path's fused output (which needs every task's experts)."""
        shared = torch.stack([e(shared_input) for e in self.shared_experts], dim=1)
        own: list[torch.Tensor | None] = [
            torch.stack([e(h) for e in experts], dim=1) if h is not None and len(experts) else None
            for experts, h in zip(self.task_experts, task_inputs, strict=True)
        ]
        outputs: list[torch.Tensor | None] = []
        for t, h in enumerate(task_inputs):
            if h is None:
                outputs.append(None)
                continue
            experts = shared if own[t] is None else torch.cat([shared, own[t]], dim=1)
            outputs.append(mix(self.task_gate_weights(h, t), experts))
        if self.shared_gate is None:
            return outputs, None
        every = torch.cat([shared, *[o for o in own if o is not None]], dim=1)
        return outputs, mix(self.shared_gate_weights(shared_input), every)


class PLE(MultiTaskModel):
    """Progressive Layered Extraction (Tang, Liu, Zhao & Gong 2020, "Progressive Layered
    Extraction (PLE): A Novel Multi-Task Learning (MTL) Model for Personalized Recommendations",
    RecSys).

    `num_levels` extraction levels, each a CGC layer: at level j task t's gate (softmax of a linear
    map of its path's previous fused output g_t^{j-1}; of the flattened input at j = 0) mixes the
    level's shared experts and task t's experts into g_t^j; on every level but the last a shared
    gate (on g_s^{j-1}) mixes every expert of the level, shared and task-specific, into the shared
    path's g_s^j. Task t's experts of level j read g_t^{j-1}, the shared experts g_s^{j-1}; the
    towers read the last level's g_t.

    How levels stack with backbones as experts: the first level's experts are backbones built by
    `make_backbone()` and read the input; the experts of every later level are one Linear(F, F) +
    ReLU layer on the previous level's fused features (F = the backbone's out_features), as the
    paper's (and DeepCTR's) experts are MLPs on the previous level's output. So any backbone works
    at any depth, `num_levels = 1` is CGC exactly, and each level adds one F x F layer per expert:
    for a budget equal to CGC on mlp [h, h], give PLE 2 levels on mlp [h] (each expert path is
    then Linear(D, h), ReLU, mix, Linear(h, h), ReLU).

    Shared: every shared expert and shared gate, the task experts of every level but the last
    (the shared gate mixes them into the shared path) and, with task experts, the task gates of
    the levels before the last two (their output feeds task experts that feed a shared gate).
    Task-specific: the last level's task experts, the remaining task gates and the towers. Last
    shared layer: the last Linear/Conv2d of each last-level shared expert.

    Deviations: gates have a bias (LibMTL's PLE; the paper writes softmax(W x)); the later-level
    experts are one ReLU layer (DeepCTR's default expert is one layer of 256). Defaults (2 levels,
    1 shared expert, 1 expert per task, towers [64]) are DeepCTR's PLE defaults.
    """

    def __init__(
        self,
        task_outputs: Sequence[int],
        input_shape: Sequence[int],
        make_backbone: Callable[[], Backbone],
        num_levels: int = schema.PLEModel.num_levels,
        num_shared_experts: int = schema.PLEModel.num_shared_experts,
        num_task_experts: int = schema.PLEModel.num_task_experts,
        tower_hidden: Sequence[int] = (64,),
    ) -> None:
        super().__init__(check_task_outputs(task_outputs))
        num_levels = int(num_levels)
        num_shared_experts, num_task_experts = int(num_shared_experts), int(num_task_experts)
        check_settings(
            schema.PLEModel,
            num_levels=num_levels,
            num_shared_experts=num_shared_experts,
            num_task_experts=num_task_experts,
        )
        tower_hidden = as_int_list(tower_hidden, "model.tower_hidden")
        input_features = math.prod(as_shape(input_shape, "model=ple"))
        self.num_levels = num_levels
        self.num_shared_experts, self.num_task_experts = num_shared_experts, num_task_experts
        levels = [
            ExtractionLevel(
                make_backbone,
                num_shared_experts,
                num_task_experts,
                self.num_tasks,
                input_features,
                last=num_levels == 1,
            )
        ]
        require_vector_backbone(levels[0].shared_experts[0], self)
        features = levels[0].shared_experts[0].out_features

        def make_layer() -> nn.Module:
            return nn.Sequential(nn.Linear(features, features), nn.ReLU())

        for j in range(1, num_levels):
            levels.append(
                ExtractionLevel(
                    make_layer,
                    num_shared_experts,
                    num_task_experts,
                    self.num_tasks,
                    features,
                    last=j == num_levels - 1,
                )
            )
        self.levels = nn.ModuleList(levels)
        self.towers = nn.ModuleList(
            [make_head(features, tower_hidden, n) for n in self.task_outputs]
        )

    def extract(self, x: torch.Tensor, tasks: Sequence[int]) -> list[torch.Tensor | None]:
        """The last level's fused output of each task in `tasks` (None for the others). Levels
        before the last run every task path that the shared gates need."""
        wanted = set(tasks)
        paths: list[torch.Tensor | None] = [x] * self.num_tasks
        shared: torch.Tensor | None = x
        for level in self.levels:
            if level.last or not self.num_task_experts:  # the shared gate needs no task path
                paths = [h if t in wanted else None for t, h in enumerate(paths)]
            paths, shared = level(paths, shared)
        return paths

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Task `task`'s output (the shared path, and so every task path before the last level,
        runs too)."""
        return self.towers[task](self.extract(x, [task])[task])

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every level once, then every task's tower."""
        paths = self.extract(x, range(self.num_tasks))
        return [tower(h) for tower, h in zip(self.towers, paths, strict=True)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Shared experts and gates, the task experts of the levels before the last and, with
        task experts, the task gates of the levels before the last two."""
        params: list[nn.Parameter] = []
        last = self.num_levels - 1
        for j, level in enumerate(self.levels):
            params += level.shared_experts.parameters()
            if level.shared_gate is not None:
                params += level.shared_gate.parameters()
            if j < last:
                params += level.task_experts.parameters()
            if self.num_task_experts and j < last - 1:
                params += level.task_gates.parameters()
        return params

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weight (+bias) of the last Linear/Conv2d of each last-level shared expert."""
        return [p for e in self.levels[-1].shared_experts for p in layer_parameters(e)]
