"""Sweep wall time: 4 jobs with the joblib launcher (hydra/launcher=parallel, one job per core)
against Hydra's basic launcher (one job after another), through the real `mtl train -m` command.

Two workloads, because the answer depends on how well one job already uses the cores:
- `hershey_mlp`: hard sharing MLP on 3 Hershey alphabets, 2000 steps (about 7 s a job); its steps
  are matrix products that torch's intra-op threads split over the cores, so one sequential job
  already uses part of them;
- `mmoe_synthetic`: the mmoe_correlation preset's MMoE (correlation 0.5) for 10000 steps (about
  30 s a job); small layers that gain nothing from a second thread, as in most small multi-task
  models on a CPU. Shorter jobs gain less: each sweep pays about 4 s of start-up (Python, Hydra,
  importing torch and torch._dynamo) that no launcher parallelises.

Neither sweep sets trainer.threads: the basic launcher's jobs get torch's default threads (all
cores); each joblib job gets cores / n_jobs (mtl_cli.launch.job_threads). The basic launcher with
trainer.threads=1 is the third column. `ceiling` = cores x basic / basic one-thread: an upper
bound for any launcher that splits the cores among jobs (one-thread jobs scaling perfectly, start-up
included as if it ran in parallel too). Goal (issue 7): >= 1.8x.
Each repeat runs the three sweeps back to back; medians over repeats.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

from mtl_cli.launch import available_cores

REPEATS = 3
SEEDS = "seed=0,1,2,3"
QUIET = ["trainer.progress=false", "trainer.diagnostics=false", "device=cpu"]
WORKLOADS = {
    "hershey_mlp": [
        "task.alphabets=[digits,greek_sans_upper,markers]",
        "trainer.steps=2000",
        "trainer.eval_every=1000",
    ],
    "mmoe_synthetic": [
        "experiment=mmoe_correlation",
        "task.correlation=0.5",
        "model=mmoe",
        "trainer.steps=10000",
        "trainer.eval_every=2500",
    ],
}


def sweep_seconds(workload: list[str], *launcher: str) -> float:
    """Wall time of `mtl train -m seed=0,1,2,3 <workload> <launcher overrides>` in a fresh dir."""
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mtl_cli", "train", "-m", SEEDS, *workload, *QUIET, *launcher],
            cwd=cwd,
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


def measure(workload: list[str], cores: int, repeats: int) -> dict[str, float]:
    """Median wall times of the three sweeps and the median of the per-repeat ratios."""
    rows = []
    for _ in range(repeats):
        basic = sweep_seconds(workload)
        one_thread = sweep_seconds(workload, "trainer.threads=1")
        parallel = sweep_seconds(
            workload, "hydra/launcher=parallel", f"hydra.launcher.n_jobs={cores}"
        )
        rows.append((basic, one_thread, parallel))
    median = statistics.median
    return {
        "basic": median(r[0] for r in rows),
        "one_thread": median(r[1] for r in rows),
        "parallel": median(r[2] for r in rows),
        "speedup": median(r[0] / r[2] for r in rows),
        "speedup_one_thread": median(r[1] / r[2] for r in rows),
        "ceiling": median(cores * r[0] / r[1] for r in rows),
    }


def main(repeats: int = REPEATS) -> None:
    cores = available_cores()
    for workload in WORKLOADS.values():
        sweep_seconds(workload, "trainer.steps=1")  # warm the render cache and the OS file cache
    print(f"4-job sweeps on {cores} cores, median of {repeats}; goal: joblib >= 1.8x basic")
    print("| workload | basic | basic one-thread | joblib | vs basic | vs one-thread | ceiling |")
    print("|---|---|---|---|---|---|---|")
    for name, workload in WORKLOADS.items():
        m = measure(workload, cores, repeats)
        print(
            f"| {name} | {m['basic']:.1f} s | {m['one_thread']:.1f} s | {m['parallel']:.1f} s "
            f"| {m['speedup']:.2f}x | {m['speedup_one_thread']:.2f}x | {m['ceiling']:.2f}x |"
        )
