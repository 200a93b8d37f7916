"""Launchers: threads per job, GPU spread by job index, plugin checks, joblib and submitit_local sweeps."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from mtl_cli import launch
from mtl_cli.device import auto_device, resolve_device
from mtl_cli.errors import UserError
from tests.conftest import (
    assert_resumed_like_uninterrupted,
    mtl,
    preempt_after_first_evaluation,
    tiny_cli,
)

JOBLIB = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}
LOCAL = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"}
BASIC = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}


@pytest.mark.parametrize(
    ("configured", "launcher", "cores", "expected"),
    [
        (0, None, 8, 0),  # not under Hydra: torch's default
        (0, BASIC, 8, 0),  # one job at a time: torch's default
        (3, {**JOBLIB, "n_jobs": 4}, 8, 3),  # trainer.threads wins
        (0, {**JOBLIB, "n_jobs": 2}, 8, 4),  # 8 cores / 2 jobs
        (0, {**JOBLIB, "n_jobs": 4}, 2, 1),  # never below one thread
        (0, {**JOBLIB, "n_jobs": -1}, 8, 1),  # -1: one job per core
        (0, {**JOBLIB, "n_jobs": -2}, 9, 1),  # -2: 8 jobs on 9 cores -> 9 // 8
        (0, {**JOBLIB, "n_jobs": -7}, 8, 4),  # -7: 2 jobs on 8 cores
        (0, {**LOCAL, "cpus_per_task": 3}, 8, 3),  # submitit: its cpus_per_task
        (0, {**LOCAL, "cpus_per_task": None}, 8, 0),
    ],
)
def test_job_threads(configured, launcher, cores, expected):
    assert launch.job_threads(configured, launcher, cores) == expected


def test_auto_device_gives_job_i_gpu_i_mod_n(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert [auto_device(i) for i in range(7)] == [f"cuda:{i % 3}" for i in range(7)]
    assert auto_device(None) == "cuda:0"
    assert resolve_device("auto", 5) == torch.device("cuda:2")


def test_auto_device_without_gpu_is_cpu_for_every_job(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(launch, "available_cores", lambda: 2)  # unrelated; keeps the test hermetic
    monkeypatch.setattr("mtl_cli.device._mps_available", lambda: False)
    assert {auto_device(i) for i in range(4)} == {"cpu"}


def test_missing_plugin_names_the_extra(monkeypatch):
    real = launch.importlib.import_module

    def fake(name):
        if name.startswith("hydra_plugins."):
            raise ImportError(name)
        return real(name)

    monkeypatch.setattr(launch.importlib, "import_module", fake)
    with pytest.raises(UserError, match=r"pip install 'mtl_cli\[launchers\]'"):
        launch.check_plugins(["seed=0,1", "hydra/launcher=parallel"])
    with pytest.raises(UserError, match=r"pip install 'mtl_cli\[optuna\]'"):
        launch.check_plugins(["hparams_search=optuna_lr"])
    launch.check_plugins(["hydra/launcher=basic", "seed=1"])  # nothing optional needed


def _runs(sweep):
    return {
        p.name: json.loads((p / "metrics.json").read_text())
        for p in sweep.iterdir()
        if p.name.isdigit()
    }


@pytest.mark.slow
def test_parallel_sweep_splits_cores_and_survives_a_failing_job(tmp_path):
    """joblib (hydra/launcher=parallel): a job that fails is recorded; the others finish."""
    result = mtl(
        "train", "-m", *tiny_cli("trainer.threads=0", "trainer.select_metric=accuracy,bogus"),
        "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    (sweep,) = (tmp_path / "outputs/multirun").iterdir()
    runs = _runs(sweep)
    assert runs["0"]["status"] == "finished"
    assert runs["0"]["threads"] == max(launch.available_cores() // 2, 1)
    assert runs["1"]["status"] == "failed" and "select_metric" in runs["1"]["error"]
    summary = (sweep / "summary.md").read_text()
    assert "Failed runs (1)" in summary and "bogus" in summary
    assert "select_metric" in result.stderr


@pytest.mark.slow
def test_submitit_local_sweep_is_the_slurm_twin(tmp_path):
    """hydra/launcher=local runs each job through submitit, as `slurm` does on a cluster."""
    mtl("train", "-m", *tiny_cli("seed=0,1"), "hydra/launcher=local", cwd=tmp_path, check=True)
    (sweep,) = (tmp_path / "outputs/multirun").iterdir()
    runs = _runs(sweep)
    assert {k: v["status"] for k, v in runs.items()} == {"0": "finished", "1": "finished"}
    assert [v["seed"] for _, v in sorted(runs.items())] == [0, 1]
    assert (sweep / ".submitit").is_dir() and (sweep / "summary.csv").is_file()


def _submitit_job_pids(folder) -> list[int]:
    """Processes running a submitit job (`python -m submitit.core._submit <folder>/...`)."""
    pids = []
    for proc in Path("/proc").iterdir():  # Linux
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or it ended meanwhile
            continue
        text = [a.decode(errors="replace") for a in argv]
        if "submitit.core._submit" in text and any(a.startswith(str(folder)) for a in text):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_submitit_requeues_a_preempted_job_that_resumes_from_its_checkpoint(tmp_path):
    """SIGUSR2 (SLURM's preemption signal) -> checkpoint -> submitit requeues -> the job resumes.

    submitit's local executor requeues the way SLURM does (its controller restarts the job with
    the checkpointed submission), so this runs the chain a cluster runs, minus `scontrol requeue`.
    """
    steps = ["trainer.steps=1500", "trainer.eval_every=50"]

    def preempt(run_dir) -> bool:
        pids = _submitit_job_pids(tmp_path)
        for pid in pids:
            os.kill(pid, signal.SIGUSR2)
        return bool(pids)

    args = [*tiny_cli(*steps), "hydra/launcher=local"]
    run, _ = preempt_after_first_evaluation(args, tmp_path, preempt)
    logs = "".join(p.read_text() for p in (run.parent / ".submitit").rglob("*_log.*"))
    assert "this job is preempted" in logs and "Requeued job" in logs
    assert_resumed_like_uninterrupted(run, tmp_path / "uninterrupted", *steps)


def test_slurm_preset_composes_with_its_keys():
    from mtl_cli.config import compose

    cfg = compose(
        ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30",
         "hydra.launcher.gpus_per_task=2", "hydra.launcher.array_parallelism=8", "paths.output_dir=."],
        return_hydra_config=True,
    )  # fmt: skip
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.timeout_min, launcher.gpus_per_task) == ("gpu", 30, 2)
    assert launcher.array_parallelism == 8 and launcher.max_num_timeout == 3


def test_make_help_lists_the_sweep_targets():
    import subprocess

    from tests.conftest import ROOT

    out = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    targets = {line.split()[0] for line in out.splitlines() if line.strip()}
    study = {
        "hw1",
        "weighting",
        "mmoe",
        "transfer",
        "multifashion",
        "multilabel",
        "meta",
        "sinusoid",
    }
    assert {"train", "sweep", "report", "plot", "bench"} | study <= targets
    dry = subprocess.run(
        ["make", "-n", "hw1", "ARGS=trainer=debug"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "mtl train -m experiment=cs330_hw1 trainer=debug" in dry and "mtl report" in dry
