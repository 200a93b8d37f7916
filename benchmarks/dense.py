"""Speed of the dense scene-understanding family (issue 12): runner overhead and weighting cost.

1. Runner vs bare loop: `mtl_cli.run.train` on `task=dense/scenes` (segmentation, depth, normals),
   `model=hard_sharing backbone=segnet loss=equal`, Adam, batch 8, against the same steps written
   as a plain PyTorch loop on the same model, optimizer and batches (the method of
   benchmarks/runner_overhead.py: wall time, fresh model per repeat, runner and bare loop
   alternating after one untimed warm-up pair; the figure is the median ratio).
   Goal: runner step time <= 1.03x the bare loop's.
2. Weighting cost: every `loss=` choice of the registry (shipped defaults) on the same dense
   hard-sharing model and one shared batch of scenes, with and without `rep_grad` for the methods
   that allow it (there the task gradients are those of the trunk's feature map z, not of the
   trunk's parameters). Step time / `equal`'s, medians of round-robin rounds of CPU time
   (`time.process_time`, as benchmarks/weighting.py), so other load on the machine does not
   inflate it.

Set MTL_BENCH_QUICK=1 for a smoke run (16x16 images, 1-2 steps, one repeat).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from benchmarks.weighting import GRADIENT_METHODS, build_weighting, machine, methods
from mtl_cli.config import compose
from mtl_cli.dense_metrics import DENSE_LOSSES
from mtl_cli.run import Run, build_family, seed_everything, train

BATCH = 8
RUNNER_SIZE = 64  # image side of the runner comparison
RUNNER_STEPS = 20
WEIGHTING_SIZE = 64  # image side of the weighting table (42 configurations, ~2.5 min on 1 core)
WEIGHTING_STEPS = 2
REPEATS = 5
#: MTL_BENCH_QUICK=1: a smoke run that prints every row (used by tests/test_bench_dense.py)
QUICK = {"runner_size": 16, "runner_steps": 2, "weighting_size": 16, "weighting_steps": 1}


def _overrides(out: str, cache: str, image_size: int, steps: int, loss: str = "equal"):
    """The dense run both loops share: 64 training scenes (8 batches), tiny val/test splits."""
    return [
        f"paths.output_dir={out}",
        f"data.cache_dir={cache}",
        "task=dense/scenes",
        f"task.image_size={image_size}",
        f"task.train_size={8 * BATCH}",
        f"task.val_size={BATCH}",
        f"task.test_size={BATCH}",
        "model=hard_sharing",
        "backbone=segnet",
        f"loss={loss}",
        f"trainer.steps={steps}",
        f"trainer.eval_every={steps}",
        f"trainer.batch_size={BATCH}",
        f"trainer.eval_batch_size={BATCH}",
        "trainer.progress=false",
        "trainer.diagnostics=false",
        "trainer.threads=1",
        "device=cpu",
    ]


def bare_loop(cfg) -> float:
    """The same steps as a plain PyTorch loop: shared batch, trunk once, per-task losses, mean."""
    seed_everything(int(cfg.seed))
    run = Run(cfg)  # builds the same family, model and optimizer; its loop is not used
    model, optimizer, family = run.model, run.optimizer, run.family
    generator = torch.Generator().manual_seed(int(cfg.seed))
    part = family.splits["train"]
    names = family.task_names
    steps = int(cfg.trainer.steps)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        idx = family.batches.next(generator)
        z = model.representation(part.x[idx])
        losses = [
            DENSE_LOSSES[task](model.head(z, t), part.targets[task][idx])
            for t, task in enumerate(names)
        ]
        torch.stack(losses).mean().backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def runner_loop(cfg) -> float:
    """Seconds per training step as `train` reports it (evaluation excluded)."""
    return 1.0 / train(cfg)["steps_per_s"]


def runner_vs_bare(cache: str, image_size: int, steps: int, repeats: int) -> dict[str, float]:
    """Median bare and runner seconds per step and the median of the per-repeat ratios."""
    ratios, bare_times, runner_times = [], [], []
    for repeat in range(repeats + 1):  # repeat 0: warm-up (kernels, allocator), not counted
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            bare = bare_loop(compose(_overrides(a, cache, image_size, steps)))
            runner = runner_loop(compose(_overrides(b, cache, image_size, steps)))
        if repeat:
            bare_times.append(bare)
            runner_times.append(runner)
            ratios.append(runner / bare)
    return {
        "bare": statistics.median(bare_times),
        "runner": statistics.median(runner_times),
        "ratio": statistics.median(ratios),
    }


def make_step(model, weighting, x: torch.Tensor, targets: dict[str, torch.Tensor]):
    """One training step of `weighting` on the dense model: forward, `weighting.backward`, Adam."""
    optimizer = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()), lr=1e-4)
    names = list(targets)
    tasks = list(range(len(names)))

    def sample() -> tuple[torch.Tensor, torch.Tensor]:
        z = model.representation(x)
        losses = [DENSE_LOSSES[n](model.head(z, t), targets[n]) for t, n in enumerate(names)]
        return torch.stack(losses), z

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        losses, z = sample()
        # as the trainer does: more forward passes for methods that need independent samples
        weighting.extra_losses = [sample()[0] for _ in range(weighting.samples_per_step - 1)]
        weighting.backward(losses, tasks, model, z)
        optimizer.step()

    return step


def time_methods(cache: str, image_size: int, steps: int, repeats: int) -> dict[str, float]:
    """Median CPU seconds per step of each method and of `<gradient method>+rep`."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose(_overrides(out, cache, image_size, steps))
    seed_everything(0)
    family = build_family(cfg, torch.device("cpu"))
    model = family.build_model(cfg.model, cfg.backbone)
    part = family.splits["train"]
    x = part.x[:BATCH]
    targets = {task: part.targets[task][:BATCH] for task in family.task_names}
    count = len(family.task_names)
    runs: dict[str, Callable[[], None]] = {}
    for name in methods():
        runs[name] = make_step(model, build_weighting(name, count, False), x, targets)
    for name in GRADIENT_METHODS:
        runs[f"{name}+rep"] = make_step(model, build_weighting(name, count, True), x, targets)
    for step in runs.values():  # warm-up: allocator, solver state, Adam state
        step()
    rounds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, step in runs.items():
            start = time.process_time()
            for _ in range(steps):
                step()
            rounds[name].append((time.process_time() - start) / steps)
    return {name: statistics.median(times) for name, times in rounds.items()}


def format_weighting_table(times: dict[str, float]) -> str:
    """Markdown: step / equal's without and with rep_grad, and the rep_grad speed-up."""
    equal = times["equal"]
    lines = [
        "| method | step / equal | rep_grad=true / equal | speed-up of rep_grad |",
        "|---|--:|--:|--:|",
        f"| equal (absolute) | **{1000 * equal:.1f} ms** | | |",
    ]
    for name in methods():
        rep = times.get(f"{name}+rep")
        cells = [f"{times[name] / equal:.2f}"]
        cells += ["", ""] if rep is None else [f"{rep / equal:.2f}", f"{times[name] / rep:.2f}x"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load() -> str:
    """The machine's 1-minute load average (other processes sharing the cores)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def main(
    runner_size: int = RUNNER_SIZE,
    runner_steps: int = RUNNER_STEPS,
    weighting_size: int = WEIGHTING_SIZE,
    weighting_steps: int = WEIGHTING_STEPS,
    repeats: int = REPEATS,
) -> None:
    """Print the runner/bare ratio and the weighting table, with the machine and its load."""
    if os.environ.get("MTL_BENCH_QUICK") == "1":
        runner_size, runner_steps = QUICK["runner_size"], QUICK["runner_steps"]
        weighting_size, weighting_steps = QUICK["weighting_size"], QUICK["weighting_steps"]
        repeats = 1
    torch.set_num_threads(1)
    print(machine())
    with tempfile.TemporaryDirectory() as cache:
        print(f"load average before: {load()}")
        r = runner_vs_bare(cache, runner_size, runner_steps, repeats)
        print(
            f"dense runner vs bare loop (hard_sharing + segnet, {runner_size}x{runner_size}, "
            f"batch {BATCH}, T=3, equal, Adam; {runner_steps} steps, median of {repeats}): "
            f"bare {r['bare'] * 1e3:.1f} ms/step, runner {r['runner'] * 1e3:.1f} ms/step, "
            f"ratio {r['ratio']:.3f} (goal <= 1.03)"
        )
        print(f"load average after the runner comparison: {load()}")
        times = time_methods(cache, weighting_size, weighting_steps, repeats)
    print(
        f"dense weighting step time / equal's (hard_sharing + segnet, {weighting_size}x"
        f"{weighting_size}, shared batch {BATCH}, T=3, Adam; CPU time, median of {repeats} rounds "
        f"of {weighting_steps} steps)"
    )
    print(format_weighting_table(times))
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
