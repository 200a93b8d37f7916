"""Speed by `trainer.precision` and `trainer.compile`, as ratios against float32 eager in the same run.

On the device this machine has (cuda if available, else cpu), two workloads through the real
runner (`mtl_cli.run.train`, progress bar and gradient diagnostics off):

- the default experiment (`mtl train` with no overrides: hard sharing, MLP, equal weights, 10
  Hershey alphabets): training steps per second;
- one MAML meta-step (`model=meta/maml backbone=conv4 task=meta/hershey_5w1s`, 5-way 1-shot
  15-query, meta-batch 32, second order, 1 inner step): seconds per meta-step,

in every `trainer.precision` (32, bf16, and 16-mixed on CUDA only) with `trainer.compile=false`
and `true`. A figure is the runner's own `steps_per_s` (training steps only: evaluations and
checkpoints are not timed), the median over REPEATS runs that follow one warm-up run of the same
cell. Each cell starts with `torch.compiler.reset()`; its warm-up pays torch.compile's tracing and
code generation, which its later runs reuse (compiled code is cached per function, not per model
object). The warm-up's wall time is shown too: roughly what compilation costs a fresh process (the
bench gives torch.compile an empty on-disk cache, a temporary TORCHINDUCTOR_CACHE_DIR, so earlier
runs on the machine do not shorten it; a cell may reuse kernels an earlier cell put there).
Ratios are speed relative to 32/eager of the same workload (above 1 is faster). A cell whose
config key does not exist in this checkout prints "n/a"; a run that fails prints its error.

CPU sizes are small so that `python -m benchmarks precision` takes about 4-5 minutes on 2 cores
(one torch thread; a few hundred steps, one meta-step per run, 3 repeats); CUDA runs more steps.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass

import torch

from mtl_cli.config import compose
from mtl_cli.run import train

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
PRECISIONS = ("32", "bf16", "16-mixed") if CUDA else ("32", "bf16")
COMPILE = (False, True)
REPEATS = 5 if CUDA else 3
#: steps per timed run: the default experiment's steps take ~10 ms on a CPU core
DEFAULT_STEPS = 500 if CUDA else 300
#: MAML meta-steps per timed run (~3 s each on a CPU core)
MAML_STEPS = 10 if CUDA else 1
THREADS = 0 if CUDA else 1  # trainer.threads (0: torch's default)


@dataclass(frozen=True)
class Workload:
    name: str
    unit: str  # "steps/s" (higher is faster) or "s/step" (lower is faster)
    steps: int
    overrides: tuple[str, ...]


WORKLOADS = (
    Workload("default experiment", "steps/s", DEFAULT_STEPS, ()),
    Workload(
        "MAML meta-step (conv4, 5w1s 15q, meta-batch 32)",
        "s/step",
        MAML_STEPS,
        (
            "task=meta/hershey_5w1s", "model=meta/maml", "backbone=conv4", "task.ways=5",
            "task.shots=1", "task.queries=15", "task.meta_batch_size=32",
            "task.eval_episodes=1",  # evaluations are not timed; keep them short
        ),
    ),
)  # fmt: skip


def trainer_keys() -> set[str]:
    """The trainer keys this checkout's schema has (precision / compile may not exist yet)."""
    with tempfile.TemporaryDirectory() as out:
        return set(compose([f"paths.output_dir={out}"]).trainer.keys())


def _overrides(out: str, work: Workload, precision: str, compiled: bool, keys: set[str]):
    extra = []
    if "precision" in keys:
        extra.append(f"trainer.precision={precision}")
    if "compile" in keys:
        extra.append(f"trainer.compile={str(compiled).lower()}")
    return [
        f"paths.output_dir={out}", f"device={DEVICE}", f"trainer.threads={THREADS}",
        "trainer.progress=false", "trainer.diagnostics=false", f"trainer.steps={work.steps}",
        f"trainer.eval_every={work.steps}", *work.overrides, *extra,
    ]  # fmt: skip


@dataclass
class Cell:
    """One (workload, precision, compile) measurement: steps/s of each timed run, warm-up wall."""

    rates: list[float]
    warmup_s: float

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")


def measure(work: Workload, precision: str, compiled: bool, keys: set[str]) -> Cell:
    # each cell compiles from scratch in its warm-up: without the reset, graphs of earlier cells
    # (one per task, mode and precision) would count against torch.compile's recompile limit,
    # past which it silently runs eager
    torch.compiler.reset()
    rates, warmup = [], 0.0
    for i in range(REPEATS + 1):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            summary = train(compose(_overrides(out, work, precision, compiled, keys)))
            if i == 0:
                warmup = time.perf_counter() - start
            else:
                rates.append(summary["steps_per_s"])
    return Cell(rates, warmup)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _unavailable(precision: str, compiled: bool, keys: set[str]) -> str | None:
    """Why a cell is not measured here ('n/a ...'), or None."""
    if precision != "32" and "precision" not in keys:
        return "n/a (no trainer.precision)"
    if compiled and "compile" not in keys:
        return "n/a (no trainer.compile)"
    return None


def _format(work: Workload, cell: Cell | str, base: Cell | None) -> str:
    if isinstance(cell, str):
        return cell
    if not cell.rates or base is None or not base.rates:
        return "—"
    ratio = cell.rate / base.rate  # speed relative to 32/eager
    value = f"{cell.rate:,.1f}" if work.unit == "steps/s" else f"{1.0 / cell.rate:.3f}"
    return f"{value} ({ratio:.2f}×)"


def _machine() -> str:
    if CUDA:
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    cores = len(os.sched_getaffinity(0))
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            name = next(ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {cores} cores, {max(THREADS, 1)} torch thread (torch {torch.__version__})"


def main() -> None:
    """Print the table (markdown) and the wall time."""
    logging.getLogger("mtl_cli").setLevel(logging.WARNING)
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="bench-inductor-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # compile from scratch (see the docstring)
        try:
            _table()
        finally:
            if previous is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous


def _table() -> None:
    start = time.perf_counter()
    keys = trainer_keys()
    missing = [k for k in ("precision", "compile") if k not in keys]
    print(f"device: {DEVICE}: {_machine()}")
    if missing:
        print(f"this checkout has no trainer.{' / trainer.'.join(missing)}: those cells are n/a")
    print(
        f"median of {REPEATS} runs after one warm-up run; ratio = speed / speed of 32 eager "
        "(above 1: faster); warm-up = wall time of a cell's first run in the process, s"
    )
    print(
        "| workload | precision | eager | compiled | warm-up eager / compiled |\n"
        "|---|---|--:|--:|--:|"
    )
    for work in WORKLOADS:
        cells: dict[tuple[str, bool], Cell | str] = {}
        for precision in PRECISIONS:
            for compiled in COMPILE:
                why = _unavailable(precision, compiled, keys)
                if why:
                    cells[precision, compiled] = why
                    continue
                try:
                    cells[precision, compiled] = measure(work, precision, compiled, keys)
                except Exception as exc:  # a cell that cannot run (compile error, ...)
                    cells[precision, compiled] = f"failed: {_reason(exc)}"
        base = cells["32", False] if isinstance(cells["32", False], Cell) else None
        for precision in PRECISIONS:
            eager, comp = cells[precision, False], cells[precision, True]
            warm = " / ".join(
                f"{c.warmup_s:.1f}" if isinstance(c, Cell) else "—" for c in (eager, comp)
            )
            print(
                f"| {work.name} ({work.unit}) | {precision} | {_format(work, eager, base)} | "
                f"{_format(work, comp, base)} | {warm} |"
            )
    print(f"\nwall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
