"""The interface every multi-task model implements, so families and weighting methods need no special cases."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MultiTaskModel(nn.Module):
    """A network with T task outputs; parameters are split into shared and task-specific ones.

    `forward(x, task)` gives task `task`'s output for its own batch (multi-task classification: each
    task has its own p_i(x)); `forward_all(x)` gives every task's output for one shared batch
    (multi-label: p(x) is shared). Models with a shared representation z = f(x) (hard sharing) also
    expose `representation` and `head`, so gradient methods can work on z (MGDA-UB style).
    """

    #: True when `representation`/`head` exist and `forward_all(x) == [head(representation(x), t)]`.
    has_shared_representation: bool = False

    def __init__(self, task_outputs: Sequence[int]) -> None:
        super().__init__()
        if len(task_outputs) < 1:
            raise ValueError("task_outputs: need at least one task")
        self.task_outputs = list(task_outputs)

    @property
    def num_tasks(self) -> int:
        return len(self.task_outputs)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Output of task `task` for a batch x: [B, task_outputs[task]]."""
        raise NotImplementedError

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every task for one shared batch x (default: one forward per task)."""
        return [self.forward(x, t) for t in range(self.num_tasks)]

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """Shared representation z = f(x); only when `has_shared_representation`."""
        raise NotImplementedError(f"{type(self).__name__} has no shared representation")

    def head(self, z: torch.Tensor, task: int) -> torch.Tensor:
        """Task `task`'s output from the shared representation z."""
        raise NotImplementedError(f"{type(self).__name__} has no shared representation")

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters used by more than one task (empty for independent networks)."""
        raise NotImplementedError

    def task_specific_parameters(self) -> list[nn.Parameter]:
        """Parameters that only one task's loss depends on (heads, towers, per-task columns)."""
        shared = {id(p) for p in self.shared_parameters()}
        return [p for p in self.parameters() if id(p) not in shared]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weights of the last shared layer (GradNorm measures task gradient norms there)."""
        shared = self.shared_parameters()
        return shared[-2:] if len(shared) >= 2 else shared
