"""Step time of mtl's training loop against a bare PyTorch loop on the same model, tensors and batches.

Both loops run in this process on the same family data; each repeat times a fresh model for the
same number of steps, alternating runner and bare loop; the figure is the median ratio.
Goal (issue 2): runner step time <= 1.03x the bare loop's.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from mtl_cli.config import compose
from mtl_cli.run import Run, seed_everything, train

STEPS = {"mlp": 300, "conv": 30}  # the conv step is ~50x the MLP's on a CPU core
REPEATS = 5


def _overrides(out: str, backbone: str) -> list[str]:
    steps = STEPS[backbone]
    return [
        f"paths.output_dir={out}",
        f"backbone={backbone}",
        "model=hard_sharing",
        "loss=equal",
        f"trainer.steps={steps}",
        f"trainer.eval_every={steps}",
        "trainer.progress=false",
        "trainer.diagnostics=false",
        "trainer.threads=1",
        "trainer.batch_size=32",
        "device=cpu",
    ]


def bare_loop(cfg) -> float:
    """The same steps written as a plain PyTorch loop: per-task batches, summed CE, Adam."""
    seed_everything(int(cfg.seed))
    run = Run(cfg)  # builds the same family, model and optimizer; its loop is not used
    model, optimizer, family = run.model, run.optimizer, run.family
    generator = torch.Generator().manual_seed(int(cfg.seed))
    splits = family.splits["train"]
    tasks = range(len(splits))
    steps = int(cfg.trainer.steps)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        losses = []
        for t in tasks:
            idx = family.batches[t].next(generator)
            losses.append(F.cross_entropy(model(splits[t].x[idx], t), splits[t].y[idx]))
        torch.stack(losses).mean().backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def runner_loop(cfg) -> float:
    summary = train(cfg)
    return 1.0 / summary["steps_per_s"]


def main() -> None:
    torch.set_num_threads(1)
    for backbone in ("mlp", "conv"):
        ratios, bare_times, runner_times = [], [], []
        for _ in range(REPEATS):
            with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
                bare = bare_loop(compose(_overrides(a, backbone)))
                runner = runner_loop(compose(_overrides(b, backbone)))
            bare_times.append(bare)
            runner_times.append(runner)
            ratios.append(runner / bare)
        print(
            f"runner vs bare loop ({backbone}, {STEPS[backbone]} steps, median of {REPEATS}): "
            f"bare {statistics.median(bare_times) * 1e3:.2f} ms/step, "
            f"runner {statistics.median(runner_times) * 1e3:.2f} ms/step, "
            f"ratio {statistics.median(ratios):.3f} (goal <= 1.03)"
        )
