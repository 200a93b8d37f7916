"""MoDo and SDMGrad: double sampling (three independent batches per step) through the trainer,
and their weight updates by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from mtl_cli.config import compose, validate
from mtl_cli.errors import UserError
from mtl_cli.loss.base import TaskSetup
from mtl_cli.loss.modo import MoDo
from mtl_cli.loss.sdmgrad import SDMGrad, sdmgrad_weights
from mtl_cli.loss.simplex import project_to_simplex
from mtl_cli.run import train
from tests.conftest import tiny


def _build(method, num_tasks=2):
    return method.setup(TaskSetup.count(num_tasks)).double()


def test_modo_weight_step_by_hand():
    # G(z1) = [[1, 0], [0, 2]], G(z2) = [[1, 1], [0, 1]], G(z3) = [[2, 0], [0, 1]]
    # M = G1 G2^T = [[1, 0], [2, 2]]; lambda0 = (.5, .5); M lambda0 = (.5, 2)
    # gamma = .1, rho = 0: lambda0 - .1 (.5, 2) = (.45, .3) -> simplex: (.575, .425)
    # d = G3^T lambda1 = (1.15, .425)
    method = _build(MoDo(gamma=0.1, rho=0.0))
    g1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    g2 = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    g3 = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    method.sample_gradients = [g1, g2]
    d, w = method._aggregate(g3, torch.ones(2), torch.arange(2))
    np.testing.assert_allclose(w.numpy(), [0.575, 0.425])
    np.testing.assert_allclose(d.numpy(), [1.15, 0.425])
    np.testing.assert_allclose(method.weights_.numpy(), [0.575, 0.425])  # kept for the next step
    # rho pulls towards the centre: (.45, .3) - .1 * .5 * (.5, .5) = (.425, .275) -> (.575, .425)
    method = _build(MoDo(gamma=0.1, rho=0.5))
    method.sample_gradients = [g1, g2]
    _, w = method._aggregate(g3, torch.ones(2), torch.arange(2))
    np.testing.assert_allclose(w.numpy(), project_to_simplex(np.array([0.425, 0.275])))


def test_sdmgrad_weights_by_hand_and_its_limits():
    # one iteration, lamda = 0, momentum 0: M = cross / (mean norm)^2; cross = diag(1, 4):
    # norms (1, 2), scale 2.25 -> M = diag(.444, 1.778); w0 = (.5, .5): grad = (.222, .889)
    # w0 - 1 * grad = (.278, -.389) -> simplex (.833, .167)
    options = SDMGrad(lamda=0.0, niter=1, w_lr=1.0, w_momentum=0.0)
    w = sdmgrad_weights(np.diag([1.0, 4.0]), np.array([0.5, 0.5]), options)
    np.testing.assert_allclose(
        w, project_to_simplex(np.array([0.5 - 1 / 4.5, 0.5 - 4 / 4.5])), atol=1e-6
    )
    # many iterations with lamda = 0 find the min-norm (MGDA) weights of a 2-task problem
    options = SDMGrad(lamda=0.0, niter=2000, w_lr=0.05, w_momentum=0.5)
    G = np.array([[2.0, 0.0], [0.0, 1.0]])
    w = sdmgrad_weights(G @ G.T, np.array([0.5, 0.5]), options)
    np.testing.assert_allclose(w, [0.2, 0.8], atol=1e-4)  # argmin ||w G||: 4 w1 = 1 w2
    # a large lamda makes the update the mean gradient
    method = _build(SDMGrad(lamda=1e6))
    G = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    d, effective = method._aggregate(G, torch.ones(2), torch.arange(2))
    np.testing.assert_allclose(d.numpy(), G.mean(0).numpy(), atol=1e-5)
    assert float(effective.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["modo", "sdmgrad"])
def test_the_trainer_draws_three_batches_per_step_and_resumes_exactly(tmp_path, monkeypatch, name):
    from mtl_cli.families.multitask import MultiTaskFamily

    calls = []
    original = MultiTaskFamily.train_losses

    def counting(self, model, generator):
        calls.append(1)
        return original(self, model, generator)

    monkeypatch.setattr(MultiTaskFamily, "train_losses", counting)
    full = train(compose(tiny(tmp_path / "full", f"loss={name}")))
    assert len(calls) == 3 * full["step"]  # three independent batches per step
    assert np.isfinite(full["test"]["accuracy"])
    train(compose(tiny(tmp_path / "part", f"loss={name}", "trainer.steps=3")))
    resumed = train(compose(tiny(tmp_path / "part", f"loss={name}")))
    for key in ("val", "test", "best_val"):
        assert resumed[key] == full[key], key


def test_task_sampling_is_refused_with_double_sampling():
    cfg = compose(["loss=modo", "trainer.task_sampling=uniform", "paths.output_dir=."])
    with pytest.raises(UserError, match="trainer.task_sampling: loss 'modo' draws 3"):
        validate(cfg)


def test_built_from_the_registry_with_the_papers_defaults():
    modo = instantiate(compose(["loss=modo", "paths.output_dir=."]).loss)
    assert (modo.gamma, modo.rho, modo.samples_per_step) == (1e-3, 0.1, 3)
    sdm = instantiate(compose(["loss=sdmgrad", "paths.output_dir=."]).loss)
    assert (sdm.lamda, sdm.niter, sdm.w_lr, sdm.w_momentum) == (0.3, 20, 5.0, 0.5)
