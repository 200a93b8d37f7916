"""`backward` on a tiny hard-sharing model: exact `.grad`s, rep_grad, errors, state round-trips."""

import copy
import io

import pytest
import torch
from torch import nn

from mtl_cli.loss.base import REP_GRAD_ERROR, TaskSetup
from mtl_cli.loss.cagrad import CAGrad
from mtl_cli.loss.equal import Equal
from mtl_cli.loss.gradnorm import GradNorm
from mtl_cli.loss.imtl import IMTL
from mtl_cli.loss.mgda import MGDA
from mtl_cli.loss.nash import NashMTL
from mtl_cli.loss.pcgrad import PCGrad
from mtl_cli.loss.rlw import RLW
from mtl_cli.loss.static import Static
from mtl_cli.loss.uncertainty import Uncertainty
from mtl_cli.loss.worst_case import WorstCase
from mtl_cli.models.base import MultiTaskModel
from mtl_cli.registry import schema_choices


class Tiny(MultiTaskModel):
    """Linear+tanh trunk, one linear head per task."""

    has_shared_representation = True

    def __init__(self, num_tasks=3):
        super().__init__([1] * num_tasks)
        torch.manual_seed(0)
        self.trunk = nn.Linear(4, 3)
        self.heads = nn.ModuleList([nn.Linear(3, 1) for _ in range(num_tasks)])

    def representation(self, x):
        return torch.tanh(self.trunk(x))

    def head(self, z, task):
        return self.heads[task](z)

    def forward(self, x, task):
        return self.head(self.representation(x), task)

    def shared_parameters(self):
        return list(self.trunk.parameters())


def _batches(num_tasks=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(5, 4, generator=gen), torch.randn(5, 1, generator=gen))
        for _ in range(num_tasks)
    ]


def _losses(model, batches, tasks, shared_batch):
    if shared_batch:
        z = model.representation(batches[0][0])
        losses = [((model.head(z, t) - batches[t][1]) ** 2).mean() for t in tasks]
        return torch.stack(losses), z
    losses = [((model(batches[t][0], t) - batches[t][1]) ** 2).mean() for t in tasks]
    return torch.stack(losses), None


def _flat(grads):
    return torch.cat([g.reshape(-1) for g in grads])


def _manual_task_grads(model, batches, tasks, shared_batch, wrt):
    rows = []
    for i in range(len(tasks)):
        losses, z = _losses(model, batches, tasks, shared_batch)
        target = z if wrt == "z" else model.shared_parameters()
        rows.append(_flat(torch.autograd.grad(losses[i], target)))
    return torch.stack(rows)


GRADIENT_METHODS = [MGDA, PCGrad, CAGrad, IMTL, NashMTL]


@pytest.mark.parametrize("method_cls", GRADIENT_METHODS)
@pytest.mark.parametrize("shared_batch", [True, False])
def test_gradient_method_leaves_exact_grads(method_cls, shared_batch):
    model = Tiny()
    batches = _batches()
    tasks = [2, 0, 1]
    G = _manual_task_grads(model, batches, tasks, shared_batch, "params")
    losses, _ = _losses(model, batches, tasks, shared_batch)
    expected_shared = copy.deepcopy(method_cls().setup(TaskSetup.count(3))).aggregate(
        G, losses.detach()
    )

    method = method_cls().setup(TaskSetup.count(3))
    model.zero_grad()
    diagnostics = method.backward(losses, tasks, model)
    torch.testing.assert_close(_flat(p.grad for p in model.shared_parameters()), expected_shared)
    # each head gets exactly its own task's plain gradient
    for t in tasks:
        fresh, _ = _losses(model, batches, [t], shared_batch)
        expected = torch.autograd.grad(fresh[0], list(model.heads[t].parameters()))
        torch.testing.assert_close(
            _flat(p.grad for p in model.heads[t].parameters()), _flat(expected)
        )
    weights = torch.tensor([diagnostics[f"weight/{t}"] for t in tasks], dtype=G.dtype)
    if method_cls is NashMTL:
        assert diagnostics["nash/residual"] <= 1e-6
    if method_cls is not NashMTL:  # Nash clips d after combining
        torch.testing.assert_close(weights @ G, expected_shared, atol=1e-6, rtol=1e-5)
    assert method.last_tasks == tasks
    torch.testing.assert_close(method.last_gradients, G)


@pytest.mark.parametrize("method_cls", [MGDA, PCGrad, IMTL])
def test_rep_grad_combines_gradients_of_the_representation(method_cls):
    model = Tiny()
    batches = _batches()
    tasks = [0, 1, 2]
    Gz = _manual_task_grads(model, batches, tasks, True, "z")
    dz = method_cls(rep_grad=True).setup(TaskSetup.count(3)).aggregate(Gz, torch.ones(3))
    _, z = _losses(model, batches, tasks, True)
    expected = torch.autograd.grad(z, model.shared_parameters(), grad_outputs=dz.view_as(z))

    model.zero_grad()
    losses, z = _losses(model, batches, tasks, True)
    method_cls(rep_grad=True).setup(TaskSetup.count(3)).backward(
        losses, tasks, model, representation=z
    )
    torch.testing.assert_close(_flat(p.grad for p in model.shared_parameters()), _flat(expected))
    assert all(p.grad is not None for p in model.heads.parameters())


def test_rep_grad_without_representation_is_refused():
    model = Tiny()
    losses, _ = _losses(model, _batches(), [0, 1, 2], False)
    with pytest.raises(ValueError, match="loss.rep_grad=true needs a model with a shared"):
        MGDA(rep_grad=True).setup(TaskSetup.count(3)).backward(losses, [0, 1, 2], model)
    assert "multi-label" in REP_GRAD_ERROR


@pytest.mark.parametrize(
    ("make", "weights"),
    [
        (
            lambda: Equal().setup(TaskSetup.count(3)),
            [0.5, 0.5],
        ),  # mean over the 2 tasks of the step
        (lambda: Equal(reduction="sum").setup(TaskSetup.count(3)), [1.0, 1.0]),
        (lambda: Static(weights={"c": 3.0}).setup(TaskSetup(tuple(["a", "b", "c"]))), [3.0, 1.0]),
        (
            lambda: Uncertainty(init_log_variance=1.0).setup(TaskSetup.count(3)),
            [torch.e**-1, torch.e**-1],
        ),
    ],
)
def test_loss_weighting_backward_is_the_weighted_sum(make, weights):
    model = Tiny()
    batches = _batches()
    tasks = [2, 0]
    losses, _ = _losses(model, batches, tasks, False)
    expected = torch.autograd.grad(
        (torch.tensor(weights) * losses).sum(), list(model.parameters()), allow_unused=True
    )
    model.zero_grad()
    losses, _ = _losses(model, batches, tasks, False)
    diagnostics = make().backward(losses, tasks, model)
    assert diagnostics == pytest.approx({"weight/2": weights[0], "weight/0": weights[1]})
    for p, e in zip(model.parameters(), expected, strict=True):
        if e is None:  # head of task 1, absent from the step
            assert p.grad is None
        else:
            torch.testing.assert_close(p.grad, e)


def test_uncertainty_leaves_grad_on_its_log_variances():
    model = Tiny()
    method = Uncertainty().setup(TaskSetup.count(3))
    losses, _ = _losses(model, _batches(), [0, 1, 2], False)
    method.backward(losses, [0, 1, 2], model)
    # d/ds (exp(-s) L + s) at s=0 is 1 - L
    torch.testing.assert_close(method.log_variances.grad, 1 - losses.detach())


def test_gradient_method_on_model_without_shared_parameters():
    class Independent(Tiny):
        def shared_parameters(self):
            return []

    model = Independent()
    model.trunk.requires_grad_(False)
    losses, _ = _losses(model, _batches(), [0, 1, 2], False)
    diagnostics = MGDA().setup(TaskSetup.count(3)).backward(losses, [0, 1, 2], model)
    assert diagnostics == {"weight/0": 1.0, "weight/1": 1.0, "weight/2": 1.0}
    assert all(p.grad is not None for p in model.heads.parameters())


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([0, 1], "tasks: 2 task indices for 3 losses"),
        ([0, 1, 3], "index out of range"),
        ([0, 0, 1], "repeated"),
    ],
)
def test_bad_task_indices_are_refused(tasks, message):
    model = Tiny()
    losses, _ = _losses(model, _batches(), [0, 1, 2], False)
    with pytest.raises(ValueError, match=message):
        Equal().setup(TaskSetup.count(3)).backward(losses, tasks, model)


# --------------------------------------------------------------------- state round-trips


def _registry_method(name: str):
    """`loss=<name>` with its defaults, as the trainer builds it (a 2-step epoch for DWA)."""
    from hydra.utils import instantiate

    from mtl_cli.config import compose

    cfg = compose([f"loss={name}", "paths.output_dir=."])
    return instantiate(cfg.loss).setup(TaskSetup.count(3, steps_per_epoch=2))


#: every method of the registry (stateless ones pass trivially), plus non-default settings whose
#: state differs: seeded generators, Nash-MTL reusing its weights
STATEFUL = {c.name: (lambda name=c.name: _registry_method(name)) for c in schema_choices("loss")}
STATEFUL |= {
    "pcgrad-seeded": lambda: PCGrad(seed=5).setup(TaskSetup.count(3)),
    "rlw-seeded": lambda: RLW(seed=5).setup(TaskSetup.count(3)),
    "nash-reuse": lambda: NashMTL(update_weights_every=2).setup(TaskSetup.count(3)),
}


def _run(method, model, steps, start):
    """Train `model` with plain SGD for `steps` steps; return the diagnostics of each step."""
    optimizer = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.05)
    out = []
    for step in range(start, start + steps):
        batches = _batches(seed=step)
        tasks = [step % 3, (step + 1) % 3]
        optimizer.zero_grad()
        losses, _ = _losses(model, batches, tasks, False)
        out.append(method.backward(losses, tasks, model))
        optimizer.step()
    return out


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_state_dict_round_trip_resumes_bit_identically(name):
    method, model = STATEFUL[name](), Tiny()
    _run(method, model, 5, 0)
    buffer = io.BytesIO()
    torch.save({"method": method.state_dict(), "model": model.state_dict()}, buffer)
    expected = _run(method, model, 5, 5)

    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed, resumed_model = STATEFUL[name](), Tiny()
    resumed.load_state_dict(state["method"])
    resumed_model.load_state_dict(state["model"])
    assert _run(resumed, resumed_model, 5, 5) == expected
    for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_gradnorm_uses_its_own_optimizer_not_the_trainers():
    method = GradNorm().setup(TaskSetup.count(3))
    assert list(method.parameters()) == []
    model = Tiny()
    _run(method, model, 3, 0)
    assert method.loss_weights.sum().item() == pytest.approx(3.0)
    assert not torch.equal(method.loss_weights, torch.ones(3))


def test_worst_case_backward_follows_the_largest_loss():
    model = Tiny()
    losses, _ = _losses(model, _batches(), [0, 1, 2], False)
    worst = int(losses.argmax())
    expected = torch.autograd.grad(losses[worst], list(model.trunk.parameters()), retain_graph=True)
    diagnostics = WorstCase().setup(TaskSetup.count(3)).backward(losses, [0, 1, 2], model)
    assert diagnostics[f"weight/{worst}"] == 1.0
    torch.testing.assert_close(_flat(p.grad for p in model.trunk.parameters()), _flat(expected))
