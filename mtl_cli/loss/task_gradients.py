"""Per-task gradient matrix G [T, P] (one backward for all tasks) and writing a flat gradient back.

Every gradient-combination method and the conflict diagnostics use `task_gradients`, so the matrix
is computed one way, once per step. Two exact strategies exist:

- "batched": one vmapped backward of all T losses (`autograd.grad(..., is_grads_batched=True)`);
- "loop": T ordinary backwards (`autograd.grad(L_t, ..., retain_graph=True)`).

"auto" uses the loop: it was never slower in our CPU measurements (docs/weighting.md), it works for
every op, and when each task has its own batch (multi-task family) each backward only walks that
task's graph, whereas the batched backward pushes T gradient rows through every task's graph.
"batched" falls back to the loop when vmap does not support an op.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.autograd.graph import GradientEdge

STRATEGIES = ("auto", "loop", "batched")


def task_gradients(
    losses: Tensor,
    inputs: Sequence[Tensor],
    strategy: str = "auto",
    retain_graph: bool = True,
    scale: float = 1.0,
) -> Tensor:
    """Gradient of each loss w.r.t. `inputs`, flattened and concatenated: G [T, sum(numel)].

    Inputs a loss does not depend on contribute zeros. The graph is kept (`retain_graph`) so the
    caller can still backpropagate through it. `scale`: backpropagate `scale * L_t` instead (a
    gradient scaler's loss scale; the rows are then scaled too, the caller divides).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: unknown value '{strategy}'; allowed: {', '.join(STRATEGIES)}")
    if losses.dim() != 1:
        raise ValueError(
            f"losses: expected a 1-D tensor of per-task losses, got shape {tuple(losses.shape)}"
        )
    inputs = list(inputs)
    num_tasks = losses.shape[0]
    if not inputs or num_tasks == 0:
        return losses.new_zeros(num_tasks, sum(t.numel() for t in inputs))
    if strategy == "batched":
        try:
            return _batched(losses, inputs, retain_graph, scale)
        except RuntimeError as exc:  # an op without a batching rule
            warnings.warn(
                f"task_gradients: vmap over backward failed ({str(exc).splitlines()[0]}); "
                "using one backward per task",
                RuntimeWarning,
                stacklevel=2,
            )
    return _loop(losses, inputs, retain_graph, scale)


def _batched(losses: Tensor, inputs: list[Tensor], retain_graph: bool, scale: float) -> Tensor:
    eye = torch.eye(losses.shape[0], dtype=losses.dtype, device=losses.device)
    if scale != 1.0:
        eye = eye * scale
    grads = torch.autograd.grad(
        losses,
        inputs,
        grad_outputs=eye,
        is_grads_batched=True,
        retain_graph=retain_graph,
        allow_unused=True,
        materialize_grads=True,
    )
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1)


def _loop(losses: Tensor, inputs: list[Tensor], retain_graph: bool, scale: float) -> Tensor:
    num_tasks = losses.shape[0]
    outputs = _separate_outputs(losses)
    G = losses.new_empty(num_tasks, sum(x.numel() for x in inputs))  # every row is written
    for t in range(num_tasks):
        if outputs[t] is None:  # this loss does not depend on anything that requires grad
            G[t].zero_()
            continue
        grads = torch.autograd.grad(
            outputs[t],
            inputs,
            grad_outputs=torch.full((), scale, dtype=losses.dtype, device=losses.device),
            retain_graph=retain_graph or t < num_tasks - 1,
            allow_unused=True,
            materialize_grads=True,
        )
        torch.cat([g.reshape(-1) for g in grads], out=G[t])  # straight into the row: one copy
    return G


def _separate_outputs(losses: Tensor) -> list[Tensor | GradientEdge | None]:
    """One differentiable output per task, skipping the `torch.stack` that built `losses`.

    Differentiating `losses[t]` would push zero gradients through every other task's graph (the
    stack's backward fills all its inputs); the stack's input edges reach only task t's graph.
    """
    node = losses.grad_fn
    if node is not None and type(node).__name__ == "StackBackward0":
        edges = node.next_functions
        if len(edges) == losses.shape[0]:
            return [GradientEdge(fn, nr) if fn is not None else None for fn, nr in edges]
    if not losses.requires_grad:
        return [None] * losses.shape[0]
    return list(losses.unbind())


def flat_gradient(output: Tensor, inputs: Sequence[Tensor], retain_graph: bool = True) -> Tensor:
    """Gradient of a scalar `output` w.r.t. `inputs` as one flat vector (zeros where unused)."""
    grads = torch.autograd.grad(
        output, list(inputs), retain_graph=retain_graph, allow_unused=True, materialize_grads=True
    )
    return torch.cat([g.reshape(-1) for g in grads])


def accumulate_flat_gradient(params: Sequence[Tensor], flat: Tensor) -> None:
    """Add the flat vector `flat` (laid out like a `task_gradients` row) into the `.grad`s."""
    params = list(params)
    pieces = flat.split([p.numel() for p in params])
    for p, piece in zip(params, pieces, strict=True):
        piece = piece.view_as(p).to(p.dtype)
        if p.grad is None:
            p.grad = piece.clone()
        else:
            p.grad.add_(piece)
