"""Training-step time of every weighting method relative to `equal` (issue 4, `make bench`).

A step is zero_grad, forward, `weighting.backward`, Adam step, on a hard-sharing model with an
MLP (784-256-256) or MultiLeNet conv trunk and T = 2, 4, 8 classification heads (synthetic 28x28
inputs, one process, one torch thread).
Two data layouts:

- "per-task": each task its own batch (the multi-task family): loss_t = CE(f_t(x_t), y_t);
- "shared": one batch for every head (the multi-label family), where `rep_grad=true` applies.

The methods are built from their shipped configs (`loss=<name>`, defaults) and timed round-robin
over `REPEATS` rounds of `STEPS` steps each; the figure is the median per-step time over rounds,
divided by `equal`'s in the same layout. Time is the process's CPU time (`time.process_time`), so
other load on a shared machine does not inflate it. Set MTL_BENCH_QUICK=1 for a smoke run (T = 2 only).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from mtl_cli.config import compose
from mtl_cli.loss.base import TaskSetup
from mtl_cli.models.backbones import MLP, LeNet
from mtl_cli.models.hard_sharing import HardSharing
from mtl_cli.registry import schema_choices

TASK_COUNTS = (2, 4, 8)
REPEATS = 5
STEPS = 8
PER_TASK_BATCH = 32
SHARED_BATCH = 64
CLASSES = 10
INPUT_SHAPE = (1, 28, 28)
BACKBONES: dict[str, Callable[[], torch.nn.Module]] = {
    "mlp": lambda: MLP(INPUT_SHAPE),  # 784-256-256
    "lenet": lambda: LeNet(INPUT_SHAPE),  # MultiLeNet: conv10-conv20 (k5, pool) + fc50
}
#: the methods that can combine gradients of the shared representation, from the registry
GRADIENT_METHODS = [c.name for c in schema_choices("loss") if c.allows("rep_grad", True)]


def methods() -> list[str]:
    """Every `loss=` choice of the registry, `equal` (the baseline of the ratios) first."""
    names = [c.name for c in schema_choices("loss")]
    return ["equal"] + [n for n in names if n != "equal"]


def build_weighting(name: str, num_tasks: int, rep_grad: bool) -> torch.nn.Module:
    """The method `loss=<name>` with its shipped defaults, as the trainer builds it."""
    overrides = [f"loss={name}", "paths.output_dir=."]
    if rep_grad:
        overrides.append("loss.rep_grad=true")
    cfg = compose(overrides)
    return instantiate(cfg.loss).setup(TaskSetup.count(num_tasks, steps_per_epoch=100))


def make_step(model: HardSharing, weighting, layout: str, generator: torch.Generator):
    """One training step of `weighting` on `model` with fresh synthetic tensors drawn up front."""
    num_tasks = model.num_tasks
    params = list(model.parameters()) + list(weighting.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-4)
    tasks = list(range(num_tasks))
    if layout == "per-task":
        x = torch.randn(num_tasks, PER_TASK_BATCH, *INPUT_SHAPE, generator=generator)
        y = torch.randint(0, CLASSES, (num_tasks, PER_TASK_BATCH), generator=generator)
    else:
        x = torch.randn(SHARED_BATCH, *INPUT_SHAPE, generator=generator)
        y = torch.randint(0, CLASSES, (num_tasks, SHARED_BATCH), generator=generator)

    def sample() -> tuple[torch.Tensor, torch.Tensor | None]:
        if layout == "per-task":
            return torch.stack([F.cross_entropy(model(x[t], t), y[t]) for t in tasks]), None
        z = model.representation(x)
        return torch.stack([F.cross_entropy(model.head(z, t), y[t]) for t in tasks]), z

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        losses, z = sample()
        # as the trainer does: more forward passes for methods that need independent samples
        weighting.extra_losses = [sample()[0] for _ in range(weighting.samples_per_step - 1)]
        weighting.backward(losses, tasks, model, z)
        optimizer.step()

    return step


def time_methods(backbone: str, num_tasks: int, layout: str) -> dict[str, float]:
    """Median seconds per step of each method (and `<gradient method>+rep` in the shared layout)."""
    torch.manual_seed(0)
    model = HardSharing([CLASSES] * num_tasks, INPUT_SHAPE, BACKBONES[backbone])
    generator = torch.Generator().manual_seed(0)
    steps: dict[str, Callable[[], None]] = {}
    for name in methods():
        steps[name] = make_step(model, build_weighting(name, num_tasks, False), layout, generator)
    if layout == "shared":
        for name in GRADIENT_METHODS:
            weighting = build_weighting(name, num_tasks, True)
            steps[f"{name}+rep"] = make_step(model, weighting, layout, generator)
    for step in steps.values():  # warm-up: allocator, solver state, Adam state
        step()
        step()
    rounds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(REPEATS):
        for name, step in steps.items():
            start = time.process_time()
            for _ in range(STEPS):
                step()
            rounds[name].append((time.process_time() - start) / STEPS)
    return {name: statistics.median(times) for name, times in rounds.items()}


def format_table(results: dict[tuple[str, str, int], dict[str, float]]) -> str:
    """Markdown table: one row per method, one column per (layout, backbone, T): time / equal."""
    columns = list(results)
    names: dict[str, None] = {}
    for times in results.values():
        names.update(dict.fromkeys(times))
    header = ["method"] + [f"{layout} {backbone} T={t}" for layout, backbone, t in columns]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|--:" * len(columns) + "|"]
    equal_ms = [f"**{1000 * results[c]['equal']:.2f} ms**" for c in columns]
    lines.append("| equal (absolute) | " + " | ".join(equal_ms) + " |")
    for name in names:
        cells = []
        for c in columns:
            value = results[c].get(name)
            cells.append("" if value is None else f"{value / results[c]['equal']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    """One line: CPU, cores, torch threads, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with "
        f"{torch.get_num_threads()} thread(s), Python {platform.python_version()}"
    )


def main() -> None:
    """Print the relative step-time table (and the absolute `equal` step time per column)."""
    torch.set_num_threads(1)
    quick = os.environ.get("MTL_BENCH_QUICK") == "1"
    counts = TASK_COUNTS[:1] if quick else TASK_COUNTS
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    for layout in ("per-task", "shared"):
        for backbone in BACKBONES:
            for num_tasks in counts:
                results[(layout, backbone, num_tasks)] = time_methods(backbone, num_tasks, layout)
    print(machine())
    print(
        f"step time / equal's step time (median of {REPEATS} rounds of {STEPS} steps; "
        f"per-task batch {PER_TASK_BATCH}, shared batch {SHARED_BATCH}; Adam)"
    )
    print(format_table(results))


if __name__ == "__main__":
    main()
