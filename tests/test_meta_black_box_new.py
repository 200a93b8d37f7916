"""Conditional neural processes and the in-context transformer: real training runs (Hershey
episodes, sinusoids), support-order invariance, the CNP's sigma floor and likelihood, the
transformer's attention mask (no query sees another query), a CNP that learns sinusoids, and
one-line errors for bad options."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mtl_cli.config import compose
from mtl_cli.data.sinusoid import SinusoidTasks
from mtl_cli.errors import UserError
from mtl_cli.models.meta.cnp import CNP
from mtl_cli.models.meta.transformer import InContextTransformer, support_query_mask
from mtl_cli.registry import find
from mtl_cli.run import train
from mtl_cli.schemas import meta_model
from tests.test_meta_e2e import CONV4_TINY, SINUSOID, hershey_meta
from tests.test_meta_models import episode, mlp

TINY = {
    "cnp": ["model=meta/cnp", "model.encoder_sizes=[8,8]", "model.decoder_sizes=[8]"],
    "transformer": [
        "model=meta/transformer",
        "model.d_model=8",
        "model.heads=2",
        "model.layers=1",
        "model.feedforward=16",
    ],
}
SMALL_TRANSFORMER = {"d_model": 16, "heads": 2, "layers": 2, "feedforward": 32}


def sinusoid_overrides(out: Path, *overrides: str) -> list[str]:
    cpu = [f"paths.output_dir={out}", "trainer=debug", "device=cpu", "trainer.threads=1"]
    return [*cpu, *SINUSOID, *overrides]


# ------------------------------------------------------------------ through train(cfg)


@pytest.mark.parametrize("name", sorted(TINY))
def test_trains_on_hershey_episodes(tmp_path, name):
    summary = train(compose(hershey_meta(tmp_path, *TINY[name], *CONV4_TINY)))
    assert summary["status"] == "finished" and summary["step"] == 6
    for split in ("val", "test"):
        assert 0.0 <= summary[split]["accuracy"] <= 1.0
        assert math.isfinite(summary[split]["loss"]) and summary[split]["accuracy_ci95"] >= 0.0


@pytest.mark.parametrize("name", sorted(TINY))
def test_trains_on_sinusoids(tmp_path, name):
    summary = train(compose(sinusoid_overrides(tmp_path, *TINY[name])))
    test = summary["test"]
    assert summary["status"] == "finished"
    assert math.isfinite(test["mse"]) and test["mse"] > 0.0 and test["mse_ci95"] > 0.0


def test_cnp_learns_sinusoids_well_below_the_variance_of_y(tmp_path):
    """A could-fail check: after 1000 meta-steps (about 6-12 s on one thread) the CNP's predictive
    mean is far better than the best constant, whose MSE is Var(y) = E[A^2]/2 ~ 4.25 here (seeds
    0-3 reach 0.32-0.62; the bound is 1.06; at 600 steps they were still at 0.83-1.74)."""
    steps = ["trainer.steps=1000", "trainer.eval_every=1000", "optim.lr=1e-3"]
    task = ["task.shots=10", "task.queries=10", "task.meta_batch_size=16", "task.eval_episodes=64"]
    summary = train(compose(sinusoid_overrides(tmp_path, "model=meta/cnp", *steps, *task)))
    low, high = 0.1, 5.0  # the task's default amplitude range
    variance = (high**3 - low**3) / (3 * (high - low)) / 2  # E[A^2] E[sin^2]
    assert summary["test"]["mse"] < 0.25 * variance, summary["test"]


# ------------------------------------------------------------------ CNP


def regression_episode(batch=3, shots=6, queries=5, seed=0):
    return SinusoidTasks(shots, queries).sample(batch, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_cnp_is_invariant_to_the_order_of_the_support(kind):
    torch.manual_seed(0)
    if kind == "classification":
        model = CNP((4, 4), 3, kind, mlp(16), encoder_sizes=[16, 16], decoder_sizes=[16])
        ep = episode(ways=3, shots=2, queries=2)
    else:
        model = CNP((1,), 1, kind, encoder_sizes=[16, 16], decoder_sizes=[16])
        ep = regression_episode()
    base = model(ep.support_x, ep.support_y, ep.query_x)
    order = torch.randperm(ep.support_x.shape[1], generator=torch.Generator().manual_seed(3))
    permuted = model(ep.support_x[:, order], ep.support_y[:, order], ep.query_x)
    torch.testing.assert_close(permuted, base, atol=1e-6, rtol=1e-5)
    relabelled = ep.support_y.clone()  # and the support really is read
    relabelled[:, 0] = (relabelled[:, 0] + 1) % 3 if kind == "classification" else 7.0
    assert not torch.allclose(model(ep.support_x, relabelled, ep.query_x), base, atol=1e-4)


def test_cnp_sigma_floor_and_gaussian_likelihood():
    torch.manual_seed(0)
    model = CNP((1,), 1, "regression", encoder_sizes=[8], decoder_sizes=[8], min_sigma=0.3)
    ep = regression_episode()
    out = model(ep.support_x, ep.support_y, ep.query_x)
    assert out.shape == (3, 5, 2) and (out[..., 1] >= 0.3).all()
    normal = torch.distributions.Normal(out[..., :1], out[..., 1:])
    expected = -normal.log_prob(ep.query_y).mean()
    torch.testing.assert_close(model.loss(out, ep.query_y), expected)
    with torch.no_grad():  # drive the raw sigma output far negative: sigma sits on the floor
        model.decoder[-1].bias[1] = -60.0
        model.decoder[-1].weight[1] = 0.0
    floor = model(ep.support_x, ep.support_y, ep.query_x)[..., 1]
    assert (floor >= 0.3).all() and torch.allclose(floor, torch.full_like(floor, 0.3))
    model.eval()  # evaluation: the predictive mean only, what the family scores by MSE
    mean = model(ep.support_x, ep.support_y, ep.query_x)
    torch.testing.assert_close(mean, out[..., :1])
    with pytest.raises(ValueError, match=r"prediction: CNP's Gaussian likelihood needs"):
        model.loss(mean, ep.query_y)


def test_cnp_classification_aggregates_per_class():
    """r_c is the mean over class c: repeating the support points of class 0 leaves every class
    mean, hence the logits, unchanged (a mean over the whole support would move)."""
    torch.manual_seed(0)
    model = CNP((4, 4), 3, "classification", mlp(16), encoder_sizes=[8], decoder_sizes=[8])
    ep = episode(ways=3, shots=2, queries=2, batch=2)
    sx, sy, qx = ep.support_x, ep.support_y, ep.query_x
    base = model(sx, sy, qx)
    for b in range(2):
        first = sy[b] == 0
        more_x = torch.cat([sx[b], sx[b][first], sx[b][first]])[None]
        more_y = torch.cat([sy[b], sy[b][first], sy[b][first]])[None]
        torch.testing.assert_close(model(more_x, more_y, qx[b : b + 1])[0], base[b])


# ------------------------------------------------------------------ transformer


def test_support_query_mask_known_answer():
    blocked = support_query_mask(2, 3, torch.device("cpu"))
    allowed = (~blocked).int().tolist()
    assert allowed == [
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 0, 1, 0],
        [1, 1, 0, 0, 1],
    ]


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_transformer_queries_do_not_see_each_other(norm_first, training):
    torch.manual_seed(0)
    model = InContextTransformer(
        (4, 4), 3, "classification", mlp(16), norm_first=norm_first, **SMALL_TRANSFORMER
    )
    model.train(training)
    ep = episode(ways=3, shots=2, queries=2)
    with torch.set_grad_enabled(training):
        base = model(ep.support_x, ep.support_y, ep.query_x)
        changed = ep.query_x.clone()
        changed[:, 1:] = torch.rand_like(changed[:, 1:])  # every query but the first
        out = model(ep.support_x, ep.support_y, changed)
        torch.testing.assert_close(out[:, 0], base[:, 0], atol=1e-6, rtol=1e-5)
        assert not torch.allclose(out[:, 1:], base[:, 1:], atol=1e-4)
        alone = model(ep.support_x, ep.support_y, ep.query_x[:, 3:4])
        torch.testing.assert_close(alone[:, 0], base[:, 3], atol=1e-5, rtol=1e-5)
        order = torch.randperm(ep.support_x.shape[1], generator=torch.Generator().manual_seed(1))
        permuted = model(ep.support_x[:, order], ep.support_y[:, order], ep.query_x)
        torch.testing.assert_close(permuted, base, atol=1e-5, rtol=1e-5)
        relabelled = ep.support_y.clone()
        relabelled[:, 0] = (relabelled[:, 0] + 1) % 3
        assert not torch.allclose(model(ep.support_x, relabelled, ep.query_x), base, atol=1e-4)


def test_transformer_regression_support_order_and_query_independence():
    torch.manual_seed(0)
    model = InContextTransformer((1,), 1, "regression", **SMALL_TRANSFORMER)
    ep = regression_episode()
    base = model(ep.support_x, ep.support_y, ep.query_x)
    assert base.shape == (3, 5, 1)
    order = torch.randperm(6, generator=torch.Generator().manual_seed(2))
    permuted = model(ep.support_x[:, order], ep.support_y[:, order], ep.query_x)
    torch.testing.assert_close(permuted, base, atol=1e-5, rtol=1e-5)
    changed = ep.query_x.clone()
    changed[:, :4] += 1.0
    torch.testing.assert_close(model(ep.support_x, ep.support_y, changed)[:, 4], base[:, 4])


# ------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"aggregation": "max"}, r"model.aggregation: invalid value 'max'; allowed: mean"),
        ({"min_sigma": 0.0}, r"model.min_sigma: 0.0 must be greater than 0.0"),
        ({"min_sigma": 1.0}, r"model.min_sigma: 1.0 is above the maximum 0.99"),
        ({"encoder_sizes": []}, r"encoder_sizes: need one or more sizes >= 1; got \[\]"),
        ({"decoder_sizes": [4, 0]}, r"decoder_sizes: sizes must be >= 1; got \[4, 0\]"),
        ({"encoder": "pixels"}, r"model.encoder: invalid value 'pixels'"),
    ],
)
def test_cnp_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        CNP((1,), 1, "regression", **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"d_model": 8, "heads": 3}, r"heads: 3 does not divide d_model 8"),
        ({"layers": 0}, r"model.layers: 0 is below the minimum 1"),
        ({"dropout": -0.1}, r"model.dropout: -0.1 is below the minimum 0.0"),
        ({"encoder": "pixels"}, r"model.encoder: invalid value 'pixels'"),
    ],
)
def test_transformer_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        InContextTransformer((1,), 1, "regression", **options)


def test_bad_option_is_refused_before_any_work(tmp_path):
    with pytest.raises(UserError, match="aggregation.*sum.*allowed: mean"):
        train(compose(sinusoid_overrides(tmp_path, "model=meta/cnp", "model.aggregation=sum")))
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    ("name", "schema", "learner"),
    [
        ("meta/cnp", meta_model.CNP, CNP),
        ("meta/transformer", meta_model.InContextTransformer, InContextTransformer),
    ],
)
def test_registry_choices(name, schema, learner):
    assert find("model", name).schema is schema and schema.kinds == learner.kinds
    assert schema.families == ("meta",)
    assert learner.kinds == ("classification", "regression")
