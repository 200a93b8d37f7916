"""Learning to Branch (Guo, Lee & Ulbricht 2020) and MTAN (Liu, Johns & Davison 2019): shapes,
gradient routing, the parameter partition, and their known answers and reductions (the argmax tree
of one-hot logits = hard sharing / independent networks; masks of 1 = hard sharing), the
temperature schedule, exact resume, and end-to-end runs."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.models.backbones import MLP, Conv4, ConvNet, LeNet
from mtl_cli.models.hard_sharing import HardSharing
from mtl_cli.models.independent import Independent
from mtl_cli.models.ltb import LTB, gumbel_softmax
from mtl_cli.models.mtan import MTAN, AttentionUnit
from mtl_cli.run import train
from mtl_cli.schemas import model as model_schemas
from tests.conftest import tiny

IMAGE = (1, 28, 28)
VECTOR = (12,)
TASK_OUTPUTS = [3, 5, 2]
BATCH = 4

BACKBONES = {
    "mlp": lambda shape: MLP(shape, hidden=[16, 8]),
    "mlp_bn": lambda shape: MLP(shape, hidden=[16, 8], norm="batch", activation="tanh"),
    "mlp1": lambda shape: MLP(shape, hidden=[16]),
    "conv": lambda shape: ConvNet(shape, channels=[4, 6], fc_features=8),
    "conv_gap": lambda shape: ConvNet(shape, channels=[4, 6], fc_features=0),
    "lenet": lambda shape: LeNet(shape),
    "conv4": lambda shape: Conv4(shape, hidden_channels=6),
}
MODELS = {
    "ltb": (LTB, {}),
    "ltb_soft": (LTB, {"hard": False}),
    "ltb_warmup": (LTB, {"warmup_steps": 1, "schedule": "exponential"}),
    "mtan": (MTAN, {}),
    "mtan_layers": (MTAN, {"attention_layers": [0, 2], "reduction": 2, "head_hidden": [7]}),
    "mtan_first": (MTAN, {"attention_layers": [0], "norm": "none"}),
}
CASES = (
    [(m, b, IMAGE) for m in ("ltb", "mtan") for b in ("mlp", "conv", "conv_gap", "lenet", "conv4")]
    + [(m, "mlp_bn", VECTOR) for m in ("ltb", "ltb_soft", "mtan", "mtan_first")]
    + [(m, "mlp1", VECTOR) for m in ("ltb", "mtan")]
    + [("ltb_soft", "conv", IMAGE), ("ltb_warmup", "lenet", IMAGE), ("mtan_layers", "conv4", IMAGE)]
)
IDS = [f"{m}-{b}-{'image' if s == IMAGE else 'vector'}" for m, b, s in CASES]
#: task-indexed (task-specific) modules and parameters: heads.t, head_logits.t, attention.t
TASK_INDEXED = re.compile(r"^(heads|head_logits|attention)\.(\d+)\b")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def build(model: str, backbone: str, shape=IMAGE, task_outputs=TASK_OUTPUTS, **over):
    torch.manual_seed(0)
    cls, options = MODELS[model]
    return cls(task_outputs, shape, lambda: BACKBONES[backbone](shape), **{**options, **over})


def batch(shape, seed: int = 1) -> torch.Tensor:
    return torch.randn(BATCH, *shape, generator=torch.Generator().manual_seed(seed))


def task_loss(out: torch.Tensor, task: int) -> torch.Tensor:
    """A fixed random projection of the outputs (a plain sum would cancel through BatchNorm)."""
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(100 + task))
    return (out * weights).sum()


def reached_by_task(model, x) -> dict[int, set[int]]:
    """For each parameter (by id), the tasks whose loss gives it a non-zero gradient."""
    reached: dict[int, set[int]] = {id(p): set() for p in model.parameters()}
    for t in range(model.num_tasks):
        model.zero_grad(set_to_none=True)
        task_loss(model(x, t), t).backward()
        for p in model.parameters():
            if p.grad is not None and p.grad.any():
                reached[id(p)].add(t)
    return reached


# ------------------------------------------------------------------ both models


@pytest.mark.parametrize(("model_name", "backbone", "shape"), CASES, ids=IDS)
def test_output_shapes_in_training_and_evaluation(model_name, backbone, shape):
    model = build(model_name, backbone, shape)
    x = batch(shape)
    for mode in (True, False):
        model.train(mode)
        outputs = model.forward_all(x)
        assert [tuple(o.shape) for o in outputs] == [(BATCH, n) for n in TASK_OUTPUTS]
        for t, n in enumerate(TASK_OUTPUTS):
            assert model(x, t).shape == (BATCH, n)
    # evaluation is deterministic: forward_all and forward agree
    for t, out in enumerate(model.forward_all(x)):
        torch.testing.assert_close(out, model(x, t), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("model_name", "backbone", "shape"), CASES, ids=IDS)
def test_gradient_routing_matches_the_parameter_partition(model_name, backbone, shape):
    model = build(model_name, backbone, shape)
    x = batch(shape)
    names = {id(p): n for n, p in model.named_parameters()}
    shared, specific = model.shared_parameters(), model.task_specific_parameters()
    assert len({id(p) for p in shared}) == len(shared)
    assert {id(p) for p in shared} | {id(p) for p in specific} == set(names)
    assert not {id(p) for p in shared} & {id(p) for p in specific}
    assert {id(p) for p in model.last_shared_parameters()} <= {id(p) for p in shared}

    # every parameter learns from the sum of the task losses, except: a sampled hard tree's
    # unused nodes, and the branching logits during warmup (ltb_warmup's step 0)
    sum(task_loss(out, t) for t, out in enumerate(model.forward_all(x))).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    if model_name == "ltb_warmup":
        assert sorted(dead) == sorted(
            n for n, _ in model.named_parameters() if n.startswith(("branch_", "head_logits"))
        )
    elif model_name != "ltb":
        assert not dead, f"no gradient reaches {dead}"

    reached = reached_by_task(model, x)
    for p in specific:  # task t's loss reaches only task t's own head, attention, leaf logits
        owner = TASK_INDEXED.match(names[id(p)])
        assert owner, names[id(p)]
        assert reached[id(p)] == {int(owner.group(2))}, (names[id(p)], reached[id(p)])
    for p in shared:
        # a sampled hard tree reaches only its own nodes: each node is shared because every task
        # *can* reach it (tested with soft weights, where every task reaches every node)
        if model_name not in ("ltb", "ltb_warmup"):
            assert len(reached[id(p)]) >= 2, f"shared {names[id(p)]} reached by {reached[id(p)]}"


@pytest.mark.parametrize("cls", [LTB, MTAN])
def test_one_task_shares_nothing(cls):
    model = cls([4], IMAGE, lambda: BACKBONES["conv"](IMAGE))
    assert model.shared_parameters() == [] and model.last_shared_parameters() == []
    assert model(batch(IMAGE), 0).shape == (BATCH, 4)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: build("ltb", "mlp", min_temperature=2.0, temperature=1.0), "model.min_temp"),
        (lambda: build("ltb", "mlp", schedule="linear"), "model.schedule: invalid value"),
        (lambda: build("ltb", "mlp", anneal_every=0), "model.anneal_every"),
        (lambda: build("ltb", "mlp", temperature=0.0), "model.temperature"),
        (lambda: build("ltb", "mlp", decay=1.5), "model.decay"),
        (lambda: build("mtan", "mlp", reduction=0), "model.reduction"),
        (lambda: build("mtan", "mlp", norm="group"), "model.norm: invalid value 'group'"),
        (lambda: build("mtan", "conv4", attention_layers=[4]), "model.attention_layers: .*4"),
        (lambda: build("mtan", "mlp", attention_layers="some"), "model.attention_layers"),
    ],
)
def test_bad_options_raise_one_line_value_errors(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_defaults_come_from_the_schemas_and_cite_the_papers():
    ltb, mtan = model_schemas.LTBModel, model_schemas.MTANModel
    assert (ltb.temperature, ltb.schedule, ltb.anneal_every, ltb.min_temperature) == (
        10.0, "inverse_sqrt", 5, 0.5
    )  # fmt: skip
    assert (ltb.warmup_steps, ltb.hard, mtan.attention_layers, mtan.reduction) == (
        0,
        True,
        "all",
        1,
    )
    assert "Guo, Lee & Ulbricht 2020" in ltb.__doc__
    assert "Liu, Johns & Davison 2019" in mtan.__doc__
    assert LTB.__init__.__defaults__[:7] == (10.0, "inverse_sqrt", 5, 0.95, 0.5, 0, True)


# ------------------------------------------------------------------ LTB: schedule and sampling


@pytest.mark.parametrize(
    ("options", "steps_and_taus"),
    [
        # default: 10 / sqrt(1 + step // 5), never below 0.5
        (
            {},
            [(0, 10.0), (4, 10.0), (5, 10 / math.sqrt(2)), (99, 10 / math.sqrt(20)),
             (1000, 10 / math.sqrt(201)), (10**6, 0.5)],
        ),
        # 10 * 0.95 ** (step // 5), never below 0.5
        (
            {"schedule": "exponential"},
            [(0, 10.0), (10, 9.025), (14, 9.025), (50, 10 * 0.95**10), (5000, 0.5)],
        ),
        ({"schedule": "exponential", "decay": 0.5, "anneal_every": 1, "min_temperature": 0.1},
         [(1, 5.0), (3, 1.25), (6, 0.15625), (7, 0.1)]),
        ({"schedule": "constant", "temperature": 2.0}, [(0, 2.0), (10**6, 2.0)]),
    ],
)  # fmt: skip
def test_ltb_temperature_schedule_known_answers(options, steps_and_taus):
    model = build("ltb", "mlp", **options)
    for step, tau in steps_and_taus:
        assert float(model.temperature(step)) == pytest.approx(tau, rel=1e-6), step


def test_every_schedule_choice_is_implemented():
    choices = next(
        f.metadata["choices"]
        for f in model_schemas.LTBModel.__dataclass_fields__.values()
        if f.name == "schedule"
    )
    taus = {c: float(build("ltb", "mlp", schedule=c).temperature(50)) for c in choices}
    assert len(set(taus.values())) == len(choices), taus


@pytest.mark.parametrize("hard", [False, True])
def test_gumbel_softmax_weights_sum_to_one(hard):
    torch.manual_seed(3)
    logits = torch.randn(4, 3, 5, requires_grad=True)
    for tau in (0.1, 1.0, 10.0):
        y = gumbel_softmax(logits, torch.tensor(tau), hard)
        torch.testing.assert_close(y.sum(-1), torch.ones(4, 3))
        assert (y >= 0).all()
        if hard:
            assert set(y.detach().unique().tolist()) <= {0.0, 1.0}
            assert (y.detach().sum(-1) == 1).all()
    (y * torch.randn(4, 3, 5)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0  # straight-through gradient


def test_ltb_samples_gumbel_softmax_from_the_global_rng_at_the_scheduled_temperature():
    model = build("ltb", "conv4", hard=False)  # 4 blocks: 3 inner choices + the heads' choice
    with torch.no_grad():
        for p in [*model.branch_logits, *model.head_logits]:
            p.normal_()
    logits = model._logits().detach()
    assert logits.shape == (4, 3, 3)
    for step in (0, 7, 400):
        torch.manual_seed(11)
        gumbels = -torch.empty(4, 3, 3).exponential_().log()
        expected = torch.softmax((logits + gumbels) / model.temperature(step), dim=-1)
        torch.manual_seed(11)
        weights = model.branching_weights(step)
        torch.testing.assert_close(weights, expected)
        torch.testing.assert_close(weights.sum(-1), torch.ones(4, 3))
    model.eval()  # evaluation: the argmax tree, no noise
    expected = torch.nn.functional.one_hot(logits.argmax(-1), 3).float()
    assert torch.equal(model.branching_weights(), expected)
    parents, heads = model.branching()
    assert parents == logits[:-1].argmax(-1).tolist() and heads == logits[-1].argmax(-1).tolist()


def test_ltb_step_counter_advances_in_training_forward_passes_only():
    model = build("ltb", "mlp", anneal_every=1)
    x = batch(IMAGE)
    seen = []
    temperature = model.temperature
    model.temperature = lambda step: seen.append(int(step)) or temperature(step)
    model(x, 1)
    model(x, 1)
    assert model.steps.tolist() == [0, 2, 0] and seen == [0, 1]
    model(x, 0)  # each task anneals on its own count of training batches
    model.forward_all(x)  # one tree for every task, at the most advanced count
    assert model.steps.tolist() == [2, 3, 1] and seen == [0, 1, 0, 2]
    model.eval()
    model(x, 2)
    model.forward_all(x)
    assert model.steps.tolist() == [2, 3, 1] and seen == [0, 1, 0, 2]
    assert torch.equal(model.state_dict()["steps"], torch.tensor([2, 3, 1]))


def test_ltb_state_dict_and_rng_state_resume_the_same_trees():
    model = build("ltb", "conv4", anneal_every=1)
    x = batch(IMAGE)
    for _ in range(3):
        model.forward_all(x)
    resumed = build("ltb", "conv4", anneal_every=1)
    resumed.load_state_dict(model.state_dict())
    rng = torch.get_rng_state()
    expected = model.forward_all(x)
    torch.set_rng_state(rng)
    for a, b in zip(resumed.forward_all(x), expected, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(resumed.steps, model.steps) and resumed.steps.tolist() == [4, 4, 4]


def test_ltb_forward_and_forward_all_draw_the_same_tree_from_the_same_rng_state():
    model = build("ltb", "mlp_bn", VECTOR, hard=False)
    x = batch(VECTOR)
    torch.manual_seed(5)
    everything = model.forward_all(x)
    for t in range(3):
        model.steps.zero_()
        torch.manual_seed(5)
        torch.testing.assert_close(model(x, t), everything[t], rtol=0, atol=1e-6)


def test_ltb_warmup_mixes_uniformly_and_freezes_the_logits():
    model = build("ltb", "conv", warmup_steps=2)
    x = batch(IMAGE)
    for step in range(3):
        weights = model.branching_weights(step)
        if step < 2:
            assert torch.equal(weights, torch.full((3, 3, 3), 1 / 3))
        else:
            assert set(weights.detach().unique().tolist()) <= {0.0, 1.0}
    for _ in range(2):
        model.zero_grad(set_to_none=True)
        sum(task_loss(o, t) for t, o in enumerate(model.forward_all(x))).backward()
        logits = [*model.branch_logits, *model.head_logits]
        assert all(not p.grad.any() for p in logits)
    model.zero_grad(set_to_none=True)
    sum(task_loss(o, t) for t, o in enumerate(model.forward_all(x))).backward()
    assert all(p.grad.any() for p in model.branch_logits)  # step 2: learning


# ------------------------------------------------------------------ LTB: reductions


def set_tree(model: LTB, parent_of_node, parent_of_head, scale: float = 1e3) -> None:
    """One-hot branching logits: node k of each layer chooses parent_of_node(k), task t's head
    chooses parent_of_head(t)."""
    with torch.no_grad():
        for logits in model.branch_logits:
            logits.zero_()
            for k in range(model.num_tasks):
                logits[k, parent_of_node(k)] = scale
        for t, logits in enumerate(model.head_logits):
            logits.zero_()
            logits[parent_of_head(t)] = scale


@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize(
    ("backbone", "shape"),
    [("mlp", IMAGE), ("mlp_bn", VECTOR), ("conv", IMAGE), ("lenet", IMAGE), ("conv4", IMAGE)],
)
def test_ltb_tree_of_node_zero_is_hard_sharing(backbone, shape, hard):
    model = build("ltb", backbone, shape, hard=hard, schedule="constant", temperature=1e-4,
                  min_temperature=1e-4)  # fmt: skip
    set_tree(model, lambda k: 0, lambda t: 0)
    shared = HardSharing(TASK_OUTPUTS, shape, lambda: BACKBONES[backbone](shape))
    x = batch(shape)
    for mode in (True, False):  # a sampled tree at temperature ~ 0, and the argmax tree
        model.train(mode)
        shared.train(mode)
        shared.trunk.load_state_dict(model.columns[0].state_dict())
        shared.heads.load_state_dict(model.heads.state_dict())
        for a, b in zip(model.forward_all(x), shared.forward_all(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        for t in range(3):
            torch.testing.assert_close(model(x, t), shared(x, t), rtol=0, atol=1e-6)


@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize(
    ("backbone", "shape"),
    [("mlp", IMAGE), ("mlp_bn", VECTOR), ("conv_gap", IMAGE), ("conv4", IMAGE)],
)
def test_ltb_tree_of_own_columns_is_independent(backbone, shape, hard):
    model = build("ltb", backbone, shape, hard=hard, schedule="constant", temperature=1e-4,
                  min_temperature=1e-4)  # fmt: skip
    set_tree(model, lambda k: k, lambda t: t)
    independent = Independent(TASK_OUTPUTS, shape, lambda: BACKBONES[backbone](shape))
    x = batch(shape)
    for mode in (True, False):
        model.train(mode)
        independent.train(mode)
        independent.columns.load_state_dict(model.columns.state_dict())
        independent.heads.load_state_dict(model.heads.state_dict())
        for a, b in zip(model.forward_all(x), independent.forward_all(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_ltb_evaluation_runs_only_the_argmax_trees_nodes():
    model = build("ltb", "conv4")
    # tasks 0 and 1 share nodes 0 up to the last layer, where task 1 branches to node 1; task 2
    # has its own path through node 2
    set_tree(model, lambda k: 0 if k < 2 else 2, lambda t: t)
    assert model.branching() == ([[0, 0, 2]] * 3, [0, 1, 2])
    calls = []
    for k, column in enumerate(model.columns):
        for i, block in enumerate(column.blocks):
            block.register_forward_hook(lambda *_, i=i, k=k: calls.append((i, k)))
    model.eval()
    model(batch(IMAGE), 1)
    assert sorted(calls) == [(0, 0), (1, 0), (2, 0), (3, 1)]
    calls.clear()
    model.forward_all(batch(IMAGE))
    assert sorted(calls) == sorted([(0, 0), (1, 0), (2, 0), (3, 0), (3, 1)]
                                   + [(i, 2) for i in range(4)])  # fmt: skip
    calls.clear()
    model.train()
    model(batch(IMAGE), 1)  # training: every node (the logits learn from every parent)
    assert len(calls) == 4 * 3


def test_ltb_parameter_count_known_answer():
    model = build("ltb", "mlp", VECTOR)
    # columns 3 x (12*16+16 + 16*8+8) + inner logits 3x3 + head logits 3 x 3 + heads (27+45+18)
    assert sum(p.numel() for p in model.parameters()) == 3 * 344 + 9 + 9 + 90
    assert len(model.branch_logits) == 1
    assert len(build("ltb", "mlp1", VECTOR).branch_logits) == 0  # one block: heads choose only


# ------------------------------------------------------------------ MTAN


def open_masks(model: MTAN) -> None:
    """Every mask exactly 1: the layer before the sigmoid outputs 50 (sigmoid(50) = 1 in float32)."""
    with torch.no_grad():
        for units in model.attention:
            for unit in units:
                unit.gate.weight.zero_()
                unit.gate.bias.fill_(50.0)


@pytest.mark.parametrize(
    ("model_name", "backbone", "shape"),
    [
        ("mtan", "mlp", IMAGE),
        ("mtan", "mlp_bn", VECTOR),
        ("mtan", "conv", IMAGE),
        ("mtan", "conv_gap", IMAGE),
        ("mtan", "lenet", IMAGE),
        ("mtan", "conv4", IMAGE),
        ("mtan_layers", "conv4", IMAGE),
        ("mtan_first", "conv", IMAGE),
    ],
)
def test_mtan_with_masks_of_one_is_hard_sharing(model_name, backbone, shape):
    model = build(model_name, backbone, shape)
    open_masks(model)
    head_hidden = MODELS[model_name][1].get("head_hidden", [])
    shared = HardSharing(
        TASK_OUTPUTS, shape, lambda: BACKBONES[backbone](shape), head_hidden=head_hidden
    )
    x = batch(shape)
    for mode in (True, False):
        model.train(mode)
        shared.train(mode)
        shared.trunk.load_state_dict(model.trunk.state_dict())
        shared.heads.load_state_dict(model.heads.state_dict())
        for t in range(3):
            assert all((m == 1).all() for m in model.attention_masks(x, t))
        for a, b in zip(model.forward_all(x), shared.forward_all(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("backbone", "shape"), [("conv", IMAGE), ("mlp_bn", VECTOR)])
def test_mtan_masks_lie_in_the_open_unit_interval_and_differ_between_tasks(backbone, shape):
    model = build("mtan", backbone, shape)
    x = batch(shape)
    out_shapes = model.trunk.block_out_shapes
    masks = [model.attention_masks(x, t) for t in range(3)]
    for task_masks in masks:
        assert [tuple(m.shape[1:]) for m in task_masks] == out_shapes
        assert all(((m > 0) & (m < 1)).all() for m in task_masks)
    assert not torch.allclose(masks[0][-1], masks[1][-1])


def test_mtan_task_output_is_the_attended_shared_features_through_its_head():
    model = build("mtan", "conv4")
    model.eval()
    x = batch(IMAGE)
    u = model.shared_features(x)
    for t in range(3):
        a = [model.attention[t][0](u[0])]
        attended = a[0] * u[0]
        for j in range(1, 4):
            a.append(model.attention[t][j](u[j], model.encoders[j - 1](attended)))
            attended = a[-1] * u[j]
        for got, want in zip(model.attention_masks(x, t), a, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        torch.testing.assert_close(model(x, t), model.heads[t](attended.flatten(1)), rtol=0, atol=0)


def test_mtan_gradient_routing_attention_units_are_their_tasks_own():
    model = build("mtan", "conv")
    x = batch(IMAGE)
    for t in range(3):
        model.zero_grad(set_to_none=True)
        task_loss(model(x, t), t).backward()
        for s in range(3):
            grads = [p.grad for p in model.attention[s].parameters()]
            assert all(g is not None and g.any() for g in grads) == (s == t)
            assert all(g is None for g in grads) == (s != t)
        assert all(p.grad is not None and p.grad.any() for p in model.trunk.parameters())
        assert all(p.grad is not None and p.grad.any() for p in model.encoders.parameters())


def test_mtan_structure_widths_and_parameter_count():
    model = build("mtan", "mlp", VECTOR)
    # trunk 344 + f (a copy of block 1: 136) + 3 tasks x (block 0: 16->16->16 with BN = 608;
    # block 1: [u; f(a)] 16->8->8 with BN = 240) + heads 90
    assert sum(p.numel() for p in model.parameters()) == 344 + 136 + 3 * (608 + 240) + 90
    wide = build("mtan", "conv4", reduction=4, attention_layers=[1, 3])
    first, second = wide.attention[0]
    assert [m.out_channels for m in first.net if isinstance(m, torch.nn.Conv2d)] == [1, 6]
    assert [m.in_channels for m in second.net if isinstance(m, torch.nn.Conv2d)] == [12, 1]
    # f brings block 1's attended features to block 3: fresh copies of blocks 2 and 3
    assert len(wide.encoders) == 1 and len(wide.encoders[0]) == 2
    assert wide.encoders[0][0][0] is not wide.trunk.blocks[2][0]


def test_mtan_forward_all_runs_the_shared_blocks_once():
    model = build("mtan", "conv4")
    calls = []
    for block in model.trunk.blocks:
        block.register_forward_hook(lambda *_: calls.append(1))
    model.forward_all(batch(IMAGE))
    assert len(calls) == 4
    calls.clear()
    later = build("mtan_first", "conv4")  # after the last attended block each task runs the rest
    for block in later.trunk.blocks:
        block.register_forward_hook(lambda *_: calls.append(1))
    later.forward_all(batch(IMAGE))
    assert len(calls) == 1 + 3 * 3


def test_attention_unit_known_answer_and_shapes():
    unit = AttentionUnit(4, 2, 2, spatial=True, norm="none")
    with torch.no_grad():
        for p in unit.parameters():
            p.zero_()
        unit.gate.bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    mask = unit(torch.randn(2, 2, 3, 3), torch.randn(2, 2, 3, 3))
    assert mask.shape == (2, 2, 3, 3)
    torch.testing.assert_close(mask[:, 0], torch.full((2, 3, 3), 0.5))
    torch.testing.assert_close(mask[:, 1], torch.full((2, 3, 3), 0.75))
    vector = AttentionUnit(10, 3, 5, spatial=False)
    assert vector(torch.randn(4, 5), torch.randn(4, 5)).shape == (4, 5)
    assert isinstance(vector.gate, torch.nn.BatchNorm1d)


# ------------------------------------------------------------------ end to end


@pytest.mark.parametrize(
    "overrides",
    [
        ("model=ltb", "model.anneal_every=1"),
        ("model=mtan", "backbone=conv4", "backbone.hidden_channels=8"),
        ("model=mtan", "model.attention_layers=[1]", "backbone.hidden=[32,16]"),
    ],
    ids=["ltb-mlp", "mtan-conv4", "mtan-mlp-layer1"],
)
def test_trains_end_to_end_with_pcgrad(tmp_path, overrides):
    summary = train(compose(tiny(tmp_path, *overrides, "loss=pcgrad")))
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["status"] == "finished" and written["error"] is None and written["step"] == 6
    assert written["test"] == summary["test"] and written["num_params"] > 0
    for split in ("val", "test", "best_test"):
        assert all(math.isfinite(v) for v in written[split].values()), written[split]
        assert 0.0 <= written[split]["accuracy"] <= 1.0


def test_ltb_run_resumes_exactly(tmp_path):
    over = ("model=ltb", "model.anneal_every=1", "backbone.hidden=[16,16]", "trainer.eval_every=3")
    full = train(compose(tiny(tmp_path / "full", *over, "trainer.steps=9")))
    train(compose(tiny(tmp_path / "part", *over, "trainer.steps=3")))
    resumed = train(compose(tiny(tmp_path / "part", *over, "trainer.steps=9")))
    assert resumed["resumed_from"] == 3
    for key in ("best_step", "best_val", "val", "test", "best_test"):
        assert resumed[key] == full[key], key
    part, whole = (
        torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=False)["model"]
        for run in ("part", "full")
    )
    assert part["steps"].tolist() == [9, 9, 9]  # one training forward per task and step
    assert part.keys() == whole.keys()
    for key in part:  # the branching logits too (the temperature scales their gradient)
        assert torch.equal(part[key], whole[key]), key


def test_config_validation_refuses_bad_values_before_any_work(tmp_path):
    with pytest.raises(UserError, match="model.schedule: invalid value 'linear'"):
        train(compose(tiny(tmp_path / "a", "model=ltb", "model.schedule=linear")))
    with pytest.raises(UserError, match="model.norm"):
        train(compose(tiny(tmp_path / "b", "model=mtan", "model.norm=layer")))


def test_ltb_compiles_to_the_eager_run(tmp_path, monkeypatch):
    """The step counter is bumped outside the compiled graph (a graph that saved the buffer for its
    backward would find it modified in place): dynamo + AOTAutograd without inductor."""
    real = torch.compile

    def compile_with(model=None, **kwargs):
        kwargs.pop("mode", None)
        return real(model, backend="aot_eager", **kwargs)

    monkeypatch.setattr(torch, "compile", compile_with)
    torch._dynamo.reset()
    over = (
        "task.alphabets=[digits,markers]",
        "backbone.hidden=[32,32]",
        "loss=pcgrad",
        "model=ltb",
    )
    try:
        compiled = train(compose(tiny(tmp_path / "c", *over, "trainer.compile=true")))
    finally:
        torch._dynamo.reset()
    eager = train(compose(tiny(tmp_path / "e", *over)))
    assert compiled["compiled"] is True
    assert compiled["test"] == eager["test"] and compiled["val"] == eager["val"]
