"""Meta-learning end to end: every learner through `train(cfg)`, the datasets, splits, fixed
evaluation episodes and their confidence interval, and the experiment presets through the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.registry import find
from mtl_cli.run import Run, build_family, train
from tests.conftest import SMALL_ALPHABETS, mtl, tiny
from tests.fakes import write_fake_fashion_mnist, write_fake_omniglot_zip

#: five small alphabets: with split_by=alphabet each meta-split gets one or more whole alphabets
FIVE_ALPHABETS = "[digits,greek_sans_upper,greek_sans_lower,markers,cyrillic_upper]"
#: few, small episodes and a narrow conv4 so each run takes about a second
META_TINY = ["task.eval_episodes=6", "task.meta_batch_size=2", "task.queries=1"]
CONV4_TINY = ["backbone=conv4", "backbone.hidden_channels=4"]
LEARNERS = {
    "mann": ["model=meta/mann", "model.hidden_size=8", "model.num_layers=1"],
    "snail": [
        "model=meta/snail",
        *CONV4_TINY,
        "model.key_sizes=[4,4]",
        "model.value_sizes=[4,4]",
        "model.filters=4",
        "model.dense_blocks=2",
    ],
    "maml": ["model=meta/maml", *CONV4_TINY],
    "fomaml": ["model=meta/maml", *CONV4_TINY, "model.first_order=true"],
    "metasgd": ["model=meta/maml", *CONV4_TINY, "model.learn_inner_lr=true"],
    "protonet": ["model=meta/protonet", *CONV4_TINY],
    "anil": ["model=meta/anil", *CONV4_TINY],
    "reptile": ["model=meta/reptile", *CONV4_TINY, "model.inner_steps=2"],
    "matching": ["model=meta/matching", *CONV4_TINY],
    "relation": ["model=meta/relation", *CONV4_TINY],
    "cnp": ["model=meta/cnp", *CONV4_TINY, "model.encoder_sizes=[8,8]", "model.decoder_sizes=[8]"],
    "transformer": [
        "model=meta/transformer",
        *CONV4_TINY,
        "model.d_model=8",
        "model.heads=2",
        "model.layers=1",
        "model.feedforward=16",
    ],
}
SINUSOID = ["task=meta/sinusoid", "backbone=mlp", "backbone.hidden=[8]", *META_TINY[:2]]
REGRESSION = {
    "mann": ["model=meta/mann", "model.hidden_size=8", "model.num_layers=1"],
    "snail": [
        "model=meta/snail",
        "model.encoder=flatten",
        "model.key_sizes=[4]",
        "model.value_sizes=[4]",
        "model.filters=4",
        "model.dense_blocks=2",
    ],
    "maml": ["model=meta/maml", "model.inner_lr=0.01"],
    "pretrained": ["model=meta/pretrained"],
    "anil": ["model=meta/anil", "model.inner_lr=0.01"],
    "reptile": ["model=meta/reptile", "model.inner_steps=2"],
    "cnp": ["model=meta/cnp", "model.encoder_sizes=[8,8]", "model.decoder_sizes=[8]"],
    "transformer": [
        "model=meta/transformer",
        "model.d_model=8",
        "model.heads=2",
        "model.layers=1",
        "model.feedforward=16",
    ],
}


def hershey_meta(out: Path, *overrides: str) -> list[str]:
    return tiny(out, "task=meta/hershey_5w1s", *META_TINY, *overrides)


def metrics_json(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def per_episode_accuracy(family, model, split: str) -> np.ndarray:
    """Accuracy of each of the family's fixed evaluation episodes, recomputed here."""
    model.eval()
    with torch.no_grad():
        hits = [
            (model(sx, sy, qx).argmax(-1) == qy).double().mean(1)
            for sx, sy, qx, qy in family._episodes(split)
        ]
    return torch.cat(hits).numpy()


# ------------------------------------------------------------------ learners through train(cfg)


def test_every_registry_learner_has_a_training_case():
    from mtl_cli.registry import schema_choices

    learners = [c for c in schema_choices("model") if "meta" in c.fact("families", ())]
    for kind, cases in (("classification", LEARNERS), ("regression", REGRESSION)):
        chosen = {o[6:] for args in cases.values() for o in args if o.startswith("model=")}
        assert chosen == {c.name for c in learners if kind in c.fact("kinds", ())}, kind


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_learner_trains_on_hershey_episodes(tmp_path, name):
    summary = train(compose(hershey_meta(tmp_path, *LEARNERS[name])))
    assert summary["status"] == "finished" and summary["family"] == "meta"
    assert summary["step"] == 6
    for split in ("val", "test", "best_test"):
        acc, half = summary[split]["accuracy"], summary[split]["accuracy_ci95"]
        assert 0.0 <= acc <= 1.0 and half >= 0.0 and math.isfinite(summary[split]["loss"])
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6]
    assert (tmp_path / "checkpoints" / "best.pt").is_file()


@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_learners_train_on_sinusoids(tmp_path, name):
    overrides = [f"paths.output_dir={tmp_path}", "trainer=debug", "device=cpu", "trainer.threads=1"]
    summary = train(compose([*overrides, *SINUSOID, *REGRESSION[name]]))
    test = summary["test"]
    assert summary["status"] == "finished" and test["mse"] > 0.0 and test["mse_ci95"] > 0.0
    steps_metrics = {"mse@1", "mse@10"} & set(test)
    # methods that adapt by gradient steps are also reported after 1 and 10 steps (issue 6)
    adapts = find("model", f"meta/{name}").has_option("inner_steps")
    assert steps_metrics == ({"mse@1", "mse@10"} if adapts else set())


def test_pretrained_trains_on_pooled_points_and_fine_tunes_only_in_evaluation(tmp_path):
    cfg = compose(
        [f"paths.output_dir={tmp_path}", "device=cpu", *SINUSOID, *REGRESSION["pretrained"]]
    )
    run = Run(cfg)
    sx, sy, qx, qy = run.family._episode("train", 3, torch.Generator().manual_seed(0))
    model = run.model
    model.train()
    pooled = model.net(qx.reshape(-1, 1)).view(qy.shape)
    torch.testing.assert_close(model(sx, sy, qx), pooled)  # training never looks at the support
    model.eval()
    torch.testing.assert_close(model(sx, sy, qx, inner_steps=0), pooled)
    assert not torch.allclose(model(sx, sy, qx), pooled)  # eval: fine-tuned on the support


class _Identity(torch.nn.Identity):
    out_features = 1


def test_pretrained_fine_tuning_matches_hand_sgd_per_episode():
    from mtl_cli.models.meta.pretrained import Pretrained

    model = Pretrained((1,), 1, "regression", _Identity, inner_steps=2, inner_lr=0.1).eval()
    w0, b0 = 0.5, -0.2
    with torch.no_grad():
        model.net[1].weight.fill_(w0)
        model.net[1].bias.fill_(b0)
    g = torch.Generator().manual_seed(0)
    sx, sy, qx = (torch.randn(3, n, 1, generator=g) for n in (4, 4, 5))
    with torch.no_grad():
        pred = model(sx, sy, qx)
    for e in range(3):  # two SGD steps on the mean squared error, by hand
        w, b = w0, b0
        x, y = sx[e, :, 0].double(), sy[e, :, 0].double()
        for _ in range(2):
            r = w * x + b - y
            w, b = w - 0.1 * float(2 * (r * x).mean()), b - 0.1 * float(2 * r.mean())
        expected = (w * qx[e, :, 0].double() + b).float()
        torch.testing.assert_close(pred[e, :, 0], expected, rtol=1e-5, atol=1e-6)
    assert model.net[1].weight.item() == w0  # the trained weights are untouched


def test_protonet_on_sinusoids_is_refused_before_any_work(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UserError, match="meta/protonet.*regression"):
        train(compose([f"paths.output_dir={out}", "device=cpu", *SINUSOID, "model=meta/protonet"]))
    assert not out.exists()  # no run dir, no data, no model


def test_pretrained_on_classification_is_refused_before_any_work(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UserError, match="meta/pretrained.*classification"):
        train(compose(hershey_meta(out, "model=meta/pretrained")))
    assert not out.exists()


def test_protonet_on_sinusoids_is_a_one_line_cli_error(tmp_path):
    result = mtl("train", "task=meta/sinusoid", "model=meta/protonet", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "does not do regression" in result.stderr
    assert not (tmp_path / "outputs").exists()


# ------------------------------------------------------------------ datasets


@pytest.fixture
def fake_omniglot(tmp_path, monkeypatch):
    """Both Omniglot zips in the official layout: 4 background alphabets of 5 characters (one
    held out for meta-val -> 15 train, 5 val classes), 1 evaluation alphabet of 5 (meta-test)."""
    from mtl_cli.data import omniglot as om

    root = tmp_path / "omniglot"
    root.mkdir()
    layouts = {
        "images_background": {"Latin": 5, "Greek": 5, "Futurama": 5, "Bengali": 5},
        "images_evaluation": {"Tengwar": 5},
    }
    start = 0
    for stem, alphabets in layouts.items():
        sums = write_fake_omniglot_zip(root / f"{stem}.zip", stem, alphabets, start)
        monkeypatch.setitem(om.ZIP_CHECKSUMS, stem, sums)
        start += sum(alphabets.values())
    monkeypatch.delenv("MTL_DATA_DIR", raising=False)
    return root


def test_omniglot_5w1s_end_to_end_on_fake_zips(tmp_path, fake_omniglot):
    out = tmp_path / "run"
    cfg = compose([
        f"paths.output_dir={out}", "trainer=debug", "device=cpu", "trainer.threads=1",
        "task=meta/omniglot_5w1s", "task.val_alphabets=1", *META_TINY,
        f"data.root={fake_omniglot}", f"data.cache_dir={tmp_path / 'cache'}",
        *LEARNERS["protonet"],
    ])  # fmt: skip
    family = build_family(cfg, torch.device("cpu"))
    info = family.data.info
    assert info["classes"] == {"train": 15, "val": 5, "test": 5}
    alphabets = {k: {name.split("/")[0] for name in v} for k, v in info["splits"].items()}
    assert alphabets["test"] == {"Tengwar"} and len(alphabets["val"]) == 1
    assert len(alphabets["train"]) == 3 and not alphabets["train"] & alphabets["val"]
    assert family.data.input_shape == (1, 28, 28)
    summary = train(cfg)
    assert summary["status"] == "finished" and 0.0 <= summary["test"]["accuracy"] <= 1.0


def test_fashion_3w1s_end_to_end_on_fake_files(tmp_path):
    root = write_fake_fashion_mnist(tmp_path / "fashion", n_train=300, n_test=100)
    out = tmp_path / "run"
    cfg = compose([
        f"paths.output_dir={out}", "trainer=debug", "device=cpu", "trainer.threads=1",
        "task=meta/fashion_3w1s", *META_TINY, f"data.root={root}", *LEARNERS["protonet"],
    ])  # fmt: skip
    family = build_family(cfg, torch.device("cpu"))
    splits = family.data.info["splits"]
    assert splits == {"train": [0, 1, 2, 3], "val": [4, 5, 6], "test": [7, 8, 9]}
    summary = train(cfg)
    assert summary["status"] == "finished" and 0.0 <= summary["test"]["accuracy"] <= 1.0
    assert metrics_json(out)["data"]["splits"] == splits


# ------------------------------------------------------------------ splits, evaluation, options


def test_alphabet_split_is_disjoint_seeded_and_covers_every_alphabet(tmp_path):
    cfg = compose(hershey_meta(tmp_path, f"task.alphabets={FIVE_ALPHABETS}"))
    info = build_family(cfg, torch.device("cpu")).data.info
    splits = {k: set(v) for k, v in info["splits"].items()}
    assert info["split_by"] == "alphabet"
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"])
    assert not splits["val"] & splits["test"]
    assert set().union(*splits.values()) == set(FIVE_ALPHABETS.strip("[]").split(","))
    other = compose(hershey_meta(tmp_path, f"task.alphabets={FIVE_ALPHABETS}", "task.split_seed=3"))
    again = build_family(cfg, torch.device("cpu")).data.info
    assert again["splits"] == info["splits"]  # same seed, same split
    assert build_family(other, torch.device("cpu")).data.info["splits"] != info["splits"]


def test_class_level_split_is_disjoint_and_covers_every_character(tmp_path):
    from mtl_cli.data.hershey import load_alphabets

    cfg = compose(
        hershey_meta(tmp_path, "task.split_by=class", *LEARNERS["protonet"]),
    )
    family = build_family(cfg, torch.device("cpu"))
    info = family.data.info
    names = {split: set(chars) for split, chars in info["splits"].items()}
    assert info["split_by"] == "class"
    assert sum(map(len, names.values())) == len(set().union(*names.values()))  # disjoint
    total = sum(len(g) for g in load_alphabets(SMALL_ALPHABETS.strip("[]").split(",")).values())
    assert sum(info["classes"].values()) == total
    for split, count in info["classes"].items():
        assert family.data.samplers[split].num_classes == count == len(names[split])
    summary = train(cfg)
    assert summary["status"] == "finished"
    saved = metrics_json(tmp_path)["data"]  # the split is saved with the run
    assert saved["split_by"] == "class" and saved["splits"] == info["splits"]


def test_rotations_make_four_classes_per_character_and_train(tmp_path):
    cfg = compose(hershey_meta(tmp_path, "task.rotations=true", *LEARNERS["protonet"]))
    family = build_family(cfg, torch.device("cpu"))
    for split, count in family.data.info["classes"].items():
        assert family.data.samplers[split].num_classes == 4 * count
    plain = build_family(compose(hershey_meta(tmp_path)), torch.device("cpu"))
    assert plain.data.samplers["train"].num_classes == family.data.info["classes"]["train"]
    assert train(cfg)["status"] == "finished"


def test_evaluation_uses_fixed_episodes_and_a_normal_95_interval(tmp_path):
    cfg = compose(hershey_meta(tmp_path, *LEARNERS["protonet"], "task.eval_episodes=9"))
    run = Run(cfg)
    first, second = run.evaluate("test"), run.evaluate("test")
    assert first == second  # the same fixed episodes (9 = meta-batches of 2, 2, 2, 2, 1)
    assert run.evaluate("val") != first  # meta-val has its own episodes (other classes)
    acc = per_episode_accuracy(run.family, run.model, "test")
    assert acc.shape == (9,)
    assert first["accuracy"] == pytest.approx(acc.mean())
    assert first["accuracy_ci95"] == pytest.approx(1.96 * acc.std(ddof=1) / 3.0, rel=1e-3)
    reseeded = hershey_meta(
        tmp_path, *LEARNERS["protonet"], "task.eval_episodes=9", "task.eval_seed=1"
    )
    assert Run(compose(reseeded)).evaluate("test") != first  # same weights, other episodes


def test_same_seed_same_meta_run(tmp_path):
    a = train(compose(hershey_meta(tmp_path / "a", *LEARNERS["protonet"])))
    b = train(compose(hershey_meta(tmp_path / "b", *LEARNERS["protonet"])))
    assert a["test"] == b["test"] and a["best_val"] == b["best_val"]


# ------------------------------------------------------------------ presets through the CLI

#: overrides that shrink any meta preset (a preset's own `trainer:` values beat `trainer=debug`,
#: so steps are set by key)
PRESET_TINY = [
    "trainer.steps=2", "trainer.eval_every=2", "task.eval_episodes=2", "task.meta_batch_size=2",
    "device=cpu", "trainer.threads=1", "hydra.sweeper.params.seed=0",
]  # fmt: skip
#: one grid file per learner (its own step budget): every classification learner of the registry
META_COMPARE_GRID = (
    Path(__file__).parents[1] / "mtl_cli" / "conf" / "experiment" / "meta_compare_grid"
)
PRESETS = {
    "cs330_hw1": (
        [f"task.alphabets={FIVE_ALPHABETS}", "model.hidden_size=8"],
        "experiment/cs330_hw1_grid",
        ["k1n2", "k1n3", "k1n4", "k2n2"],
    ),
    "meta_compare": (
        [f"task.alphabets={FIVE_ALPHABETS}", "backbone.hidden_channels=4"],
        "experiment/meta_compare_grid",
        sorted(p.stem for p in META_COMPARE_GRID.glob("*.yaml")),
    ),
    "maml_sinusoid": (["task.eval_episodes=2"], "model", ["meta/maml", "meta/pretrained"]),
}


def summary_rows(cwd: Path) -> list[dict]:
    (sweep,) = (cwd / "outputs" / "multirun").iterdir()
    with open(sweep / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_runs_tiny_through_the_cli(tmp_path, name):
    extra, key, values = PRESETS[name]
    result = mtl("train", "-m", f"experiment={name}", *PRESET_TINY, *extra, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = summary_rows(tmp_path)
    assert sorted(row[key] for row in rows) == values
    assert all(row["failed"] == "0" and row["n"] == "1" for row in rows)


def test_presets_state_their_grid_and_description():
    from mtl_cli.config import CONF_DIR

    for name in PRESETS:
        text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text().splitlines()
        assert text[0] == "# @package _global_" and len(text[1]) > 20 and text[1].startswith("# ")
    grid = {}
    for path in sorted((CONF_DIR / "experiment" / "cs330_hw1_grid").glob("*.yaml")):
        cfg = compose(["experiment=cs330_hw1", f"+experiment/cs330_hw1_grid={path.stem}"])
        grid[path.stem] = (cfg.task.shots, cfg.task.ways)
    # the CS330 HW1 grid (K, N), not a product of K and N
    assert sorted(grid.values()) == [(1, 2), (1, 3), (1, 4), (2, 2)]
