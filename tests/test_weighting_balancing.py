"""Known answers of the balancing methods FAMO, FairGrad, DB-MTL, STCH and GLS.

Hand computations are written next to the numbers; the expected values are computed from the
formulas in the comments, never by the code under test.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from mtl_cli.loss.base import TaskSetup
from mtl_cli.loss.db_mtl import DBMTL
from mtl_cli.loss.fairgrad import FairGrad, fairgrad_weights
from mtl_cli.loss.famo import FAMO
from mtl_cli.loss.gls import GLS
from mtl_cli.loss.nash import nash_weights
from mtl_cli.loss.stch import STCH
from tests.test_weighting_backward import Tiny, _batches, _flat, _losses

D = torch.float64
NAMES = ["famo", "fairgrad", "db_mtl", "stch", "gls"]


def t(*values):
    return torch.tensor(values, dtype=D)


def g(*rows):
    return torch.tensor(rows, dtype=D)


def idx(*values):
    return torch.tensor(values, dtype=torch.long)


def random_gram(rng: np.random.Generator, num: int, dim: int = 6) -> np.ndarray:
    G = rng.normal(size=(num, dim)) * rng.uniform(0.2, 5.0, size=(num, 1))
    return G @ G.T


# ------------------------------------------------------------------------------------- FAMO


def test_famo_first_logit_update_by_hand():
    famo = FAMO().setup(TaskSetup.count(2))
    # step 1: no previous losses, logits 0: z = (1/2, 1/2), D = L + eps = (1, 1) -> c = 1, w = z
    w1 = famo.weights(t(1.0, 1.0), idx(0, 1))
    torch.testing.assert_close(w1, t(0.5, 0.5))
    # step 2, L = (0.5, 0.8): delta_i = log D_i(1) - log D_i(2) = (log 2, log 1.25)
    delta = np.log([(1 + 1e-8) / (0.5 + 1e-8), (1 + 1e-8) / (0.8 + 1e-8)])
    # softmax VJP at z = (1/2, 1/2): g_i = z_i (delta_i - z.delta) = +-(delta_1 - delta_2) / 4
    g = 0.25 * (delta[0] - delta[1])  # = 0.1175; gamma * xi = 0 at xi = 0
    # first Adam step: m_hat = g, v_hat = g^2 -> xi = -lr g / (|g| + 1e-8) = (-0.025, +0.025)
    step = 0.025 * g / (abs(g) + 1e-8)
    w2 = famo.weights(t(0.5, 0.8), idx(0, 1))
    torch.testing.assert_close(famo.logits, t(-step, step), atol=1e-12, rtol=0)
    # z = (sigmoid(-0.05), sigmoid(0.05)), w_i = c z_i / D_i with c = 1 / sum_j z_j / D_j
    z = np.array([1 / (1 + math.exp(2 * step)), 1 / (1 + math.exp(-2 * step))])
    gap = np.array([0.5 + 1e-8, 0.8 + 1e-8])
    expected = (z / gap) / (z / gap).sum()  # = (0.60348, 0.39652)
    torch.testing.assert_close(w2, torch.tensor(expected, dtype=D), atol=1e-12, rtol=0)
    assert w2[0] > 0.6 > w2[1]  # task 0 fell faster (log 2 > log 1.25): its logit went down


def test_famo_weights_sum_to_one_and_follow_the_min_losses():
    rng = np.random.default_rng(0)
    famo = FAMO().setup(TaskSetup.count(4))
    for _ in range(20):
        w = famo.weights(torch.tensor(rng.uniform(0.1, 3.0, size=4)), idx(0, 1, 2, 3))
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-12) and bool((w > 0).all())
    # min_losses b = (0.5, 0): D = (0.5, 1) -> c = 1 / (0.5/0.5 + 0.5/1) = 2/3, w = (2/3, 1/3)
    famo = FAMO(min_losses={"task0": 0.5}).setup(TaskSetup.count(2))
    torch.testing.assert_close(famo.weights(t(1.0, 1.0), idx(0, 1)), t(2 / 3, 1 / 3))
    with pytest.raises(ValueError, match="unknown task name"):
        FAMO(min_losses={"nope": 1.0}).setup(TaskSetup.count(2))


def test_famo_equal_log_loss_decreases_keep_the_weights_equal():
    # each loss halves every step: delta = (log 2, log 2), so J^T delta = z (delta - z.delta) = 0
    # and the logits stay at 0. In floating point J^T delta is ~1e-16, which Adam's step
    # lr m_hat / (sqrt(v_hat) + 1e-8) turns into ~1e-10. gamma = 0 here: with the L2 decay inside
    # Adam (the paper's and the official code's choice) a logit x that round-off moved off 0 gets
    # the gradient gamma x, which Adam rescales by lr / 1e-8 = 2.5e6 while |gamma x| << 1e-8, so
    # the fixed point is numerically unstable: after 30 such steps the default gamma = 1e-3 has
    # moved the logits to ~2e-3 (weights still equal to 1e-4). eps is negligible next to these
    # powers of two; eps = 1e-8 would make the two deltas differ by ~1e-8, a real difference.
    famo = FAMO(gamma=0.0, eps=1e-300).setup(TaskSetup.count(2))
    for k in range(30):
        w = famo.weights(t(2.0 * 0.5**k, 1.0 * 0.5**k), idx(0, 1))
        torch.testing.assert_close(famo.logits, torch.zeros(2, dtype=D), atol=1e-8, rtol=0)
        # z = (1/2, 1/2): w_i proportional to 1 / L_i = (1/3, 2/3)
        torch.testing.assert_close(w, t(1 / 3, 2 / 3), atol=1e-8, rtol=0)
    torch.testing.assert_close(famo.task_weights, t(0.5, 0.5), atol=1e-8, rtol=0)


def _reference_famo(loss_rows: list[np.ndarray], lr=0.025, gamma=1e-3, eps=1e-8):
    """The official recurrence with torch.optim.Adam: logits after each step, weights used."""
    xi = torch.zeros(len(loss_rows[0]), dtype=D, requires_grad=True)
    optimizer = torch.optim.Adam([xi], lr=lr, weight_decay=gamma)
    previous, weights = None, []
    for row in loss_rows:
        gap = torch.tensor(row, dtype=D) + eps
        if previous is not None:
            delta = previous.log() - gap.log()
            (grad,) = torch.autograd.grad(torch.softmax(xi, -1), xi, grad_outputs=delta)
            optimizer.zero_grad()
            xi.grad = grad
            optimizer.step()
        z = torch.softmax(xi, -1).detach()
        weights.append((z / gap) / (z / gap).sum())
        previous = gap
    return xi.detach(), weights


def test_famo_with_every_task_is_the_official_adam_recurrence():
    rng = np.random.default_rng(1)
    rows = [rng.uniform(0.2, 2.0, size=3) for _ in range(12)]
    expected_xi, expected_w = _reference_famo(rows)
    famo = FAMO().setup(TaskSetup.count(3))
    for row, expected in zip(rows, expected_w, strict=True):
        torch.testing.assert_close(famo.weights(torch.tensor(row), idx(0, 1, 2)), expected)
    torch.testing.assert_close(famo.logits, expected_xi, atol=1e-12, rtol=1e-10)


def test_famo_task_subset_is_the_famo_update_of_the_sub_problem():
    rng = np.random.default_rng(2)
    rows = [rng.uniform(0.2, 2.0, size=3) for _ in range(8)]
    famo = FAMO().setup(TaskSetup.count(3))
    famo.weights(torch.tensor(rows[0]), idx(0, 1, 2))  # task 1 is then absent for good
    # from step 1 on only tasks 0 and 2: FAMO on the 2-task problem whose first losses are
    # step 0's losses of tasks 0 and 2 (the first update compares step 0 with step 1)
    sub = [row[[0, 2]] for row in rows]
    expected_xi, expected_w = _reference_famo(sub)
    for row, expected in zip(sub[1:], expected_w[1:], strict=True):
        torch.testing.assert_close(famo.weights(torch.tensor(row), idx(0, 2)), expected)
    torch.testing.assert_close(famo.logits[[0, 2]], expected_xi, atol=1e-12, rtol=1e-10)
    # task 1's logit and Adam state never moved: it took part in no two consecutive steps
    assert famo.logits[1] == 0 and famo.adam_steps.tolist() == [len(rows) - 1, 0, len(rows) - 1]


# --------------------------------------------------------------------------------- FairGrad


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("seed", range(5))
def test_fairgrad_solves_its_equation(alpha, seed):
    rng = np.random.default_rng(seed)
    gram = random_gram(rng, 2 + seed % 4)
    w, residual = fairgrad_weights(gram, alpha)
    assert residual <= 1e-6 and bool((w > 0).all())
    # (G G^T) w = w^(-1/alpha), relative to the size of each side
    np.testing.assert_allclose(gram @ w, w ** (-1.0 / alpha), rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 10.0])
def test_fairgrad_solves_near_collinear_and_rank_deficient_problems(alpha):
    rng = np.random.default_rng(7)
    G = rng.normal(size=(3, 5))
    G[1] = 2 * G[0] + 1e-6 * rng.normal(size=5)  # g2 ~ 2 g1
    wide = rng.normal(size=(6, 2)) * rng.uniform(0.1, 10, size=(6, 1))  # 6 tasks in 2-D
    for gram in (G @ G.T, wide @ wide.T):
        w, residual = fairgrad_weights(gram, alpha)
        assert residual <= 1e-6 and bool((w > 0).all())


@pytest.mark.parametrize("seed", range(8))
def test_fairgrad_alpha_one_is_nash_mtl(seed):
    # alpha = 1: (G G^T) w = 1 / w, the Nash bargaining equation of Nash-MTL
    gram = random_gram(np.random.default_rng(seed), 2 + seed % 5)
    np.testing.assert_allclose(fairgrad_weights(gram, 1.0)[0], nash_weights(gram)[0], rtol=1e-6)


def test_fairgrad_orthogonal_gradients_closed_form():
    # g1 = (2, 0), g2 = (0, 1): G G^T = diag(4, 1), so w_i ||g_i||^2 = w_i^(-1/alpha), i.e.
    # w_i = ||g_i||^(-2 alpha / (alpha + 1)); alpha = 2: w = (2^(-4/3), 1) = (0.39685, 1)
    method = FairGrad(alpha=2.0).setup(TaskSetup.count(2))
    d = method.aggregate(g([2.0, 0.0], [0.0, 1.0]), t(1.0, 1.0))
    torch.testing.assert_close(d, t(2 * 2 ** (-4 / 3), 1.0), atol=1e-7, rtol=0)  # 1e-8 ridge
    assert method.solver_diagnostics()["fairgrad/residual"] <= 1e-12  # the start is exact


def test_fairgrad_large_alpha_equalises_the_loss_decrease_rates():
    # alpha -> inf (max-min fairness): w^(-1/alpha) -> 1, so G G^T w = 1, i.e. g_i . d = 1 for all
    # i. g1 = (1, 0), g2 = (0.2, 1): G G^T = [[1, .2], [.2, 1.04]], w = (G G^T)^-1 1 = (0.84, 0.8)
    gram = np.array([[1.0, 0.2], [0.2, 1.04]])
    w, _ = fairgrad_weights(gram, alpha=1000.0)
    np.testing.assert_allclose(w, [0.84, 0.8], rtol=1e-3)
    np.testing.assert_allclose(gram @ w, [1.0, 1.0], rtol=1e-3)  # w^(-1/1000) = 1.0002


def test_fairgrad_zero_gradient_task_gets_zero_weight():
    gram = np.diag([4.0, 0.0, 1.0])
    w, _ = fairgrad_weights(gram, 1.0)
    np.testing.assert_allclose(w, [0.5, 0.0, 1.0], rtol=1e-7)


# ----------------------------------------------------------------------------------- DB-MTL


def test_db_mtl_two_steps_by_hand():
    method = DBMTL(beta=0.9, beta_sigma=0.5).setup(TaskSetup.count(2))
    # step 1: g/L = (3, 0)/1 and (0, 2)/2 = (0, 1); beta_1 = 0.9 / 1^0.5 = 0.9, h starts at 0:
    # h = 0.1 (3, 0), 0.1 (0, 1) = (0.3, 0), (0, 0.1); norms 0.3, 0.1 -> scales (1, 3)
    d, scales = method._aggregate(g([3.0, 0.0], [0.0, 2.0]), t(1.0, 2.0))
    torch.testing.assert_close(d, t(0.3, 0.3), atol=1e-7, rtol=0)
    torch.testing.assert_close(scales, t(1.0, 3.0), atol=1e-6, rtol=0)
    # step 2: g/L = (1, 1)/1, (0, 4)/2 = (0, 2); beta_2 = 0.9 / sqrt(2)
    b = 0.9 / math.sqrt(2)
    h1 = b * np.array([0.3, 0.0]) + (1 - b) * np.array([1.0, 1.0])  # (0.554523, 0.363604)
    h2 = b * np.array([0.0, 0.1]) + (1 - b) * np.array([0.0, 2.0])  # (0, 0.790848)
    top = max(np.linalg.norm(h1), np.linalg.norm(h2))  # ||h2|| = 0.790848 > ||h1|| = 0.663102
    expected = top / np.linalg.norm(h1) * h1 + h2
    d, _ = method._aggregate(g([1.0, 1.0], [0.0, 4.0]), t(1.0, 2.0))
    torch.testing.assert_close(d, torch.tensor(expected, dtype=D), atol=1e-7, rtol=0)
    assert method.updates.tolist() == [2, 2]


@pytest.mark.parametrize("seed", range(4))
def test_db_mtl_rescales_every_task_to_the_largest_norm(seed):
    rng = np.random.default_rng(seed)
    method = DBMTL().setup(TaskSetup.count(4))
    for _ in range(3):
        G = torch.tensor(rng.normal(size=(4, 5)) * rng.uniform(0.1, 10, size=(4, 1)))
        losses = torch.tensor(rng.uniform(0.1, 3.0, size=4))
        _, scales = method._aggregate(G, losses, idx(0, 1, 2, 3))
    rescaled = (scales.reshape(-1, 1) * method.average).norm(dim=1)
    # every averaged task gradient, rescaled, has the largest averaged norm
    torch.testing.assert_close(
        rescaled, method.average.norm(dim=1).max().expand(4), rtol=1e-7, atol=0
    )
    assert float(scales.min()) == pytest.approx(1.0, abs=1e-6)


def test_db_mtl_is_invariant_to_scaling_a_task_loss():
    # log(c L) = log c + log L: the gradient g/L of task 0 is unchanged by L -> cL, g -> cg
    rng = np.random.default_rng(5)
    plain, scaled = DBMTL().setup(TaskSetup.count(3)), DBMTL().setup(TaskSetup.count(3))
    c = torch.tensor([1000.0, 1.0, 0.1], dtype=D)  # eps / (c L) <= 2e-7
    for _ in range(3):
        G = torch.tensor(rng.normal(size=(3, 4)))
        losses = torch.tensor(rng.uniform(0.5, 2.0, size=3))
        d, _ = plain._aggregate(G, losses)
        d_scaled, _ = scaled._aggregate(G * c.reshape(-1, 1), losses * c)
        torch.testing.assert_close(d_scaled, d, rtol=1e-6, atol=1e-9)


def test_db_mtl_task_subsets_count_each_task_and_rep_grad_does_not_average():
    method = DBMTL(beta_sigma=1.0).setup(TaskSetup.count(3))
    G = torch.eye(3, dtype=D)[:2]
    method._aggregate(G, t(1.0, 1.0), idx(0, 2))
    method._aggregate(G, t(1.0, 1.0), idx(0, 1))
    assert method.updates.tolist() == [2, 1, 1]
    # task 0: beta_1 = 0.9 -> 0.1 e1; beta_2 = 0.45 -> 0.45 * 0.1 e1 + 0.55 e1 = 0.595 e1
    torch.testing.assert_close(method.average[0], t(0.595, 0.0, 0.0))
    torch.testing.assert_close(method.average[1], t(0.0, 0.1, 0.0))  # its first update
    rep = DBMTL(rep_grad=True).setup(TaskSetup.count(2))
    G = g([3.0, 0.0], [0.0, 1.0])
    for _ in range(2):  # no average: this step's g/L only, rescaled: (3, 0) + 3 (0, 1)
        d, _ = rep._aggregate(G, t(1.0, 1.0))
        torch.testing.assert_close(d, t(3.0, 3.0), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------- STCH


def test_stch_warm_up_then_the_nadir_normalised_softmax_by_hand():
    method = STCH(warmup_epochs=0, period=2).setup(TaskSetup.count(2))
    # epoch 0 (steps 0, 1) is the recording epoch: sum_i log L_i, weights 1 / L_i
    torch.testing.assert_close(method.weights(t(3.0, 1.0), idx(0, 1)), t(1 / 3, 1.0))
    method.weights(t(1.0, 1.0), idx(0, 1))
    # nadir = mean of the recorded losses = (2, 1); step 2, L = (1, 1): log(L / n) = (log 0.5, 0)
    # s = softmax(log 0.5, 0) = (0.5, 1) / 1.5 = (1/3, 2/3); w_i = T s_i / L_i = (2/3, 4/3)
    w = method.weights(t(1.0, 1.0), idx(0, 1))
    torch.testing.assert_close(w, t(2 / 3, 4 / 3))
    torch.testing.assert_close(method.nadir, t(2.0, 1.0))


def _after_warm_up(method: STCH, nadir: torch.Tensor) -> STCH:
    """Run the one recording step of `warmup_epochs=0, period=1` with the losses `nadir`."""
    method.weights(nadir, torch.arange(len(nadir)))
    return method


def test_stch_small_mu_gives_the_tchebycheff_weights_and_preference_moves_them():
    # nadir (1, 1), L = (2, 1.5): f = log(L / n) = (log 2, log 1.5) = (0.693, 0.405)
    losses, nadir = t(2.0, 1.5), t(1.0, 1.0)
    sharp = _after_warm_up(
        STCH(mu=1e-3, warmup_epochs=0, period=1).setup(TaskSetup.count(2)), nadir
    )
    s = sharp.weights(losses, idx(0, 1)) * losses / 2  # T s_i / L_i -> s
    torch.testing.assert_close(s, t(1.0, 0.0), atol=1e-12, rtol=0)  # argmax_i lambda_i f_i = 0
    # preference lambda = (1, 2): lambda f = (0.693, 0.811): the max moves to task 1
    pref = STCH(mu=1e-3, warmup_epochs=0, period=1, preference={"task1": 2.0})
    pref = _after_warm_up(pref.setup(TaskSetup.count(2)), nadir)
    s = pref.weights(losses, idx(0, 1)) * losses / (2 * t(1.0, 2.0))  # T lambda_i s_i / L_i -> s
    torch.testing.assert_close(s, t(0.0, 1.0), atol=1e-12, rtol=0)
    # mu = 1 (default): s = softmax(f) = (2, 1.5) / 3.5, a proper softmax summing to 1
    soft = _after_warm_up(STCH(warmup_epochs=0, period=1).setup(TaskSetup.count(2)), nadir)
    s = soft.weights(losses, idx(0, 1)) * losses / 2
    torch.testing.assert_close(s, t(2 / 3.5, 1.5 / 3.5))


def test_stch_backward_is_the_gradient_of_the_official_objective():
    model, batches, tasks = Tiny(), _batches(), [0, 1, 2]
    method = STCH(mu=0.5, warmup_epochs=0, period=1).setup(TaskSetup.count(3))
    nadir = t(0.7, 1.3, 0.4)
    _after_warm_up(method, nadir)
    losses, _ = _losses(model, batches, tasks, False)
    # T mu log sum_i exp(log(L_i / n_i + 1e-20) / mu) (Xi-L/STCH, STCH_MTL/LibMTL/weighting)
    log_ratio = torch.log(losses / nadir.to(losses.dtype) + 1e-20)
    official = 3 * 0.5 * torch.logsumexp(log_ratio / 0.5, dim=0)
    expected = torch.autograd.grad(official, list(model.parameters()))
    losses, _ = _losses(model, batches, tasks, False)
    method.backward(losses, tasks, model)
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e)


def test_stch_needs_a_period_and_known_preference_names():
    with pytest.raises(ValueError, match="loss.period: null needs"):
        STCH().setup(TaskSetup.count(2))
    with pytest.raises(ValueError, match="unknown task name"):
        STCH(period=1, preference={"nope": 1.0}).setup(TaskSetup.count(2))
    with pytest.raises(ValueError, match="must be greater than 0"):
        STCH(preference={"task0": 0.0})


# -------------------------------------------------------------------------------------- GLS


def test_gls_weights_by_hand():
    gls = GLS().setup(TaskSetup.count(3))
    # T = 2, L = (1, 4): GM = sqrt(4) = 2, w_i = GM / (T L_i) = (1, 0.25)
    _, w = gls.objective(t(1.0, 4.0), idx(0, 1))
    torch.testing.assert_close(w, t(1.0, 0.25))
    # T = 3, L = (1, 2, 4): GM = 8^(1/3) = 2, w = 2 / (3 L) = (2/3, 1/3, 1/6); value = GM
    total, w = gls.objective(t(1.0, 2.0, 4.0), idx(0, 1, 2))
    torch.testing.assert_close(w, t(2 / 3, 1 / 3, 1 / 6))
    torch.testing.assert_close(total, t(2.0)[0])


def test_gls_backward_is_the_geometric_mean_gradient_and_ignores_loss_units():
    model, batches, tasks = Tiny(), _batches(), [0, 1, 2]
    losses, _ = _losses(model, batches, tasks, False)
    expected = torch.autograd.grad(losses.prod() ** (1 / 3), list(model.parameters()))
    model.zero_grad()
    losses, _ = _losses(model, batches, tasks, False)
    GLS().setup(TaskSetup.count(3)).backward(losses, tasks, model)
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e)
    plain = _flat(p.grad for p in model.parameters())
    # task 1's loss in other units (x 1000): the update is scaled by 1000^(1/3) = 10, same direction
    model.zero_grad()
    losses, _ = _losses(model, batches, tasks, False)
    GLS().setup(TaskSetup.count(3)).backward(losses * t(1.0, 1000.0, 1.0).float(), tasks, model)
    torch.testing.assert_close(_flat(p.grad for p in model.parameters()), 10 * plain)


# --------------------------------------------------------------------- through the registry


def _registry_method(name: str):
    from hydra.utils import instantiate

    from mtl_cli.config import compose

    cfg = compose([f"loss={name}", "paths.output_dir=."])
    return instantiate(cfg.loss).setup(TaskSetup.count(3, steps_per_epoch=2))


@pytest.mark.parametrize("name", NAMES)
def test_registry_method_backward_leaves_finite_grads(name):
    method, model = _registry_method(name), Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(4):  # FAMO's logits and DB-MTL's averages move from the second step on
        tasks = [0, 1, 2] if step % 2 == 0 else [2, 0]
        optimizer.zero_grad()
        losses, _ = _losses(model, _batches(seed=step), tasks, False)
        diagnostics = method.backward(losses, tasks, model)
        assert {f"weight/{t}" for t in tasks} <= set(diagnostics)
        assert all(math.isfinite(v) for v in diagnostics.values())
        for p in [*model.trunk.parameters(), *model.heads[tasks[0]].parameters()]:
            assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        optimizer.step()


@pytest.mark.parametrize("name", ["famo", "db_mtl", "stch"])
def test_state_round_trip_with_every_task_each_step(name):
    """The registry's exact-resume test samples 2 of 3 tasks; here every step has all tasks, so
    FAMO's logits, DB-MTL's averages and STCH's nadir (period 1) all move before the checkpoint."""

    def make():
        method = _registry_method(name)
        if name == "stch":
            method.period, method.warmup_epochs = 1, 0
        return method

    def run(method, model, start):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        out = []
        for step in range(start, start + 3):
            optimizer.zero_grad()
            losses, _ = _losses(model, _batches(seed=step), [0, 1, 2], False)
            out.append(method.backward(losses, [0, 1, 2], model))
            optimizer.step()
        return out

    method, model = make(), Tiny()
    run(method, model, 0)
    buffer = io.BytesIO()
    torch.save({"method": method.state_dict(), "model": model.state_dict()}, buffer)
    expected = run(method, model, 3)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed, resumed_model = make(), Tiny()
    resumed.load_state_dict(state["method"])
    resumed_model.load_state_dict(state["model"])
    assert run(resumed, resumed_model, 3) == expected
    if name == "famo":
        assert not torch.equal(resumed.logits, torch.zeros(3, dtype=D))
