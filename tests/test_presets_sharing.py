"""The sharing case-study presets (experiment/{mmoe_correlation,negative_transfer,
multifashion_sharing}) run tiny through the real CLI and write the sweep table they promise.

A preset sets `trainer.steps` etc. itself, so `trainer=debug` alone does not shrink it: the tests
also pass `trainer.steps=...`. The grid shrinks from the command line either with
`hydra.sweeper.params.<key>=<values>` or with a plain `<key>=<values>` (the same key given again
replaces the preset's values; both idioms are exercised below).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import mtl
from tests.fakes import write_fake_fashion_mnist

pytestmark = pytest.mark.slow  # each test is a subprocess sweep of 4-8 tiny jobs (10-40 s)

TINY = ("trainer=debug", "trainer.steps=4", "trainer.eval_every=2", "device=cpu",
        "trainer.threads=1", "trainer.diagnostics=false")  # fmt: skip
TINY_SYNTHETIC = ("task.train_size=64", "task.val_size=32", "task.test_size=32")
SHARING_MODELS = ["conditioned", "cross_stitch", "hard_sharing", "independent", "mmoe"]


def run_preset(tmp_path: Path, name: str, *overrides: str, timeout: float = 300) -> Path:
    """`mtl train -m experiment=<name> <tiny overrides>` into tmp_path/sweep; returns that dir."""
    sweep = tmp_path / "sweep"
    result = mtl("train", "-m", f"experiment={name}", *TINY, *overrides,
                 f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=timeout)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return sweep


def jobs(sweep: Path) -> list[dict]:
    """metrics.json of every job dir, with its overrides."""
    out = []
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        metrics = json.loads((job / "metrics.json").read_text())
        metrics["overrides"] = (job / ".hydra" / "overrides.yaml").read_text()
        out.append(metrics)
    return out


def summary_rows(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_mmoe_correlation_preset(tmp_path):
    sweep = run_preset(tmp_path, "mmoe_correlation", *TINY_SYNTHETIC, "hydra.sweeper.params.seed=0")
    runs = jobs(sweep)
    assert len(runs) == 8  # correlation {1.0, 0.9, 0.5, 0.0} x model {hard_sharing, mmoe}
    for run in runs:
        assert run["status"] == "finished" and run["step"] == 4 and run["seed"] == 0
        assert set(run["test"]) == {"task0/mse", "task1/mse", "mse"}
        assert run["choices"]["task"] == "multitask/synthetic_mmoe"
        assert run["choices"]["backbone"] == "mlp"
    rows = summary_rows(sweep)
    got = sorted((r["task.correlation"], r["model"]) for r in rows)
    assert got == sorted(
        (c, m) for c in ("1.0", "0.9", "0.5", "0.0") for m in ("hard_sharing", "mmoe")
    )
    assert all(r["n"] == "1" for r in rows)
    assert "delta_m" not in rows[0]  # no independent row: no Δm column

    report = mtl("report", str(sweep), "metrics=[test/mse,test/*/mse]", cwd=tmp_path, check=True)
    assert "test/task0/mse" in report.stdout and "test/task1/mse" in report.stdout


def test_mmoe_correlation_grid_shrinks_with_plain_overrides(tmp_path):
    sweep = run_preset(
        tmp_path, "mmoe_correlation", *TINY_SYNTHETIC, "task.correlation=1.0,0.0", "seed=0"
    )
    rows = summary_rows(sweep)
    assert sorted((r["task.correlation"], r["model"]) for r in rows) == [
        ("0.0", "hard_sharing"), ("0.0", "mmoe"), ("1.0", "hard_sharing"), ("1.0", "mmoe"),
    ]  # fmt: skip


def test_negative_transfer_preset_has_delta_m_against_independent(tmp_path):
    sweep = run_preset(tmp_path, "negative_transfer", *TINY_SYNTHETIC, "seed=0")
    runs = jobs(sweep)
    assert sorted(r["choices"]["model"] for r in runs) == SHARING_MODELS
    for run in runs:
        assert run["status"] == "finished" and run["step"] == 4
        assert "correlation" not in run["overrides"]  # the preset's -0.5 is in the config
    config = (sweep / "0" / ".hydra" / "config.yaml").read_text()
    assert "correlation: -0.5" in config
    rows = {r["model"]: r for r in summary_rows(sweep)}
    assert sorted(rows) == SHARING_MODELS
    assert float(rows["independent"]["delta_m"]) == pytest.approx(0.0, abs=1e-9)
    by_model = {r["choices"]["model"]: r["test"] for r in runs}
    base = by_model["independent"]
    hard = by_model["hard_sharing"]
    expected = -50.0 * sum((hard[k] - base[k]) / base[k] for k in ("task0/mse", "task1/mse"))
    assert float(rows["hard_sharing"]["delta_m"]) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_multifashion_sharing_preset_on_fake_fashion_mnist(tmp_path):
    fashion = write_fake_fashion_mnist(tmp_path / "fashion", n_train=600, n_test=120)
    sweep = run_preset(
        tmp_path, "multifashion_sharing", "task.train_size=48", "task.val_size=24",
        "task.test_size=24", f"data.root={fashion}", f"data.cache_dir={tmp_path / 'cache'}",
        "hydra.sweeper.params.seed=0",
    )  # fmt: skip
    runs = jobs(sweep)
    assert sorted(r["choices"]["model"] for r in runs) == SHARING_MODELS
    for run in runs:
        assert run["status"] == "finished" and run["step"] == 4
        assert run["tasks"] == ["left", "right"] and run["choices"]["backbone"] == "lenet"
        assert 0.0 <= run["test"]["accuracy"] <= 1.0
    rows = {r["model"]: r for r in summary_rows(sweep)}
    assert sorted(rows) == SHARING_MODELS
    assert all(rows[m]["delta_m"] != "" for m in SHARING_MODELS)
    assert float(rows["independent"]["delta_m"]) == pytest.approx(0.0, abs=1e-9)
