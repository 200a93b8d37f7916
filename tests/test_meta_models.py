"""Meta-learners: shapes, known answers (ProtoNet, one MAML step, first-order MAML), no query
leakage in the black-box learners, overfitting a fixed episode batch, and config composition."""

import dataclasses
from pathlib import Path

import hydra.utils
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from torch import nn

from mtl_cli.data.episodes import EpisodeSampler
from mtl_cli.data.sinusoid import SinusoidTasks
from mtl_cli.models.meta import MAML, MANN, SNAIL, ProtoNet
from mtl_cli.schemas import meta_model

TINY_SNAIL = {"key_sizes": [8, 8], "value_sizes": [4, 4], "filters": 8, "dense_blocks": 3}


class Flat(nn.Module):
    """Identity embedding (flattened input) with the backbone interface."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def mlp(features: int, hidden: int = 16, batch_norm: bool = False):
    def make() -> nn.Module:
        layers = [nn.Flatten(), nn.Linear(features, hidden)]
        layers += [nn.BatchNorm1d(hidden)] if batch_norm else []
        net = nn.Sequential(*layers, nn.ReLU())
        net.out_features = hidden
        return net

    return make


def episode(ways=3, shots=1, queries=2, batch=4, seed=0, size=4):
    images = torch.rand(12, 6, size, size, generator=torch.Generator().manual_seed(99))
    sampler = EpisodeSampler(images, ways, shots, queries)
    return sampler.sample(batch, torch.Generator().manual_seed(seed))


def learners(kind: str, features: int = 16):
    shape = (4, 4) if kind == "classification" else (1,)
    make = mlp(features)
    built = [
        MANN(shape, 3, kind, make, hidden_size=16, num_layers=2),
        MANN(shape, 3, kind, make, hidden_size=16, encoder="backbone"),
        SNAIL(shape, 3, kind, make, **TINY_SNAIL),
        MAML(shape, 3, kind, make, inner_lr=0.1),
    ]
    if kind == "classification":
        built.append(ProtoNet(shape, 3, kind, make))
    return built


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_output_shapes(kind):
    torch.manual_seed(0)
    if kind == "classification":
        ep = episode()
        expected = (4, 6, 3)
    else:
        ep = SinusoidTasks(5, 7).sample(4, torch.Generator().manual_seed(0))
        expected = (4, 7, 1)
    for model in learners(kind, 16 if kind == "classification" else 1):
        out = model(ep.support_x, ep.support_y, ep.query_x)
        assert out.shape == expected, type(model).__name__
        model.loss(out, ep.query_y).backward()


def test_protonet_hand_example():
    model = ProtoNet((2,), 2, "classification", lambda: Flat(2))
    support_x = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [2.0, 0.0]]])
    support_y = torch.tensor([[0, 1, 0]])  # class 0 prototype = mean((0,0), (2,0)) = (1, 0)
    query_x = torch.tensor([[[1.0, 1.0], [3.0, 3.0]]])
    logits = model(support_x, support_y, query_x)
    expected = -torch.tensor([[[0 + 1, 4 + 9], [4 + 9, 0 + 1]]], dtype=torch.float32)
    assert torch.allclose(logits, expected, atol=1e-5)


def test_protonet_refuses_regression():
    with pytest.raises(ValueError, match="kind: ProtoNet does not do 'regression'"):
        ProtoNet((1,), 1, "regression", lambda: Flat(1))


def linear_maml(**options) -> MAML:
    model = MAML((3,), 1, "regression", lambda: Flat(3), **options)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.net.parameters():
            p.normal_()
    return model


def regression_batch(batch=2, support=5, query=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, support, 3, generator=g),
        torch.randn(batch, support, 1, generator=g),
        torch.randn(batch, query, 3, generator=g),
        torch.randn(batch, query, 1, generator=g),
    )


def hand_step(w, b, x, y, lr):
    """One SGD step on L = mean((x w + b - y)^2): grad_w = 2/S x^T r, grad_b = 2/S sum r."""
    r = x @ w + b - y  # [S, 1]
    s = x.shape[0]
    return w - lr * 2 / s * x.T @ r, b - lr * 2 / s * r.sum(0)


def test_maml_one_step_matches_hand_update():
    model = linear_maml(inner_lr=0.05, inner_steps=1)
    sx, sy, qx, _ = regression_batch()
    w, b = model.net[1].weight.detach().T, model.net[1].bias.detach()  # [3, 1], [1]
    out = model(sx, sy, qx)
    adapted = model.adapted_parameters(sx, sy, inner_steps=1)
    for i in range(2):
        w1, b1 = hand_step(w, b, sx[i], sy[i], 0.05)
        assert torch.allclose(adapted["1.weight"][i], w1.T, atol=1e-5)
        assert torch.allclose(adapted["1.bias"][i], b1, atol=1e-5)
        assert torch.allclose(out[i], qx[i] @ w1 + b1, atol=1e-5)
    # two steps: the hand update applied twice; zero steps: the initial weights
    w2, b2 = hand_step(*hand_step(w, b, sx[0], sy[0], 0.05), sx[0], sy[0], 0.05)
    assert torch.allclose(model(sx, sy, qx, inner_steps=2)[0], qx[0] @ w2 + b2, atol=1e-5)
    assert torch.allclose(model(sx, sy, qx, inner_steps=0)[0], qx[0] @ w + b, atol=1e-5)


def test_maml_second_order_term_and_first_order_approximation():
    """Outer gradient: (I - lr H_s) grad L_q(theta') exactly; first order drops the H_s term."""
    lr = 0.1
    sx, sy, qx, qy = regression_batch(batch=1)
    x, y, xq, yq = sx[0], sy[0], qx[0], qy[0]
    z, zq = torch.cat([x, torch.ones(5, 1)], 1), torch.cat([xq, torch.ones(4, 1)], 1)
    grads = {}
    for first_order in (False, True):
        model = linear_maml(inner_lr=lr, first_order=first_order)
        theta = torch.cat([model.net[1].weight.detach()[0], model.net[1].bias.detach()])[:, None]
        loss = model.loss(model(sx, sy, qx), qy)
        loss.backward()
        grads[first_order] = torch.cat([model.net[1].weight.grad[0], model.net[1].bias.grad])
    theta1 = theta - lr * 2 / 5 * z.T @ (z @ theta - y)
    g_query = 2 / 4 * zq.T @ (zq @ theta1 - yq)  # grad of the query loss at theta'
    hessian = 2 / 5 * z.T @ z
    exact = (torch.eye(4) - lr * hessian) @ g_query
    assert torch.allclose(grads[False], exact[:, 0], atol=1e-4)
    assert torch.allclose(grads[True], g_query[:, 0], atol=1e-4)
    assert (grads[False] - grads[True]).abs().max() > 1e-2  # the two really differ here


def test_maml_eval_mode_and_meta_sgd():
    model = linear_maml(inner_lr=0.05, inner_steps=1, eval_inner_steps=3, eval_inner_lr=0.02)
    sx, sy, qx, qy = regression_batch()
    model.eval()
    w, b = model.net[1].weight.detach().T, model.net[1].bias.detach()
    w3, b3 = w, b
    for _ in range(3):
        w3, b3 = hand_step(w3, b3, sx[1], sy[1], 0.02)
    with torch.no_grad():
        out = model(sx, sy, qx)  # eval: 3 steps at lr 0.02, also under no_grad
    assert torch.allclose(out[1], qx[1] @ w3 + b3, atol=1e-5)
    # Meta-SGD: learned rates start at inner_lr (same output as MAML) and receive gradients
    plain, meta_sgd = linear_maml(inner_lr=0.05), linear_maml(inner_lr=0.05, learn_inner_lr=True)
    assert torch.allclose(plain(sx, sy, qx), meta_sgd(sx, sy, qx), atol=1e-6)
    meta_sgd.loss(meta_sgd(sx, sy, qx), qy).backward()
    assert all(r.grad is not None and r.grad.abs().sum() > 0 for r in meta_sgd.inner_lrs)
    with pytest.raises(ValueError, match="eval_inner_lr: must be null with learn_inner_lr"):
        linear_maml(learn_inner_lr=True, eval_inner_lr=0.1)


def test_maml_batch_norm_uses_each_episodes_batch_statistics():
    model = MAML((4, 4), 3, "classification", mlp(16, batch_norm=True), inner_lr=0.1)
    assert not any(isinstance(m, nn.BatchNorm1d) and m.track_running_stats for m in model.modules())
    ep = episode(batch=3)
    for train in (True, False):
        model.train(train)
        together = model(ep.support_x, ep.support_y, ep.query_x)
        alone = model(ep.support_x[1:2], ep.support_y[1:2], ep.query_x[1:2])
        assert torch.allclose(together[1:2], alone, atol=1e-5)


def test_maml_second_order_gradient_through_batch_norm_is_exact():
    """A bias right before batch norm cancels out, so its meta-gradient is exactly zero, second
    order included (torch.func.vmap gets this wrong: pytorch/functorch#534)."""
    torch.manual_seed(0)
    model = MAML((4, 4), 3, "classification", mlp(16, batch_norm=True), inner_lr=0.4)
    ep = episode(batch=3)
    model.loss(model(ep.support_x, ep.support_y, ep.query_x), ep.query_y).backward()
    pre_norm_bias, after_norm = model.net[0][1].bias.grad, model.net[0][2].bias.grad
    assert pre_norm_bias.abs().max() < 1e-6
    assert after_norm.abs().max() > 1e-3


@pytest.mark.parametrize("name", ["mann", "snail"])
def test_black_box_queries_do_not_leak_but_support_labels_matter(name):
    torch.manual_seed(0)
    shape, make = (4, 4), mlp(16)
    if name == "mann":
        model = MANN(shape, 3, "classification", make, hidden_size=16)
    else:
        model = SNAIL(shape, 3, "classification", make, **TINY_SNAIL)
    ep = episode(ways=3, shots=2, queries=2)
    base = model(ep.support_x, ep.support_y, ep.query_x)
    changed = ep.query_x.clone()
    changed[:, 1:] = torch.rand_like(changed[:, 1:])  # every query but the first
    out = model(ep.support_x, ep.support_y, changed)
    assert torch.allclose(out[:, 0], base[:, 0], atol=1e-6)
    assert not torch.allclose(out[:, 1:], base[:, 1:], atol=1e-4)
    alone = model(ep.support_x, ep.support_y, ep.query_x[:, 3:4])  # one query at a time
    assert torch.allclose(alone[:, 0], base[:, 3], atol=1e-5)
    relabelled = ep.support_y.clone()
    relabelled[:, 0] = (relabelled[:, 0] + 1) % 3
    assert not torch.allclose(model(ep.support_x, relabelled, ep.query_x), base, atol=1e-4)


def overfit(model, ep, steps=100, lr=1e-2):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = model.loss(model(ep.support_x, ep.support_y, ep.query_x), ep.query_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


@pytest.mark.parametrize("name", ["mann", "snail", "maml", "protonet"])
def test_each_learner_overfits_a_fixed_episode_batch(name):
    torch.manual_seed(0)
    make, shape = mlp(16, hidden=32), (4, 4)
    model = {
        "mann": lambda: MANN(shape, 3, "classification", make, hidden_size=32),
        "snail": lambda: SNAIL(shape, 3, "classification", make, **TINY_SNAIL),
        "maml": lambda: MAML(shape, 3, "classification", make, inner_lr=0.1),
        "protonet": lambda: ProtoNet(shape, 3, "classification", make),
    }[name]()
    first, last = overfit(model, episode(ways=3, shots=1, queries=2, batch=4))
    assert last < 0.2 * first, (first, last)


def test_bad_episode_shapes_are_refused():
    model = ProtoNet((4, 4), 3, "classification", mlp(16))
    ep = episode()
    with pytest.raises(ValueError, match="support_y: expected int64"):
        model(ep.support_x, ep.support_y.float(), ep.query_x)
    with pytest.raises(ValueError, match="query_x: expected"):
        model(ep.support_x, ep.support_y, ep.query_x[..., :3])
    with pytest.raises(ValueError, match="encoder: unknown encoder 'pixels'"):
        MANN((4, 4), 3, "classification", mlp(16), encoder="pixels")


CONF = Path(__file__).resolve().parents[1] / "mtl_cli" / "conf"
SCHEMAS = {
    "mann": (meta_model.MANN, MANN),
    "snail": (meta_model.SNAIL, SNAIL),
    "maml": (meta_model.MAML, MAML),
    "protonet": (meta_model.ProtoNet, ProtoNet),
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_configs_compose_and_instantiate(name):
    schema, learner = SCHEMAS[name]
    assert schema.name == f"meta/{name}" and schema.group == "model"
    assert schema.families == ("meta",) and schema.kinds == learner.kinds
    from mtl_cli.config import register_schemas
    from mtl_cli.registry import find

    assert find("model", f"meta/{name}").schema is schema  # a registry choice, no YAML
    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF), version_base="1.3"):
            cfg = compose(overrides=[f"+model=meta/{name}"])
    finally:
        GlobalHydra.instance().clear()
    defaults = {f.name: f.default for f in dataclasses.fields(schema) if f.default is not None}
    for key, value in defaults.items():
        if not isinstance(value, dataclasses._MISSING_TYPE):
            assert cfg.model[key] == value, key
    model = hydra.utils.instantiate(
        cfg.model, input_shape=(4, 4), ways=3, kind="classification", make_backbone=mlp(16)
    )
    assert type(model) is learner
