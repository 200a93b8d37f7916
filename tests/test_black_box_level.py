"""Black-box meta-learners (MANN, SNAIL): the support-order option, the meta_compare grid (every
classification learner of the registry, each with its budget, stated in docs/meta.md), and a short
learning run of SNAIL on Hershey 5-way 1-shot."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from mtl_cli.config import CONF_DIR, compose
from mtl_cli.data.episodes import EpisodeSampler
from mtl_cli.models.meta import MANN, SNAIL
from mtl_cli.models.meta.support_order import shuffle_support
from mtl_cli.registry import choices
from mtl_cli.run import train

GRID = CONF_DIR / "experiment" / "meta_compare_grid"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "meta.md"
TINY_SNAIL = {"key_sizes": [8, 8], "value_sizes": [4, 4], "filters": 8, "dense_blocks": 3}


def flat_encoder() -> nn.Module:
    net = nn.Flatten()
    net.out_features = 16
    return net


def episode(ways=5, shots=2, queries=1, batch=16, seed=0):
    images = torch.rand(12, 6, 4, 4, generator=torch.Generator().manual_seed(99))
    return EpisodeSampler(images, ways, shots, queries).sample(
        batch, torch.Generator().manual_seed(seed)
    )


def test_shuffle_support_moves_inputs_with_their_labels():
    torch.manual_seed(0)
    b, s = 64, 10
    y = torch.arange(s).repeat(b, 1) % 5  # the sampler's layout: K rounds of 0..N-1
    x = torch.randn(b, s, 3, 2)
    sx, sy = shuffle_support(x, y)
    for i in range(b):  # each row is a permutation of the episode's (x, y) pairs
        order = [int((x[i] == sx[i, j]).flatten(1).all(1).nonzero()) for j in range(s)]
        assert sorted(order) == list(range(s))
        assert torch.equal(sy[i], y[i, order])
    orders = {tuple(row.tolist()) for row in sy}
    assert len(orders) > 32  # per-episode orders, not one permutation for the whole batch


class LabelRecorder:
    """Records the label part of the sequence a MANN's LSTM reads first (the support)."""

    def __init__(self, model: MANN) -> None:
        self.reads: list[torch.Tensor] = []
        self.label_size = model.label_size
        model.lstm.register_forward_hook(self.hook)

    def hook(self, module, args, output) -> None:
        if not self.reads or len(self.reads) % 2 == 0:  # calls alternate: support, then queries
            self.reads.append(args[0][..., -self.label_size :].argmax(-1))
        else:
            self.reads.append(args[0])


@pytest.mark.parametrize("shuffle", [False, True])
def test_mann_reads_the_support_in_the_configured_order(shuffle):
    torch.manual_seed(0)
    model = MANN((4, 4), 5, "classification", flat_encoder, hidden_size=8, shuffle_support=shuffle)
    recorder = LabelRecorder(model)
    ep = episode()
    model(ep.support_x, ep.support_y, ep.query_x)  # training mode
    read = recorder.reads[0]
    for row, labels in zip(read, ep.support_y, strict=True):
        assert sorted(row.tolist()) == sorted(labels.tolist())  # the same labels, all of them
    assert torch.equal(read, ep.support_y) is not shuffle
    model.eval()  # evaluation reads the sampler's order (deterministic episodes)
    model(ep.support_x, ep.support_y, ep.query_x)
    assert torch.equal(recorder.reads[2], ep.support_y)


def test_snail_shuffled_training_depends_on_the_order_but_is_reproducible():
    torch.manual_seed(0)
    model = SNAIL((4, 4), 5, "classification", flat_encoder, shuffle_support=True, **TINY_SNAIL)
    ep = episode()
    torch.manual_seed(1)
    first = model(ep.support_x, ep.support_y, ep.query_x)
    torch.manual_seed(1)
    assert torch.equal(model(ep.support_x, ep.support_y, ep.query_x), first)  # same seed
    torch.manual_seed(2)  # another order: the causal convolutions see other neighbours
    assert not torch.allclose(model(ep.support_x, ep.support_y, ep.query_x), first, atol=1e-5)
    model.eval()
    a = model(ep.support_x, ep.support_y, ep.query_x)
    torch.manual_seed(3)
    assert torch.equal(model(ep.support_x, ep.support_y, ep.query_x), a)


def classification_learners() -> list[str]:
    return sorted(
        c.name.removeprefix("meta/")
        for c in choices("model")
        if c.name.startswith("meta/") and "classification" in c.fact("kinds", ())
    )


def test_meta_compare_grid_has_every_classification_learner_with_its_budget():
    grid = sorted(p.stem for p in GRID.glob("*.yaml"))
    assert grid == classification_learners()
    preset = OmegaConf.load(CONF_DIR / "experiment" / "meta_compare.yaml")
    swept = preset.hydra.sweeper.params["+experiment/meta_compare_grid"].split(",")
    assert sorted(swept) == grid
    docs = DOCS.read_text()
    for name in grid:
        cfg = compose(["experiment=meta_compare", f"+experiment/meta_compare_grid={name}"])
        assert cfg.model._target_ == compose([f"model=meta/{name}"]).model._target_
        # the budget is stated in the docs' budget table: | `meta/<name>` | <steps> |
        row = re.search(rf"^\| `meta/{name}` \| ([\d,]+) \|", docs, flags=re.MULTILINE)
        assert row is not None, name
        assert int(row.group(1).replace(",", "")) == cfg.trainer.steps, name


def test_meta_compare_black_boxes_use_the_measured_settings():
    snail = compose(["experiment=meta_compare", "+experiment/meta_compare_grid=snail"])
    length = snail.task.ways * snail.task.shots + 1  # the support, then the query
    assert snail.model.dense_blocks == math.ceil(math.log2(length))  # Mishra et al. 2018
    assert snail.model.shuffle_support is True  # the fixed order stalls SNAIL (docs/meta.md)
    mann = compose(["experiment=meta_compare", "+experiment/meta_compare_grid=mann"])
    assert mann.model.shuffle_support is False and mann.model.encoder == "flatten"  # CS330 HW1
    transformer = compose(["experiment=meta_compare", "+experiment/meta_compare_grid=transformer"])
    assert transformer.model.layers == 12 and transformer.optim.lr == 1e-4  # Garg et al. 2022
    every = compose(["experiment=meta_compare", "+experiment/meta_compare_grid=protonet"])
    assert every.trainer.patience > 0  # each learner stops on its val plateau or its budget


@pytest.mark.slow
def test_snail_learns_hershey_5_way_1_shot_well_above_chance(tmp_path):
    overrides = [
        f"paths.output_dir={tmp_path}",
        "device=cpu",
        "trainer.threads=1",
        "trainer.progress=false",
        "task=meta/hershey_5w1s",
        "task.queries=1",
        "task.meta_batch_size=8",
        "task.eval_episodes=200",
        "model=meta/snail",
        "model.dense_blocks=3",
        "backbone=conv4",
        "backbone.hidden_channels=32",
        "trainer.steps=500",
        "trainer.eval_every=500",
    ]
    result = train(compose(overrides))
    assert result["test"]["accuracy"] > 0.45, result["test"]  # chance: 0.2
