"""Known answers of GradVac, GradDrop, RGW, ExcessMTL and MoCo (gradient surgery, random and
robust weightings), and each one built through the registry and stepped on a tiny model.

Hand computations are written next to the numbers; none of them calls the code under test.
"""

import io
import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from mtl_cli.config import compose, validate
from mtl_cli.loss.base import TaskSetup
from mtl_cli.loss.excess_mtl import ExcessMTL
from mtl_cli.loss.graddrop import GradDrop, graddrop_direction, sign_purity
from mtl_cli.loss.gradvac import GradVac
from mtl_cli.loss.mgda import min_norm_weights
from mtl_cli.loss.moco import MoCo
from mtl_cli.loss.rgw import RGW
from mtl_cli.loss.rlw import RLW
from mtl_cli.loss.simplex import project_to_simplex as project_simplex
from mtl_cli.schemas.checks import InvalidSetting
from tests.test_weighting_backward import Tiny, _batches, _flat, _losses, _manual_task_grads

D = torch.float64
NAMES = ["gradvac", "graddrop", "rgw", "excess_mtl", "moco"]


def g(*rows):
    return torch.tensor(rows, dtype=D)


def agg(method, G):
    return method.aggregate(G, torch.ones(G.shape[0], dtype=D))


def close(actual, expected, tol=1e-9):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, atol=tol, rtol=0)


def cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


# ------------------------------------------------------------------------------------ GradVac


def test_gradvac_raises_a_low_cosine_to_its_target_exactly():
    method = GradVac(beta=0.5).setup(TaskSetup.count(2))
    method.targets.fill_(0.6)
    G = g([1, 0], [0, 1])
    # phi = cos(g1, g2) = 0 < 0.6: a = |g1| (0.6 sqrt(1 - 0) - 0) / (|g2| sqrt(1 - 0.36))
    #   = 0.6 / 0.8 = 0.75, g1' = (1, 0.75), whose cosine with g2 is 0.75 / 1.25 = 0.6;
    # symmetrically g2' = (0.75, 1), so d = (1.75, 1.75)
    close(agg(method, G), [1.75, 1.75])
    assert cos(g([1, 0.75])[0], G[1]) == pytest.approx(0.6)
    # EMA of the observed cosine (0): 0.5 * 0.6 + 0.5 * 0 = 0.3 for both pairs; diagonal untouched
    close(method.targets, [[0.6, 0.3], [0.3, 0.6]])


def test_gradvac_leaves_a_pair_above_its_target_and_still_updates_the_target():
    method = GradVac(beta=0.5).setup(TaskSetup.count(2))
    method.targets.fill_(0.6)
    # cos((1,0), (1,1)) = 1/sqrt(2) = 0.7071 >= 0.6: no change, d = g1 + g2 = (2, 1)
    close(agg(method, g([1, 0], [1, 1])), [2.0, 1.0])
    # target <- 0.5 * 0.6 + 0.5 / sqrt(2) = 0.65355
    expected = 0.5 * 0.6 + 0.5 / math.sqrt(2)
    close(method.targets[0, 1:], [expected])
    close(method.targets[1, :1], [expected])


def test_gradvac_first_step_is_pcgrad_and_targets_follow_the_ema():
    # targets start at 0: a = |g1| (0 - phi) / |g2| = -g1.g2 / |g2|^2, PCGrad's projection.
    # g1=(1,0), g2=(-1,1): g1' = g1 + g2/2 = (0.5,0.5), g2' = g2 + g1 = (0,1): d = (0.5, 1.5)
    method = GradVac().setup(TaskSetup.count(2))
    close(agg(method, g([1, 0], [-1, 1])), [0.5, 1.5])
    # default beta 0.01, observed cosine -1/sqrt(2) for both pairs
    close(method.targets, [[0.0, -0.01 / math.sqrt(2)], [-0.01 / math.sqrt(2), 0.0]])


def test_gradvac_three_tasks_match_algorithm_1_written_on_vectors():
    G = g([1, 0, 0], [-1, 1, 0], [-0.5, -1, 1])
    method = GradVac(beta=0.3, seed=3).setup(TaskSetup.count(3))
    initial = torch.tensor([[0, 0.2, -0.1], [0.5, 0, 0.1], [0.3, 0.6, 0]], dtype=D)
    method.targets.copy_(initial)
    order = torch.rand(3, 3, generator=torch.Generator().manual_seed(3)).argsort(dim=1)
    targets, expected = initial.clone(), torch.zeros(3, dtype=D)
    for i in range(3):  # Wang et al. Algorithm 1, directly on the vectors
        gi = G[i].clone()
        for j in order[i].tolist():
            if j == i:
                continue
            phi, target = cos(gi, G[j]), float(targets[i, j])
            if phi < target:
                gi = (
                    gi
                    + gi.norm()
                    * (target * math.sqrt(1 - phi**2) - phi * math.sqrt(1 - target**2))
                    / (G[j].norm() * math.sqrt(1 - target**2))
                    * G[j]
                )
                assert cos(gi, G[j]) == pytest.approx(target)
            targets[i, j] = 0.7 * target + 0.3 * phi
        expected += gi
    close(agg(method, G), expected)
    close(method.targets, targets)


def test_gradvac_with_a_task_subset_reads_and_updates_only_its_pairs():
    method = GradVac(beta=0.5).setup(TaskSetup.count(3))
    method.targets.fill_(0.6)
    direction = method.aggregate(g([1, 0], [0, 1]), torch.ones(2, dtype=D), torch.tensor([2, 0]))
    close(direction, [1.75, 1.75])  # the first hand case, on tasks 2 and 0
    close(method.targets, [[0.6, 0.6, 0.3], [0.6, 0.6, 0.6], [0.3, 0.6, 0.6]])


def test_gradvac_zero_gradient_has_no_cosine():
    method = GradVac(beta=0.5).setup(TaskSetup.count(2))
    method.targets.fill_(0.6)
    close(agg(method, g([0, 0], [0, 1])), [0.0, 1.0])
    close(method.targets, torch.full((2, 2), 0.6, dtype=D))


# ----------------------------------------------------------------------------------- GradDrop

#: element 0: 1, 3, -1 (sum 3, mass 5: P = 0.5 (1 + 3/5) = 0.8);
#: element 1: -2, 1, 1 (sum 0, mass 4: P = 0.5)
DROP = g([1, -2], [3, 1], [-1, 1])


def test_graddrop_sign_purity_by_hand():
    close(sign_purity(DROP), [0.8, 0.5])
    close(sign_purity(g([0, 2], [0, 1])), [0.5, 1.0])  # no mass: 1/2; all positive: 1


def test_graddrop_keeps_one_sign_per_element():
    U = torch.tensor([0.5, 0.7], dtype=D)
    # element 0: U = 0.5 < P = 0.8 keeps the positives 1 + 3 = 4; element 1: U = 0.7 >= 0.5
    # keeps the negatives: -2
    direction, _ = graddrop_direction(DROP, 0.0, None, uniform=U)
    close(direction, [4.0, -2.0], tol=1e-6)
    # leak 0.2: dropped components pass at 0.2: 4 + 0.2 (-1) = 3.8, -2 + 0.2 (1 + 1) = -1.6
    close(graddrop_direction(DROP, 0.2, None, uniform=U)[0], [3.8, -1.6], tol=1e-6)
    # leak 1: the plain sum
    close(graddrop_direction(DROP, 1.0, None, uniform=U)[0], [3.0, 0.0], tol=1e-6)


@pytest.mark.parametrize("seed", range(10))
def test_graddrop_keeps_elements_whose_gradients_agree_in_sign(seed):
    # every column has one sign (or zeros): P is exactly 1 or 0, whatever U is drawn
    G = g([1, -2, 0.5, 0], [3, -1, 0, -4], [0.25, -0.5, 2, -1])
    d = agg(GradDrop(seed=seed).setup(TaskSetup.count(3)), G)
    assert torch.equal(d, G.sum(dim=0))


def test_graddrop_expected_update_by_sign_purity():
    # the paper's expectation: E[d] = P sum(positive parts) + (1 - P) sum(negative parts)
    # element 0: 0.8 * 4 + 0.2 * (-1) = 3.0; element 1: 0.5 * 2 + 0.5 * (-2) = 0
    n = 20000
    G = DROP.repeat(1, n)  # columns (e0, e1, e0, e1, ...): n independent draws of each element
    d = agg(GradDrop(seed=1).setup(TaskSetup.count(3)), G).view(n, 2)
    # standard deviations per draw: 2 (values 4 | -1) and 2 (values 2 | -2); 4.5 sigma of the mean
    close(d.mean(dim=0), [3.0, 0.0], tol=4.5 * 2 / math.sqrt(n))
    assert set(d[:, 0].tolist()) == {4.0, -1.0} and set(d[:, 1].tolist()) == {2.0, -2.0}


def test_graddrop_on_activations_signs_and_sums_over_the_batch():
    # A = (1, -1) (batch 2, one feature); per-example gradients task0 (1, 1), task1 (-1, 3):
    # G_0 = 1*1 + 1*(-1) = 0, G_1 = -1*1 + 3*(-1) = -4, P = 0.5 (1 - 4/4) = 0: U >= P keeps
    # negative G_i only, i.e. all of task 1 (its whole batch): d = (-1, 3)
    G = g([1, 1], [-1, 3])
    activation = torch.tensor([[1.0], [-1.0]], dtype=D)
    for seed in range(5):
        generator = torch.Generator().manual_seed(seed)
        direction, purity = graddrop_direction(G, 0.0, generator, activation)
        close(direction, [-1.0, 3.0])
        close(purity, [0.0])


def test_graddrop_rep_grad_masks_the_representation_gradient():
    model = Tiny()
    batches = _batches()
    tasks = [0, 1, 2]
    Gz = _manual_task_grads(model, batches, tasks, True, "z")
    _, z = _losses(model, batches, tasks, True)
    dz, _ = graddrop_direction(Gz, 0.0, torch.Generator().manual_seed(4), z.detach())
    expected = torch.autograd.grad(z, model.shared_parameters(), grad_outputs=dz.view_as(z))

    model.zero_grad()
    losses, z = _losses(model, batches, tasks, True)
    method = GradDrop(seed=4, rep_grad=True).setup(TaskSetup.count(3))
    diagnostics = method.backward(losses, tasks, model, representation=z)
    torch.testing.assert_close(_flat(p.grad for p in model.shared_parameters()), _flat(expected))
    assert 0.0 <= diagnostics["graddrop/sign_purity"] <= 1.0
    assert [diagnostics[f"weight/{t}"] for t in tasks] == [1.0, 1.0, 1.0]


# ---------------------------------------------------------------------------------------- RGW


def test_rgw_draws_softmax_of_a_seeded_normal():
    G = g([1, 0], [0, 2], [3, 1])
    z = torch.randn(3, generator=torch.Generator().manual_seed(5), dtype=D)
    weights = torch.exp(z) / torch.exp(z).sum()
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
    close(agg(RGW(seed=5).setup(TaskSetup.count(3)), G), weights @ G)


def test_rgw_differs_from_rlw_only_on_the_heads():
    tasks = [0, 1, 2]
    batches = _batches()
    grads = {}
    for method in (RGW(seed=5), RLW(seed=5)):
        model = Tiny()
        losses, _ = _losses(model, batches, tasks, False)
        diagnostics = method.setup(TaskSetup.count(3)).backward(losses, tasks, model)
        grads[type(method).__name__] = (model, diagnostics)
    (rgw, rgw_diag), (rlw, rlw_diag) = grads["RGW"], grads["RLW"]
    assert rgw_diag == pytest.approx(rlw_diag)  # the same draw
    weights = torch.tensor([rgw_diag[f"weight/{t}"] for t in tasks])
    torch.testing.assert_close(  # shared trunk: sum_i w_i g_i for both
        _flat(p.grad for p in rgw.trunk.parameters()), _flat(p.grad for p in rlw.trunk.parameters())
    )
    for t in tasks:  # heads: plain gradient for RGW, w_t times it for RLW
        fresh, _ = _losses(rgw, batches, [t], False)
        plain = _flat(torch.autograd.grad(fresh[0], list(rgw.heads[t].parameters())))
        torch.testing.assert_close(_flat(p.grad for p in rgw.heads[t].parameters()), plain)
        torch.testing.assert_close(
            _flat(p.grad for p in rlw.heads[t].parameters()), weights[t] * plain
        )


# ---------------------------------------------------------------------------------- ExcessMTL


def test_excess_mtl_hand_steps():
    eps = 1e-7
    method = ExcessMTL(robust_step_size=1.0).setup(TaskSetup.count(2))
    both = torch.tensor([0, 1])
    # step 1 records e_i(0) = g^T g / sqrt(g^2 + eps): task 0 1/sqrt(1+eps), task 1 4/sqrt(4+eps);
    # the weights stay uniform
    close(method.update(g([1, 0], [0, 2]), both), [0.5, 0.5])
    # step 2: task 0 again (1,0): H = 2, e = 1/sqrt(2+eps), r0 = sqrt(1+eps)/sqrt(2+eps) = 0.7071;
    # task 1 has a zero gradient: e = 0; alpha = (e^r0, 1) / (e^r0 + 1)
    r0 = math.sqrt(1 + eps) / math.sqrt(2 + eps)
    alpha0 = math.exp(r0) / (math.exp(r0) + 1)
    close(method.update(g([1, 0], [0, 0]), both), [alpha0, 1 - alpha0])
    close(method.alpha, [alpha0, 1 - alpha0])
    # step 3: the mirror image for task 1 (0,2): H = 8, r1 = (4/sqrt(8+eps)) / (4/sqrt(4+eps));
    # r0 = 0 now: alpha ∝ (e^r0, e^r1), uniform up to eps
    r1 = math.sqrt(4 + eps) / math.sqrt(8 + eps)
    alpha0 = math.exp(r0) / (math.exp(r0) + math.exp(r1))
    close(method.update(g([0, 0], [0, 2]), both), [alpha0, 1 - alpha0])
    assert alpha0 == pytest.approx(0.5, abs=1e-7)


def test_excess_mtl_weights_stay_on_the_simplex():
    rng = np.random.default_rng(0)
    method = ExcessMTL(robust_step_size=0.5).setup(TaskSetup.count(4))
    for step in range(30):
        index = torch.tensor(sorted(rng.choice(4, size=2 + step % 3, replace=False)))
        G = torch.tensor(rng.normal(size=(len(index), 6)) * rng.uniform(0.1, 3, (len(index), 1)))
        weights = method.update(G, index)
        assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
        assert method.alpha.sum() == pytest.approx(1.0) and (method.alpha > 0).all()
    assert not torch.allclose(method.alpha, torch.full((4,), 0.25, dtype=D))


def test_excess_mtl_backward_weights_every_parameter():
    model = Tiny()
    tasks = [2, 0]
    method = ExcessMTL(robust_step_size=1.0).setup(TaskSetup.count(3))
    for step in range(2):  # new batches: the second step's weights are no longer uniform
        batches = _batches(seed=step + 1)
        model.zero_grad()
        losses, _ = _losses(model, batches, tasks, False)
        diagnostics = method.backward(losses, tasks, model)
    weights = torch.tensor([diagnostics["weight/2"], diagnostics["weight/0"]])
    assert weights.sum() == pytest.approx(1.0) and weights[0] != pytest.approx(0.5)
    losses, _ = _losses(model, batches, tasks, False)
    expected = torch.autograd.grad(
        (weights * losses).sum(), list(model.parameters()), allow_unused=True
    )
    for p, e in zip(model.parameters(), expected, strict=True):
        if e is not None:  # heads included: the weighted gradient
            torch.testing.assert_close(p.grad, e)


# --------------------------------------------------------------------------------------- MoCo


def test_moco_one_hand_step():
    method = MoCo().setup(TaskSetup.count(2))  # beta 0.5, gamma 0.1, rho 0, k = 1
    G = g([1, 0], [0, 2])
    # Y = 0 - 0.5 (0 - G) = diag(0.5, 1); Y Y^T lambda = (0.25 * 0.5, 1 * 0.5) = (0.125, 0.5);
    # lambda - 0.1 (...) = (0.4875, 0.45), sum 0.9375: the projection adds 0.03125 to each:
    # lambda = (0.51875, 0.48125); d = Y^T lambda = (0.5 * 0.51875, 1 * 0.48125)
    close(agg(method, G), [0.259375, 0.48125])
    close(method.lambdas, [0.51875, 0.48125])
    close(method.tracked, [[0.5, 0.0], [0.0, 1.0]])
    # step 2 (k = 2), same G: beta_2 = 0.5/sqrt(2), gamma_2 = 0.1/sqrt(2)
    b2, c2 = 0.5 / math.sqrt(2), 0.1 / math.sqrt(2)
    y0, y1 = 0.5 + b2 * (1 - 0.5), 1 + b2 * (2 - 1)
    step = (0.51875 - c2 * y0**2 * 0.51875, 0.48125 - c2 * y1**2 * 0.48125)
    shift = (1 - sum(step)) / 2  # both stay positive
    lam = (step[0] + shift, step[1] + shift)
    close(agg(method, G), [y0 * lam[0], y1 * lam[1]])
    close(method.lambdas, lam)


def test_moco_rho_regularises_lambda():
    # rho = 1, G = 0 after Y = 0: (Y Y^T + I) lambda = lambda: lambda - 0.1 lambda, projected back
    # onto the simplex from (0.45, 0.45): uniform again; d = 0
    method = MoCo(rho=1.0).setup(TaskSetup.count(2))
    close(agg(method, g([0, 0], [0, 0])), [0.0, 0.0])
    close(method.lambdas, [0.5, 0.5])


@pytest.mark.parametrize("seed", range(4))
def test_moco_with_full_tracking_converges_to_mgda(seed):
    rng = np.random.default_rng(seed)
    G = torch.tensor(rng.normal(size=(3, 4)) * rng.uniform(0.3, 3, size=(3, 1)))
    gram = (G @ G.T).numpy()
    # beta_k = 1: Y = G; rho = 0 and a constant step 1/L: projected gradient descent on
    # 1/2 |G^T lambda|^2 over the simplex, whose minimiser is MGDA's min-norm weights
    gamma = 1 / float(np.linalg.eigvalsh(gram).max())
    method = MoCo(beta=1.0, beta_decay=0.0, gamma=gamma, gamma_decay=0.0, rho=0.0)
    method.setup(TaskSetup.count(3))
    for _ in range(4000):
        d = agg(method, G)
    expected = torch.tensor(min_norm_weights(gram, max_iter=1000, tol=1e-12))
    close(method.lambdas, expected, tol=1e-6)
    close(d, expected @ G, tol=1e-6)


def test_moco_task_subset_updates_its_rows_only():
    method = MoCo().setup(TaskSetup.count(3))
    agg(method, g([1, 0], [0, 2], [1, 1]))
    before_lambda, before_y = method.lambdas.clone(), method.tracked.clone()
    method.aggregate(g([4, 4], [2, 2]), torch.ones(2, dtype=D), torch.tensor([0, 2]))
    close(method.tracked[1], before_y[1])
    assert method.lambdas[1] == before_lambda[1]
    assert method.lambdas[[0, 2]].sum() == pytest.approx(1.0)


def test_project_simplex_by_hand():
    close(torch.tensor(project_simplex(np.array([0.4875, 0.45]))), [0.51875, 0.48125])
    close(torch.tensor(project_simplex(np.array([2.0, 0.0, -1.0]))), [1.0, 0.0, 0.0])
    close(torch.tensor(project_simplex(np.array([0.2, 0.3, 0.5]))), [0.2, 0.3, 0.5])


def test_moco_refuses_rep_grad():
    with pytest.raises(InvalidSetting, match=r"loss\.rep_grad: invalid value 'true'"):
        MoCo(rep_grad=True)
    with pytest.raises(InvalidSetting, match=r"loss\.rep_grad: invalid value 'true'"):
        validate(compose(["loss=moco", "loss.rep_grad=true", "paths.output_dir=."]))


# ------------------------------------------------------------------- state sized at first step


@pytest.mark.parametrize(("make", "buffer"), [(MoCo, "tracked"), (ExcessMTL, "grad_sq_sum")])
def test_lazily_sized_state_loads_in_both_directions(make, buffer):
    fresh = make().setup(TaskSetup.count(3))
    empty = {k: v.clone() for k, v in fresh.state_dict().items()}
    model = Tiny()
    losses, _ = _losses(model, _batches(), [0, 1, 2], False)
    fresh.backward(losses, [0, 1, 2], model)
    stepped = io.BytesIO()
    torch.save(fresh.state_dict(), stepped)
    stepped.seek(0)
    other = make().setup(TaskSetup.count(3))
    other.load_state_dict(torch.load(stepped, weights_only=True))  # empty -> [T, P]
    assert torch.equal(getattr(other, buffer), getattr(fresh, buffer))
    assert getattr(other, buffer).shape[0] == 3
    other.load_state_dict(empty)  # [T, P] -> empty (a step tried and undone)
    assert getattr(other, buffer).numel() == 0


# ------------------------------------------------------------------------------ via registry


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("tasks", "shared_batch"), [([0, 1, 2], True), ([2, 0], False)])
def test_registry_method_steps_a_tiny_model(name, tasks, shared_batch):
    method = instantiate(compose([f"loss={name}", "paths.output_dir=."]).loss)
    method.setup(TaskSetup.count(3))
    model = Tiny()
    batches = _batches()
    for _ in range(3):
        model.zero_grad()
        losses, _ = _losses(model, batches, tasks, shared_batch)
        diagnostics = method.backward(losses, tasks, model)
        assert all(math.isfinite(v) for v in diagnostics.values())
        assert {f"weight/{t}" for t in tasks} <= set(diagnostics)
        for p in model.trunk.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all()
        for t in tasks:
            for p in model.heads[t].parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all()
