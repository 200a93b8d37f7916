"""Rebuild a finished run from its directory: its saved config, its family and a checkpoint's model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from mtl_cli.checkpoint import load_checkpoint
from mtl_cli.device import resolve_device
from mtl_cli.errors import UserError


@dataclass
class FinishedRun:
    """A run dir's config, family (data on `device`), model (checkpoint loaded, eval mode), state."""

    cfg: DictConfig
    family: Any
    model: torch.nn.Module
    state: dict[str, Any]
    device: torch.device


def load_finished_run(
    run_dir: str | Path,
    checkpoint: str = "best",
    device: str = "auto",
    adjust: Callable[[DictConfig], DictConfig] | None = None,
) -> FinishedRun:
    """The run in `run_dir` with `checkpoints/<checkpoint>.pt` (weights only) in its model;
    `adjust` may change the saved config first (e.g. evaluation-side overrides of `mtl eval`)."""
    from mtl_cli.run import build_family, seed_everything

    run_dir = Path(run_dir)
    config_path = run_dir / ".hydra" / "config.yaml"
    if not config_path.is_file():
        raise UserError(f"run: {run_dir} is not a run dir (no .hydra/config.yaml)")
    if checkpoint not in ("best", "last"):
        raise UserError(f"checkpoint: invalid value '{checkpoint}'; allowed: best, last")
    ckpt_path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    state = load_checkpoint(ckpt_path)
    try:
        cfg = OmegaConf.load(config_path)
    except Exception as exc:
        raise UserError(f"{config_path}: unreadable config ({str(exc).splitlines()[0]})") from None
    if adjust is not None:
        cfg = adjust(cfg)
    dev = resolve_device(device)
    seed_everything(int(cfg.seed))
    family = build_family(cfg, dev)
    model = family.build_model(cfg.model, cfg.get("backbone")).to(dev)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise UserError(
            f"{ckpt_path}: does not fit the run's model ({str(exc).splitlines()[0][:160]})"
        ) from None
    model.eval()
    return FinishedRun(cfg, family, model, state, dev)
