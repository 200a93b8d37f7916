"""Sharing architectures: parameters and training-step time of every `model=` choice of the
registry that serves the multi-task family, against hard sharing in the same run.

T = 4 tasks of 10 classes on 1x28x28 inputs, per-task batches of 32 (the multi-task family's
layout), equal weighting, Adam; MLP (784-256-256) and MultiLeNet backbones with every model
default. One CPU thread; the median of several rounds of a few steps each.
"""

from __future__ import annotations

import platform

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from benchmarks.common import median_time
from mtl_cli.config import compose
from mtl_cli.registry import schema_choices

TASKS, CLASSES, BATCH, STEPS, REPEATS = 4, 10, 32, 5, 5
INPUT_SHAPE = (1, 28, 28)
BACKBONES = ("mlp", "lenet")


def models() -> list[str]:
    """Every multi-task model of the registry, `hard_sharing` (the baseline) first."""
    names = [c.name for c in schema_choices("model") if "multitask" in c.fact("families", ())]
    return ["hard_sharing"] + [n for n in names if n != "hard_sharing"]


def build(name: str, backbone: str) -> torch.nn.Module:
    cfg = compose([f"model={name}", f"backbone={backbone}", "paths.output_dir=."])
    return instantiate(
        cfg.model,
        task_outputs=[CLASSES] * TASKS,
        input_shape=INPUT_SHAPE,
        make_backbone=lambda: instantiate(cfg.backbone, input_shape=INPUT_SHAPE),
    )


def step_time(model: torch.nn.Module) -> float:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(TASKS, BATCH, *INPUT_SHAPE, generator=generator)
    y = torch.randint(0, CLASSES, (TASKS, BATCH), generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def steps() -> None:
        for _ in range(STEPS):
            optimizer.zero_grad(set_to_none=True)
            losses = torch.stack([F.cross_entropy(model(x[t], t), y[t]) for t in range(TASKS)])
            losses.mean().backward()
            optimizer.step()

    return median_time(steps, repeats=REPEATS) / STEPS


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print(f"T = {TASKS} tasks, per-task batch {BATCH}, equal weights, Adam; median of {REPEATS}")
    header = ["model"]
    for b in BACKBONES:
        header += [f"{b} params (shared)", f"{b} ms/step", f"{b} vs hard_sharing"]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "--:|" * (len(header) - 1))
    base: dict[str, float] = {}
    for name in models():
        cells = [f"`{name}`"]
        for backbone in BACKBONES:
            model = build(name, backbone)
            total = sum(p.numel() for p in model.parameters())
            shared = sum(p.numel() for p in model.shared_parameters())
            seconds = step_time(model)
            base.setdefault(backbone, seconds)
            cells += [
                f"{total:,} ({shared:,})",
                f"{1000 * seconds:.2f}",
                f"{seconds / base[backbone]:.2f}",
            ]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
