"""Multi-label family end to end: every model and weighting method on Hershey attributes and
Fashion mosaics, pos_weight, val-tuned thresholds, labels without positives, label subsets, and
the multilabel_sharing preset through the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.families import family_facts
from mtl_cli.families.multilabel import MultiLabelFamily
from mtl_cli.families.task_data import MultiLabelData, TaskSplit
from mtl_cli.io import read_jsonl
from mtl_cli.registry import schema_choices
from mtl_cli.run import build_family, train
from tests.conftest import mtl, tiny, tiny_cli
from tests.fakes import write_fake_fashion_mnist

#: every model and loss choice that serves the multi-label family, from the registry
MODELS = [c.name for c in schema_choices("model") if "multilabel" in c.fact("families", ())]
LOSSES = [c.name for c in schema_choices("loss")]
AGGREGATES = family_facts("multilabel").metrics_of("classification")
#: 11 shape attributes (docs/data/hershey.md) + 6 alphabet-group labels (tasks/multilabel/hershey_attributes.py)
HERSHEY_LABELS = [
    "many_strokes", "closed_loop", "curved", "symmetric_lr", "symmetric_tb", "crossing", "tall",
    "wide", "has_dot", "long_ink", "straight_only", "group_latin", "group_greek",
    "group_cyrillic", "group_japanese", "group_symbols", "uppercase",
]  # fmt: skip
FASHION_LABELS = [
    "t_shirt_top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
]  # fmt: skip


def hershey(out: Path, *overrides: str) -> list[str]:
    """A tiny multilabel/hershey_attributes run on digits, greek_sans_upper and markers."""
    return tiny(out, "task=multilabel/hershey_attributes", "backbone.hidden=[32]", *overrides)


@pytest.fixture(scope="module")
def fashion_data(tmp_path_factory) -> dict[str, Path]:
    """Fake Fashion-MNIST files and a mosaic cache of their own (never the real data's cache)."""
    base = tmp_path_factory.mktemp("fake-fashion")
    return {"root": write_fake_fashion_mnist(base / "fm"), "cache": base / "cache"}


def mosaic(out: Path, data: dict[str, Path], *overrides: str) -> list[str]:
    """A tiny multilabel/fashion_mosaic run on fake Fashion-MNIST (2x2 grid of 14-pixel items)."""
    return [
        f"paths.output_dir={out}",
        "trainer=debug",
        "task=multilabel/fashion_mosaic",
        f"data.root={data['root']}",
        f"data.cache_dir={data['cache']}",
        "task.train_size=64",
        "task.val_size=32",
        "task.test_size=32",
        "task.image_size=28",
        "backbone.hidden=[32]",
        "device=cpu",
        "trainer.threads=1",
        *overrides,
    ]


def strict_json(path: Path) -> dict:
    """metrics.json parsed so that NaN or Infinity anywhere fails the test."""

    def refuse(token: str):
        raise AssertionError(f"{path}: non-finite number {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def assert_finished(out: Path, labels: list[str]) -> dict:
    """The run finished, its tasks are the labels, and every reported metric is a finite number."""
    summary = strict_json(out / "metrics.json")
    assert summary["status"] == "finished" and summary["family"] == "multilabel"
    assert summary["tasks"] == labels
    for split in ("val", "test", "best_val", "best_test"):
        metrics = summary[split]
        assert set(AGGREGATES) <= set(metrics)
        assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
        for name in ("map", "macro_f1", "micro_f1", "subset_accuracy", "hamming_loss"):
            assert 0.0 <= metrics[name] <= 1.0
        for label in labels:
            assert {
                f"{label}/{m}" for m in ("accuracy", "precision", "recall", "f1", "loss")
            } <= set(metrics)
    return summary


# ----------------------------------------------------------------- every model and method


@pytest.mark.parametrize("model", MODELS)
def test_hershey_attributes_trains_with_every_model(tmp_path, model):
    train(compose(hershey(tmp_path, f"model={model}")))
    assert_finished(tmp_path, HERSHEY_LABELS)


@pytest.mark.parametrize("loss", LOSSES)
def test_hershey_attributes_trains_with_every_weighting_method(tmp_path, loss):
    train(compose(hershey(tmp_path, "model=hard_sharing", f"loss={loss}")))
    assert_finished(tmp_path, HERSHEY_LABELS)


def test_gradient_method_on_the_shared_representation(tmp_path):
    train(compose(hershey(tmp_path, "model=hard_sharing", "loss=mgda", "loss.rep_grad=true")))
    assert_finished(tmp_path, HERSHEY_LABELS)


@pytest.mark.parametrize("model", MODELS)
def test_fashion_mosaic_trains_with_every_model(tmp_path, fashion_data, model):
    train(compose(mosaic(tmp_path, fashion_data, f"model={model}")))
    assert_finished(tmp_path, FASHION_LABELS)


@pytest.mark.parametrize("loss", LOSSES)
def test_fashion_mosaic_trains_with_every_weighting_method(tmp_path, fashion_data, loss):
    train(compose(mosaic(tmp_path, fashion_data, "model=hard_sharing", f"loss={loss}")))
    assert_finished(tmp_path, FASHION_LABELS)


# ----------------------------------------------------------------- a hand case through the family


class FixedScores(nn.Module):
    """A 'model' whose inputs are the logits: forward_all(x) = one column of x per label."""

    has_shared_representation = False

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x[:, t : t + 1] for t in range(self.num_tasks)]


def hand_family(splits: dict[str, tuple[list, list]], pos_weight=None, threshold=0.5):
    """MultiLabelFamily over probabilities/targets given per split (inputs = logit(probability))."""

    def part(probs, targets):
        p = torch.tensor(probs, dtype=torch.float64)
        return TaskSplit(torch.logit(p).float(), torch.tensor(targets, dtype=torch.float32))

    data = MultiLabelData(
        task_names=["a", "b", "c"],
        input_shape=(3,),
        splits={s: part(*v) for s, v in splits.items()},
        info={"pos_weight": pos_weight, "threshold": threshold},
    )
    n_train = len(splits["train"][0])
    trainer = SimpleNamespace(batch_size=n_train, eval_batch_size=3)  # eval in uneven chunks
    return MultiLabelFamily(data, trainer, torch.device("cpu"))


# label a: val-tuned threshold 0.30 (val positives 0.305, negatives 0.1)
# label b: no positive anywhere (scores 0.2): tuned threshold 0.5, nothing predicted
# label c: val-tuned threshold 0.60 (val positives 0.7, negatives 0.595)
VAL = (
    [[0.305, 0.2, 0.7], [0.305, 0.2, 0.595], [0.1, 0.2, 0.7], [0.1, 0.2, 0.595]],
    [[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]],
)
TEST = (
    [[0.4, 0.2, 0.65], [0.4, 0.2, 0.55], [0.32, 0.2, 0.65], [0.2, 0.2, 0.55]],
    [[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]],
)


def test_val_f1_thresholds_are_tuned_on_val_and_applied_unchanged_to_test():
    family = hand_family({"train": VAL, "val": VAL, "test": TEST}, threshold="val_f1")
    test = family.evaluate(FixedScores(3), "test")
    # thresholds [0.30, 0.5, 0.60] from val. On test, a predicts items 0, 1 and 2 (2 = false
    # positive at 0.32): F1 = 2*2 / (2*2 + 1) = 0.8. Tuning on test instead would pick 0.33..0.40
    # (F1 = 1); the fixed 0.5 predicts nothing (F1 = 0).
    assert test["a/f1"] == pytest.approx(0.8)
    assert test["a/precision"] == pytest.approx(2 / 3) and test["a/recall"] == 1.0
    assert test["c/f1"] == 1.0  # 0.65 >= 0.60 > 0.55
    # b has no positive and none is predicted: F1 = precision = recall = accuracy = 1, no AP
    assert test["b/f1"] == test["b/precision"] == test["b/recall"] == test["b/accuracy"] == 1.0
    assert "b/ap" not in test
    assert test["macro_f1"] == pytest.approx((0.8 + 1 + 1) / 3)
    assert test["micro_f1"] == pytest.approx(2 * 4 / (2 * 4 + 1))  # tp 4, fp 1, fn 0
    assert test["subset_accuracy"] == pytest.approx(3 / 4)
    assert test["hamming_loss"] == pytest.approx(1 / 12)
    # mAP averages a and c (both AP 1); counting b as 0 would give 2/3
    assert test["a/ap"] == test["c/ap"] == test["map"] == 1.0
    val = family.evaluate(FixedScores(3), "val")
    assert val["macro_f1"] == 1.0 and val["subset_accuracy"] == 1.0


def test_fixed_threshold_is_used_on_every_split():
    family = hand_family({"train": VAL, "val": VAL, "test": TEST}, threshold=0.5)
    test = family.evaluate(FixedScores(3), "test")
    # a: nothing >= 0.5, two positives missed -> F1 0; c: all four >= 0.5 -> tp 2, fp 2 -> 2/3
    assert test["a/f1"] == 0.0 and test["a/precision"] == 0.0 and test["a/recall"] == 0.0
    assert test["c/f1"] == pytest.approx(2 / 3)
    assert test["macro_f1"] == pytest.approx((0 + 1 + 2 / 3) / 3)


def test_auto_pos_weight_is_negatives_over_positives_of_the_training_split():
    train_split = (
        [[0.5, 0.5, 0.5]] * 5,
        [[1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 0]],
    )  # positives per label: 1, 0, 4 of 5
    family = hand_family({"train": train_split, "val": VAL, "test": TEST}, pos_weight="auto")
    # by hand: (5 - 1) / 1 = 4; no positive -> 5 / max(0, 1) = 5; (5 - 4) / 4 = 0.25
    assert family.pos_weight.tolist() == pytest.approx([4.0, 5.0, 0.25])
    losses, tasks, _ = family.train_losses(FixedScores(3), torch.Generator().manual_seed(0))
    # logits 0: each term is log 2, positives weighted: label loss = log2 * (w P + N - P) / N
    log2 = math.log(2)
    expected = [log2 * (4 * 1 + 4) / 5, log2 * 5 / 5, log2 * (0.25 * 4 + 1) / 5]
    assert losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert tasks == [0, 1, 2]


def test_pos_weight_list_is_used_as_given_and_checked():
    family = hand_family({"train": VAL, "val": VAL, "test": TEST}, pos_weight=[2.0, 1.0, 3.0])
    assert family.pos_weight.tolist() == [2.0, 1.0, 3.0]
    for bad in ([1.0, 2.0], [1.0, 0.0, 2.0]):
        with pytest.raises(UserError, match=r"^task.pos_weight: expected null, auto or 3 positive"):
            hand_family({"train": VAL, "val": VAL, "test": TEST}, pos_weight=bad)


# ----------------------------------------------------------------- options through the config


def test_auto_pos_weight_matches_hand_counts_on_hershey(tmp_path):
    from mtl_cli.data.hershey import load_alphabets
    from mtl_cli.data.hershey_attributes import ATTRIBUTES, attribute_matrix

    cfg = compose(hershey(tmp_path, "task.labels=[tall,wide,group_greek]", "task.pos_weight=auto"))
    family = build_family(cfg, torch.device("cpu"))
    glyphs = [g for gs in load_alphabets(["digits", "greek_sans_upper", "markers"]).values()
              for g in gs]  # fmt: skip
    shape = attribute_matrix(glyphs)
    tall, wide = (int(shape[:, ATTRIBUTES.index(a)].sum()) for a in ("tall", "wide"))
    assert len(glyphs) == 40 + 24 + 16  # docs/data/hershey.md
    positives = np.array([tall, wide, 24])  # every greek_sans_upper character is group_greek
    # 14 training drawers per character: the ratio (N - P) / P does not depend on them
    assert family.pos_weight.tolist() == pytest.approx(((80 - positives) / positives).tolist())
    summary = train(cfg)
    assert summary["tasks"] == ["tall", "wide", "group_greek"]


def test_pos_weight_list_through_the_config(tmp_path):
    train(compose(hershey(tmp_path, "task.labels=[tall,wide]", "task.pos_weight=[1.5,4.0]")))
    assert_finished(tmp_path, ["tall", "wide"])
    with pytest.raises(UserError, match=r"^task.pos_weight: expected null, auto or 2 positive"):
        train(compose(hershey(tmp_path / "a", "task.labels=[tall,wide]", "task.pos_weight=[1.0]")))


def test_bad_pos_weight_and_threshold_are_refused(tmp_path):
    with pytest.raises(UserError, match=r"^task.pos_weight: invalid value 'often'"):
        train(compose(hershey(tmp_path / "b", "task.pos_weight=often")))
    with pytest.raises(UserError, match=r"^task.threshold: invalid value '1.5'"):
        train(compose(hershey(tmp_path / "c", "task.threshold=1.5")))


def test_val_f1_run_finishes_and_differs_from_the_fixed_threshold(tmp_path):
    fixed = train(compose(hershey(tmp_path / "fixed")))
    tuned = train(compose(hershey(tmp_path / "tuned", "task.threshold=val_f1")))
    assert_finished(tmp_path / "tuned", HERSHEY_LABELS)
    # same seed, same model: scores (and threshold-free AP) agree; thresholded metrics differ
    assert tuned["test"]["map"] == pytest.approx(fixed["test"]["map"])
    assert tuned["test"]["macro_f1"] != fixed["test"]["macro_f1"]


def test_labels_without_positives_give_no_nan_anywhere(tmp_path):
    train(compose(hershey(tmp_path, "task.threshold=val_f1")))
    summary = assert_finished(tmp_path, HERSHEY_LABELS)
    # three alphabets: no Cyrillic or Japanese character, so these labels have no positive
    for split in ("val", "test", "best_test"):
        metrics = summary[split]
        for label in ("group_cyrillic", "group_japanese"):
            assert f"{label}/ap" not in metrics
            assert 0.0 <= metrics[f"{label}/f1"] <= 1.0
        aps = [metrics[f"{lab}/ap"] for lab in HERSHEY_LABELS if f"{lab}/ap" in metrics]
        assert len(aps) == len(HERSHEY_LABELS) - 2
        assert metrics["map"] == pytest.approx(np.mean(aps))
    for row in read_jsonl(tmp_path / "metrics.jsonl"):
        numbers = [v for v in row.values() if isinstance(v, float)]
        assert numbers and all(math.isfinite(v) for v in numbers)


def test_label_subset_keeps_the_given_order(tmp_path):
    labels = ["uppercase", "tall", "group_symbols"]
    train(compose(hershey(tmp_path, f"task.labels=[{','.join(labels)}]", "model=mmoe")))
    summary = assert_finished(tmp_path, labels)
    per_label = {k.split("/")[0] for k in summary["test"] if "/" in k}
    assert per_label == set(labels)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("[tall,klingon]", "task.labels: unknown label 'klingon'; allowed: many_strokes, "),
        ("[tall,tall]", "task.labels: a label is listed twice in ['tall', 'tall']"),
    ],
)
def test_bad_labels_are_refused_in_one_line(tmp_path, labels, message):
    with pytest.raises(UserError) as err:
        train(compose(hershey(tmp_path, f"task.labels={labels}")))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


# ----------------------------------------------------------------- the preset


def test_multilabel_sharing_preset_runs_tiny_through_the_cli(tmp_path):
    overrides = tiny_cli("backbone.hidden=[32]", "hydra.sweeper.params.seed=0")
    mtl("train", "-m", "experiment=multilabel_sharing", *overrides, cwd=tmp_path, check=True)
    (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2"]
    with open(sweep / "summary.csv", newline="") as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"independent", "hard_sharing", "mmoe"}
    assert all(r["n"] == "1" and r["failed"] == "0" for r in rows.values())
    assert float(rows["independent"]["delta_m"]) == 0.0
    assert all(0.0 <= float(r["test/map_mean"]) <= 1.0 for r in rows.values())
    config = (sweep / "0" / ".hydra" / "config.yaml").read_text()
    assert "threshold: val_f1" in config and "hershey_attribute_tasks" in config
    assert "| model |" in (sweep / "summary.md").read_text()
