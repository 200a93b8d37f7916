"""Metric meta-learners: matching networks (Vinyals et al. 2016) and relation networks (Sung et al.
2018): training through `train(cfg)`, known answers on fabricated embeddings, and bad options."""

from __future__ import annotations

import dataclasses
import inspect
import math

import hydra.utils
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.models.backbones import Conv4
from mtl_cli.models.meta.matching import MatchingNetwork
from mtl_cli.models.meta.relation import RelationNetwork
from mtl_cli.registry import find
from mtl_cli.run import train
from mtl_cli.schemas import meta_model
from tests.test_meta_e2e import CONV4_TINY, SINUSOID, hershey_meta


class Flat(nn.Module):
    """Identity embedding (flattened input) with the backbone interface."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_features = features
        self.scale = nn.Parameter(torch.ones(()))  # something for an optimizer to hold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) * self.scale


def one_hot_episode(ways=4, shots=1, perm_seed=0):
    """Inputs that are already one-hot class codes: support = shots x each class (shuffled),
    queries = one per class in a shuffled order."""
    g = torch.Generator().manual_seed(perm_seed)
    sy = torch.arange(ways).repeat(shots)[torch.randperm(ways * shots, generator=g)][None]
    qy = torch.randperm(ways, generator=g)[None]
    eye = torch.eye(ways)
    return eye[sy], sy, eye[qy], qy


# ------------------------------------------------------------------ through train(cfg)

TRAINS = {
    "matching": ["model=meta/matching", *CONV4_TINY],
    "matching_fce": [
        "model=meta/matching",
        *CONV4_TINY,
        "model.full_context_embeddings=true",
        "model.fce_steps=2",
        "model.cosine_scale=10",
    ],
    "relation": ["model=meta/relation", *CONV4_TINY],
    "relation_ce": ["model=meta/relation", *CONV4_TINY, "model.loss=ce"],
    "relation_mlp": ["model=meta/relation", "backbone=mlp", "backbone.hidden=[8]"],
}


@pytest.mark.parametrize("name", sorted(TRAINS))
def test_metric_learners_train_on_hershey_episodes(tmp_path, name):
    summary = train(compose(hershey_meta(tmp_path, *TRAINS[name])))
    assert summary["status"] == "finished" and summary["family"] == "meta"
    for split in ("val", "test", "best_test"):
        acc, half = summary[split]["accuracy"], summary[split]["accuracy_ci95"]
        assert 0.0 <= acc <= 1.0 and half >= 0.0 and math.isfinite(summary[split]["loss"])


@pytest.mark.parametrize("name", ["matching", "relation"])
def test_metric_learners_refuse_sinusoids(tmp_path, name):
    with pytest.raises(UserError, match=f"meta/{name}.*regression"):
        train(
            compose([f"paths.output_dir={tmp_path}", "device=cpu", *SINUSOID, f"model=meta/{name}"])
        )


# ------------------------------------------------------------------ matching networks


def test_matching_classifies_exactly_with_a_perfect_embedding():
    sx, sy, qx, qy = one_hot_episode(ways=5)
    plain = MatchingNetwork((5,), 5, "classification", lambda: Flat(5))
    logp = plain(sx, sy, qx)
    assert torch.equal(logp.argmax(-1), qy)
    # plain cosine (the paper): right class e^1 / (e^1 + 4 e^0)
    right = logp.gather(-1, qy[..., None]).exp()
    assert torch.allclose(right, torch.full_like(right, math.e / (math.e + 4)), atol=1e-6)
    sharp = MatchingNetwork((5,), 5, "classification", lambda: Flat(5), cosine_scale=50.0)
    p = sharp(sx, sy, qx).exp()
    assert torch.equal(p.argmax(-1), qy)
    right = p.gather(-1, qy[..., None])
    assert torch.allclose(right, torch.ones_like(right))  # 1 - 4 e^-50: 1 in float32
    assert (p.sum(-1, keepdim=True) - right < 1e-20).all()  # each wrong class: e^-50


def test_matching_returns_log_probabilities_and_the_loss_is_their_nll():
    torch.manual_seed(0)
    ways, shots = 3, 2
    sy = torch.arange(ways).repeat(shots)[None].repeat(2, 1)
    sx, qx, qy = torch.randn(2, 6, 7), torch.randn(2, 4, 7), torch.randint(0, ways, (2, 4))
    model = MatchingNetwork((7,), ways, "classification", lambda: Flat(7), cosine_scale=3.0)
    logp = model(sx, sy, qx)
    assert logp.shape == (2, 4, ways)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(2, 4), atol=1e-6)
    # the paper's P(y|x, S) = sum_i a(x, x_i) y_i, by hand
    cos = F.cosine_similarity(qx[:, :, None], sx[:, None], dim=-1)
    expected = torch.softmax(3.0 * cos, -1) @ F.one_hot(sy, ways).float()
    assert torch.allclose(logp.exp(), expected, atol=1e-6)
    nll = -expected.log().gather(-1, qy[..., None]).mean()
    assert torch.allclose(model.loss(logp, qy), nll, atol=1e-6)


def test_matching_full_context_embeddings_learn_and_see_the_whole_support():
    torch.manual_seed(0)
    sx, sy, qx, qy = one_hot_episode(ways=4, shots=2)
    model = MatchingNetwork(
        (4,), 4, "classification", lambda: Flat(4), full_context_embeddings=True, fce_steps=3
    )
    logp = model(sx, sy, qx)
    assert logp.shape == (1, 4, 4) and torch.isfinite(logp).all()
    model.loss(logp, qy).backward()
    assert model.support_lstm.weight_ih_l0.grad.abs().sum() > 0
    assert model.query_lstm.weight_ih.grad.abs().sum() > 0
    # g depends on the other support points (unlike the plain embedding)
    g = model.embed_support(sx)
    g2 = model.embed_support(torch.cat([sx[:, :1], sx[:, 1:] * 2], dim=1))
    assert not torch.allclose(g[:, 0], g2[:, 0])


def test_matching_without_fce_has_no_lstm():
    model = MatchingNetwork((4,), 4, "classification", lambda: Flat(4))
    assert not any("lstm" in name for name, _ in model.named_parameters())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cosine_scale": 0.0}, "cosine_scale: 0.0 must be greater than 0"),
        ({"fce_steps": 0}, "fce_steps: 0 is below the minimum 1"),
    ],
)
def test_matching_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ValueError, match=message) as err:
        MatchingNetwork((4,), 4, "classification", lambda: Flat(4), **options)
    assert "\n" not in str(err.value)


def test_matching_refuses_regression():
    with pytest.raises(ValueError, match="kind: MatchingNetwork does not do 'regression'"):
        MatchingNetwork((1,), 1, "regression", lambda: Flat(1))


# ------------------------------------------------------------------ relation networks


def conv4_relation(**options) -> RelationNetwork:
    return RelationNetwork(
        (1, 28, 28), 5, "classification", lambda: Conv4((1, 28, 28), hidden_channels=4), **options
    )


def test_relation_compares_spatial_feature_maps_of_conv4():
    model = conv4_relation()
    assert model.map_shape == (4, 7, 7)  # two of conv4's blocks: 28 -> 14 -> 7
    assert len(model.embedding) == 2
    convs = [m for m in model.relation.modules() if isinstance(m, nn.Conv2d)]
    assert [c.in_channels for c in convs] == [8, 4]  # [f(x_j), class] concatenated on channels
    linears = [m for m in model.relation.modules() if isinstance(m, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(4, 8), (8, 1)]


def test_relation_permuting_the_classes_permutes_the_scores():
    torch.manual_seed(0)
    model = conv4_relation().eval()
    sy = torch.arange(5).repeat(2)[None].repeat(2, 1)  # 5-way 2-shot, 2 episodes
    sx, qx = torch.rand(2, 10, 1, 28, 28), torch.rand(2, 3, 1, 28, 28)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        logits = model(sx, sy, qx)
        permuted = model(sx, perm[sy], qx)
    assert logits.shape == (2, 3, 5)
    assert torch.allclose(permuted[..., perm], logits, atol=1e-5)
    scores = torch.sigmoid(logits)
    assert ((scores >= 0) & (scores <= 1)).all()


def hand_built(ways: int = 2) -> RelationNetwork:
    """Flat embedding, relation g(q, c) = 10 * sum(relu(q + c - 1)) - 5 (pre-sigmoid)."""
    model = RelationNetwork((2,), ways, "classification", lambda: Flat(2), relation_hidden=2)
    first, second = model.relation[0], model.relation[2]
    with torch.no_grad():
        first.weight.copy_(torch.cat([torch.eye(2), torch.eye(2)], dim=1))
        first.bias.fill_(-1.0)
        second.weight.fill_(10.0)
        second.bias.fill_(-5.0)
    return model


def test_relation_hand_built_module_gives_known_scores():
    model = hand_built()
    assert model.map_shape is None  # no feature maps: flat features and the FC relation module
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    # 2-shot: class 0 = e0 + e0 = (2, 0), class 1 = e1 + e1 = (0, 2) (sum, not mean)
    sx = torch.stack([e0, e1, e0, e1])[None]
    sy = torch.tensor([[0, 1, 0, 1]])
    qx = torch.stack([e0, e1, torch.zeros(2)])[None]
    logits = model(sx, sy, qx)
    # q=e0: class 0 -> relu(2, -1) sums to 2 -> 15; class 1 -> relu(0, 1) sums to 1 -> 5
    # q=e1: 5, 15; q=0: relu(1, -1) and relu(-1, 1) sum to 1 -> 5 for both
    # (with means, (1, 0) and (0, 1), q=e0 would give relu(1, -1) -> 5 and relu(-1, 0) -> -5)
    expected = torch.tensor([[[15.0, 5.0], [5.0, 15.0], [5.0, 5.0]]])
    assert torch.allclose(logits, expected)
    qy = torch.tensor([[0, 1, 0]])
    mse = ((torch.sigmoid(expected) - F.one_hot(qy, 2).float()) ** 2).mean()
    assert torch.allclose(model.loss(logits, qy), mse)
    assert torch.equal(logits[0, :2].argmax(-1), torch.tensor([0, 1]))


def test_relation_ce_loss_is_cross_entropy_on_the_relation_logits():
    torch.manual_seed(0)
    model = RelationNetwork((3,), 3, "classification", lambda: Flat(3), loss="ce")
    logits, target = torch.randn(2, 4, 3), torch.randint(0, 3, (2, 4))
    assert torch.allclose(
        model.loss(logits, target), F.cross_entropy(logits.flatten(0, 1), target.flatten())
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"relation_hidden": 0}, "relation_hidden: 0 is below the minimum 1"),
        ({"loss": "bce"}, "loss: invalid value 'bce'; allowed: mse, ce"),
    ],
)
def test_relation_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ValueError, match=message) as err:
        RelationNetwork((4,), 4, "classification", lambda: Flat(4), **options)
    assert "\n" not in str(err.value)


def test_relation_refuses_regression():
    with pytest.raises(ValueError, match="kind: RelationNetwork does not do 'regression'"):
        RelationNetwork((1,), 1, "regression", lambda: Flat(1))


# ------------------------------------------------------------------ schemas


@pytest.mark.parametrize(
    ("name", "schema", "learner"),
    [
        ("matching", meta_model.MatchingNetwork, MatchingNetwork),
        ("relation", meta_model.RelationNetwork, RelationNetwork),
    ],
)
def test_configs_compose_and_instantiate_with_the_learners_defaults(name, schema, learner):
    assert schema.name == f"meta/{name}" and schema.group == "model"
    assert schema.families == ("meta",) and schema.kinds == learner.kinds == ("classification",)
    assert find("model", f"meta/{name}").schema is schema
    cfg = compose(["device=cpu", f"model=meta/{name}"])
    options = {f.name: f.default for f in dataclasses.fields(schema) if f.name != "_target_"}
    signature = inspect.signature(learner).parameters
    assert {k: signature[k].default for k in options} == options  # one default, in the schema
    assert {k: cfg.model[k] for k in options} == options
    model = hydra.utils.instantiate(
        cfg.model, input_shape=(4,), ways=3, kind="classification", make_backbone=lambda: Flat(4)
    )
    assert type(model) is learner
