"""Dense scene understanding end to end: every model and weighting method on the embedded scenes,
task subsets, rep_grad on the encoder's map, Δm over every metric with its direction, refusals,
and the prediction pictures of `mtl plot`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.families import DENSE_TASK_METRICS
from mtl_cli.registry import schema_choices
from mtl_cli.run import train

MODELS = [c.name for c in schema_choices("model") if "dense" in c.fact("families", ())]
LOSSES = [c.name for c in schema_choices("loss")]
BACKBONES = [c.name for c in schema_choices("backbone") if c.fact("output", "vector") == "map"]


#: small versions of the dense backbones (a few steps on 16x16 images)
SMALL = {
    "segnet": ["backbone.channels=[4,8]", "backbone.convs_per_block=[1,1]"],
    "resnet_dilated": ["backbone.channels=[4,8]", "backbone.blocks_per_stage=[1,1]"],
}


def dense(out: Path, *overrides: str, backbone: str = "segnet") -> list[str]:
    """A few steps on 16 rendered 16x16 scenes with a small dense backbone."""
    return [
        f"paths.output_dir={out}",
        "trainer=debug",
        "task=dense/scenes",
        "task.image_size=16",
        "task.train_size=16",
        "task.val_size=4",
        "task.test_size=4",
        f"backbone={backbone}",
        *SMALL.get(backbone, []),
        "device=cpu",
        "trainer.threads=1",
        *overrides,
    ]


def finished(out: Path) -> dict:
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["status"] == "finished", summary.get("error")
    return summary


def test_the_family_reports_every_metric_of_every_task(tmp_path):
    train(compose(dense(tmp_path, "model=hard_sharing")))
    summary = finished(tmp_path)
    test = summary["test"]
    for task, names in DENSE_TASK_METRICS.items():
        for name in (*names, "loss"):
            assert math.isfinite(test[f"{task}/{name}"]), (task, name)
    assert 0.0 <= test["miou"] <= 1.0 and 0.0 <= test["within_30"] <= 1.0
    assert test["loss"] == pytest.approx(
        sum(test[f"{t}/loss"] for t in DENSE_TASK_METRICS) / 3, rel=1e-6
    )
    assert summary["family"] == "dense"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_dense_model_and_backbone_trains(tmp_path, model, backbone):
    try:
        train(compose(dense(tmp_path, f"model={model}", backbone=backbone)))
    except UserError as exc:  # a combination a model refuses must say so in one line
        assert "\n" not in str(exc) and model in str(exc)
        return
    finished(tmp_path)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_weighting_method_trains_on_dense_tasks(tmp_path, loss):
    train(compose(dense(tmp_path, "model=hard_sharing", f"loss={loss}")))
    finished(tmp_path)


def test_a_gradient_method_on_the_encoders_feature_map(tmp_path):
    train(compose(dense(tmp_path, "model=hard_sharing", "loss=pcgrad", "loss.rep_grad=true")))
    finished(tmp_path)


def test_a_subset_of_tasks_and_its_metrics(tmp_path):
    train(compose(dense(tmp_path, "task.tasks=[segmentation,depth]", "model=hard_sharing")))
    test = finished(tmp_path)["test"]
    assert "depth/abs_error" in test and "segmentation/miou" in test
    assert not any(k.startswith("normals/") or "angle" in k for k in test)


def test_select_metric_of_a_task_not_chosen_is_refused(tmp_path):
    cfg = compose(
        dense(tmp_path, "task.tasks=[segmentation]", "trainer.select_metric=mean_angle_error")
    )
    with pytest.raises(UserError, match="trainer.select_metric: 'mean_angle_error'"):
        train(cfg)


def test_select_metric_higher_is_better_picks_the_best_step(tmp_path):
    train(compose(dense(tmp_path, "model=hard_sharing", "trainer.select_metric=miou")))
    summary = finished(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    vals = [r["val/miou"] for r in rows if "val/miou" in r]
    assert summary["best_val"]["miou"] == pytest.approx(max(vals))


def test_a_flat_backbone_is_refused_in_one_line(tmp_path):
    with pytest.raises(UserError) as info:
        train(compose(dense(tmp_path, backbone="conv")))
    message = str(info.value)
    assert "\n" not in message and "backbone: 'conv'" in message and "segnet" in message


def test_delta_m_against_a_baseline_uses_every_metric_with_its_direction(tmp_path):
    base = tmp_path / "independent"
    train(compose(dense(base, "model=independent")))
    ours = tmp_path / "shared"
    train(compose(dense(ours, "model=hard_sharing", f"baseline_run={base}")))
    mine, theirs = finished(ours)["test"], finished(base)["test"]
    keys = [f"{t}/{m}" for t, names in DENSE_TASK_METRICS.items() for m in names]
    keys = [k for k in keys if theirs[k] != 0]  # left out: undefined relative change
    signs = {"miou": 1, "pixel_accuracy": 1, "within_11_25": 1, "within_22_5": 1, "within_30": 1}
    expected = (
        100
        * sum(signs.get(k.split("/")[1], -1) * (mine[k] - theirs[k]) / theirs[k] for k in keys)
        / len(keys)
    )
    assert finished(ours)["delta_m"] == pytest.approx(expected, rel=1e-9)


def test_plot_draws_inputs_truths_and_predictions(tmp_path):
    from mtl_cli.plot import plot_dir

    run = tmp_path / "run"
    train(compose(dense(run, "model=hard_sharing")))
    (run / ".hydra").mkdir()
    from omegaconf import OmegaConf

    OmegaConf.save(compose(dense(run, "model=hard_sharing")), run / ".hydra" / "config.yaml")
    paths = plot_dir(run)
    names = sorted(p.name for p in paths)
    assert names == ["curves.png", "predictions.png"]
    from PIL import Image

    width, height = Image.open(run / "plots" / "predictions.png").size
    assert width > height  # 7 columns (input + truth/prediction of 3 tasks) by 4 rows


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task=dense/scenes", "backbone=conv"], "backbone: 'conv' gives a vector"),
        (["backbone=segnet"], "backbone: 'segnet' gives a map"),
        (["task=dense/scenes", "backbone=segnet", "task.tasks=[depth,colour]"], "task.tasks"),
        (["task=dense/nyuv2", "backbone=segnet", "data.root=missing"], "nyuv2"),
    ],
)
def test_bad_dense_input_is_one_line_exit_2_and_writes_nothing(tmp_path, overrides, message):
    from tests.conftest import mtl

    result = mtl("train", *overrides, "device=cpu", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []  # no run dir, no outputs/ folder


def test_dense_tasks_default_to_a_map_backbone_and_the_command_line_wins():
    from mtl_cli.registry import choices

    for choice in choices("task"):
        if choice.name.startswith("dense/"):
            assert compose([f"task={choice.name}"]).backbone._target_.endswith(".SegNet")
            chosen = compose([f"task={choice.name}", "backbone=resnet_dilated"]).backbone
            assert chosen._target_.endswith(".ResNetDilated")
    assert compose([]).backbone._target_.endswith(".MLP")  # other families keep theirs
