"""Optimizer and learning-rate schedule from the `optim` group (every key acts).

The optimizer is the group's `_target_` with the group's keys; Adam's `decoupled_weight_decay=true`
is torch's own switch (AdamW's update, Loshchilov & Hutter 2019).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

SCHEDULE_KEYS = ("scheduler", "warmup_steps", "step_size", "gamma")


def build_optimizer(cfg: DictConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """`optim._target_` (a torch.optim class) over `params` (the model's and the weighting
    method's), with every key of the group but the schedule's as its keyword arguments."""
    from hydra.utils import get_class

    options = {
        k: OmegaConf.to_object(v) if isinstance(v, DictConfig | ListConfig) else v
        for k, v in cfg.items()
        if k != "_target_" and k not in SCHEDULE_KEYS
    }
    params = [p for p in params if p.requires_grad]
    return get_class(str(cfg._target_))(params, **options)


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
