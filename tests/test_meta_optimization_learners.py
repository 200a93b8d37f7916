"""ANIL and Reptile: training through `train(cfg)` on Hershey episodes and sinusoids, ANIL as MAML
with a frozen body, Reptile's meta-gradient (one task, one step: inner_lr x the support-loss
gradient), evaluation fine-tuning, and one-line errors for bad options."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mtl_cli.config import compose
from mtl_cli.models.meta.anil import ANIL
from mtl_cli.models.meta.maml import MAML
from mtl_cli.models.meta.reptile import Reptile
from mtl_cli.run import train
from tests.test_meta_e2e import CONV4_TINY, SINUSOID, hershey_meta

HERSHEY = {
    "anil": ["model=meta/anil", *CONV4_TINY],
    "anil_first_order": ["model=meta/anil", *CONV4_TINY, "model.first_order=true"],
    "reptile": ["model=meta/reptile", *CONV4_TINY, "model.eval_inner_steps=3"],
}
SINE = {
    "anil": ["model=meta/anil", "model.inner_lr=0.01"],
    "reptile": ["model=meta/reptile", "model.eval_inner_steps=5"],
}


@pytest.mark.parametrize("name", sorted(HERSHEY))
def test_trains_on_hershey_episodes(tmp_path, name):
    summary = train(compose(hershey_meta(tmp_path, *HERSHEY[name])))
    assert summary["status"] == "finished" and summary["family"] == "meta"
    for split in ("val", "test"):
        assert 0.0 <= summary[split]["accuracy"] <= 1.0
        assert math.isfinite(summary[split]["loss"])


@pytest.mark.parametrize("name", sorted(SINE))
def test_trains_on_sinusoids(tmp_path, name):
    overrides = [f"paths.output_dir={tmp_path}", "trainer=debug", "device=cpu", "trainer.threads=1"]
    summary = train(compose([*overrides, *SINUSOID, *SINE[name]]))
    test = summary["test"]
    assert summary["status"] == "finished" and math.isfinite(test["mse"]) and test["mse"] > 0
    assert {"mse@1", "mse@10"} <= set(test)  # both have `inner_steps`: evaluated after k steps


def body(batch_norm: bool):
    def make() -> nn.Module:
        layers = [nn.Flatten(), nn.Linear(16, 8)]
        layers += [nn.BatchNorm1d(8)] if batch_norm else []
        net = nn.Sequential(*layers, nn.Tanh(), nn.Linear(8, 6), nn.Tanh())
        net.out_features = 6
        return net

    return make


def batch(kind: str, b=3, s=6, q=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    sx, qx = torch.randn(b, s, 4, 4, generator=g), torch.randn(b, q, 4, 4, generator=g)
    if kind == "classification":
        return sx, torch.randint(0, 3, (b, s), generator=g), qx, torch.randint(0, 3, (b, q))
    return sx, torch.randn(b, s, 1, generator=g), qx, torch.randn(b, q, 1, generator=g)


def frozen_body_maml(anil: ANIL, kind: str, batch_norm: bool, **options) -> MAML:
    """MAML with ANIL's weights whose body has inner learning rate 0 (it does not adapt)."""
    maml = MAML((4, 4), 3, kind, body(batch_norm), **options)
    maml.load_state_dict(anil.state_dict())
    rates = maml._inner_rates

    def head_only():
        return {k: (r if k.startswith("1.") else 0.0) for k, r in rates().items()}

    maml._inner_rates = head_only
    return maml


@pytest.mark.parametrize("kind", ["classification", "regression"])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_anil_equals_maml_with_a_frozen_body(kind, first_order, batch_norm):
    torch.manual_seed(0)
    options = {"inner_steps": 2, "inner_lr": 0.3, "first_order": first_order}
    anil = ANIL((4, 4), 3, kind, body(batch_norm), **options).double()
    maml = frozen_body_maml(anil, kind, batch_norm, **options).double()
    sx, sy, qx, qy = batch(kind)
    sx, qx = sx.double(), qx.double()
    sy, qy = (sy, qy) if kind == "classification" else (sy.double(), qy.double())
    outs = []
    for model in (anil, maml):
        out = model(sx, sy, qx)
        model.loss(out, qy).backward()
        outs.append(out)
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    for (name, a), (_, m) in zip(
        anil.net.named_parameters(), maml.net.named_parameters(), strict=True
    ):
        assert torch.allclose(a.grad, m.grad, atol=1e-6), name
    body_grad = sum(p.grad.abs().sum() for p in anil.net[0].parameters())
    assert body_grad > 1e-4  # the body really is trained by the outer loop
    # evaluation (no_grad, eval steps) and the inner_steps override agree too
    anil.eval(), maml.eval()
    with torch.no_grad():
        for k in (None, 0, 4):
            kw = {} if k is None else {"inner_steps": k}
            assert torch.allclose(anil(sx, sy, qx, **kw), maml(sx, sy, qx, **kw), atol=1e-6)


def test_anil_second_order_differs_from_first_order_and_adapts_only_the_head():
    torch.manual_seed(0)
    sx, sy, qx, qy = batch("classification")
    grads = {}
    for first_order in (False, True):
        torch.manual_seed(1)
        model = ANIL(
            (4, 4), 3, "classification", body(False), inner_lr=0.5, first_order=first_order
        )
        model.loss(model(sx, sy, qx), qy).backward()
        grads[first_order] = torch.cat([p.grad.flatten() for p in model.net[0].parameters()])
    assert (grads[False] - grads[True]).abs().max() > 1e-5
    # the body features are the same before and after adaptation: zero steps = plain network
    model.eval()
    with torch.no_grad():
        plain = torch.stack([model.net(x) for x in qx])
        assert torch.allclose(model(sx, sy, qx, inner_steps=0), plain, atol=1e-6)


@pytest.mark.parametrize("kind", ["classification", "regression"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_reptile_one_task_one_step_gradient_is_inner_lr_times_support_gradient(kind, batch_norm):
    torch.manual_seed(0)
    lr = 0.3
    model = Reptile((4, 4), 3, kind, body(batch_norm), inner_steps=1, inner_lr=lr).double()
    sx, sy, qx, qy = batch(kind, b=1)
    sx, qx = sx.double(), qx.double()
    sy, qy = (sy, qy) if kind == "classification" else (sy.double(), qy.double())
    model.loss(model(sx, sy, qx), qy).backward()
    reptile = [p.grad.clone() for p in model.net.parameters()]
    model.zero_grad()
    out = model.net(sx[0])
    loss = (
        nn.functional.cross_entropy(out, sy[0])
        if kind == "classification"
        else (nn.functional.mse_loss(out, sy[0]))
    )
    support = torch.autograd.grad(loss, list(model.net.parameters()))
    for r, g in zip(reptile, support, strict=True):
        assert torch.allclose(r, lr * g, atol=1e-6)
    # with outer SGD of step epsilon: SGD on the support loss with step epsilon * inner_lr
    eps = 0.5
    before = [p.detach().clone() for p in model.net.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=eps)
    opt.zero_grad()
    model.loss(model(sx, sy, qx), qy).backward()
    opt.step()
    for p, w, g in zip(model.net.parameters(), before, support, strict=True):
        assert torch.allclose(p, w - eps * lr * g, atol=1e-6)


def test_reptile_meta_update_moves_theta_towards_the_mean_adapted_weights():
    torch.manual_seed(0)
    model = Reptile((4, 4), 3, "classification", body(True), inner_steps=3, inner_lr=0.2)
    sx, sy, qx, qy = batch("classification", b=4)
    theta = [p.detach().clone() for p in model.net.parameters()]
    phi = model.adapted_parameters(sx, sy, 3)
    out = model(sx, sy, qx)
    assert out.shape == (4, 4, 3) and not out.requires_grad
    loss = model.loss(out, qy)
    expected = 0.5 * sum(((t - phi[n].mean(0)) ** 2).sum() for t, n in zip(theta, phi, strict=True))
    assert torch.allclose(loss, expected, atol=1e-6)
    loss.backward()
    for p, t, name in zip(model.net.parameters(), theta, phi, strict=True):
        assert torch.allclose(p.grad, t - phi[name].mean(0), atol=1e-6)
    # the query predictions are those of each episode's adapted weights
    from torch.func import functional_call

    first = functional_call(model.net, {n: w[0] for n, w in phi.items()}, (qx[0],))
    assert torch.allclose(out[0], first, atol=1e-6)


def test_reptile_evaluation_fine_tunes_on_the_support_with_eval_settings():
    torch.manual_seed(0)
    model = Reptile(
        (4, 4), 1, "regression", body(False), inner_lr=0.1, eval_inner_steps=4, eval_inner_lr=0.05
    )
    sx, sy, qx, qy = batch("regression", b=2)
    model.eval()
    with torch.no_grad():
        out = model(sx, sy, qx)
        zero = model(sx, sy, qx, inner_steps=0)
    phi = model.adapted_parameters(sx, sy, 4, 0.05)
    from torch.func import functional_call

    assert torch.allclose(
        out[1], functional_call(model.net, {n: w[1] for n, w in phi.items()}, (qx[1],)), atol=1e-6
    )
    assert torch.allclose(zero, torch.stack([model.net(x) for x in qx]).detach(), atol=1e-6)
    assert model.loss(out, qy).ndim == 0  # eval mode: the plain query loss
    assert torch.allclose(model.loss(out, qy), nn.functional.mse_loss(out, qy))


@pytest.mark.parametrize("cls", [ANIL, Reptile])
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"inner_steps": -1}, "inner_steps: -1 is below the minimum 0"),
        ({"inner_lr": 0.0}, "inner_lr: 0.0 must be greater than 0"),
        ({"eval_inner_steps": -2}, "eval_inner_steps: -2 is below the minimum 0"),
        ({"eval_inner_lr": -1.0}, "eval_inner_lr: -1.0 must be greater than 0"),
    ],
)
def test_bad_options_are_one_line_value_errors(cls, options, message):
    with pytest.raises(ValueError, match=message) as info:
        cls((4, 4), 3, "classification", body(False), **options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cls", [ANIL, Reptile])
def test_bad_override_and_episode_are_one_line_value_errors(cls):
    model = cls((4, 4), 3, "classification", body(False))
    sx, sy, qx, _ = batch("classification")
    with pytest.raises(ValueError, match="inner_steps: -1 is below the minimum 0"):
        model(sx, sy, qx, inner_steps=-1)
    with pytest.raises(ValueError, match="support_x: expected"):
        model(sx[:, :, :2], sy, qx)
    with pytest.raises(ValueError, match="ways: 1 is below the minimum 2"):
        cls((4, 4), 1, "classification", body(False))


@pytest.mark.parametrize("name", ["anil", "reptile"])
def test_bad_config_values_are_refused_before_any_work(tmp_path, name):
    from mtl_cli.errors import UserError

    with pytest.raises((UserError, ValueError)) as info:
        train(compose(hershey_meta(tmp_path, f"model=meta/{name}", "model.inner_lr=-0.1")))
    assert "inner_lr" in str(info.value) and "\n" not in str(info.value).strip()
