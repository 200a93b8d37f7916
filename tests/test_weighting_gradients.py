"""Per-task gradient matrix, writing gradients back, and the conflict diagnostics."""

import math

import pytest
import torch
from torch import nn

from mtl_cli.loss.diagnostics import gradient_conflict_stats
from mtl_cli.loss.task_gradients import (
    accumulate_flat_gradient,
    flat_gradient,
    task_gradients,
)


def _net():
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    heads = nn.ModuleList([nn.Linear(3, 1) for _ in range(3)])
    return trunk, heads


def _manual_rows(loss_fns, params):
    rows = []
    for fn in loss_fns:
        grads = torch.autograd.grad(fn(), params, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    torch.zeros(p.numel()) if g is None else g.reshape(-1)
                    for g, p in zip(grads, params, strict=True)
                ]
            )
        )
    return torch.stack(rows)


@pytest.mark.parametrize("strategy", ["auto", "loop", "batched"])
@pytest.mark.parametrize("shared_batch", [True, False])
def test_task_gradients_match_one_backward_per_task(strategy, shared_batch):
    trunk, heads = _net()
    params = list(trunk.parameters())
    xs = [torch.randn(6, 4) for _ in range(3)]

    def loss(t):
        x = xs[0] if shared_batch else xs[t]
        return heads[t](trunk(x)).pow(2).mean() * (t + 1)

    expected = _manual_rows([lambda t=t: loss(t) for t in range(3)], params)
    losses = torch.stack([loss(t) for t in range(3)])
    G = task_gradients(losses, params, strategy=strategy)
    assert G.shape == (3, sum(p.numel() for p in params))
    torch.testing.assert_close(G, expected)


def test_task_gradients_unused_input_gives_zero_columns_and_keeps_graph():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([3.0], requires_grad=True)
    losses = torch.stack([(a**2).sum(), (3 * a).sum()])  # b is used by no loss
    G = task_gradients(losses, [a, b])
    # d/da sum a^2 = 2a = (2, 4); d/da 3 sum a = (3, 3); b column zero
    torch.testing.assert_close(G, torch.tensor([[2.0, 4.0, 0.0], [3.0, 3.0, 0.0]]))
    losses.sum().backward()  # graph retained by default
    torch.testing.assert_close(a.grad, torch.tensor([5.0, 7.0]))


def test_task_gradients_losses_not_built_by_stack():
    a = torch.tensor([1.0, -1.0], requires_grad=True)
    losses = torch.cat([(a * torch.tensor([1.0, 2.0])).sum().view(1), (a**2).sum().view(1)])
    G = task_gradients(losses, [a])
    torch.testing.assert_close(G, torch.tensor([[1.0, 2.0], [2.0, -2.0]]))


def test_task_gradients_loss_without_graph_gives_zero_row():
    a = torch.tensor([2.0], requires_grad=True)
    losses = torch.stack([(a * 3).sum(), torch.tensor(5.0)])
    torch.testing.assert_close(task_gradients(losses, [a]), torch.tensor([[3.0], [0.0]]))


def test_task_gradients_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="strategy: unknown value 'vmap'"):
        task_gradients(torch.zeros(2), [], strategy="vmap")


def test_flat_gradient_and_accumulate_round_trip():
    w = nn.Parameter(torch.ones(2, 2))
    b = nn.Parameter(torch.zeros(3))
    out = (w * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum() + (b * 2).sum()
    flat = flat_gradient(out, [w, b])
    torch.testing.assert_close(flat, torch.tensor([1.0, 2.0, 3.0, 4.0, 2.0, 2.0, 2.0]))
    b.grad = torch.ones(3)
    accumulate_flat_gradient([w, b], flat)
    torch.testing.assert_close(w.grad, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    torch.testing.assert_close(b.grad, torch.full((3,), 3.0))  # added to the existing grad


def test_conflict_stats_known_answer():
    # rows (1,0), (0,2), (-3,0): cos(0,1)=0, cos(0,2)=-1, cos(1,2)=0
    G = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    stats = gradient_conflict_stats(G, tasks=[4, 1, 2])
    assert stats["cos/4-1"] == pytest.approx(0.0)
    assert stats["cos/4-2"] == pytest.approx(-1.0)
    assert stats["cos/1-2"] == pytest.approx(0.0)
    assert stats["grad_cos/mean"] == pytest.approx(-1.0 / 3.0)
    assert stats["grad_cos/min"] == pytest.approx(-1.0)
    assert stats["grad_conflict_fraction"] == pytest.approx(1.0 / 3.0)
    assert stats["grad_norm_ratio"] == pytest.approx(3.0)
    assert stats["grad_norm/2"] == pytest.approx(3.0)


def test_conflict_stats_zero_row():
    stats = gradient_conflict_stats(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    assert stats["cos/0-1"] == 0.0
    assert math.isinf(stats["grad_norm_ratio"])
