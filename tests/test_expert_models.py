"""Mixture-of-experts models CGC, PLE (Tang et al. 2020) and DSelect-k (Hazimeh et al. 2021):
shapes on vector and image inputs, gradient routing against the parameter partition, known
answers (CGC without task experts = MMoE, PLE with one level = CGC, smooth-step values and
derivative, saturated selectors pick the encoded experts, gates sum to 1, the DSelect-k
regulariser enters the gradient once), configs, the expert_models preset, and tiny PCGrad runs."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.loss.base import TaskSetup
from mtl_cli.loss.equal import Equal
from mtl_cli.loss.pcgrad import PCGrad
from mtl_cli.models.backbones import MLP, Conv4, ConvNet, LeNet
from mtl_cli.models.cgc import CGC
from mtl_cli.models.dselect_k import DSelectK, DSelectKGate, binary_codes, smooth_step
from mtl_cli.models.mmoe import MMoE
from mtl_cli.models.ple import PLE
from mtl_cli.run import train
from tests.conftest import tiny

IMAGE = (1, 28, 28)
VECTOR = (12,)
TASK_OUTPUTS = [3, 5, 2]
BATCH = 4

BACKBONES = {
    "mlp": lambda shape: MLP(shape, hidden=[16, 8]),
    "mlp_one_block": lambda shape: MLP(shape, hidden=[16]),
    "mlp_16_16": lambda shape: MLP(shape, hidden=[16, 16]),
    "mlp_bn": lambda shape: MLP(shape, hidden=[16, 8], norm="batch", activation="tanh"),
    "conv": lambda shape: ConvNet(shape, channels=[4, 6], fc_features=8),
    "conv_gap": lambda shape: ConvNet(shape, channels=[4, 6], fc_features=0),
    "lenet": lambda shape: LeNet(shape),
    "conv4": lambda shape: Conv4(shape, hidden_channels=6),
}

MODELS = {
    "cgc": (CGC, {"tower_hidden": [7]}),
    "cgc_2x2": (CGC, {"num_shared_experts": 2, "num_task_experts": 2}),
    "cgc_no_task_experts": (CGC, {"num_shared_experts": 3, "num_task_experts": 0}),
    "ple": (PLE, {"tower_hidden": [7]}),
    "ple_one_level": (PLE, {"num_levels": 1}),
    "ple_no_task_experts": (PLE, {"num_shared_experts": 2, "num_task_experts": 0}),
    "dselect_k": (DSelectK, {"num_experts": 4, "k": 2, "tower_hidden": [7]}),
    "dselect_k_per_example": (DSelectK, {"num_experts": 4, "k": 2, "gating": "per_example"}),
    "dselect_k_3_experts": (DSelectK, {"num_experts": 3, "k": 2, "entropy_reg": 0.1}),
    "ple_three_levels": (PLE, {"num_levels": 3, "num_shared_experts": 2}),
}

#: every model on every backbone (images) and on mlp (vectors)
CASES = (
    [(m, b, IMAGE) for m in MODELS for b in ("mlp", "conv", "lenet", "conv4")]
    + [(m, "mlp_bn", VECTOR) for m in MODELS]
    + [(m, "conv_gap", IMAGE) for m in ("ple", "ple_no_task_experts", "cgc")]
    + [("ple_three_levels", "mlp_one_block", VECTOR)]
)
IDS = [f"{m}-{b}-{'image' if s == IMAGE else 'vector'}" for m, b, s in CASES]

#: task-indexed modules: towers.t, gates.t, task_experts.t (cgc), levels.j.task_experts.t and
#: levels.j.task_gates.t (ple) belong to task t when they are task-specific
TASK_INDEXED = re.compile(r"(?:^|\.)(towers|gates|task_experts|task_gates)\.(\d+)\.")


def build(model: str, backbone: str, shape=IMAGE, task_outputs=TASK_OUTPUTS, seed=0, **over):
    torch.manual_seed(seed)
    cls, options = MODELS[model]
    return cls(task_outputs, shape, lambda: BACKBONES[backbone](shape), **{**options, **over})


def batch(shape, seed: int = 1, n: int = BATCH) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def task_loss(out: torch.Tensor, task: int) -> torch.Tensor:
    """A fixed random projection of the outputs (a plain sum would cancel through BatchNorm)."""
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(100 + task))
    return (out * weights).sum()


def reached_by_task(model, x) -> dict[int, set[int]]:
    """id(parameter) -> the tasks whose loss gives it a nonzero gradient."""
    reached: dict[int, set[int]] = {id(p): set() for p in model.parameters()}
    for t in range(model.num_tasks):
        model.zero_grad(set_to_none=True)
        task_loss(model(x, t), t).backward()
        for p in model.parameters():
            if p.grad is not None and p.grad.any():
                reached[id(p)].add(t)
    return reached


# ------------------------------------------------------------------ shapes, routing, partition


@pytest.mark.parametrize(("model_name", "backbone", "shape"), CASES, ids=IDS)
def test_output_shapes_and_forward_all_equals_forward(model_name, backbone, shape):
    model = build(model_name, backbone, shape)
    x = batch(shape)
    outputs = model.forward_all(x)
    assert len(outputs) == len(TASK_OUTPUTS) and not model.has_shared_representation
    for t, n in enumerate(TASK_OUTPUTS):
        assert outputs[t].shape == (BATCH, n)
        torch.testing.assert_close(outputs[t], model(x, t), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("model_name", "backbone", "shape"), CASES, ids=IDS)
def test_gradient_routing_matches_parameter_partition(model_name, backbone, shape):
    model = build(model_name, backbone, shape)
    x = batch(shape)
    names = {id(p): n for n, p in model.named_parameters()}
    shared, specific = model.shared_parameters(), model.task_specific_parameters()
    assert len({id(p) for p in shared}) == len(shared)
    assert {id(p) for p in shared} | {id(p) for p in specific} == set(names)
    assert not {id(p) for p in shared} & {id(p) for p in specific}
    assert model.last_shared_parameters()
    assert {id(p) for p in model.last_shared_parameters()} <= {id(p) for p in shared}

    sum(task_loss(out, t) for t, out in enumerate(model.forward_all(x))).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead, f"no gradient reaches {dead}"

    reached = reached_by_task(model, x)
    for p in specific:  # task t's loss reaches only task t's own experts, gates and tower
        assert len(reached[id(p)]) == 1, f"{names[id(p)]} reached by {reached[id(p)]}"
        owner = TASK_INDEXED.search(names[id(p)])
        assert owner, names[id(p)]
        assert reached[id(p)] == {int(owner.group(2))}, names[id(p)]
    for p in shared:
        assert len(reached[id(p)]) >= 2, f"shared {names[id(p)]} reached by {reached[id(p)]}"


def test_cgc_task_loss_has_zero_gradient_on_other_tasks_experts():
    model = build("cgc_2x2", "conv", IMAGE)
    x = batch(IMAGE)
    for t in range(len(TASK_OUTPUTS)):
        model.zero_grad(set_to_none=True)
        task_loss(model(x, t), t).backward()
        for s, experts in enumerate(model.task_experts):
            grads = [p.grad for p in experts.parameters()]
            if s == t:
                assert all(g is not None and g.any() for g in grads)
            else:
                assert all(g is None or not g.any() for g in grads)
        assert all(p.grad is not None and p.grad.any() for p in model.shared_experts.parameters())


def test_ple_three_levels_routes_task_losses_through_the_shared_gates():
    """Task t reaches every task's experts of levels 0 and 1 (mixed into the shared path) but only
    its own on the last level; task gates of level 0 feed level-1 task experts, which feed the
    level-1 shared gate: shared. Level-1 and level-2 task gates are task t's alone."""
    model = build("ple_three_levels", "conv4", IMAGE)
    reached = reached_by_task(model, batch(IMAGE))
    every = set(range(len(TASK_OUTPUTS)))
    for j, level in enumerate(model.levels):
        assert (level.shared_gate is None) == (j == 2)
        for t, experts in enumerate(level.task_experts):
            for p in experts.parameters():
                assert reached[id(p)] == (every if j < 2 else {t}), (j, t)
        for t, gate in enumerate(level.task_gates):
            for p in gate.parameters():
                assert reached[id(p)] == (every if j == 0 else {t}), (j, t)
    shared = {id(p) for p in model.shared_parameters()}
    assert {id(p) for p in model.levels[0].task_gates.parameters()} <= shared
    assert not {id(p) for p in model.levels[1].task_gates.parameters()} & shared


# ------------------------------------------------------------------ CGC and PLE known answers


def cgc_state_as(model: str, cgc_state: dict) -> dict:
    """A CGC state dict renamed for MMoE (no task experts) or a one-level PLE."""
    out = {}
    for key, value in cgc_state.items():
        if model == "mmoe":
            key = key.replace("shared_experts.", "experts.", 1)
        else:
            key = re.sub(r"^(shared_experts|task_experts)\.", r"levels.0.\1.", key)
            key = re.sub(r"^gates\.", "levels.0.task_gates.", key)
        out[key] = value
    return out


@pytest.mark.parametrize(("backbone", "shape"), [("mlp_bn", VECTOR), ("conv", IMAGE)])
def test_cgc_without_task_experts_equals_mmoe_with_the_same_parameters(backbone, shape):
    cgc = build("cgc_no_task_experts", backbone, shape, seed=0)
    torch.manual_seed(1)
    mmoe = MMoE(TASK_OUTPUTS, shape, lambda: BACKBONES[backbone](shape), num_experts=3)
    mmoe.load_state_dict(cgc_state_as("mmoe", cgc.state_dict()))
    x = batch(shape)
    for a, b in zip(cgc.forward_all(x), mmoe.forward_all(x), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for t in range(len(TASK_OUTPUTS)):
        torch.testing.assert_close(cgc.gate_weights(x, t), mmoe.gate_weights(x, t), rtol=0, atol=0)
    assert sum(p.numel() for p in cgc.parameters()) == sum(p.numel() for p in mmoe.parameters())


@pytest.mark.parametrize(
    ("backbone", "shape"), [("mlp_bn", VECTOR), ("conv", IMAGE), ("lenet", IMAGE)]
)
@pytest.mark.parametrize("task_experts", [0, 2])
def test_ple_with_one_level_equals_cgc(backbone, shape, task_experts):
    options = {"num_shared_experts": 2, "num_task_experts": task_experts, "tower_hidden": [7]}
    cgc = build("cgc", backbone, shape, seed=0, **options)
    ple = build("ple_one_level", backbone, shape, seed=1, **options)
    ple.load_state_dict(cgc_state_as("ple", cgc.state_dict()))
    x = batch(shape)
    for a, b in zip(cgc.forward_all(x), ple.forward_all(x), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [p.numel() for p in cgc.parameters()] == [p.numel() for p in ple.parameters()]
    assert len(cgc.shared_parameters()) == len(ple.shared_parameters())


def test_cgc_gates_sum_to_one_and_forward_is_the_gated_mixture():
    model = build("cgc_2x2", "conv4", IMAGE)
    x = batch(IMAGE)
    shared = [e(x) for e in model.shared_experts]
    for t in range(len(TASK_OUTPUTS)):
        gates = model.gate_weights(x, t)
        assert gates.shape == (BATCH, 4) and (gates > 0).all()
        torch.testing.assert_close(gates.sum(-1), torch.ones(BATCH))
        experts = shared + [e(x) for e in model.task_experts[t]]  # shared first
        mixture = sum(gates[:, e : e + 1] * experts[e] for e in range(4))
        torch.testing.assert_close(model(x, t), model.towers[t](mixture))


def test_ple_two_levels_by_hand():
    """y_t = tower_t(G_t^1 [S^1(g_s), T_t^1(g_t)]) with g_t = G_t^0(x) [S^0(x), T_t^0(x)] and
    g_s = G_s^0(x) [S^0(x), T_1^0(x), ..., T_T^0(x)], every gate a softmax that sums to 1."""
    model = build("ple", "mlp", VECTOR, num_shared_experts=2, num_task_experts=2)
    first, last = model.levels
    x = batch(VECTOR)

    def gate(linear, h):
        g = torch.softmax(linear(h), dim=-1)
        torch.testing.assert_close(g.sum(-1), torch.ones(BATCH))
        return g

    def mixture(weights, outputs):
        return sum(weights[:, e : e + 1] * h for e, h in enumerate(outputs))

    s0 = [e(x) for e in first.shared_experts]
    t0 = [[e(x) for e in experts] for experts in first.task_experts]
    g_task = [mixture(gate(first.task_gates[t], x), s0 + t0[t]) for t in range(3)]
    g_shared = mixture(gate(first.shared_gate, x), s0 + [h for hs in t0 for h in hs])
    s1 = [e(g_shared) for e in last.shared_experts]
    for t, out in enumerate(model.forward_all(x)):
        own = [e(g_task[t]) for e in last.task_experts[t]]
        expected = model.towers[t](mixture(gate(last.task_gates[t], g_task[t]), s1 + own))
        torch.testing.assert_close(out, expected)


def test_ple_later_levels_are_relu_layers_on_the_fused_features():
    """Level 0's experts are backbones on the input; each later expert is Linear(F, F) + ReLU on
    the previous level's fused F features, so 2 levels on mlp [h] have the expert parameters of
    CGC on mlp [h, h]."""
    options = {"num_shared_experts": 2, "num_task_experts": 1}
    ple = build("ple", "mlp_one_block", IMAGE, **options)
    cgc = build("cgc", "mlp_16_16", IMAGE, **options)
    assert isinstance(ple.levels[0].shared_experts[0], MLP)
    upper = ple.levels[1].shared_experts[0]
    assert [type(m) for m in upper] == [torch.nn.Linear, torch.nn.ReLU]
    assert (upper[0].in_features, upper[0].out_features) == (16, 16)
    assert ple.levels[1].task_gates[0].in_features == 16  # later gates read the fused features
    assert ple.levels[0].task_gates[0].in_features == 28 * 28

    def experts(levels_or_model):
        return sum(
            p.numel()
            for m in levels_or_model
            for p in [*m.shared_experts.parameters(), *m.task_experts.parameters()]
        )

    # 2 shared + 3 tasks x 1 = 5 expert paths of 784*16 + 16 + 16*16 + 16 parameters
    assert experts([cgc]) == experts(ple.levels) == 5 * (784 * 16 + 16 + 16 * 16 + 16)
    deep = build("ple", "conv4", IMAGE, num_levels=4)
    assert [level.shared_gate is None for level in deep.levels] == [False, False, False, True]
    assert deep.levels[3].task_gates[0].in_features == deep.levels[0].shared_experts[0].out_features


# ------------------------------------------------------------------ DSelect-k known answers


def test_smooth_step_values_and_zero_derivative_outside_the_cubic_region():
    for gamma in (1.0, 2.0, 0.5):
        t = torch.tensor([-2.0, -0.5, -0.25, 0.0, 0.25, 0.5, 2.0]) * gamma
        t.requires_grad_(True)
        s = smooth_step(t, gamma)
        expected = torch.tensor([0.0, 0.0, 0.15625, 0.5, 0.84375, 1.0, 1.0])
        torch.testing.assert_close(s.detach(), expected)
        (grad,) = torch.autograd.grad(s.sum(), t)
        # derivative 3/(2 gamma) - 6 t^2 / gamma^3: 1.5/gamma at 0, 0 at +-gamma/2 and beyond
        slope = [0.0, 0.0, 1.125 / gamma, 1.5 / gamma, 1.125 / gamma, 0.0, 0.0]
        torch.testing.assert_close(grad, torch.tensor(slope))
    outside = torch.tensor([-3.0, -0.51, 0.51, 7.0], requires_grad=True)
    (grad,) = torch.autograd.grad(smooth_step(outside, 1.0).sum(), outside)
    assert (grad == 0).all()


def test_binary_codes_are_most_significant_bit_first():
    assert binary_codes(4).int().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert binary_codes(5).shape == (5, 3) and binary_codes(5)[4].int().tolist() == [1, 0, 0]
    assert binary_codes(2).int().tolist() == [[0], [1]]


def saturate(codes: torch.Tensor, experts: list[int], gamma: float) -> torch.Tensor:
    """Selector logits at +-gamma (beyond the cubic region) encoding the given expert indices."""
    return torch.stack([codes[e].float() * 2 * gamma - gamma for e in experts])


@pytest.mark.parametrize("gating", ["static", "per_example"])
def test_saturated_selectors_select_exactly_the_encoded_experts(gating):
    gamma = 0.7
    gate = DSelectKGate(8, 3, gamma, 1e-6, gating, input_features=12)
    z = saturate(gate.codes, [5, 2, 7], gamma)
    w = torch.tensor([0.3, -1.0, 2.0])
    with torch.no_grad():
        if gating == "static":
            gate.z_logits.copy_(z)
            gate.w_logits.copy_(w)
        else:  # zero weights: the biases alone decide, for every example
            gate.z_layer.weight.zero_(), gate.z_layer.bias.copy_(z.flatten())
            gate.w_layer.weight.zero_(), gate.w_layer.bias.copy_(w)
    r = gate.selector_outputs(gate.logits(batch(VECTOR))[0])
    assert ((r == 0) | (r == 1)).all()
    weights = gate(batch(VECTOR)).detach()
    expected = torch.zeros(8)
    expected[[5, 2, 7]] = torch.softmax(w, 0)
    torch.testing.assert_close(weights, expected.expand(BATCH, 8), rtol=0, atol=1e-7)
    assert ((weights > 0).sum(-1) == 3).all()


@pytest.mark.parametrize("gating", ["static", "per_example"])
def test_dselect_k_gates_sum_to_one_with_a_power_of_two(gating):
    torch.manual_seed(0)
    gate = DSelectKGate(8, 3, 1.0, 1e-6, gating, input_features=12)
    with torch.no_grad():  # spread the logits over and beyond the cubic region
        for p in gate.parameters():
            p.normal_(0, 1.0)
    weights = gate(batch(VECTOR, n=16))
    assert weights.shape == (16, 8) and (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(16))
    model = build("dselect_k", "conv4", IMAGE)
    x = batch(IMAGE)
    experts = [e(x) for e in model.experts]
    for t in range(len(TASK_OUTPUTS)):
        gates = model.gate_weights(x, t)
        torch.testing.assert_close(gates.sum(-1), torch.ones(BATCH))
        mixture = sum(gates[:, e : e + 1] * experts[e] for e in range(4))
        torch.testing.assert_close(model(x, t), model.towers[t](mixture))


def test_dselect_k_entropy_known_answer_and_the_unreachable_codes_term():
    gate = DSelectKGate(4, 2, 1.0, 0.5, "static", input_features=12)
    with torch.no_grad():
        gate.z_logits.zero_()  # S = 1/2: every selector uniform over the 4 experts
    r = gate.selector_outputs(gate.z_logits)
    torch.testing.assert_close(r, torch.full((2, 4), 0.25))
    entropy = -4 * 0.25 * math.log(0.25 + 1e-6)
    torch.testing.assert_close(gate.regularization(r), torch.tensor(0.5 * 2 * entropy))
    # 3 experts: code 11 is unreachable; with S = 1/2 each selector puts 3/4 on real experts
    three = DSelectKGate(3, 2, 1.0, 0.0, "static", input_features=12)
    with torch.no_grad():
        three.z_logits.zero_()
    r = three.selector_outputs(three.z_logits)
    torch.testing.assert_close(r.sum(-1), torch.full((2,), 0.75))
    torch.testing.assert_close(three.regularization(r), torch.tensor(2 / 0.75))
    torch.testing.assert_close(three(batch(VECTOR)).sum(-1), torch.full((BATCH,), 0.75))


def gate_grads(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.gates.parameters()]


def expected_gate_grads(model, x, weights, with_term: bool) -> list[torch.Tensor]:
    """d(sum_t w_t L_t (+ each gate's regulariser)) / d(gate parameters), computed in eval mode
    (no term riding along) with the regulariser added by hand."""
    model.eval()
    outputs = model.forward_all(x)
    total = sum(
        w * task_loss(out, t) for t, (w, out) in enumerate(zip(weights, outputs, strict=True))
    )
    if with_term:
        for gate in model.gates:
            total = total + gate.regularization(gate.selector_outputs(gate.logits(x)[0]))
    grads = torch.autograd.grad(total, list(model.gates.parameters()))
    model.train()
    return list(grads)


@pytest.mark.parametrize("gating", ["static", "per_example"])
@pytest.mark.parametrize("num_experts", [4, 3])
@pytest.mark.parametrize("method", ["equal", "pcgrad"])
def test_the_regulariser_enters_the_gradient_once_through_the_weighting_methods(
    method, num_experts, gating
):
    """Equal backpropagates mean_t L_t, PCGrad differentiates the task-specific parameters with one
    autograd.grad of sum_t L_t and the shared ones per task: either way each gate's parameters get
    d(w_t L_t + its regulariser) (the term unweighted, once, like a Keras add_loss), and the
    shared experts get no term."""
    model = build(
        "dselect_k", "mlp", VECTOR, num_experts=num_experts, gating=gating, entropy_reg=0.3
    )
    x = batch(VECTOR)

    def weighting():
        made = Equal() if method == "equal" else PCGrad(seed=0)
        return made.setup(TaskSetup.count(3))

    losses = torch.stack([task_loss(out, t) for t, out in enumerate(model.forward_all(x))])
    weighting().backward(losses, [0, 1, 2], model)
    got = gate_grads(model)
    task_weights = [1 / 3] * 3 if method == "equal" else [1.0] * 3  # Equal: the mean
    expected = expected_gate_grads(model, x, task_weights, with_term=True)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)
    plain = expected_gate_grads(model, x, task_weights, with_term=False)
    assert any((g - p).abs().max() > 1e-6 for g, p in zip(got, plain, strict=True))
    # the shared experts see the task losses only
    shared = [p.grad.clone() for p in model.shared_parameters()]
    model.zero_grad(set_to_none=True)
    model.eval()
    losses = torch.stack([task_loss(out, t) for t, out in enumerate(model.forward_all(x))])
    weighting().backward(losses, [0, 1, 2], model)
    for a, p in zip(shared, model.shared_parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)


def test_no_regulariser_in_evaluation_without_autograd_or_when_off():
    x = batch(VECTOR)
    for train_mode, entropy_reg in ((False, 0.3), (True, 0.0)):
        model = build("dselect_k", "mlp", VECTOR, entropy_reg=entropy_reg).train(train_mode)
        sum(task_loss(o, t) for t, o in enumerate(model.forward_all(x))).backward()
        got = gate_grads(model)
        for g, e in zip(got, expected_gate_grads(model, x, [1, 1, 1], False), strict=True):
            torch.testing.assert_close(g, e)
    model = build("dselect_k", "mlp", VECTOR, entropy_reg=0.3)
    with torch.no_grad():
        assert model.forward_all(x)[0].grad_fn is None


def test_entropy_regulariser_alone_drives_the_selectors_to_single_experts():
    gate = DSelectKGate(4, 2, 1.0, 1.0, "static", input_features=12)
    optimizer = torch.optim.SGD(gate.parameters(), lr=0.5)
    for _ in range(200):
        optimizer.zero_grad()
        gate(batch(VECTOR)).sum().backward()  # the sum is 1 (no gradient): the term alone acts
        optimizer.step()
    r = gate.selector_outputs(gate.z_logits).detach()
    assert (r.max(-1).values == 1).all()


# ------------------------------------------------------------------ options and configs


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: build("cgc", "mlp", num_shared_experts=0), "model.num_shared_experts: 0 is below"),
        (lambda: build("cgc", "mlp", num_task_experts=-1), "model.num_task_experts: -1 is below"),
        (lambda: build("ple", "mlp", num_levels=0), "model.num_levels: 0 is below"),
        (lambda: build("dselect_k", "mlp", num_experts=1), "model.num_experts: 1 is below"),
        (lambda: build("dselect_k", "mlp", k=5), "model.k: 5 selectors for 4 experts"),
        (lambda: build("dselect_k", "mlp", gamma=0.0), "model.gamma: 0.0 must be greater"),
        (lambda: build("dselect_k", "mlp", entropy_reg=-1.0), "model.entropy_reg: -1.0 is below"),
        (lambda: build("dselect_k", "mlp", gating="topk"), "model.gating: invalid value 'topk'"),
    ],
)
def test_bad_options_raise_one_line_value_errors(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_config_validation_refuses_bad_values_before_any_work(tmp_path):
    with pytest.raises(UserError, match="model.gating"):
        train(compose(tiny(tmp_path, "model=dselect_k", "model.gating=sometimes")))
    assert not (tmp_path / "metrics.json").exists()


GRID = {
    "mmoe": ("mtl_cli.models.mmoe.MMoE", {"num_experts": 4}),
    "cgc": ("mtl_cli.models.cgc.CGC", {"num_shared_experts": 2, "num_task_experts": 1}),
    "ple": ("mtl_cli.models.ple.PLE", {"num_levels": 2, "num_shared_experts": 2}),
    "dselect_k": ("mtl_cli.models.dselect_k.DSelectK", {"num_experts": 4, "gating": "static"}),
    "dselect_k_per_example": ("mtl_cli.models.dselect_k.DSelectK", {"gating": "per_example"}),
}


def test_expert_models_preset_composes_with_four_experts_per_model():
    from hydra.utils import instantiate

    from mtl_cli.config import CONF_DIR

    text = (CONF_DIR / "experiment" / "expert_models.yaml").read_text().splitlines()
    assert text[0] == "# @package _global_" and text[1].startswith("# ")
    grid = sorted(p.stem for p in (CONF_DIR / "experiment" / "expert_models_grid").glob("*.yaml"))
    assert grid == sorted(GRID)
    sizes = {}
    for name, (target, options) in GRID.items():
        cfg = compose(["experiment=expert_models", f"+experiment/expert_models_grid={name}"])
        assert cfg.model._target_ == target and cfg.task.dim == 10
        assert all(cfg.model[k] == v for k, v in options.items()), name
        model = instantiate(
            cfg.model,
            task_outputs=[1, 1],
            input_shape=(10,),
            make_backbone=lambda cfg=cfg: instantiate(cfg.backbone, input_shape=(10,)),
        )
        linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        first_layers = [m for m in linear if (m.in_features, m.out_features) == (10, 64)]
        assert len(first_layers) == 4, name  # 4 experts (backbones) in every model
        sizes[name] = sum(p.numel() for p in model.parameters())
    assert max(sizes.values()) < 1.05 * min(sizes.values()), sizes  # comparable budgets


# ------------------------------------------------------------------ end to end


@pytest.mark.parametrize(
    ("model", "over"),
    [
        ("cgc", ()),
        ("ple", ()),
        ("dselect_k", ("model.entropy_reg=0.01",)),
        ("dselect_k", ("model.gating=per_example", "model.num_experts=3")),
    ],
    ids=["cgc", "ple", "dselect_k", "dselect_k_per_example_3"],
)
def test_tiny_pcgrad_run_finishes_with_finite_metrics(tmp_path, model, over):
    overrides = tiny(
        tmp_path, f"model={model}", *over, "loss=pcgrad", "backbone.hidden=[16,16]",
        "model.tower_hidden=[8]", "trainer.diagnostics=false",
    )  # fmt: skip
    summary = train(compose(overrides))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["error"] is None
    assert metrics["test"] == summary["test"] and metrics["num_params"] > 0
    for split in ("val", "test"):
        assert metrics[split] and all(math.isfinite(v) for v in metrics[split].values())
