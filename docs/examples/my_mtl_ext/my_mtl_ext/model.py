"""A shared trunk with one linear head per task, each head behind its own gate."""

from __future__ import annotations

import torch
from torch import nn

from mtl_cli.models.base import MultiTaskModel


class GatedHeads(MultiTaskModel):
    """Hard parameter sharing (Caruana 1997) whose heads read the trunk's features through a
    learned per-task sigmoid gate: y_t = W_t (sigmoid(a_t) * f(x)).

    Options: `gate_init` (the gates' initial logit, default 0.0: every gate starts at 0.5).
    """

    #: the families this model serves (mtl_cli reads it before the run starts)
    families = ("multitask", "multilabel")

    def __init__(self, task_outputs, input_shape, make_backbone, gate_init: float = 0.0) -> None:
        super().__init__(task_outputs)
        self.trunk = make_backbone()
        width = self.trunk.out_features
        self.gates = nn.Parameter(torch.full((self.num_tasks, width), float(gate_init)))
        self.heads = nn.ModuleList([nn.Linear(width, n) for n in self.task_outputs])

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        return self.heads[task](torch.sigmoid(self.gates[task]) * self.trunk(x))

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())
