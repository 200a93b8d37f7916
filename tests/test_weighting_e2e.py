"""Every weighting method end to end: the real `mtl train` CLI, the multi-label family (with
`rep_grad`), task sampling, exact resume, diagnostics in metrics.jsonl and `mtl report`, and the
`experiment=weighting_comparison` preset on fake Fashion-MNIST."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from mtl_cli.config import compose
from mtl_cli.io import read_jsonl
from mtl_cli.registry import schema_choices
from mtl_cli.run import train
from tests.conftest import mtl, tiny, tiny_cli
from tests.fakes import write_fake_fashion_mnist

METHODS = [c.name for c in schema_choices("loss")]  # the registry: every method, none listed here
#: methods that can combine gradients of the shared representation z
REP_GRAD_METHODS = [c.name for c in schema_choices("loss") if c.allows("rep_grad", True)]
TIMING = {"steps_per_s", "wall_time_s", "resumed_from"}


def multilabel(out: Path, *overrides: str) -> list[str]:
    """A few steps of the multi-label family (8 labels = 8 tasks) on synthetic vectors."""
    return [
        f"paths.output_dir={out}",
        "task=multilabel/synthetic",
        "task.train_size=64",
        "task.val_size=32",
        "task.test_size=32",
        "model=hard_sharing",
        "backbone=mlp",
        "backbone.hidden=[16]",
        "trainer=debug",
        "device=cpu",
        "trainer.threads=1",
        *overrides,
    ]


def sweep_runs(sweep: Path) -> dict[str, dict]:
    """{loss choice: {"metrics": metrics.json, "rows": metrics.jsonl}} of a finished sweep."""
    runs = {}
    for job in sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file()):
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        loss = next(
            line.split("loss=", 1)[1].strip()
            for line in overrides.splitlines()
            if "loss=" in line and "baseline" not in line
        )
        runs[loss] = {
            "metrics": json.loads((job / "metrics.json").read_text()),
            "rows": read_jsonl(job / "metrics.jsonl"),
        }
    return runs


def without_timing(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMING}


def jsonl_without_time(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(path)]


@pytest.mark.slow
def test_every_method_through_the_cli_with_diagnostics_and_report(tmp_path):
    sweep = tmp_path / "sweep"
    result = mtl(
        "train",
        "-m",
        f"loss={','.join(METHODS)}",
        *tiny_cli(),
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sweep_runs(sweep)
    assert sorted(runs) == sorted(METHODS)
    tasks = ["digits", "greek_sans_upper", "markers"]
    for name, run in runs.items():
        metrics, rows = run["metrics"], run["rows"]
        assert metrics["status"] == "finished" and metrics["step"] == 6, name
        assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
        assert [r["step"] for r in rows] == [3, 6]
        for row in rows:  # diagnostics at each evaluation, named by task
            assert {f"diag/grad_norm/{t}" for t in tasks} <= set(row), name
            assert {"diag/grad_cos/mean", "diag/grad_conflict_fraction"} <= set(row)
            assert 0.0 <= row["diag/grad_conflict_fraction"] <= 1.0
            assert {f"loss/weight/{t}" for t in tasks} <= set(row), name
            assert all(math.isfinite(row[f"loss/weight/{t}"]) for t in tasks)
    # equal (mean) weighs every task 1/3; worst_case puts weight 1 on one task
    assert all(runs["equal"]["rows"][0][f"loss/weight/{t}"] == pytest.approx(1 / 3) for t in tasks)
    worst = [runs["worst_case"]["rows"][-1][f"loss/weight/{t}"] for t in tasks]
    assert sorted(worst) == [0.0, 0.0, 1.0]

    report = mtl("report", str(sweep), "metrics=[test/*,diag/*]", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "diag/grad_conflict_fraction" in report.stdout
    with open(sweep / "summary.csv", newline="") as f:
        table = {row["loss"]: row for row in csv.DictReader(f)}
    for name, run in runs.items():  # the report's diag column is the mean over evaluations
        values = [r["diag/grad_conflict_fraction"] for r in run["rows"]]
        mean = float(table[name]["diag/grad_conflict_fraction_mean"])
        assert mean == pytest.approx(sum(values) / len(values)), name
        assert float(table[name]["test/accuracy_mean"]) == pytest.approx(
            run["metrics"]["test"]["accuracy"]
        )


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_the_multilabel_family(tmp_path, method):
    summary = train(compose(multilabel(tmp_path / "run", f"loss={method}")))
    assert summary["status"] == "finished" and summary["step"] == 6
    assert 0.0 <= summary["test"]["map"] <= 1.0
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    labels = summary["tasks"]
    assert len(labels) == 8
    assert {f"loss/weight/{t}" for t in labels} <= set(rows[-1])
    assert 0.0 <= rows[-1]["diag/grad_conflict_fraction"] <= 1.0


@pytest.mark.parametrize("method", REP_GRAD_METHODS)
def test_rep_grad_trains_the_multilabel_family(tmp_path, method):
    rep = train(compose(multilabel(tmp_path / "rep", f"loss={method}", "loss.rep_grad=true")))
    assert rep["status"] == "finished" and rep["step"] == 6
    if method in ("mgda", "pcgrad"):
        # gradients w.r.t. z instead of the trunk parameters give a different update
        plain = train(compose(multilabel(tmp_path / "plain", f"loss={method}")))
        assert rep["test"] != plain["test"]
    weights = [v for k, v in read_jsonl(tmp_path / "rep" / "metrics.jsonl")[-1].items()
               if k.startswith("loss/weight/")]  # fmt: skip
    assert len(weights) == 8 and all(math.isfinite(w) for w in weights)
    if method == "mgda":  # min-norm weights lie on the simplex
        assert sum(weights) == pytest.approx(1.0) and min(weights) >= 0.0


@pytest.mark.parametrize("method", ["uncertainty", "dwa", "gradnorm"])
def test_stateful_methods_with_task_sampling(tmp_path, method):
    overrides = ["trainer.task_sampling=uniform", "trainer.tasks_per_step=2", f"loss={method}"]
    if method == "dwa":
        overrides.append("loss.period=1")  # DWA's ratios are active from step 3 on
    summary = train(compose(tiny(tmp_path / "run", *overrides, "trainer.steps=9")))
    assert summary["status"] == "finished" and summary["step"] == 9
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    for row in rows:  # the weights logged are those of the last step's two tasks
        weights = {k: v for k, v in row.items() if k.startswith("loss/weight/")}
        assert len(weights) == 2 and all(math.isfinite(v) and v > 0 for v in weights.values())
        if method == "dwa":  # K softmax(r / temp) over the step's K = 2 tasks: sum K
            assert sum(weights.values()) == pytest.approx(2.0)
        if method == "gradnorm":  # the weights of all T = 3 tasks sum to 3, each positive
            assert sum(weights.values()) < 3.0


@pytest.mark.parametrize("method", ["pcgrad", "rlw"])
def test_random_method_resumes_exactly(tmp_path, method):
    full = train(compose(tiny(tmp_path / "full", f"loss={method}", "trainer.steps=6")))
    train(compose(tiny(tmp_path / "part", f"loss={method}", "trainer.steps=3")))
    resumed = train(compose(tiny(tmp_path / "part", f"loss={method}", "trainer.steps=6")))
    assert resumed["resumed_from"] == 3
    assert without_timing(resumed) == without_timing(full)
    assert jsonl_without_time(tmp_path / "part/metrics.jsonl") == jsonl_without_time(
        tmp_path / "full/metrics.jsonl"
    )
    train(compose(tiny(tmp_path / "other", f"loss={method}", "loss.seed=123")))
    assert jsonl_without_time(tmp_path / "other/metrics.jsonl") != jsonl_without_time(
        tmp_path / "full/metrics.jsonl"
    )  # the method's own randomness does act


@pytest.mark.slow
def test_weighting_comparison_preset_runs_tiny(tmp_path):
    fashion = write_fake_fashion_mnist(tmp_path / "fashion")
    sweep = tmp_path / "sweep"
    tiny_preset = [
        "experiment=weighting_comparison",
        "trainer=debug",
        "trainer.steps=4",  # the preset sets steps/eval_every itself: override them explicitly
        "trainer.eval_every=2",
        "task.train_size=64",
        "task.val_size=32",
        "task.test_size=32",
        f"data.root={fashion}",
        f"data.cache_dir={tmp_path / 'cache'}",  # fake data must not reach the real cache
        "device=cpu",
        "trainer.threads=1",
        "hydra.sweeper.params.seed=0",
    ]
    result = mtl("train", "-m", *tiny_preset, f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sweep_runs(sweep)
    assert sorted(runs) == sorted(METHODS)  # 12 methods x 1 seed
    for run in runs.values():
        assert run["metrics"]["status"] == "finished" and run["metrics"]["step"] == 4
        assert run["metrics"]["tasks"] == ["left", "right"]
        assert run["metrics"]["choices"]["backbone"] == "lenet"
        assert "diag/cos/left-right" in run["rows"][-1]
    summary = (sweep / "summary.md").read_text()
    table_lines = [line for line in summary.splitlines() if line.startswith("| ")]
    assert len(table_lines) == 1 + len(METHODS)  # header + one row per method

    baseline = mtl(  # the independent baseline for Δm, into the same folder (docs/weighting.md)
        "train",
        "-m",
        *tiny_preset,
        "model=independent",
        "~hydra.sweeper.params.loss",
        f"hydra.sweep.dir={sweep / 'independent'}",
        cwd=tmp_path,
        timeout=200,
    )
    assert baseline.returncode == 0, baseline.stderr[-2000:]
    report = mtl(
        "report", str(sweep), "metrics=[test/accuracy,test/*/accuracy,diag/*]", cwd=tmp_path
    )
    assert report.returncode == 0, report.stderr
    assert "test/left/accuracy" in report.stdout and "Δm (%)" in report.stdout
    with open(sweep / "summary.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(METHODS) + 1
    rows = [r for r in table if r["model"] != "independent"]
    assert all(r["delta_m"] != "" for r in rows)  # every method row has Δm


def test_diagnostics_name_the_sampled_tasks(tmp_path):
    overrides = ["trainer.task_sampling=uniform", "trainer.tasks_per_step=2"]
    train(compose(tiny(tmp_path / "run", *overrides, "trainer.eval_every=1")))
    for row in read_jsonl(tmp_path / "run" / "metrics.jsonl"):
        weighted = {k.rsplit("/", 1)[1] for k in row if k.startswith("loss/weight/")}
        diagnosed = {k.rsplit("/", 1)[1] for k in row if k.startswith("diag/grad_norm/")}
        assert diagnosed == weighted


@pytest.mark.slow
def test_weighting_comparison_hershey_fallback_preset_runs_tiny(tmp_path):
    sweep = tmp_path / "sweep"
    result = mtl(
        "train",
        "-m",
        "experiment=weighting_comparison_hershey",
        *tiny_cli("trainer.steps=4", "trainer.eval_every=2"),
        "hydra.sweeper.params.seed=0",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = sweep_runs(sweep)
    assert sorted(runs) == sorted(METHODS)
    for run in runs.values():
        assert run["metrics"]["status"] == "finished" and run["metrics"]["step"] == 4
        assert run["metrics"]["choices"]["backbone"] == "lenet"
        assert run["metrics"]["tasks"] == ["digits", "greek_sans_upper", "markers"]


@pytest.mark.parametrize(
    "alphabets", ["[digits,markers]", "[digits,markers,greek_sans_upper,math]"], ids=["T2", "T4"]
)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_the_multitask_family_with_two_and_four_tasks(
    tmp_path, method, alphabets
):
    args = [
        a for a in tiny(tmp_path / "run", f"loss={method}") if not a.startswith("task.alphabets")
    ]
    summary = train(compose([*args, f"task.alphabets={alphabets}"]))
    assert summary["status"] == "finished" and summary["step"] == 6
    assert len(summary["tasks"]) == alphabets.count(",") + 1
    assert all(math.isfinite(v) for v in summary["test"].values())
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert {f"loss/weight/{t}" for t in summary["tasks"]} <= set(rows[-1])
