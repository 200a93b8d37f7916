"""Known answers and properties of every weighting method's math (no model involved).

Hand computations are written next to the numbers; none of them calls the code under test.
"""

import itertools
import math

import numpy as np
import pytest
import torch

from mtl_cli.loss.base import TaskSetup
from mtl_cli.loss.cagrad import CAGrad
from mtl_cli.loss.dwa import DWA
from mtl_cli.loss.equal import Equal
from mtl_cli.loss.gradnorm import GradNorm
from mtl_cli.loss.imtl import IMTL
from mtl_cli.loss.mgda import MGDA
from mtl_cli.loss.nash import NashMTL, nash_weights
from mtl_cli.loss.pcgrad import PCGrad
from mtl_cli.loss.rlw import RLW
from mtl_cli.loss.static import Static
from mtl_cli.loss.uncertainty import Uncertainty
from mtl_cli.loss.worst_case import WorstCase

D = torch.float64


def g(*rows):
    return torch.tensor(rows, dtype=D)


def agg(method, G, losses=None):
    losses = torch.ones(G.shape[0], dtype=D) if losses is None else torch.tensor(losses, dtype=D)
    return method.aggregate(G, losses)


def close(actual, expected, tol=1e-6):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=D), atol=tol, rtol=0)


def simplex_grid(num, steps):
    points = [p for p in itertools.product(range(steps + 1), repeat=num - 1) if sum(p) <= steps]
    return torch.tensor([list(p) + [steps - sum(p)] for p in points], dtype=D) / steps


# ------------------------------------------------------------------------------------- MGDA


def test_mgda_two_tasks_known_answers():
    # g1=(2,0), g2=(0,1): gamma = (g2.g2 - g1.g2)/|g1-g2|^2 = (1-0)/5 = 0.2 -> d = (0.4, 0.8)
    close(agg(MGDA().setup(TaskSetup.count(2)), g([2, 0], [0, 1])), [0.4, 0.8])
    # g1=(1,0), g2=(3,1): g1.g2 = 3 >= |g1|^2 = 1 -> the min-norm point is g1 itself
    close(agg(MGDA().setup(TaskSetup.count(2)), g([1, 0], [3, 1])), [1.0, 0.0])


def test_mgda_three_tasks_known_answer():
    # hull of (1,0), (0,1), (1,1): closest point to 0 is (0.5, 0.5) on the first edge
    close(agg(MGDA().setup(TaskSetup.count(3)), g([1, 0], [0, 1], [1, 1])), [0.5, 0.5])


def test_mgda_l2_normalization_weights_the_raw_gradients():
    # unit vectors (1,0), (0,1) -> w = (0.5, 0.5), applied to the raw g: 0.5(2,0) + 0.5(0,1)
    close(agg(MGDA(normalization="l2").setup(TaskSetup.count(2)), g([2, 0], [0, 1])), [1.0, 0.5])
    # "loss": g_i / L_i = (1,0), (0,1) again with L = (2, 1)
    close(
        agg(MGDA(normalization="loss").setup(TaskSetup.count(2)), g([2, 0], [0, 1]), [2.0, 1.0]),
        [1.0, 0.5],
    )


@pytest.mark.parametrize("seed", range(6))
def test_mgda_is_the_min_norm_point_of_the_hull(seed):
    rng = np.random.default_rng(seed)
    num = 3 + seed % 2
    G = torch.tensor(rng.normal(size=(num, 4)) * rng.uniform(0.2, 5, size=(num, 1)))
    d = agg(MGDA().setup(TaskSetup.count(num)), G)
    grid = simplex_grid(num, 40) @ G
    best = grid.norm(dim=1).min()
    assert d.norm() <= best + 1e-9
    # d is in the hull: min-norm over the hull is >= the exact solution's norm, within grid error
    assert d.norm() >= best - 0.1


# ------------------------------------------------------------------------------------ PCGrad


def test_pcgrad_two_tasks_known_answer():
    # g1=(1,0), g2=(-1,1), g1.g2=-1: g1' = g1 + g2/2 = (0.5,0.5); g2' = g2 + g1 = (0,1)
    close(agg(PCGrad().setup(TaskSetup.count(2)), g([1, 0], [-1, 1])), [0.5, 1.5])
    close(agg(PCGrad(reduction="mean").setup(TaskSetup.count(2)), g([1, 0], [-1, 1])), [0.25, 0.75])
    # no conflict: plain sum
    close(agg(PCGrad().setup(TaskSetup.count(2)), g([1, 0], [1, 1])), [2.0, 1.0])


@pytest.mark.parametrize("seed", range(20))
def test_pcgrad_two_tasks_never_conflicts(seed):
    G = torch.tensor(np.random.default_rng(seed).normal(size=(2, 5)))
    d = agg(PCGrad(seed=seed).setup(TaskSetup.count(2)), G)
    assert (G @ d >= -1e-12).all()


def test_pcgrad_three_tasks_matches_direct_projection_in_the_drawn_order():
    G = g([1, 0, 0], [-1, 1, 0], [-0.5, -1, 1])
    method = PCGrad(seed=3).setup(TaskSetup.count(3))
    generator = torch.Generator().manual_seed(3)
    order = torch.rand(3, 3, generator=generator).argsort(dim=1)
    expected = torch.zeros(3, dtype=D)
    for i in range(3):  # Yu et al. Algorithm 1, written directly on vectors
        gi = G[i].clone()
        for j in order[i].tolist():
            if j != i and gi @ G[j] < 0:
                gi = gi - (gi @ G[j]) / (G[j] @ G[j]) * G[j]
        expected += gi
    torch.testing.assert_close(agg(method, G), expected)


# ------------------------------------------------------------------------------------ CAGrad


def test_cagrad_known_answers():
    # orthogonal unit g: g0=(.5,.5), r = .4|g0|; the dual is minimised at w=(.5,.5), g_w = g0,
    # so d = g0 + r/|g0| g0 = 1.4 g0 = (.7,.7); rescale=1 divides by 1 + .4^2 = 1.16
    close(agg(CAGrad(rescale=0).setup(TaskSetup.count(2)), g([1, 0], [0, 1])), [0.7, 0.7])
    close(agg(CAGrad().setup(TaskSetup.count(2)), g([1, 0], [0, 1])), [0.7 / 1.16, 0.7 / 1.16])
    # g1=(2,0), g2=(0,1): g0=(1,.5), r=.4*sqrt(1.25)=.4472136; F(w) = .5+1.5w + r|(2w,1-w)| has
    # F'(w) = 1.5 + r(5w-1)/|g_w| > 0 on [0,1] -> w=(0,1), g_w=(0,1), d = (1, .5 + .4472136)
    close(
        agg(CAGrad(rescale=0).setup(TaskSetup.count(2)), g([2, 0], [0, 1])),
        [1.0, 0.5 + 0.4 * math.sqrt(1.25)],
    )
    # c = 0 is the mean gradient
    close(agg(CAGrad(c=0.0).setup(TaskSetup.count(2)), g([2, 0], [0, 1])), [1.0, 0.5])


@pytest.mark.parametrize("seed", range(5))
def test_cagrad_maximises_the_worst_improvement_in_the_ball(seed):
    # primal: d = argmax_{|d - g0| <= c|g0|} min_i g_i . d (rescale 0), checked by sampling
    rng = np.random.default_rng(seed)
    num = 2 + seed % 3
    G = torch.tensor(rng.normal(size=(num, 3)))
    d = agg(CAGrad(c=0.5, rescale=0).setup(TaskSetup.count(num)), G)
    g0 = G.mean(dim=0)
    radius = 0.5 * g0.norm()
    assert (d - g0).norm() <= radius + 1e-6
    directions = torch.tensor(rng.normal(size=(20000, 3)))
    lengths = torch.tensor(rng.uniform(size=(20000, 1))) ** (1 / 3)
    samples = g0 + radius * lengths * directions / directions.norm(dim=1, keepdim=True)
    assert (G @ d).min() >= (samples @ G.T).min(dim=1).values.max() - 1e-6


# -------------------------------------------------------------------------------------- IMTL


def test_imtl_known_answer():
    # g1=(1,0), g2=(0,2): u=(1,0),(0,1); D=g1-g2=(1,-2), U=u1-u2=(1,-1); D.U=3, g1.U=1
    # a2 = 1/3, a1 = 2/3 -> d = (2/3, 2/3), equal projections on u1 and u2
    close(agg(IMTL().setup(TaskSetup.count(2)), g([1, 0], [0, 2])), [2 / 3, 2 / 3])


@pytest.mark.parametrize("seed", range(5))
def test_imtl_equal_projections_on_unit_gradients(seed):
    G = torch.tensor(np.random.default_rng(seed).normal(size=(3, 5)))
    d = agg(IMTL().setup(TaskSetup.count(3)), G)
    projections = (G / G.norm(dim=1, keepdim=True)) @ d
    torch.testing.assert_close(projections, projections[:1].expand(3))


# -------------------------------------------------------------------------------------- Nash


def test_nash_known_answers():
    # orthogonal: M = diag(1, 4) -> alpha_i = 1/|g_i| = (1, .5), d = (1,0) + .5(0,2) = (1,1)
    close(agg(NashMTL(max_norm=0.0).setup(TaskSetup.count(2)), g([1, 0], [0, 2])), [1.0, 1.0])
    # max_norm=1 clips |d| = sqrt(2) to 1
    close(agg(NashMTL().setup(TaskSetup.count(2)), g([1, 0], [0, 2])), [0.5**0.5, 0.5**0.5])
    # g1=(1,0), g2=(1,1): a1(a1+a2)=1, a2(a1+2a2)=1 -> a1^2 = sqrt2/(1+sqrt2) = .5857864,
    # a1 = .7653669, a2 = (1-a1^2)/a1 = .5411961
    alpha, residual = nash_weights(np.array([[1.0, 1.0], [1.0, 2.0]]))
    np.testing.assert_allclose(alpha, [0.7653669, 0.5411961], atol=1e-6)
    assert residual <= 1e-6


@pytest.mark.parametrize("seed", range(5))
def test_nash_solves_the_bargaining_equation(seed):
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(4, 7)) * rng.uniform(0.01, 100, size=(4, 1))
    alpha, residual = nash_weights(G @ G.T)
    assert (alpha > 0).all() and residual <= 1e-6
    np.testing.assert_allclose(G @ G.T @ alpha, 1 / alpha, rtol=1e-5)


def test_nash_zero_gradient_task_gets_zero_weight():
    alpha, _ = nash_weights(np.array([[4.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(alpha, [0.5, 0.0])


def test_nash_reuses_weights_between_updates():
    method = NashMTL(update_weights_every=3, max_norm=0.0).setup(TaskSetup.count(2))
    index = torch.tensor([0, 1])
    assert method.reused_weights(index) is None  # step 0: update
    method.aggregate(g([1, 0], [0, 2]), torch.ones(2, dtype=D), index)
    close(method.reused_weights(index), [1.0, 0.5])  # steps 1, 2: stored alpha
    close(method.reused_weights(index), [1.0, 0.5])
    assert method.reused_weights(index) is None  # step 3: update again


# ---------------------------------------------------------------------- shared properties

DETERMINISTIC = [
    lambda n: MGDA().setup(TaskSetup.count(n)),
    lambda n: MGDA(normalization="l2").setup(TaskSetup.count(n)),
    lambda n: CAGrad().setup(TaskSetup.count(n)),
    lambda n: IMTL().setup(TaskSetup.count(n)),
    lambda n: NashMTL().setup(TaskSetup.count(n)),
]
ALL = [*DETERMINISTIC, lambda n: PCGrad(seed=0).setup(TaskSetup.count(n))]


@pytest.mark.parametrize("make", DETERMINISTIC)
def test_update_is_invariant_to_task_order(make):
    rng = np.random.default_rng(1)
    G = torch.tensor(rng.normal(size=(3, 6)))
    losses = torch.tensor([0.5, 1.0, 2.0], dtype=D)
    perm = torch.tensor([2, 0, 1])
    method = make(3)
    torch.testing.assert_close(
        method.aggregate(G[perm], losses[perm]), method.aggregate(G, losses), atol=1e-6, rtol=1e-5
    )


@pytest.mark.parametrize("make", ALL)
def test_identical_gradients_give_a_positive_multiple(make):
    row = torch.tensor([0.3, -1.2, 2.0], dtype=D)
    d = agg(make(3), row.expand(3, 3).clone())
    scale = (d @ row) / (row @ row)
    assert scale > 0
    torch.testing.assert_close(d, scale * row)


@pytest.mark.parametrize("make", ALL)
def test_single_task_degrades_to_its_gradient_direction(make):
    row = torch.tensor([[1.0, 2.0]], dtype=D)
    d = agg(make(1), row)
    assert d @ row[0] > 0
    torch.testing.assert_close(d / d.norm(), row[0] / row[0].norm())


# ------------------------------------------------------------------------ loss weighting


def w(method, losses, index):
    losses = torch.tensor(losses, dtype=D)
    return method.weights(losses, torch.tensor(index))


def test_equal_and_static_weights():
    close(w(Equal().setup(TaskSetup.count(3)), [1.0, 2.0, 3.0], [0, 1, 2]), [1 / 3] * 3)
    close(w(Equal(reduction="sum").setup(TaskSetup.count(3)), [1.0, 2.0], [2, 0]), [1.0, 1.0])
    static = Static(weights={"b": 2.0}).setup(TaskSetup(tuple(["a", "b", "c"])))
    close(w(static, [1.0, 1.0, 1.0], [1, 0, 2]).to(D), [2.0, 1.0, 1.0])


def test_static_rejects_unknown_names_and_negative_weights():
    with pytest.raises(ValueError, match="unknown task name"):
        Static(weights={"z": 1.0}).setup(TaskSetup(tuple(["a", "b"])))
    with pytest.raises(ValueError, match=r"loss.weights.a: -1.0 is below the minimum"):
        Static(weights={"a": -1.0}).setup(TaskSetup(tuple(["a", "b"])))


def test_worst_case_hard_and_smooth():
    close(w(WorstCase().setup(TaskSetup.count(3)), [1.0, 3.0, 2.0], [0, 1, 2]), [0.0, 1.0, 0.0])
    # softmax(1,3,2) = (e, e^3, e^2) / (e + e^3 + e^2) = (.0900306, .6652410, .2447285)
    close(
        w(WorstCase(temperature=1.0).setup(TaskSetup.count(3)), [1.0, 3.0, 2.0], [0, 1, 2]),
        [0.0900306, 0.6652410, 0.2447285],
    )


def test_rlw_draws_softmax_normal_weights_from_its_seed():
    a, b = RLW(seed=7).setup(TaskSetup.count(3)), RLW(seed=7).setup(TaskSetup.count(3))
    first = w(a, [1.0, 1.0, 1.0], [0, 1, 2])
    expected = torch.softmax(torch.randn(3, generator=torch.Generator().manual_seed(7), dtype=D), 0)
    close(first, expected.tolist())
    torch.testing.assert_close(first, w(b, [1.0, 1.0, 1.0], [0, 1, 2]))
    assert not torch.allclose(first, w(a, [1.0, 1.0, 1.0], [0, 1, 2]))


def test_uncertainty_log_variance_grows_for_the_noisier_task():
    method = Uncertainty().setup(TaskSetup.count(2))
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1)
    losses = torch.tensor([0.2, 5.0])
    for _ in range(2000):
        optimizer.zero_grad()
        method.objective(losses, torch.tensor([0, 1]))[0].backward()
        optimizer.step()
    # optimum of exp(-s) L + s: s = log L
    torch.testing.assert_close(method.log_variances.data, torch.log(losses), atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    ("variant", "factor"), [("unit", 1.0), ("regression", 1.0), ("classification", 2.0)]
)
def test_uncertainty_variant_optimum(variant, factor):
    # d/ds (a e^-s L + b s) = 0 -> s = log(a L / b): unit/regression log L, classification log 2L
    method = Uncertainty(variant=variant, init_log_variance=math.log(factor * 3.0)).setup(
        TaskSetup.count(1)
    )
    total, _ = method.objective(torch.tensor([3.0]), torch.tensor([0]))
    (grad,) = torch.autograd.grad(total, method.log_variances)
    assert abs(float(grad)) < 1e-6


def test_dwa_raises_the_weight_of_the_task_that_improved_least():
    method = DWA(temperature=2.0, period=2).setup(TaskSetup.count(2))
    index = torch.tensor([0, 1])
    # periods 0 and 1 (2 steps each) -> weights 1
    for losses in ([1.0, 1.0], [1.0, 1.0], [0.5, 0.9], [0.5, 0.9]):
        close(w(method, losses, [0, 1]), [1.0, 1.0])
    # r = (0.5/1, 0.9/1); w = 2 softmax(r/2): w0 = 2/(1 + e^(.45-.25)) = .9003320, w1 = 1.0996680
    close(method.weights(torch.tensor([0.4, 0.8], dtype=D), index), [0.9003320, 1.0996680])


def test_dwa_needs_a_period():
    with pytest.raises(ValueError, match="loss.period"):
        DWA().setup(TaskSetup.count(2))
    assert DWA().setup(TaskSetup.count(2, 5)).period == 5


def test_gradnorm_first_update_raises_the_slower_task_weight():
    method = GradNorm(alpha=1.5, lr=0.025).setup(TaskSetup.count(2))
    method.initial_losses.copy_(torch.tensor([1.0, 1.0]))
    method.initial_seen.fill_(True)
    # equal gradient norms (1, 1); task 1's loss ratio is 2 (trains slower): r = (1, 2)/1.5
    # targets mean(w n) r^1.5 = (.544, 1.540); sign(w n - target) = (+, -); Adam's first step
    # moves each weight by lr against the sign: (0.975, 1.025), which already sums to T = 2
    method._update_weights(
        torch.tensor([0, 1]), torch.tensor([1.0, 1.0], dtype=D), torch.tensor([1.0, 2.0], dtype=D)
    )
    close(method.loss_weights.to(D), [0.975, 1.025], tol=1e-6)
