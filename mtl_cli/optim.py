"""Optimizer and learning-rate schedule from the `optim` group (every key acts)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from omegaconf import DictConfig

SCHEDULE_KEYS = ("scheduler", "warmup_steps", "step_size", "gamma")


def build_optimizer(cfg: DictConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adam/AdamW or SGD over `params` (the model's and the weighting method's)."""
    options = {k: v for k, v in cfg.items() if k != "_target_" and k not in SCHEDULE_KEYS}
    params = [p for p in params if p.requires_grad]
    target = cfg._target_
    if target == "torch.optim.Adam":
        decoupled = options.pop("decoupled_weight_decay")
        options["betas"] = tuple(options["betas"])
        cls = torch.optim.AdamW if decoupled else torch.optim.Adam
        return cls(params, **options)
    if target == "torch.optim.SGD":
        return torch.optim.SGD(params, **options)
    raise ValueError(f"optim._target_: unsupported optimizer '{target}'")


def lr_factor(
    step: int, total: int, scheduler: str, warmup: int, step_size: int, gamma: float
) -> float:
    """Multiplier of the base lr after `step` updates: linear warm-up, then none | cosine | step decay."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if scheduler == "cosine":
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    if scheduler == "step":
        return gamma ** ((step - warmup) // step_size)
    return 1.0


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer, total_steps: int):
    """A LambdaLR stepping once per training step."""
    kwargs = dict(
        total=total_steps,
        scheduler=str(cfg.scheduler),
        warmup=int(cfg.warmup_steps),
        step_size=int(cfg.step_size),
        gamma=float(cfg.gamma),
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, **kwargs))
