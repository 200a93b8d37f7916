"""Backbones and multi-task sharing architectures: shapes, gradient flow, parameter partition,
known answers (cross-stitch = independent at alpha_self = 1, FiLM, MMoE mixture), configs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from mtl_cli.models.backbones import MLP, Conv4, ConvNet, LeNet
from mtl_cli.models.conditioned import CONDITIONINGS, Conditioned, TaskConditioning
from mtl_cli.models.cross_stitch import CrossStitch, CrossStitchUnit
from mtl_cli.models.hard_sharing import HardSharing
from mtl_cli.models.independent import Independent
from mtl_cli.models.mmoe import MMoE
from mtl_cli.registry import find, schema_choices
from mtl_cli.schemas import backbone as backbone_schemas
from mtl_cli.schemas import model as model_schemas

IMAGE = (1, 28, 28)
VECTOR = (12,)
TASK_OUTPUTS = [3, 5, 2]
BATCH = 4

# Small versions of every backbone, so the whole file stays fast.
BACKBONES = {
    "mlp": lambda shape: MLP(shape, hidden=[16, 8]),
    "mlp_bn": lambda shape: MLP(shape, hidden=[16, 8], norm="batch", activation="tanh"),
    "conv": lambda shape: ConvNet(shape, channels=[4, 6], fc_features=8),
    "conv_gap": lambda shape: ConvNet(shape, channels=[4, 6], fc_features=0),
    "lenet": lambda shape: LeNet(shape),
    "conv4": lambda shape: Conv4(shape, hidden_channels=6),
}

MODELS = {
    "independent": (Independent, {"head_hidden": [7]}),
    "hard_sharing": (HardSharing, {"head_hidden": [7]}),
    "cross_stitch": (CrossStitch, {}),
    "cross_stitch_channel": (CrossStitch, {"per_channel": True, "layers": [0]}),
    "mmoe": (MMoE, {"num_experts": 3, "tower_hidden": [7]}),
    **{
        f"conditioned_{kind}": (Conditioned, {"conditioning": kind, "heads": "per_task"})
        for kind in CONDITIONINGS
    },
    "conditioned_film_embedding_shared": (
        Conditioned,
        {"conditioning": "film", "descriptor": "embedding", "embedding_dim": 3, "heads": "shared"},
    ),
    "conditioned_concat_shared_layer1": (
        Conditioned,
        {"conditioning": "concat", "layers": [1], "heads": "shared", "head_hidden": [5]},
    ),
}

# every model on every backbone (images) and on mlp (vectors); the variants on a few models
CASES = (
    [(m, b, IMAGE) for m in MODELS for b in ("mlp", "conv", "lenet", "conv4")]
    + [(m, "mlp_bn", VECTOR) for m in MODELS]
    + [(m, "conv_gap", IMAGE) for m in ("hard_sharing", "conditioned_concat", "cross_stitch")]
    + [(m, "mlp_bn", IMAGE) for m in ("independent", "conditioned_film", "mmoe")]
)
IDS = [f"{m}-{b}-{'image' if s == IMAGE else 'vector'}" for m, b, s in CASES]

# Names of task-specific modules that are lists indexed by task.
TASK_INDEXED = re.compile(r"^(heads|columns|towers|gates|task_embeddings)\.(\d+)\b")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and much faster on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def build(model: str, backbone: str, shape: tuple[int, ...], task_outputs=TASK_OUTPUTS, **over):
    torch.manual_seed(0)
    cls, options = MODELS[model]
    return cls(task_outputs, shape, lambda: BACKBONES[backbone](shape), **{**options, **over})


def batch(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return torch.randn(BATCH, *shape, generator=torch.Generator().manual_seed(seed))


def task_loss(out: torch.Tensor, task: int) -> torch.Tensor:
    """A fixed random projection of the outputs (a plain sum would cancel through BatchNorm)."""
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(100 + task))
    return (out * weights).sum()


# ------------------------------------------------------------------ shapes and forward_all


@pytest.mark.parametrize(("model_name", "backbone", "shape"), CASES, ids=IDS)
def test_output_shapes_and_forward_all_equals_forward(model_name, backbone, shape):
    model = build(model_name, backbone, shape)
    x = batch(shape)
    outputs = model.forward_all(x)
    assert len(outputs) == len(TASK_OUTPUTS)
    for t, n in enumerate(TASK_OUTPUTS):
        assert outputs[t].shape == (BATCH, n)
        torch.testing.assert_close(outputs[t], model(x, t), rtol=0, atol=1e-6)


# ------------------------------------------------------------------ gradients and partition


@pytest.mark.parametrize(("model_name", "backbone", "shape"), CASES, ids=IDS)
def test_gradient_flow_matches_parameter_partition(model_name, backbone, shape):
    model = build(model_name, backbone, shape)
    x = batch(shape)
    names = {id(p): n for n, p in model.named_parameters()}
    shared = model.shared_parameters()
    specific = model.task_specific_parameters()

    # shared and task-specific partition parameters()
    assert len({id(p) for p in shared}) == len(shared)
    assert {id(p) for p in shared} | {id(p) for p in specific} == set(names)
    assert not {id(p) for p in shared} & {id(p) for p in specific}

    # every parameter learns from the sum of the task losses
    sum(task_loss(out, t) for t, out in enumerate(model.forward_all(x))).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead, f"no gradient reaches {dead}"

    # which tasks' losses reach each parameter
    reached: dict[int, set[int]] = {id(p): set() for p in model.parameters()}
    for t in range(len(TASK_OUTPUTS)):
        model.zero_grad(set_to_none=True)
        task_loss(model(x, t), t).backward()
        for p in model.parameters():
            if p.grad is not None and p.grad.any():
                reached[id(p)].add(t)
    for p in specific:
        assert len(reached[id(p)]) == 1, f"{names[id(p)]} reached by tasks {reached[id(p)]}"
        owner = TASK_INDEXED.match(names[id(p)])
        if owner:  # task t's loss touches only task t's head/column/tower/gate/embedding
            assert reached[id(p)] == {int(owner.group(2))}, names[id(p)]
    for p in shared:
        assert len(reached[id(p)]) >= 2, f"shared {names[id(p)]} reached by {reached[id(p)]}"


def test_independent_shares_nothing_and_runs_only_the_task_column():
    model = build("independent", "mlp", IMAGE)
    assert model.shared_parameters() == []
    assert model.last_shared_parameters() == []
    calls = []
    for t, column in enumerate(model.columns):
        column.register_forward_hook(lambda *_, t=t: calls.append(t))
    model(batch(IMAGE), 2)
    assert calls == [2]


def test_hard_sharing_representation_head_and_last_shared_layer():
    model = build("hard_sharing", "conv", IMAGE)
    assert model.has_shared_representation
    x = batch(IMAGE)
    z = model.representation(x)
    assert z.shape == (BATCH, model.trunk.out_features)
    for t, out in enumerate(model.forward_all(x)):
        torch.testing.assert_close(out, model.head(z, t), rtol=0, atol=0)
    fc = model.trunk.blocks[-1][1]
    assert isinstance(fc, torch.nn.Linear)
    assert [id(p) for p in model.last_shared_parameters()] == [id(fc.weight), id(fc.bias)]


def test_forward_all_runs_shared_trunk_and_experts_once():
    calls = []
    for name, attribute in (("hard_sharing", "trunk"), ("mmoe", "experts")):
        model = build(name, "mlp", IMAGE)
        module = getattr(model, attribute)
        modules = module if isinstance(module, torch.nn.ModuleList) else [module]
        calls.clear()
        for m in modules:
            m.register_forward_hook(lambda *_: calls.append(1))
        model.forward_all(batch(IMAGE))
        assert len(calls) == len(modules), name


# ------------------------------------------------------------------ conditioned


@pytest.mark.parametrize("descriptor", ["onehot", "embedding"])
@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("backbone", ["mlp", "conv4"])
def test_conditioned_task_descriptor_changes_the_output(descriptor, conditioning, backbone):
    # shared head and equal class counts: any difference between tasks comes from z_t alone
    model = build(
        "conditioned_film",
        backbone,
        IMAGE,
        task_outputs=[4, 4, 4],
        descriptor=descriptor,
        conditioning=conditioning,
        heads="shared",
        layers=[1],
    )
    x = batch(IMAGE)
    outs = model.forward_all(x)
    for s in range(3):
        for t in range(s):
            assert (outs[s] - outs[t]).abs().max() > 1e-4, (s, t)


@pytest.mark.parametrize("conditioning", ["additive", "multiplicative", "film"])
def test_conditioned_with_zero_projections_is_the_plain_network(conditioning):
    model = build("conditioned_film", "conv", IMAGE, conditioning=conditioning, heads="shared")
    with torch.no_grad():
        for p in model.conditions.parameters():
            p.zero_()
    x = batch(IMAGE)
    plain = model.heads[0](model.backbone(x))
    for t, n in enumerate(TASK_OUTPUTS):
        torch.testing.assert_close(model(x, t), plain[:, :n], rtol=0, atol=1e-6)


def test_conditioned_shared_head_gives_task_t_its_first_units():
    model = build("conditioned_concat_shared_layer1", "mlp", VECTOR)
    assert model.heads[0][-1].out_features == max(TASK_OUTPUTS)
    x = batch(VECTOR)
    h = model.backbone.blocks[0](x)
    h = model.conditions["1"](h, model.task_descriptor(1, BATCH))
    full = model.heads[0](model.backbone.blocks[1](h))
    torch.testing.assert_close(model(x, 1), full[:, :5], rtol=0, atol=0)


def test_film_known_answer():
    film = TaskConditioning("film", descriptor_dim=2, in_shape=(3, 2, 2), z_norm2=1.0)
    with torch.no_grad():
        film.scale.weight.copy_(torch.tensor([[0.0, 1.0], [0.0, 2.0], [0.0, -1.0]]))
        film.shift.weight.copy_(torch.tensor([[0.0, 0.5], [0.0, 0.0], [0.0, -2.0]]))
    h = torch.ones(1, 3, 2, 2)
    out = film(h, torch.tensor([[0.0, 1.0]]))  # task 1: gamma = 1 + [1, 2, -1], beta = [.5, 0, -2]
    expected = torch.tensor([2.5, 3.0, -2.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    torch.testing.assert_close(out, expected)


def test_concat_broadcasts_descriptor_as_channels_and_features():
    concat = TaskConditioning("concat", descriptor_dim=2, in_shape=(3, 4, 5), z_norm2=1.0)
    z = torch.tensor([[7.0, -1.0]])
    out = concat(torch.zeros(1, 3, 4, 5), z)
    assert out.shape == (1, 5, 4, 5)
    assert (out[0, 3] == 7).all() and (out[0, 4] == -1).all() and (out[0, :3] == 0).all()
    flat = TaskConditioning("concat", descriptor_dim=2, in_shape=(60,), z_norm2=1.0)
    out = flat(torch.zeros(1, 3, 4, 5), z)  # a vector block flattens its input first
    assert out.shape == (1, 62) and out[0, -2:].tolist() == [7.0, -1.0]


def test_conditioned_multiplicative_gate_starts_near_one():
    model = build("conditioned_multiplicative", "conv4", IMAGE, descriptor="embedding")
    with torch.no_grad():
        offsets = torch.cat(
            [
                condition.scale(model.task_descriptor(t, 1)).flatten()
                for condition in model.conditions.values()
                for t in range(len(TASK_OUTPUTS))
            ]
        )  # gate - 1, designed to have std 0.1 per entry
    assert offsets.numel() == 3 * (1 + 6 + 6 + 6)
    assert offsets.abs().max() < 0.5 and 0.05 < offsets.std() < 0.2


# ------------------------------------------------------------------ cross-stitch


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize(
    ("backbone", "shape"), [(b, IMAGE) for b in BACKBONES] + [("mlp_bn", VECTOR)]
)
def test_cross_stitch_with_alpha_self_one_equals_independent(backbone, shape, per_channel):
    stitched = build("cross_stitch", backbone, shape, alpha_self=1.0, per_channel=per_channel)
    independent = build("independent", backbone, shape, head_hidden=[])
    state = {k: v for k, v in stitched.state_dict().items() if not k.startswith("units.")}
    independent.load_state_dict(state)
    x = batch(shape)
    for a, b in zip(stitched.forward_all(x), independent.forward_all(x), strict=True):
        assert torch.equal(a, b)


def test_cross_stitch_unit_init_and_mixing_known_answer():
    unit = CrossStitchUnit(num_tasks=3, alpha_self=0.9)
    expected = torch.tensor([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    torch.testing.assert_close(unit.alpha.detach(), expected)
    h = torch.stack([torch.full((2, 4), v) for v in (1.0, 2.0, 3.0)])
    out = unit(h)
    # 0.9*1 + 0.05*(2+3) = 1.15;  0.9*2 + 0.05*(1+3) = 2.0;  0.9*3 + 0.05*(1+2) = 2.85
    for t, v in enumerate((1.15, 2.0, 2.85)):
        torch.testing.assert_close(out[t], torch.full((2, 4), v))
    per_channel = CrossStitchUnit(num_tasks=2, alpha_self=0.9, channels=3)
    with torch.no_grad():
        per_channel.alpha[1] = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # channel 1 swaps tasks
    h = torch.stack([torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)])
    out = per_channel(h)
    assert torch.allclose(out[0, :, 0], torch.tensor(0.1)) and (out[0, :, 1] == 1).all()
    assert torch.allclose(out[1, :, 2], torch.tensor(0.9)) and (out[1, :, 1] == 0).all()


def test_cross_stitch_blocks_after_last_unit_are_task_specific():
    model = build("cross_stitch", "conv", IMAGE, layers=[0])
    shared = {id(p) for p in model.shared_parameters()}
    for column in model.columns:
        assert all(id(p) in shared for p in column.blocks[0].parameters())
        assert not any(id(p) in shared for b in column.blocks[1:] for p in b.parameters())


# ------------------------------------------------------------------ mmoe


def test_mmoe_gates_sum_to_one_and_forward_is_the_gated_mixture():
    model = build("mmoe", "conv4", IMAGE)
    x = batch(IMAGE)
    experts = [expert(x) for expert in model.experts]
    assert not model.has_shared_representation
    for t in range(len(TASK_OUTPUTS)):
        gates = model.gate_weights(x, t)
        assert gates.shape == (BATCH, 3) and (gates > 0).all()
        torch.testing.assert_close(gates.sum(-1), torch.ones(BATCH))
        mixture = sum(gates[:, e : e + 1] * experts[e] for e in range(3))
        torch.testing.assert_close(model(x, t), model.towers[t](mixture))


# ------------------------------------------------------------------ backbones


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_forward_is_flattened_composition_of_blocks(name):
    net = BACKBONES[name](IMAGE)
    x = batch(IMAGE)
    h = x
    for i, block in enumerate(net.blocks):
        assert (
            tuple(h.flatten(1).shape[1:] if len(net.block_in_shapes[i]) == 1 else h.shape[1:])
            == net.block_in_shapes[i]
        )
        h = block(h)
        assert tuple(h.shape[1:]) == net.block_out_shapes[i]
    assert net(x).shape == (BATCH, net.out_features)
    torch.testing.assert_close(net(x), h.flatten(1), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mlp", "conv", "lenet", "conv4"])
def test_widened_backbone_takes_extra_inputs_per_block(name):
    net = BACKBONES[name](IMAGE)
    extra = [2] * len(net.blocks)
    wide = net.widened(extra)
    assert wide.block_out_shapes == net.block_out_shapes
    c, *rest = net.block_in_shapes[-1]
    h = torch.zeros(BATCH, c + 2, *rest)
    assert wide.blocks[-1](h).shape[1:] == net.blocks[-1](h[:, :c]).shape[1:]


def test_default_parameter_counts_known_answers():
    # lenet: conv 1->10 k5 (260) + conv 10->20 k5 (5020) + fc 320->50 (16050)
    assert sum(p.numel() for p in LeNet(IMAGE).parameters()) == 21330
    # conv4: (1*64*9 + 64 + 128 BN) + 3 * (64*64*9 + 64 + 128)
    assert sum(p.numel() for p in Conv4(IMAGE).parameters()) == 768 + 3 * 37056
    # mlp: 784*256 + 256 + 256*256 + 256
    assert sum(p.numel() for p in MLP(IMAGE).parameters()) == 266752
    assert LeNet(IMAGE).out_features == 50 and Conv4(IMAGE).out_features == 64


@pytest.mark.parametrize("cls", [ConvNet, LeNet, Conv4])
def test_image_backbones_refuse_vector_inputs(cls):
    with pytest.raises(
        ValueError, match=rf"backbone={cls.schema.name}: needs an image input.*\(12,\)"
    ):
        cls(VECTOR)
    with pytest.raises(ValueError, match="too small"):
        cls((1, 3, 3))
    assert MLP(VECTOR)(torch.zeros(2, 12)).shape == (2, 256)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MLP(IMAGE, norm="group"), "backbone.norm: invalid value 'group'"),
        (lambda: MLP(IMAGE, hidden=[]), "backbone.hidden: need at least one"),
        (lambda: MLP(IMAGE, activation="swish"), "backbone.activation: unknown"),
        (lambda: ConvNet(IMAGE, kernel_size=4), "backbone.kernel_size"),
        (lambda: build("conditioned_film", "conv4", IMAGE, layers=[4]), "model.layers: .*4"),
        (lambda: build("cross_stitch", "mlp", IMAGE, layers="some"), "model.layers: invalid"),
        (lambda: build("conditioned_film", "mlp", IMAGE, conditioning="x"), "model.conditioning"),
        (lambda: build("cross_stitch", "mlp", IMAGE, alpha_self=1.5), "model.alpha_self"),
        (lambda: build("mmoe", "mlp", IMAGE, num_experts=0), "model.num_experts"),
        (lambda: build("hard_sharing", "mlp", IMAGE, task_outputs=[3, 0]), "task_outputs"),
    ],
)
def test_bad_options_raise_one_line_value_errors(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ configs

CONF = Path(__file__).resolve().parents[1] / "mtl_cli" / "conf"
SCHEMAS = [
    obj
    for module in (model_schemas, backbone_schemas)
    for obj in vars(module).values()
    if dataclasses.is_dataclass(obj) and "group" in vars(obj)
]


@pytest.fixture
def hydra_conf():
    from mtl_cli.config import register_schemas

    GlobalHydra.instance().clear()
    register_schemas()  # the registry's schema choices, as `mtl train` composes them
    with initialize_config_dir(str(CONF), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


@pytest.mark.parametrize(
    "model", [c.name for c in schema_choices("model") if "multitask" in c.fact("families", ())]
)
@pytest.mark.parametrize(
    "backbone",
    [c.name for c in schema_choices("backbone") if c.fact("output", "vector") == "vector"],
)
def test_configs_compose_and_instantiate_like_the_trainer(hydra_conf, model, backbone):
    cfg = compose(overrides=[f"+model={model}", f"+backbone={backbone}"])
    shape = IMAGE
    net = instantiate(
        cfg.model,
        task_outputs=[3, 2],
        input_shape=shape,
        make_backbone=lambda: instantiate(cfg.backbone, input_shape=shape),
    )
    assert type(net).__module__ == f"mtl_cli.models.{model}"
    assert [o.shape for o in net.forward_all(torch.zeros(2, *shape))] == [(2, 3), (2, 2)]


def test_config_overrides_reach_the_model(hydra_conf):
    cfg = compose(
        overrides=[
            "+model=conditioned",
            "+backbone=conv4",
            "model.layers=[0,2]",
            "model.conditioning=concat",
            "backbone.hidden_channels=8",
        ]
    )
    net = instantiate(
        cfg.model,
        task_outputs=[3, 2],
        input_shape=IMAGE,
        make_backbone=lambda: instantiate(cfg.backbone, input_shape=IMAGE),
    )
    assert net.layers == [0, 2] and net.conditioning == "concat"
    assert net.backbone.blocks[2][0].in_channels == 8 + 2  # one-hot of 2 tasks as channels


def test_every_model_and_backbone_is_a_registry_choice_citing_its_paper():
    for cls in SCHEMAS:
        choice = find(cls.group, cls.name)
        assert choice is not None and choice.schema is cls and choice.preset is None, cls.name
        assert re.search(r"\(.*\d{4}.*\)\.?$", choice.description), choice.description
        assert cls.group in ("model", "backbone")
    conditioned = {f.name: f for f in dataclasses.fields(model_schemas.ConditionedModel)}
    assert tuple(conditioned["conditioning"].metadata["choices"]) == CONDITIONINGS
    assert backbone_schemas.MLPBackbone.inputs == ("image", "vector")
    assert all(
        cls.inputs == ("image",) for cls in SCHEMAS if cls.group == "backbone" and cls.name != "mlp"
    )
