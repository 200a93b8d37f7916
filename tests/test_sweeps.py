"""Sweeps: failures recorded, resume of a killed sweep, optuna search, optimized metric, TensorBoard."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from mtl_cli import launch
from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.run import train
from tests.conftest import mtl, tiny, tiny_cli


def _sweep(cwd):
    (sweep,) = (cwd / "outputs/multirun").iterdir()
    return sweep


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def test_metric_value_reads_sections_and_names_allowed_keys():
    summary = {
        "best_val": {"accuracy": 0.5, "a/accuracy": 0.25},
        "test": {"loss": 2.0},
        "delta_m": 1.5,
    }
    assert launch.metric_value(summary, "best_val/a/accuracy") == 0.25
    assert launch.metric_value(summary, "delta_m") == 1.5
    with pytest.raises(
        UserError, match=r"'best_val/f1' is not in metrics.json; allowed: best_val/accuracy"
    ):
        launch.metric_value(summary, "best_val/f1")
    assert launch.objective_name("auto", "map") == "best_val/map"
    assert launch.objective_name("test/loss", "map") == "test/loss"
    assert (launch.direction("best_val/accuracy"), launch.direction("test/a/loss")) == (
        "maximize",
        "minimize",
    )


def test_train_records_the_optimized_metric(tmp_path):
    summary = train(compose(tiny(tmp_path / "a")))
    assert summary["optimized_metric"] == "best_val/accuracy"
    assert summary["optimized_value"] == summary["best_val"]["accuracy"]
    summary = train(compose(tiny(tmp_path / "b", "optimized_metric=test/loss")))
    assert summary["optimized_value"] == summary["test"]["loss"]
    assert _metrics(tmp_path / "b")["optimized_value"] == summary["test"]["loss"]


@pytest.mark.slow
def test_tensorboard_logs_the_scalars_of_metrics_jsonl(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mtl_cli.loggers import scalars

    mtl(
        "train",
        *tiny_cli("logger=tensorboard", f"hydra.run.dir={tmp_path / 'run'}"),
        cwd=tmp_path,
        check=True,
    )
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(tmp_path / "run/tensorboard"))
    events.Reload()
    expected = {k for row in rows for k in scalars(row)}
    assert set(events.Tags()["scalars"]) == expected
    for row in rows:
        for key, value in scalars(row).items():
            logged = {e.step: e.value for e in events.Scalars(key)}
            assert logged[row["step"]] == pytest.approx(value, rel=1e-6)


@pytest.mark.slow
def test_failing_job_is_recorded_and_the_sweep_exits_nonzero_with_a_summary(tmp_path):
    result = mtl("train", "-m", *tiny_cli("trainer.select_metric=accuracy,bogus"), cwd=tmp_path)
    assert result.returncode == 1
    sweep = _sweep(tmp_path)
    assert _metrics(sweep / "0")["status"] == "finished"
    failed = _metrics(sweep / "1")
    assert failed["status"] == "failed" and "trainer.select_metric: 'bogus'" in failed["error"]
    assert "Failed runs (1)" in (sweep / "summary.md").read_text()
    assert (sweep / "summary.csv").is_file()


def _wait_for(path, proc, timeout=120.0):
    start = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() - start < timeout, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.slow
def test_resume_sweep_skips_finished_resumes_interrupted_and_runs_the_rest(tmp_path):
    args = tiny_cli(
        "trainer.steps=600", "trainer.eval_every=20", "trainer.diagnostics=false", "seed=0,1,2"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtl_cli", "train", "-m", *args],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for(tmp_path / "outputs/multirun", proc)
    sweep = _sweep(tmp_path)
    _wait_for(sweep / "1/checkpoints/last.pt", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    assert _metrics(sweep / "0")["status"] == "finished"
    assert _metrics(sweep / "1")["status"] == "interrupted"
    assert not (sweep / "2").exists()
    first = (sweep / "0/metrics.json").read_bytes()

    mtl("train", "-m", f"resume_sweep={sweep}", cwd=tmp_path, check=True)
    assert (sweep / "0/metrics.json").read_bytes() == first  # finished: skipped, not retrained
    assert "already finished, skipped" in (sweep / "0/train.log").read_text()
    resumed = _metrics(sweep / "1")
    assert resumed["status"] == "finished" and resumed["resumed_from"] > 0
    assert _metrics(sweep / "2")["status"] == "finished" and _metrics(sweep / "2")["seed"] == 2
    assert len(list((tmp_path / "outputs/multirun").iterdir())) == 1  # no new sweep dir
    assert "| 3 | 0 |" in (sweep / "summary.md").read_text()  # n=3 finished, 0 failed


def test_resume_sweep_refuses_a_new_grid_and_a_missing_dir(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s/multirun.yaml").write_text(
        yaml.safe_dump(
            {"hydra": {"overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": ["seed=0,1"]}}}
        )
    )
    result = mtl("train", "-m", f"resume_sweep={tmp_path / 's'}", "seed=5,6", cwd=tmp_path)
    assert (
        result.returncode == 2 and "resume_sweep: 'seed=5,6' would change the grid" in result.stderr
    )
    result = mtl("train", "-m", f"resume_sweep={tmp_path / 'nope'}", cwd=tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = mtl("train", f"resume_sweep={tmp_path / 's'}", cwd=tmp_path)
    assert result.returncode == 2 and "needs -m" in result.stderr


def test_resume_overrides_rebuild_the_command_in_place(tmp_path):
    from mtl_cli.sweep_resume import resume_overrides

    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {
        "hydra": ["hydra/launcher=parallel", "hydra.mode=MULTIRUN", "hydra.sweep.dir=old"],
        "task": ["model=mmoe,independent", "seed=0,1", "trainer.resume=false"]}}}))  # fmt: skip
    got = resume_overrides(tmp_path, ["hydra/launcher=local", "device=cpu"])
    assert got == [
        "model=mmoe,independent", "seed=0,1", "hydra/launcher=local", "device=cpu",
        "trainer.resume=true", f"hydra.sweep.dir='{tmp_path}'",
    ]  # fmt: skip


def _optuna(tmp_path, *extra):
    mtl(
        "train",
        "-m",
        "hparams_search=optuna_lr",
        "hydra.sweeper.n_trials=2",
        *tiny_cli(*extra),
        cwd=tmp_path,
        check=True,
    )
    sweep = _sweep(tmp_path)
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [_metrics(sweep / str(i))["optimized_value"] for i in range(2)]
    direction = yaml.safe_load((sweep / "0/.hydra/hydra.yaml").read_text())["hydra"]["sweeper"][
        "direction"
    ]
    return result, values, direction


@pytest.mark.slow
def test_optuna_search_maximises_accuracy_by_default(tmp_path):
    result, values, direction = _optuna(tmp_path)
    assert direction == "maximize"
    assert result["best_value"] == pytest.approx(max(values))
    assert set(result["best_params"]) == {"optim.lr", "optim.weight_decay"}


@pytest.mark.slow
def test_optuna_minimises_a_loss(tmp_path):
    result, values, direction = _optuna(tmp_path, "optimized_metric=best_val/loss")
    assert direction == "minimize"
    assert result["best_value"] == pytest.approx(min(values))
