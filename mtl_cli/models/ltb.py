"""Learning to Branch: a tree of backbone blocks whose branching is learned (Guo, Lee & Ulbricht 2020).

P. Guo, C.-Y. Lee, D. Ulbricht. Learning to Branch for Multi-Task Learning. ICML 2020.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtl_cli.models.backbones import (
    Backbone,
    as_int_list,
    check_task_outputs,
    layer_parameters,
    make_head,
    require_vector_backbone,
)
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.schemas import model as schema
from mtl_cli.schemas.checks import check_settings


def gumbel_softmax(logits: torch.Tensor, tau: torch.Tensor, hard: bool) -> torch.Tensor:
    """Gumbel-softmax over the last dim (Jang et al. 2017; Maddison et al. 2017).

    y = softmax((logits + g) / tau), g ~ Gumbel(0, 1) drawn from torch's global RNG on the logits'
    device (the trainer checkpoints it, so resumed runs draw the same trees). `hard`: the forward
    value is the one-hot argmax of y and the gradient that of y (straight-through). `tau` may be a
    tensor, so annealing needs no host sync.
    """
    gumbels = -torch.empty_like(logits).exponential_().log()
    soft = torch.softmax((logits + gumbels) / tau, dim=-1)
    if not hard:
        return soft
    one_hot = F.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
    return one_hot - soft.detach() + soft


class LTB(MultiTaskModel):
    """Learning to Branch (Guo, Lee & Ulbricht 2020): a tree over the backbone's blocks.

    Layer i of the tree holds T candidate nodes, node (i, k) being block i of backbone copy k
    (`columns[k].blocks[i]`). Layer-0 nodes read the input. Every node (i, k) with i >= 1 chooses its
    parent among the T nodes of layer i - 1, and every task's head (the tree's leaves) chooses its
    parent among the T nodes of the last layer. Choices are Gumbel-softmax samples over learned
    branching logits (`branch_logits[i - 1][k]`, `head_logits[t]`; all zero at the start: uniform),
    with a temperature annealed over training. A child's input is sum_j w[j] h_j over the parents'
    outputs h_j, so the logits learn from the task losses.

    - Training: one tree is sampled per forward call (for `forward_all`, one tree for all tasks;
      for `forward(x, t)`, one per task batch); every node is computed (with `hard`, the forward
      value uses one parent per node but the straight-through gradient reaches every logit).
    - Evaluation (`model.eval()`): the argmax tree, with only the nodes it uses computed: the
      architecture found (`branching()`). Ties go to the lowest index, so the untrained model's
      tree (all logits 0) is hard sharing on column 0.
    - Temperature: tau(step) = max(min_temperature, schedule), with k = step // anneal_every and
      `inverse_sqrt`: temperature / sqrt(1 + k) (LibMTL's LTB, where k is the epoch),
      `exponential`: temperature * decay**k (Jang et al. 2017), `constant`: temperature. During
      the first `warmup_steps` steps the mixing is uniform (1/T) and the logits do not learn.
      With `hard` the sampled parent is argmax(logits + g) whatever the temperature, which then
      shapes only the gradient (the soft sample's sharpness).
    - Step: buffer `steps[t]` counts task t's training forward passes (`forward(x, t)` advances
      task t, `forward_all` every task); `forward(x, t)` anneals on `steps[t]`, `forward_all` on the
      maximum. With `trainer.task_sampling=all` and on shared-batch families that is the trainer's
      step. The buffer is in the state_dict and the noise comes from torch's global RNG, which the
      trainer checkpoints: resume is exact.
    - Shared parameters: every node and the inner branching logits. Under soft weights every task's
      loss reaches every node; with `hard` one sampled tree reaches only its own nodes, but every
      node can be reached by every task, so gradient methods treat them all as shared (the
      conservative choice). Task-specific: each task's head and its leaf logits `head_logits[t]`.
      With one task nothing is shared.

    Deviations: the paper's tree can have any number of nodes per layer; here it is T (one copy
    of each block per task), so all-choose-node-0 is hard sharing and each-node-its-own-column is
    the independent networks. The paper trains the branching logits and the weights with separate
    optimizers (and retrains the final tree); here one optimizer trains both and evaluation uses
    the argmax tree of the same weights.
    """

    def __init__(
        self,
        task_outputs: Sequence[int],
        input_shape: Sequence[int],
        make_backbone: Callable[[], Backbone],
        temperature: float = schema.LTBModel.temperature,
        schedule: str = schema.LTBModel.schedule,
        anneal_every: int = schema.LTBModel.anneal_every,
        decay: float = schema.LTBModel.decay,
        min_temperature: float = schema.LTBModel.min_temperature,
        warmup_steps: int = schema.LTBModel.warmup_steps,
        hard: bool = schema.LTBModel.hard,
        head_hidden: Sequence[int] = (),
    ) -> None:
        super().__init__(check_task_outputs(task_outputs))
        check_settings(
            schema.LTBModel,
            temperature=float(temperature),
            schedule=schedule,
            anneal_every=int(anneal_every),
            decay=float(decay),
            min_temperature=float(min_temperature),
            warmup_steps=int(warmup_steps),
        )
        if float(min_temperature) > float(temperature):
            raise ValueError(
                f"model.min_temperature: {min_temperature} is above model.temperature "
                f"{temperature} (the schedule would never apply)"
            )
        self.initial_temperature = float(temperature)
        self.schedule = str(schedule)
        self.anneal_every = int(anneal_every)
        self.decay = float(decay)
        self.min_temperature = float(min_temperature)
        self.warmup_steps = int(warmup_steps)
        self.hard = bool(hard)
        head_hidden = as_int_list(head_hidden, "model.head_hidden")

        num_tasks = self.num_tasks
        self.columns = nn.ModuleList([make_backbone() for _ in range(num_tasks)])
        require_vector_backbone(self.columns[0], self)
        self.num_layers = len(self.columns[0].blocks)
        #: branch_logits[i - 1][k, j]: node k of layer i choosing node j of layer i - 1
        self.branch_logits = nn.ParameterList(
            [nn.Parameter(torch.zeros(num_tasks, num_tasks)) for _ in range(self.num_layers - 1)]
        )
        #: head_logits[t][j]: task t's head (a leaf) choosing node j of the last layer
        self.head_logits = nn.ParameterList(
            [nn.Parameter(torch.zeros(num_tasks)) for _ in range(num_tasks)]
        )
        self.heads = nn.ModuleList(
            [make_head(self.columns[0].out_features, head_hidden, n) for n in self.task_outputs]
        )
        self.register_buffer("steps", torch.zeros(num_tasks, dtype=torch.long))

    # ------------------------------------------------------------------ branching

    def temperature(self, step: torch.Tensor | int) -> torch.Tensor:
        """The Gumbel-softmax temperature at training step `step` (a 0-dim float tensor)."""
        step = torch.as_tensor(step, device=self.steps.device)
        stage = torch.div(step, self.anneal_every, rounding_mode="floor").to(torch.float32)
        tau0 = torch.full_like(stage, self.initial_temperature)
        if self.schedule == "inverse_sqrt":
            tau = tau0 / torch.sqrt(1.0 + stage)
        elif self.schedule == "exponential":
            tau = tau0 * torch.pow(torch.full_like(stage, self.decay), stage)
        else:
            tau = tau0
        return tau.clamp_min(self.min_temperature)

    def _logits(self) -> torch.Tensor:
        """Every choice's logits: [num_layers, T, T]; the last entry holds the heads' choices."""
        return torch.stack([*self.branch_logits, torch.stack(list(self.head_logits))])

    def branching_weights(self, step: torch.Tensor | int | None = None) -> torch.Tensor:
        """Mixing weights [num_layers, T, T] (rows sum to 1): entry [i, k] weighs layer i's nodes
        for node k of layer i + 1 (i < num_layers - 1) or for task k's head (i = num_layers - 1).

        Training mode: a Gumbel-softmax sample at `step` (uniform during warmup); evaluation mode:
        the one-hot argmax tree.
        """
        logits = self._logits()
        if not self.training:
            return F.one_hot(logits.argmax(-1), self.num_tasks).to(logits.dtype)
        step = self.steps.max() if step is None else torch.as_tensor(step, device=logits.device)
        weights = gumbel_softmax(logits, self.temperature(step), self.hard)
        if self.warmup_steps > 0:
            uniform = torch.full_like(weights, 1.0 / self.num_tasks)
            weights = torch.where(step < self.warmup_steps, uniform, weights)
        return weights

    def branching(self) -> tuple[list[list[int]], list[int]]:
        """The argmax tree: (parents[i - 1][k] = parent of node k of layer i, head parent per task)."""
        choice = self._logits().argmax(-1).tolist()
        return choice[:-1], choice[-1]

    # ------------------------------------------------------------------ forward

    @torch.compiler.disable
    def _advance(self, task: int | None) -> torch.Tensor:
        """The step this training forward anneals at (a fresh tensor); then count the forward
        pass. Left out of torch.compile: a compiled graph could otherwise save the buffer for its
        backward and find it bumped in place."""
        with torch.no_grad():
            if task is None:
                step = self.steps.max()
                self.steps += 1
            else:
                step = self.steps[task].clone()
                self.steps[task] += 1
        return step

    def _soft_tree(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Every node, layer by layer, children reading their weighted parents: the last layer's
        outputs stacked [T, B, ...]."""
        h = torch.stack([column.blocks[0](x) for column in self.columns])
        for i in range(1, self.num_layers):
            mixed = torch.einsum("kj,jb...->kb...", weights[i - 1], h).contiguous()
            h = torch.stack(
                [
                    column.blocks[i](m)
                    for column, m in zip(self.columns, mixed.unbind(0), strict=True)
                ]
            )
        return h

    def _leaf(self, last: torch.Tensor, weights: torch.Tensor, task: int) -> torch.Tensor:
        mixed = torch.einsum("j,jb...->b...", weights[-1, task], last)
        return self.heads[task](mixed.flatten(1))

    def _hard_outputs(self, x: torch.Tensor, tasks: Sequence[int]) -> list[torch.Tensor]:
        """The argmax tree, computing only the nodes on the chosen tasks' paths."""
        parents, head_parents = self.branching()
        cache: dict[tuple[int, int], torch.Tensor] = {}

        def node(i: int, k: int) -> torch.Tensor:
            if (i, k) not in cache:
                inp = x if i == 0 else node(i - 1, parents[i - 1][k])
                cache[(i, k)] = self.columns[k].blocks[i](inp)
            return cache[(i, k)]

        last = self.num_layers - 1
        return [self.heads[t](node(last, head_parents[t]).flatten(1)) for t in tasks]

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Task `task`'s output: a sampled tree in training (every node), the argmax tree's path
        in evaluation."""
        if not self.training:
            return self._hard_outputs(x, [task])[0]
        weights = self.branching_weights(self._advance(task))
        return self._leaf(self._soft_tree(x, weights), weights, task)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every task's output from one tree (one sample in training, the argmax in evaluation)."""
        if not self.training:
            return self._hard_outputs(x, range(self.num_tasks))
        weights = self.branching_weights(self._advance(None))
        last = self._soft_tree(x, weights)
        return [self._leaf(last, weights, t) for t in range(self.num_tasks)]

    # ------------------------------------------------------------------ parameters

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every node (block copy) and the inner branching logits; nothing with one task."""
        if self.num_tasks < 2:
            return []
        return [*self.columns.parameters(), *self.branch_logits]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weight (+bias) of the last Linear/Conv2d of every last-layer node."""
        if self.num_tasks < 2:
            return []
        return [p for column in self.columns for p in layer_parameters(column.blocks[-1])]
