"""Sweep wall time: 4 jobs with the joblib launcher (hydra/launcher=parallel, 2 at once) against Hydra's
basic launcher (one job after another), on the same machine, through the real `mtl train -m` command.

Neither sets trainer.threads: the basic launcher's job gets torch's default threads (all cores); each
joblib job gets cores / n_jobs (mtl_cli.launch.job_threads). Goal (issue 7): speed-up >= 1.8x on 2 cores.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from mtl_cli.launch import available_cores

JOBS = "seed=0,1,2,3"
COMMON = [
    "task.alphabets=[digits,greek_sans_upper,markers]",
    "trainer.steps=2000",
    "trainer.eval_every=1000",
    "trainer.progress=false",
    "trainer.diagnostics=false",
    "device=cpu",
]


def sweep_seconds(*launcher: str) -> float:
    """Wall time of `mtl train -m seed=0,1,2,3 <launcher overrides>` in a fresh directory."""
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mtl_cli", "train", "-m", JOBS, *COMMON, *launcher],
            cwd=cwd,
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


def main() -> None:
    cores = available_cores()
    sweep_seconds()  # warm the render cache and the OS file cache
    basic = sweep_seconds()
    basic_one_thread = sweep_seconds("trainer.threads=1")
    parallel = sweep_seconds("hydra/launcher=parallel", f"hydra.launcher.n_jobs={cores}")
    print(
        f"4-job sweep on {cores} cores: basic launcher {basic:.1f} s "
        f"({basic_one_thread:.1f} s with one thread per job), joblib n_jobs={cores} {parallel:.1f} s; "
        f"speed-up {basic / parallel:.2f}x vs basic, {basic_one_thread / parallel:.2f}x vs basic "
        "one-thread (goal >= 1.8)"
    )
