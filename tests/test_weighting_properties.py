"""Properties every weighting method must have, written once and applied to every `loss=` choice
of the registry (torchjd's aggregator properties, extended to loss-based methods).

The toy problem: one shared parameter theta in R^P at 0 and losses L_i = c_i + g_i . theta, so the
task gradients are exactly the rows g_i of a chosen matrix G and the losses are the chosen c_i.
After `backward`, theta.grad is the method's update direction d.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from mtl_cli.config import compose
from mtl_cli.loss.base import TaskSetup
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.registry import schema_choices

METHODS = [c.name for c in schema_choices("loss")]
#: methods that draw random numbers each step (a `seed` option): their directions depend on the
#: order in which tasks come, so permutation equivariance holds only in distribution
RANDOM = {c.name for c in schema_choices("loss") if c.has_option("seed")}
P = 6


class LinearTasks(MultiTaskModel):
    """theta is shared by every task; no task-specific parameter."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__([1] * num_tasks)
        self.theta = torch.nn.Parameter(torch.zeros(P, dtype=torch.float64))

    def shared_parameters(self):
        return [self.theta]

    def last_shared_parameters(self):
        return [self.theta]


def direction(name: str, G: np.ndarray, c: np.ndarray, steps: int = 1) -> np.ndarray:
    """The update d of a fresh `loss=<name>` (its defaults) after `steps` identical steps."""
    cfg = compose([f"loss={name}", "paths.output_dir=."])
    method = instantiate(cfg.loss).setup(TaskSetup.count(len(c), steps_per_epoch=1))
    method = method.double()
    model = LinearTasks(len(c))
    g = torch.as_tensor(G, dtype=torch.float64)
    for _ in range(steps):
        model.theta.grad = None
        losses = torch.stack(
            [c_i + g_i @ model.theta for c_i, g_i in zip(torch.as_tensor(c), g, strict=True)]
        )
        method.backward(losses, list(range(len(c))), model)
    return model.theta.grad.detach().numpy()


def random_problem(seed: int, num_tasks: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(num_tasks, P)) * rng.uniform(0.5, 2.0, size=(num_tasks, 1))
    return G, rng.uniform(0.5, 2.0, size=num_tasks)


@pytest.mark.parametrize("name", METHODS)
def test_permutation_equivariance(name):
    """Renaming the tasks does not change the update (for methods without per-step randomness)."""
    if name in RANDOM:
        pytest.skip(f"{name} draws random numbers per step")
    for seed in range(3):
        G, c = random_problem(seed)
        perm = np.array([2, 0, 1])
        np.testing.assert_allclose(
            direction(name, G[perm], c[perm], steps=2),
            direction(name, G, c, steps=2),
            rtol=1e-6,
            atol=1e-9,
        )


@pytest.mark.parametrize("name", METHODS)
def test_equal_tasks_give_their_common_gradient_direction(name):
    """T copies of one task (same gradient, same loss): the update points along that gradient."""
    g = np.random.default_rng(5).normal(size=P)
    d = direction(name, np.tile(g, (3, 1)), np.full(3, 1.3), steps=2)
    assert np.isfinite(d).all()
    cosine = d @ g / (np.linalg.norm(d) * np.linalg.norm(g))
    assert cosine == pytest.approx(1.0, abs=1e-6), cosine


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize(
    "case",
    ["collinear", "opposite", "zero_row", "all_zero"],
)
def test_degenerate_gradients_give_a_finite_update(name, case):
    g = np.random.default_rng(7).normal(size=P)
    G = {
        "collinear": np.stack([g, 2.0 * g, 0.5 * g]),
        "opposite": np.stack([g, -g, 3.0 * g]),
        "zero_row": np.stack([g, np.zeros(P), -0.5 * g]),
        "all_zero": np.zeros((3, P)),
    }[case]
    d = direction(name, G, np.array([0.7, 1.1, 1.6]), steps=2)
    assert np.isfinite(d).all(), d
    if case == "all_zero":
        np.testing.assert_allclose(d, 0.0, atol=1e-12)


@pytest.mark.parametrize("name", METHODS)
def test_a_single_task_gets_a_positive_multiple_of_its_gradient(name):
    g = np.random.default_rng(9).normal(size=(1, P))
    d = direction(name, g, np.array([0.9]))
    assert np.isfinite(d).all()
    assert d @ g[0] > 0 and np.allclose(
        d / np.linalg.norm(d), g[0] / np.linalg.norm(g[0]), atol=1e-6
    )
