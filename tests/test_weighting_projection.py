"""Known answers and proven properties of the dual-cone and alignment methods: UPGrad and DualProj
(Quinton & Rey 2024), Aligned-MTL (Senushkin et al. 2023), ConFIG (Liu, Chu & Thuerey 2024).

Hand computations are written next to the numbers; none of them calls the code under test. The
reference values marked "TorchJD" are the outputs printed in TorchJD's documentation (the authors'
library of UPGrad and DualProj) for J = [[-4, 1, 1], [6, 1, 1]].
"""

import itertools
import math

import numpy as np
import pytest
import torch

from mtl_cli.loss.aligned_mtl import AlignedMTL, balance_transformation
from mtl_cli.loss.base import TaskSetup
from mtl_cli.loss.config_grad import ConFIG
from mtl_cli.loss.dual_cone import project_weights
from mtl_cli.loss.dualproj import DualProj
from mtl_cli.loss.upgrad import UPGrad

D = torch.float64
TORCHJD_J = [[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]


def g(*rows):
    return torch.tensor(rows, dtype=D)


def agg(method, G, index=None):
    return method.aggregate(G, torch.ones(G.shape[0], dtype=D), index)


def close(actual, expected, tol=1e-9):
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=D), atol=tol, rtol=0)


def exact(cls, num, **options):
    """UPGrad/DualProj without TorchJD's normalisation threshold and ridge: the exact projection."""
    return cls(norm_eps=0.0, reg_eps=0.0, **options).setup(TaskSetup.count(num))


def conflicting(seed, num=None, dim=None):
    """Random G [T, P] with at least one conflicting pair and very different norms."""
    rng = np.random.default_rng(seed)
    num = num or 2 + seed % 4
    dim = dim or 2 + seed % 5
    while True:
        G = rng.normal(size=(num, dim)) * rng.uniform(0.05, 20, size=(num, 1))
        if (G @ G.T < 0).any():
            return torch.tensor(G)


# ------------------------------------------------------------------ the dual-cone QP solver


def brute_force_projection(M, u):
    """min v^T M v s.t. v >= u by trying every set of tight constraints (KKT on each face)."""
    num, best = len(u), None
    for size in range(num + 1):
        for face in itertools.combinations(range(num), size):
            s = np.zeros(num)
            if face:
                face = list(face)
                s[face] = np.linalg.lstsq(M[np.ix_(face, face)], -(M @ u)[face], rcond=None)[0]
            v = u + s
            if (s < -1e-12).any() or (M @ v < -1e-9).any():
                continue
            if best is None or v @ M @ v < best @ M @ best - 1e-12:
                best = v
    return best


@pytest.mark.parametrize("seed", range(40))
def test_dual_cone_projection_matches_brute_force_and_kkt(seed):
    rng = np.random.default_rng(seed)
    num = 1 + seed % 6
    G = rng.normal(size=(num, 1 + seed % 7)) * rng.uniform(0.01, 10, size=(num, 1))
    if seed % 4 == 0 and num > 1:
        G[-1] = G[0] * rng.uniform(-2, 2)  # collinear rows: a singular Gram matrix
    M = G @ G.T / np.trace(G @ G.T)
    u = rng.uniform(0, 1, size=num) if seed % 2 else np.eye(num)[seed % num]
    v = project_weights(M, u)
    lam = M @ v  # g_i . d (normalised)
    assert (v - u).min() >= -1e-12 and lam.min() >= -1e-12
    assert np.abs(lam * (v - u)).max() <= 1e-12  # complementary slackness
    # the projection G^T v is unique even where v is not
    np.testing.assert_allclose(G.T @ v, G.T @ brute_force_projection(M, u), atol=1e-9)


# ------------------------------------------------------------------------------------- UPGrad


def test_upgrad_two_tasks_known_answers():
    # g1=(1,0), g2=(-1,1): dual cone {0 <= x1 <= x2}. pi(g1): onto the edge (1,1)/sqrt2 -> (.5,.5)
    # (closer than onto (0,1), which gives 0); pi(g2): x1 < 0 -> onto (0,1) -> (0,1).
    # d = ((.5,.5) + (0,1))/2 = (.25, .75)
    close(agg(exact(UPGrad, 2), g([1, 0], [-1, 1])), [0.25, 0.75])
    # g1=(1,0), g2=(-2,1): dual cone {0 <= 2 x1 <= x2}, edges (0,1) and (1,2)/sqrt5.
    # pi(g1) = (g1.(1,2)/5)(1,2) = (.2,.4); pi(g2) = (0,1); d = ((.2,.4) + (0,1))/2 = (.1,.7)
    close(agg(exact(UPGrad, 2), g([1, 0], [-2, 1])), [0.1, 0.7])
    # no conflict: the mean
    close(agg(exact(UPGrad, 2), g([1, 0], [1, 1])), [1.0, 0.5])


def test_upgrad_matches_torchjd_with_its_defaults():
    method = UPGrad().setup(TaskSetup.count(2))  # norm_eps = reg_eps = 1e-4
    G = torch.tensor(TORCHJD_J)
    close(agg(method, G).double(), [0.2929, 1.9004, 1.9004], tol=1e-4)
    _, weights = method._aggregate(G, torch.ones(2))
    close(weights.double(), [1.1109, 0.7894], tol=1e-4)


@pytest.mark.parametrize("seed", range(12))
def test_upgrad_never_conflicts(seed):
    G = conflicting(seed)
    num = G.shape[0]
    d = agg(exact(UPGrad, num), G)
    assert (G @ d).min() >= -1e-10 * (G**2).sum()
    # with TorchJD's ridge, g_i . d >= -reg_eps * w_i * tr(G G^T)
    method = UPGrad().setup(TaskSetup.count(num))
    d, w = method._aggregate(G, torch.ones(num, dtype=D))
    assert ((G @ d) >= -1e-4 * w * (G**2).sum() - 1e-12).all()


@pytest.mark.parametrize("seed", range(5))
def test_upgrad_is_the_mean_when_no_pair_conflicts(seed):
    rng = np.random.default_rng(seed)
    G = torch.tensor(np.abs(rng.normal(size=(3, 4))))  # positive orthant: g_i . g_j >= 0
    torch.testing.assert_close(agg(exact(UPGrad, 3), G), G.mean(dim=0))
    prefs = {"task0": 0.2, "task1": 1.0, "task2": 3.0}
    torch.testing.assert_close(
        agg(exact(UPGrad, 3, pref_vector=prefs), G), torch.tensor([0.2, 1.0, 3.0], dtype=D) @ G
    )


@pytest.mark.parametrize("seed", range(5))
def test_upgrad_is_linear_under_scaling(seed):
    # Quinton & Rey: c -> A(diag(c) J) is linear on c > 0 (pi(c_i g_i) = c_i pi(g_i), and the
    # dual cone of {c_i g_i} is that of {g_i})
    rng = np.random.default_rng(seed)
    G = conflicting(seed, num=3, dim=4)
    c1 = torch.tensor(rng.uniform(0.1, 3, size=(3, 1)))
    c2 = torch.tensor(rng.uniform(0.1, 3, size=(3, 1)))
    method = exact(UPGrad, 3)
    torch.testing.assert_close(
        agg(method, (c1 + c2) * G), agg(method, c1 * G) + agg(method, c2 * G)
    )
    torch.testing.assert_close(agg(method, 2.5 * c1 * G), 2.5 * agg(method, c1 * G))


def test_upgrad_below_norm_eps_is_the_weighted_mean():
    # TorchJD's normalisation: tr(G G^T) = 6e-6 < norm_eps -> M = 0 + reg I -> v^(i) = p_i e_i,
    # so d is the mean (-.5e-3, .5e-3) although it conflicts with g1
    G = 1e-3 * g([1, 0], [-2, 1])
    close(agg(UPGrad().setup(TaskSetup.count(2)), G), [-0.5e-3, 0.5e-3], tol=1e-15)


def test_upgrad_preferences_follow_the_steps_tasks():
    prefs = {"a": 1.0, "b": 2.0, "c": 4.0}
    method = UPGrad(norm_eps=0.0, reg_eps=0.0, pref_vector=prefs).setup(TaskSetup(("a", "b", "c")))
    # no conflict: d = sum_i p_i g_i over the step's tasks c, a
    close(agg(method, g([1, 0], [0, 1]), torch.tensor([2, 0])), [4.0, 1.0])


def test_preference_vectors_are_checked():
    with pytest.raises(ValueError, match=r"loss.pref_vector.a: -1.0 is below the minimum"):
        UPGrad(pref_vector={"a": -1.0})
    with pytest.raises(ValueError, match="unknown task name"):
        DualProj(pref_vector={"z": 1.0}).setup(TaskSetup(("a", "b")))
    with pytest.raises(ValueError, match="no value for task"):
        AlignedMTL(pref_vector={"a": 1.0}).setup(TaskSetup(("a", "b")))
    with pytest.raises(ValueError, match="give every task or none"):
        ConFIG(pref_vector={"b": 1.0}).setup(TaskSetup(("a", "b")))


# ----------------------------------------------------------------------------------- DualProj


def test_dualproj_known_answers():
    # g1=(1,0), g2=(-2,1): mean (-.5,.5) conflicts with g1; the dual cone {0 <= 2 x1 <= x2}
    # is nearest at (0,.5) (distance .5; the edge (1,2) gives (.1,.2) at distance .67), and
    # mean - (0,.5) = (-.5,0) = -.5 g1 is normal to the face x1 = 0: d = (0, .5)
    close(agg(exact(DualProj, 2), g([1, 0], [-2, 1])), [0.0, 0.5])
    # g1=(1,0), g2=(-1,1): mean (0,.5) has g1.m = 0, g2.m = .5: already in the cone
    close(agg(exact(DualProj, 2), g([1, 0], [-1, 1])), [0.0, 0.5])


def test_dualproj_matches_torchjd_with_its_defaults():
    method = DualProj().setup(TaskSetup.count(2))
    close(agg(method, torch.tensor(TORCHJD_J)).double(), [0.5563, 1.1109, 1.1109], tol=1e-4)


@pytest.mark.parametrize("seed", range(12))
def test_dualproj_is_the_projection_of_the_mean(seed):
    G = conflicting(seed)
    num = G.shape[0]
    d, w = exact(DualProj, num)._aggregate(G, torch.ones(num, dtype=D))
    scale = (G**2).sum()
    assert (G @ d).min() >= -1e-10 * scale  # non-conflicting
    # characterisation of the projection of m = mean: m - d = -G^T s with s = w - 1/T >= 0 and
    # s_i (g_i . d) = 0, i.e. m - d lies in the polar cone, normal to the face d lies on
    s = w - 1.0 / num
    assert s.min() >= -1e-12
    torch.testing.assert_close(G.mean(dim=0) - d, -(s @ G))
    assert (s * (G @ d)).abs().max() <= 1e-10 * scale


def test_dualproj_keeps_a_non_conflicting_mean():
    rng = np.random.default_rng(0)
    found = 0
    while found < 5:  # conflicting pairs, but a mean that conflicts with no task
        G = torch.tensor(rng.normal(size=(3, 4)))
        if (G @ G.T).min() >= 0 or (G @ G.mean(dim=0)).min() < 0:
            continue
        found += 1
        torch.testing.assert_close(agg(exact(DualProj, 3), G), G.mean(dim=0))
        torch.testing.assert_close(agg(DualProj().setup(TaskSetup.count(3)), G), G.mean(dim=0))


# -------------------------------------------------------------------------------- Aligned-MTL


def test_aligned_mtl_known_answers():
    # g1=(2,0), g2=(0,1): M = diag(4,1), sigma = sqrt(min lambda) = 1,
    # B = diag(1/2, 1), weights B 1 = (.5, 1), d = .5 (2,0) + (0,1) = (1,1)
    close(agg(AlignedMTL().setup(TaskSetup.count(2)), g([2, 0], [0, 1])), [1.0, 1.0])
    # rmse: sigma = sqrt((4+1)/2); median of two (torch.median's lower value) = min
    s = math.sqrt(2.5)
    close(agg(AlignedMTL(scale_mode="rmse").setup(TaskSetup.count(2)), g([2, 0], [0, 1])), [s, s])
    close(agg(AlignedMTL(scale_mode="median").setup(TaskSetup.count(2)), g([2, 0], [0, 1])), [1, 1])
    # g1=(1,0), g2=(1,1): M = [[1,1],[1,2]], det 1, tr 3: M^{1/2} = (M + I)/sqrt5, so
    # M^{-1/2} = [[3,-1],[-1,2]]/sqrt5; lambda_min = (3-sqrt5)/2, sqrt = (sqrt5-1)/2 = .618034;
    # weights = .618034 (2, 1)/sqrt5 = (.552786, .276393); d = (w1 + w2, w2)
    close(
        agg(AlignedMTL().setup(TaskSetup.count(2)), g([1, 0], [1, 1])),
        [0.8291796, 0.2763932],
        tol=1e-7,
    )


def test_aligned_mtl_scale_modes_three_tasks():
    # rows 3 e1, 2 e2, 1 e3: lambda = 9, 4, 1; B = sigma diag(1/3, 1/2, 1), d = sigma (1,1,1)
    G = g([3, 0, 0], [0, 2, 0], [0, 0, 1])
    for mode, sigma in [("min", 1.0), ("median", 2.0), ("rmse", math.sqrt(14 / 3))]:
        close(agg(AlignedMTL(scale_mode=mode).setup(TaskSetup.count(3)), G), [sigma] * 3)


def test_aligned_mtl_matches_torchjd_with_mean_preferences():
    # TorchJD's AlignedMTL weights by 1/T by default; the official code (our default) by 1
    prefs = {"task0": 0.5, "task1": 0.5}
    method = AlignedMTL(pref_vector=prefs).setup(TaskSetup.count(2))
    close(agg(method, torch.tensor(TORCHJD_J)).double(), [0.2133, 0.9673, 0.9673], tol=1e-4)


@pytest.mark.parametrize("seed", range(8))
def test_aligned_mtl_components_have_condition_number_one(seed):
    G = conflicting(seed, dim=8)
    num = G.shape[0]
    gram = (G @ G.T).numpy()
    B = torch.tensor(balance_transformation(gram))
    aligned = B @ G  # the aligned task gradients
    singular = torch.linalg.svdvals(aligned)
    lam_min = torch.linalg.eigvalsh(G @ G.T).min()
    torch.testing.assert_close(singular, torch.full((num,), float(lam_min.sqrt()), dtype=D))
    # equal norms, pairwise orthogonal; the update is their sum
    torch.testing.assert_close(aligned @ aligned.T, lam_min * torch.eye(num, dtype=D))
    torch.testing.assert_close(agg(AlignedMTL().setup(TaskSetup.count(num)), G), aligned.sum(0))


def test_aligned_mtl_orthogonal_equal_norms_is_the_sum():
    G = 1.7 * g([0.6, 0.8, 0], [-0.8, 0.6, 0], [0, 0, 1])
    torch.testing.assert_close(agg(AlignedMTL().setup(TaskSetup.count(3)), G), G.sum(dim=0))


def test_aligned_mtl_rank_deficient_is_finite():
    # g2 = 2 g1: M = [[1,2],[2,4]] has lambda = 5, 0; keep v = (1,2)/sqrt5 only:
    # B = sqrt5 v v^T/sqrt5 = [[1,2],[2,4]]/5, weights B 1 = (.6, 1.2), d = .6 g1 + 2.4 g1 = 3 g1
    close(agg(AlignedMTL().setup(TaskSetup.count(2)), g([1, 0], [2, 0])), [3.0, 0.0])
    # every gradient zero: the weights are the preferences, d = 0
    d = agg(AlignedMTL().setup(TaskSetup.count(2)), torch.zeros(2, 3, dtype=D))
    close(d, [0.0, 0.0, 0.0])


# ------------------------------------------------------------------------------------- ConFIG


def test_config_known_answers():
    # orthogonal unit gradients: x = U^+ 1 = (1,1), x/|x| = (1,1)/sqrt2,
    # length = sum_i g_i . x/|x| = 2/sqrt2 -> d = (1,1), the bisector
    close(agg(ConFIG().setup(TaskSetup.count(2)), g([1, 0], [0, 1])), [1.0, 1.0])
    # g1=(2,0), g2=(0,1): same direction, length (2+1)/sqrt2 -> d = (1.5, 1.5)
    close(agg(ConFIG().setup(TaskSetup.count(2)), g([2, 0], [0, 1])), [1.5, 1.5])
    # g1=(1,0), g2=(-1,1): u1.x = 1 -> x1 = 1; (-x1+x2)/sqrt2 = 1 -> x2 = 1+sqrt2;
    # x/|x| = (cos 67.5, sin 67.5) = (.3826834, .9238795); length = (g1+g2).x/|x| = .9238795
    c, s = math.cos(3 * math.pi / 8), math.sin(3 * math.pi / 8)
    close(agg(ConFIG().setup(TaskSetup.count(2)), g([1, 0], [-1, 1])), [s * c, s * s])


def test_config_length_models():
    # g1=(2,0), g2=(0,1): x/|x| = (1,1)/sqrt2, sum_i u_i . x/|x| = sqrt2, so d = t (1,1) with
    # t = min 1, max 2, harmonic 2/(1/2+1) = 4/3, arithmetic 3/2, geometric sqrt2
    G = g([2, 0], [0, 1])
    for model, t in [
        ("track_min", 1.0),
        ("track_max", 2.0),
        ("track_harmonic", 4 / 3),
        ("track_arithmetic", 1.5),
        ("track_geometric", math.sqrt(2)),
    ]:
        close(agg(ConFIG(length_model=model).setup(TaskSetup.count(2)), G), [t, t])


@pytest.mark.parametrize("seed", range(10))
def test_config_equal_positive_projections_on_unit_gradients(seed):
    G = conflicting(seed, dim=6)  # T <= 5 < P: linearly independent
    num = G.shape[0]
    d = agg(ConFIG().setup(TaskSetup.count(num)), G)
    units = G / G.norm(dim=1, keepdim=True)
    projections = units @ d
    torch.testing.assert_close(projections, projections[:1].expand(num))
    assert projections[0] > 0
    # the paper's formula on the vectors themselves: x = pinv(U) 1, d = (sum_i g_i . x^) x^
    x = torch.linalg.pinv(units) @ torch.ones(num, dtype=D)
    unit_x = x / x.norm()
    torch.testing.assert_close(d, (G @ unit_x).sum() * unit_x)


def test_config_preferences_set_the_ratio_of_the_projections():
    G = g([1, 0, 0], [-1, 2, 0], [0.5, -1, 1])
    prefs = {"task0": 1.0, "task1": 2.0, "task2": 3.0}
    d = agg(ConFIG(pref_vector=prefs).setup(TaskSetup.count(3)), G)
    projections = (G / G.norm(dim=1, keepdim=True)) @ d
    torch.testing.assert_close(projections / projections[0], torch.tensor([1.0, 2.0, 3.0], dtype=D))


def test_config_collinear_opposite_and_zero_gradients_are_finite():
    # g2 = 2 g1: U = [u; u], x = pinv(U) 1 = u (min norm, u.x = 1), length 3|g1| -> d = 3 g1
    close(agg(ConFIG().setup(TaskSetup.count(2)), g([1, 0], [2, 0])), [3.0, 0.0])
    # opposite: 1 lies in the null space of U U^T = [[1,-1],[-1,1]] -> x = 0 -> d = 0
    close(agg(ConFIG().setup(TaskSetup.count(2)), g([1, 0], [-3, 0])), [0.0, 0.0])
    # a zero gradient has u = 0: the other one alone decides, d = (0, 2)
    close(agg(ConFIG().setup(TaskSetup.count(2)), g([0, 0], [0, 2])), [0.0, 2.0])


# ------------------------------------------------------------------------ shared properties

METHODS = {
    "upgrad": lambda n: UPGrad().setup(TaskSetup.count(n)),
    "upgrad-exact": lambda n: exact(UPGrad, n),
    "dualproj": lambda n: DualProj().setup(TaskSetup.count(n)),
    "dualproj-exact": lambda n: exact(DualProj, n),
    "aligned_mtl": lambda n: AlignedMTL().setup(TaskSetup.count(n)),
    "aligned_mtl-rmse": lambda n: AlignedMTL(scale_mode="rmse").setup(TaskSetup.count(n)),
    "config_grad": lambda n: ConFIG().setup(TaskSetup.count(n)),
}


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("seed", range(3))
def test_update_is_invariant_to_task_order(name, seed):
    G = conflicting(seed, num=4, dim=5)
    perm = torch.tensor([2, 0, 3, 1])
    method = METHODS[name](4)
    torch.testing.assert_close(agg(method, G[perm]), agg(method, G))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_identical_gradients_give_a_positive_multiple(name):
    row = torch.tensor([0.3, -1.2, 2.0], dtype=D)
    d = agg(METHODS[name](3), row.expand(3, 3).clone())
    scale = (d @ row) / (row @ row)
    assert scale > 0
    torch.testing.assert_close(d, scale * row)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_single_task_is_its_gradient(name):
    row = torch.tensor([[1.0, 2.0]], dtype=D)
    torch.testing.assert_close(agg(METHODS[name](1), row), row[0])


# ---------------------------------------------------------------- through the registry

from tests.test_weighting_backward import Tiny  # noqa: E402  (the shared tiny model)


@pytest.mark.parametrize("name", ["upgrad", "dualproj", "aligned_mtl", "config_grad"])
@pytest.mark.parametrize("rep_grad", [False, True])
def test_registry_method_backward_leaves_finite_grads(name, rep_grad):
    from hydra.utils import instantiate

    from mtl_cli.config import compose

    overrides = [f"loss={name}", "paths.output_dir=.", f"loss.rep_grad={str(rep_grad).lower()}"]
    method = instantiate(compose(overrides).loss).setup(TaskSetup.count(3))
    model = Tiny()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=gen)
    targets = torch.randn(3, 6, 1, generator=gen)
    tasks = [2, 0, 1]
    z = model.representation(x)
    losses = torch.stack([((model.head(z, t) - targets[t]) ** 2).mean() for t in tasks])
    diagnostics = method.backward(losses, tasks, model, representation=z if rep_grad else None)
    assert sorted(diagnostics) == ["weight/0", "weight/1", "weight/2"]
    assert all(math.isfinite(v) for v in diagnostics.values())
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert any(p.grad.abs().sum() > 0 for p in model.shared_parameters())
