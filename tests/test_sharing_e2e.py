"""Every multi-task sharing model trains end to end on every family and dataset it can serve.

Each case goes through `train(cfg)` with a config composed like `mtl train` does, on tiny data
(`trainer=debug`, a few alphabets, fake Fashion-MNIST from tests/fakes.py), and checks that
metrics.json says "finished" with every metric finite and in its range. Δm against a
`baseline_run` is checked against a hand computation from the two metrics.json files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.registry import schema_choices
from mtl_cli.run import train
from tests.conftest import SMALL_ALPHABETS, mtl, tiny
from tests.fakes import write_fake_fashion_mnist

COMMON = ("trainer=debug", "device=cpu", "trainer.threads=1", "trainer.diagnostics=false")
HERSHEY = (f"task.alphabets={SMALL_ALPHABETS}",)
SYNTH_MMOE = ("task.train_size=64", "task.val_size=32", "task.test_size=32", "task.dim=12")
SYNTH_LABELS = ("task.train_size=64", "task.val_size=32", "task.test_size=32", "task.dim=12")
FASHION_SIZES = ("task.train_size=48", "task.val_size=24", "task.test_size=24")
#: narrow backbones keep the many tiny runs fast; every layer type is still exercised
SMALL_BACKBONE = {
    "mlp": ("backbone.hidden=[16]",),
    "conv": ("backbone.channels=[4,8]", "backbone.fc_features=16"),
    "lenet": (),
    "conv4": ("backbone.hidden_channels=8",),
}
CONDITIONED = {c: (f"model.conditioning={c}",) for c in ("concat", "additive", "multiplicative")}
CONDITIONED["film"] = ("model.conditioning=film", "model.descriptor=embedding")

#: (model, its extra overrides) over every sharing scheme, conditioning type included
MODELS = [
    ("independent", ()),
    ("hard_sharing", ()),
    *[("conditioned", over) for over in CONDITIONED.values()],
    ("cross_stitch", ()),
    ("mmoe", ("model.num_experts=2", "model.tower_hidden=[8]")),
]
MODEL_IDS = ["independent", "hard_sharing", *[f"conditioned-{c}" for c in CONDITIONED],
             "cross_stitch", "mmoe"]  # fmt: skip
IMAGE_BACKBONES = ["mlp", "conv", "lenet", "conv4"]
#: Hershey alphabets: every model, and every image backbone at least once (round robin)
HERSHEY_CASES = [
    (model, over, IMAGE_BACKBONES[i % len(IMAGE_BACKBONES)])
    for i, (model, over) in enumerate(MODELS)
]

MULTITASK_RANGES = {"accuracy": (0.0, 1.0), "loss": (0.0, math.inf), "mse": (0.0, math.inf)}
MULTILABEL_RANGES = {
    "map": (0.0, 1.0),
    "macro_f1": (0.0, 1.0),
    "micro_f1": (0.0, 1.0),
    "subset_accuracy": (0.0, 1.0),
    "hamming_loss": (0.0, 1.0),
    "loss": (0.0, math.inf),
    "accuracy": (0.0, 1.0),
    "ap": (0.0, 1.0),
    "f1": (0.0, 1.0),
    "precision": (0.0, 1.0),
    "recall": (0.0, 1.0),
}


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory) -> Path:
    """Fake Fashion-MNIST (the real IDX format) shared by the fashion cases of this module."""
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fashion"), n_train=600, n_test=120)


def run_case(out: Path, *overrides: str) -> dict:
    """Train tiny, then return metrics.json after checking it against the returned summary."""
    cfg = compose([*COMMON, *overrides, f"paths.output_dir={out}"])
    summary = train(cfg)
    written = json.loads((out / "metrics.json").read_text())
    assert written["status"] == "finished" and written["error"] is None
    assert written["step"] == cfg.trainer.steps and written["test"] == summary["test"]
    return written


def assert_metrics_in_range(metrics: dict, ranges: dict, tasks: list[str]) -> None:
    """Every aggregate and per-task metric is finite (or +inf-bounded) and inside its range."""
    assert metrics, "no metrics"
    for key, value in metrics.items():
        name = key.rsplit("/", 1)[-1]
        assert name in ranges, f"unexpected metric {key}"
        low, high = ranges[name]
        assert math.isfinite(value) and low <= value <= high, f"{key}={value}"
    for task in tasks:
        assert any(k.startswith(f"{task}/") for k in metrics), f"no metric for task {task}"


@pytest.mark.parametrize(("model", "over", "backbone"), HERSHEY_CASES, ids=MODEL_IDS)
def test_hershey_alphabets(tmp_path, model, over, backbone):
    out = run_case(
        tmp_path, "task=multitask/hershey_alphabets", *HERSHEY, f"model={model}", *over,
        f"backbone={backbone}", *SMALL_BACKBONE[backbone],
    )  # fmt: skip
    assert out["tasks"] == ["digits", "greek_sans_upper", "markers"]
    for split in ("test", "val", "best_test"):
        assert_metrics_in_range(out[split], MULTITASK_RANGES, out["tasks"])


@pytest.mark.parametrize(("model", "over"), MODELS, ids=MODEL_IDS)
def test_synthetic_mmoe_regression(tmp_path, model, over):
    out = run_case(
        tmp_path, "task=multitask/synthetic_mmoe", *SYNTH_MMOE, f"model={model}", *over,
        "backbone=mlp", *SMALL_BACKBONE["mlp"],
    )  # fmt: skip
    assert out["tasks"] == ["task0", "task1"]
    assert set(out["test"]) == {"task0/mse", "task1/mse", "mse"}
    assert out["test"]["mse"] == pytest.approx(
        (out["test"]["task0/mse"] + out["test"]["task1/mse"]) / 2
    )
    assert_metrics_in_range(out["test"], MULTITASK_RANGES, out["tasks"])


@pytest.mark.parametrize("backbone", ["conv", "lenet", "conv4"])
def test_synthetic_mmoe_refuses_image_backbones_before_any_work(tmp_path, backbone):
    out = tmp_path / "run"
    cfg = compose([*COMMON, "task=multitask/synthetic_mmoe", f"backbone={backbone}",
                   f"paths.output_dir={out}"])  # fmt: skip
    with pytest.raises(UserError) as info:
        train(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert f"backbone: '{backbone}' needs image inputs" in message and "vector" in message
    assert not out.exists()  # refused before the run dir (or any data) was made


def test_cli_refuses_conv_on_vector_tasks_in_one_line(tmp_path):
    result = mtl("train", "task=multitask/synthetic_mmoe", "backbone=conv", "device=cpu",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "backbone: 'conv' needs image inputs" in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(("model", "over"), MODELS, ids=MODEL_IDS)
def test_multifashion(tmp_path, fashion_root, model, over):
    out = run_case(
        tmp_path, "task=multitask/multifashion", *FASHION_SIZES, f"data.root={fashion_root}",
        f"data.cache_dir={tmp_path / 'cache'}", f"model={model}", *over, "backbone=lenet",
    )  # fmt: skip
    assert out["tasks"] == ["left", "right"]
    assert_metrics_in_range(out["test"], MULTITASK_RANGES, out["tasks"])


@pytest.mark.parametrize(("model", "over"), MODELS, ids=MODEL_IDS)
def test_fashion_mosaic(tmp_path, fashion_root, model, over):
    backbone = "conv" if model in ("hard_sharing", "mmoe") else "mlp"
    out = run_case(
        tmp_path, "task=multilabel/fashion_mosaic", *FASHION_SIZES, "task.image_size=28",
        f"data.root={fashion_root}", f"data.cache_dir={tmp_path / 'cache'}", f"model={model}",
        *over, f"backbone={backbone}", *SMALL_BACKBONE[backbone],
    )  # fmt: skip
    assert len(out["tasks"]) == 10  # one label per Fashion-MNIST class
    assert_metrics_in_range(out["test"], MULTILABEL_RANGES, out["tasks"])


@pytest.mark.parametrize(("model", "over"), MODELS, ids=MODEL_IDS)
def test_hershey_attributes(tmp_path, model, over):
    backbone = "conv" if model == "cross_stitch" else "mlp"
    out = run_case(
        tmp_path, "task=multilabel/hershey_attributes", *HERSHEY, f"model={model}", *over,
        f"backbone={backbone}", *SMALL_BACKBONE[backbone],
    )  # fmt: skip
    assert len(out["tasks"]) >= 2
    assert_metrics_in_range(out["test"], MULTILABEL_RANGES, out["tasks"])


@pytest.mark.parametrize(("model", "over"), MODELS, ids=MODEL_IDS)
def test_synthetic_multilabel(tmp_path, model, over):
    out = run_case(
        tmp_path, "task=multilabel/synthetic", *SYNTH_LABELS, "task.num_labels=4",
        f"model={model}", *over, "backbone=mlp", *SMALL_BACKBONE["mlp"],
    )  # fmt: skip
    assert out["tasks"] == ["label0", "label1", "label2", "label3"]
    assert_metrics_in_range(out["test"], MULTILABEL_RANGES, out["tasks"])


# ---------------------------------------------------------------------------- Δm


def maninis_delta_m(ours: dict, base: dict, metric: str, higher_is_better: bool) -> float:
    """Hand Δm (Maninis et al. 2019): mean over tasks of ±(M - B)/B * 100, + if higher is better."""
    tasks = [k for k in base if k.endswith(f"/{metric}")]
    sign = 1.0 if higher_is_better else -1.0
    return 100.0 * sum(sign * (ours[k] - base[k]) / base[k] for k in tasks) / len(tasks)


@pytest.mark.parametrize(
    ("task", "metric", "higher"),
    [("hershey_alphabets", "accuracy", True), ("synthetic_mmoe", "mse", False)],
)
def test_delta_m_against_an_independent_baseline_run(tmp_path, task, metric, higher):
    data = HERSHEY if task == "hershey_alphabets" else SYNTH_MMOE
    more = ("trainer.steps=12",)  # a little training, so the two runs' metrics differ
    base = run_case(tmp_path / "base", f"task=multitask/{task}", *data, *more, "model=independent")
    ours = train(
        compose([*COMMON, f"task=multitask/{task}", *data, *more, "model=hard_sharing",
                 f"baseline_run={tmp_path / 'base'}", f"paths.output_dir={tmp_path / 'ours'}"])
    )  # fmt: skip
    written = json.loads((tmp_path / "ours" / "metrics.json").read_text())
    expected = maninis_delta_m(written["test"], base["test"], metric, higher)
    assert "delta_m" not in base
    assert written["delta_m"] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert ours["delta_m"] == written["delta_m"]
    if task == "synthetic_mmoe":  # lower-is-better: a worse mse must give a negative Δm
        worse = all(written["test"][k] > base["test"][k] for k in ("task0/mse", "task1/mse"))
        better = all(written["test"][k] < base["test"][k] for k in ("task0/mse", "task1/mse"))
        assert not worse or written["delta_m"] < 0
        assert not better or written["delta_m"] > 0


def test_delta_m_known_answer_from_fabricated_baseline(tmp_path):
    """A baseline metrics.json with known numbers: Δm is exactly the hand formula."""
    ours = train(compose([*COMMON, "task=multitask/synthetic_mmoe", *SYNTH_MMOE,
                          f"paths.output_dir={tmp_path / 'ours'}"]))  # fmt: skip
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    base = {"task0/mse": 2.0, "task1/mse": 8.0, "mse": 5.0}
    (base_dir / "metrics.json").write_text(json.dumps({"status": "finished", "test": base}))
    again = train(compose([*COMMON, "task=multitask/synthetic_mmoe", *SYNTH_MMOE,
                           f"baseline_run={base_dir}", f"paths.output_dir={tmp_path / 'again'}"]))  # fmt: skip
    m0, m1 = ours["test"]["task0/mse"], ours["test"]["task1/mse"]
    # lower is better: Δm = -50 * ((m0 - 2) / 2 + (m1 - 8) / 8)
    assert again["test"] == ours["test"]  # same seed, same run
    assert again["delta_m"] == pytest.approx(-50.0 * ((m0 - 2.0) / 2.0 + (m1 - 8.0) / 8.0))


def test_delta_m_baseline_without_metrics_is_a_one_line_error(tmp_path):
    cfg = compose([*COMMON, "task=multitask/synthetic_mmoe", *SYNTH_MMOE,
                   f"baseline_run={tmp_path / 'nowhere'}", f"paths.output_dir={tmp_path / 'o'}"])  # fmt: skip
    with pytest.raises(UserError, match=r"^baseline_run: .*nowhere has no metrics.json"):
        train(cfg)


@pytest.mark.slow  # a subprocess sweep of 4 jobs
def test_sweep_with_independent_row_reports_delta_m(tmp_path):
    overrides = ["task=multitask/synthetic_mmoe", *SYNTH_MMOE, "trainer=debug", "device=cpu",
                 "trainer.threads=1", "model=independent,hard_sharing", "seed=0,1"]  # fmt: skip
    mtl("train", "-m", *overrides, cwd=tmp_path, check=True)
    (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()
    runs = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        metrics = json.loads((job / "metrics.json").read_text())
        runs.setdefault(metrics["choices"]["model"], []).append(metrics["test"])
    assert sorted(runs) == ["hard_sharing", "independent"] and len(runs["independent"]) == 2

    def mean(model: str, key: str) -> float:
        return sum(m[key] for m in runs[model]) / len(runs[model])

    keys = ("task0/mse", "task1/mse")
    expected = (
        -100.0
        * sum(
            (mean("hard_sharing", k) - mean("independent", k)) / mean("independent", k)
            for k in keys
        )
        / len(keys)
    )

    result = mtl("report", str(sweep), cwd=tmp_path, check=True)
    header = next(line for line in result.stdout.splitlines() if "Δm" in line)
    assert "model" in header
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if "|" in line}
    assert "hard_sharing" in rows and "independent" in rows
    csv_lines = (sweep / "summary.csv").read_text().splitlines()
    columns = csv_lines[0].split(",")
    assert "delta_m" in columns
    by_model = {line.split(",")[columns.index("model")]: line.split(",") for line in csv_lines[1:]}
    assert float(by_model["hard_sharing"][columns.index("delta_m")]) == pytest.approx(
        expected, rel=1e-6, abs=1e-6
    )
    assert float(by_model["independent"][columns.index("delta_m")]) == pytest.approx(0.0, abs=1e-9)


#: every sharing model of the registry that serves the multi-task family
REGISTRY_MODELS = [c.name for c in schema_choices("model") if "multitask" in c.fact("families", ())]


@pytest.mark.parametrize(
    "alphabets", ["[digits,markers]", "[digits,markers,greek_sans_upper,math]"], ids=["T2", "T4"]
)
@pytest.mark.parametrize("model", REGISTRY_MODELS)
def test_every_model_trains_the_multitask_family_with_two_and_four_tasks(
    tmp_path, model, alphabets
):
    args = [
        a
        for a in tiny(tmp_path / "run", f"model={model}", "loss=pcgrad")
        if not a.startswith("task.alphabets")
    ]
    summary = train(compose([*args, f"task.alphabets={alphabets}", "backbone.hidden=[32,32]"]))
    assert summary["status"] == "finished" and summary["step"] == 6
    assert len(summary["tasks"]) == alphabets.count(",") + 1
    assert all(math.isfinite(v) for v in summary["test"].values())
    assert summary["num_params"] > 0
