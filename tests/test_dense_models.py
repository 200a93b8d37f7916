"""Dense backbones (segnet, resnet_dilated) and the sharing models that serve per-pixel tasks:
shapes at the input resolution, gradient routing, unpooling and dilation known answers,
SegNet-MTAN masks, cross-stitch = independent at alpha_self = 1, refusals."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from torch import nn

from mtl_cli.models.cgc import CGC
from mtl_cli.models.conditioned import Conditioned
from mtl_cli.models.cross_stitch import CrossStitch
from mtl_cli.models.dense_backbones import ResNetDilated, SegNet
from mtl_cli.models.dselect_k import DSelectK
from mtl_cli.models.hard_sharing import HardSharing
from mtl_cli.models.independent import Independent
from mtl_cli.models.ltb import LTB
from mtl_cli.models.mmoe import MMoE
from mtl_cli.models.mtan import MTAN
from mtl_cli.models.ple import PLE
from mtl_cli.registry import find, schema_choices

TASK_OUTPUTS = [7, 1, 3]  # segmentation classes, depth, normals
BATCH = 2
SQUARE, WIDE = (3, 32, 32), (3, 32, 48)

# small versions, so the file stays fast on one thread
BACKBONES = {
    "segnet": lambda shape: SegNet(shape, channels=[4, 8, 8], convs_per_block=[1, 2, 1]),
    "resnet_dilated": lambda shape: ResNetDilated(
        shape, channels=[4, 8, 8, 8], blocks_per_stage=[1, 1, 1, 1], aspp_channels=4
    ),
}
MODELS = {
    "independent": (Independent, {}),
    "hard_sharing": (HardSharing, {}),
    "cross_stitch": (CrossStitch, {}),
    "cross_stitch_channel": (CrossStitch, {"per_channel": True}),
    "mtan": (MTAN, {}),
}
CASES = [(m, b) for m in MODELS for b in BACKBONES]
IDS = [f"{m}-{b}" for m, b in CASES]
# task-indexed module lists: heads.t, columns.t, attention.t, dense.*_units.t
TASK_INDEXED = re.compile(r"^(?:heads|columns|attention|dense\.\w+_units)\.(\d+)\.")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def build(model: str, backbone: str, shape=SQUARE, task_outputs=TASK_OUTPUTS, **over):
    cls, options = MODELS[model]
    return cls(task_outputs, shape, lambda: BACKBONES[backbone](shape), **{**options, **over})


@pytest.mark.parametrize("shape", [SQUARE, WIDE], ids=["32x32", "32x48"])
@pytest.mark.parametrize(("model_name", "backbone"), CASES, ids=IDS)
def test_every_task_output_is_a_map_at_the_input_resolution(model_name, backbone, shape):
    torch.manual_seed(0)
    model = build(model_name, backbone, shape)
    x = torch.rand(BATCH, *shape)
    for train in (True, False):
        model.train(train)
        outs = model.forward_all(x)
        assert [tuple(o.shape) for o in outs] == [(BATCH, n, *shape[1:]) for n in TASK_OUTPUTS]
        assert all(torch.isfinite(o).all() for o in outs)
    assert tuple(model(x, 2).shape) == (BATCH, 3, *shape[1:])


@pytest.mark.parametrize(("model_name", "backbone"), CASES, ids=IDS)
def test_gradient_routing_matches_the_parameter_partition(model_name, backbone):
    """Task t's loss reaches the shared parameters and only task t's own specific ones; every
    shared parameter is reached by more than one task."""
    torch.manual_seed(0)
    model = build(model_name, backbone)
    shared = {id(p) for p in model.shared_parameters()}
    named = dict(model.named_parameters())
    owner = {}
    for name, p in named.items():
        match = TASK_INDEXED.match(name)
        owner[name] = None if id(p) in shared else int(match.group(1)) if match else "orphan"
    assert "orphan" not in owner.values(), owner
    if model_name == "independent":
        assert not shared
    x = torch.rand(BATCH, *SQUARE)
    outs = model.forward_all(x)
    reached: dict[str, set[int]] = {name: set() for name in named}
    for t, out in enumerate(outs):
        grads = torch.autograd.grad(
            out.square().mean(), list(named.values()), retain_graph=True, allow_unused=True
        )
        for (name, _), g in zip(named.items(), grads, strict=True):
            if g is not None and g.abs().sum() > 0:
                reached[name].add(t)
    for name, tasks in reached.items():
        if owner[name] is None:
            assert len(tasks) >= 2, (name, tasks)
        else:
            assert tasks == {owner[name]}, (name, tasks)


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_last_shared_layer_is_the_trunks_last_conv(backbone):
    model = build("hard_sharing", backbone)
    last = [m for m in model.trunk.modules() if isinstance(m, nn.Conv2d)][-1]
    expected = [p for p in (last.weight, last.bias) if p is not None]
    assert [id(p) for p in model.last_shared_parameters()] == [id(p) for p in expected]
    assert model.has_shared_representation and not build("mtan", backbone).has_shared_representation
    x = torch.rand(BATCH, *SQUARE)
    model.eval()
    z = model.representation(x)
    assert z.dim() == 4 and z.shape[1] == model.trunk.out_features
    torch.testing.assert_close(model.head(z, 0), model(x, 0))


@pytest.mark.parametrize(
    ("backbone", "shape", "factor"),
    [("segnet", (3, 32, 36), 8), ("resnet_dilated", (3, 30, 32), 8)],
)
def test_input_size_not_divisible_is_refused_in_one_line(backbone, shape, factor):
    with pytest.raises(ValueError, match=rf"backbone={backbone}: .* divisible by {factor}") as e:
        BACKBONES[backbone](shape)
    assert "\n" not in str(e.value)


def test_segnet_unpooling_puts_each_maximum_back_where_it_was():
    """One level with identity convs: pool then unpool keeps each 2x2 window's maximum at its
    argmax position and zeros elsewhere."""
    net = SegNet((1, 4, 4), channels=[1], convs_per_block=[1])
    net.blocks[0] = nn.Identity()
    net.blocks[1] = nn.Identity()
    x = torch.tensor(
        [[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 1.0], [0.0, 0.0, 6.0, 7.0], [9.0, 2.0, 3.0, 2.0]]
    ).reshape(1, 1, 4, 4)
    expected = torch.tensor(
        [[0.0, 5.0, 0.0, 0.0], [0.0, 0.0, 8.0, 0.0], [0.0, 0.0, 0.0, 7.0], [9.0, 0.0, 0.0, 0.0]]
    ).reshape(1, 1, 4, 4)
    torch.testing.assert_close(net(x), expected)
    assert net.block_in_shapes == [(1, 4, 4), (1, 2, 2)]
    assert net.block_out_shapes == [(1, 2, 2), (1, 4, 4)]


def test_segnet_blocks_mirror_the_encoder():
    net = SegNet((3, 64, 32), channels=[16, 32, 64], convs_per_block=[2, 2, 3])
    assert net.block_out_shapes == [
        (16, 32, 16),
        (32, 16, 8),
        (64, 8, 4),
        (32, 16, 8),
        (16, 32, 16),
        (16, 64, 32),
    ]
    assert [len(b.rest) + 1 for b in net.blocks] == [2, 2, 3, 3, 2, 2]
    head = net.make_head([], 5)
    assert [(m.kernel_size, m.in_channels, m.out_channels) for m in head] == [
        ((3, 3), 16, 16),
        ((1, 1), 16, 5),
    ]


@pytest.mark.parametrize("rate", [1, 2, 3])
def test_aspp_branch_with_rate_d_sees_nine_pixels_d_apart(rate):
    """The head's own 3x3 branch at rate d, weights set to 1, on a delta in one channel."""
    net = ResNetDilated((3, 64, 64), aspp_rates=[1, 2, 3], norm="none")
    head = net.make_head([], 2)
    conv = head.branches[[1, 2, 3].index(rate) + 1][0]
    assert conv.dilation == (rate, rate) and conv.kernel_size == (3, 3)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
        delta = torch.zeros(1, conv.in_channels, 11, 11)
        delta[0, 0, 5, 5] = 1.0
        hits = conv(delta)[0, 0].nonzero().tolist()
    expected = [[5 + i * rate, 5 + j * rate] for i in (-1, 0, 1) for j in (-1, 0, 1)]
    assert sorted(hits) == sorted(expected)


@pytest.mark.parametrize(("output_stride", "dilations"), [(8, [1, 1, 2, 4]), (16, [1, 1, 1, 2])])
def test_resnet_dilated_trades_stride_for_dilation(output_stride, dilations):
    net = ResNetDilated((3, 64, 64), output_stride=output_stride)
    assert [stage[0].conv1.dilation[0] for stage in net.blocks[1:]] == dilations
    assert net.block_out_shapes[-1] == (64, 64 // output_stride, 64 // output_stride)
    size = 64 // output_stride
    assert tuple(net(torch.rand(1, 3, 64, 64)).shape) == (1, 64, size, size)
    with pytest.raises(ValueError, match="output_stride: 16 needs at least 3 stages"):
        ResNetDilated((3, 64, 64), channels=[8, 8], blocks_per_stage=[1, 1], output_stride=16)


def test_segnet_mtan_masks_lie_in_the_open_unit_interval_and_differ_between_tasks():
    torch.manual_seed(0)
    model = build("mtan", "segnet")
    x = torch.rand(BATCH, *SQUARE)
    masks = [model.attention_masks(x, t) for t in range(len(TASK_OUTPUTS))]
    # encoder levels (before pooling), then decoder levels, deepest first
    shapes = [(4, 32, 32), (8, 16, 16), (8, 8, 8), (8, 8, 8), (4, 16, 16), (4, 32, 32)]
    assert [tuple(m.shape[1:]) for m in masks[0]] == shapes
    for task_masks in masks:
        for m in task_masks:
            assert (m > 0).all() and (m < 1).all()
    assert not torch.allclose(masks[0][-1], masks[1][-1])
    assert len(model.dense.encoder_units) == len(TASK_OUTPUTS)


def test_mtan_segnet_attends_all_levels_only():
    with pytest.raises(ValueError, match="model.attention_layers: SegNet-MTAN attends every"):
        build("mtan", "segnet", attention_layers=[1])


@pytest.mark.parametrize("backbone", list(BACKBONES))
@pytest.mark.parametrize("per_channel", [False, True])
def test_cross_stitch_with_identity_units_is_independent_columns(backbone, per_channel):
    torch.manual_seed(0)
    independent = build("independent", backbone)
    stitched = build("cross_stitch", backbone, alpha_self=1.0, per_channel=per_channel)
    missing, unexpected = stitched.load_state_dict(independent.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("units.") for k in missing)
    x = torch.rand(BATCH, *SQUARE)
    for train in (True, False):
        independent.train(train)
        stitched.train(train)
        for a, b in zip(independent.forward_all(x), stitched.forward_all(x), strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("cls", "options"),
    [
        (MMoE, {}),
        (CGC, {}),
        (PLE, {}),
        (DSelectK, {}),
        (LTB, {}),
        (Conditioned, {}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_models_built_on_vectors_refuse_a_map_backbone(cls, options):
    name = next(
        c.name for c in schema_choices("model") if c.fact("_target_").endswith(cls.__name__)
    )
    with pytest.raises(
        ValueError, match=rf"^model={name}: backbone=segnet returns a feature map"
    ) as e:
        cls(TASK_OUTPUTS, SQUARE, lambda: BACKBONES["segnet"](SQUARE), **options)
    allowed = str(e.value).split("allowed: ")[1].split(", ")
    assert "\n" not in str(e.value) and "mlp" in allowed and "segnet" not in allowed


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_head_hidden_is_refused_on_dense_heads(backbone):
    with pytest.raises(ValueError, match=rf"model.head_hidden: backbone={backbone} builds its own"):
        build("hard_sharing", backbone, head_hidden=[8])


def test_dense_schemas_declare_a_map_output_and_the_dense_models_serve_the_family():
    outputs = {c.name: c.fact("output", "vector") for c in schema_choices("backbone")}
    assert outputs["segnet"] == outputs["resnet_dilated"] == "map"
    assert outputs["mlp"] == outputs["conv4"] == "vector"
    dense = {c.name for c in schema_choices("model") if "dense" in c.fact("families", ())}
    assert dense == {"independent", "hard_sharing", "cross_stitch", "mtan"}
    assert find("backbone", "segnet").schema().channels == [16, 32, 64, 128]


# ------------------------------------------------------------------ end to end

DENSE_RUN = (
    "trainer=debug",
    "device=cpu",
    "trainer.threads=1",
    "task=dense/scenes",
    "task.image_size=32",
    "task.train_size=16",
    "task.val_size=8",
    "task.test_size=8",
    "backbone.channels=[8,8,8,8]",
)


@pytest.mark.parametrize(
    ("model", "backbone", "loss"),
    [
        ("mtan", "segnet", "pcgrad"),
        ("cross_stitch", "resnet_dilated", "gradnorm"),
        ("hard_sharing", "segnet", "mgda"),
    ],
)
def test_dense_models_train_end_to_end(tmp_path, model, backbone, loss):
    from mtl_cli.config import compose
    from mtl_cli.run import train

    small = "convs_per_block" if backbone == "segnet" else "blocks_per_stage"
    overrides = [
        f"model={model}",
        f"backbone={backbone}",
        f"loss={loss}",
        f"backbone.{small}=[1,1,1,1]",
    ]
    result = train(compose([f"paths.output_dir={tmp_path}", *DENSE_RUN, *overrides]))
    assert result["status"] == "finished"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"] and all(math.isfinite(v) for v in metrics["test"].values())
