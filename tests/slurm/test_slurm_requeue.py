"""On a real SLURM cluster (`make test-slurm` starts a single-node one): `hydra/launcher=slurm`
submits the job array, and a preempted job is requeued by SLURM and resumes from its checkpoint.

Collected only with `pytest --slurm` (tests/conftest.py): `make test` runs without a cluster.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import (
    assert_resumed_like_uninterrupted,
    preempt_after_first_evaluation,
    tiny_cli,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

STEPS = ["trainer.steps=2000", "trainer.eval_every=50"]
# a CPU-only job that fits any node: the preset asks for a GPU and 16 GB
SMALL_JOB = [
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_task=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=60",  # long enough that submitit counts the signal as a preemption
]


def _scontrol_job(job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True
    ).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def test_slurm_requeues_a_preempted_job_that_resumes_from_its_checkpoint(tmp_path):
    """`scancel --signal=USR2` (what SLURM sends before preemption or the time limit) -> the run
    saves a checkpoint -> submitit calls `scontrol requeue` -> SLURM restarts the job -> it resumes."""
    job_ids = []

    def preempt(run_dir) -> bool:
        (log,) = (run_dir.parent / ".submitit").glob("*/*_0_log.out")
        job_ids.append(log.name.removesuffix("_0_log.out"))  # SLURM's id: 12, or 12_3 in an array
        subprocess.run(["scancel", "--signal=USR2", job_ids[0]], check=True)
        return True

    run, _ = preempt_after_first_evaluation([*tiny_cli(*STEPS), *SMALL_JOB], tmp_path, preempt)
    assert _scontrol_job(job_ids[0]).get("Restarts") == "1"  # SLURM itself requeued it once
    logs = "".join(p.read_text() for p in (run.parent / ".submitit").rglob("*_log.*"))
    assert "this job is preempted" in logs and f"Requeued job {job_ids[0]} (" in logs
    assert_resumed_like_uninterrupted(run, tmp_path / "uninterrupted", *STEPS)
