"""What makes a run the same run: its identity, compared between a checkpoint and the config now.

No torch here: the CLI checks a resume before launching.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtl_cli.errors import UserError

#: config sections that must match a run's checkpoint to continue from it (plus `trainer`, less
#: RUN_CONTROL_KEYS)
IDENTITY_SECTIONS = ("task", "model", "backbone", "loss", "optim", "seed")
#: trainer keys that only control how far, how visibly or how fast a run goes: they may change on
#: resume (a compiled and an eager run continue each other: same parameters, same state_dict keys)
RUN_CONTROL_KEYS = (
    "steps",
    "progress",
    "threads",
    "resume",
    "diagnostics",
    "compile",
    "compile_mode",
    "patience",
    "min_delta",
)


def plain(node: Any, resolve: bool = True) -> Any:
    """An OmegaConf node as plain dicts and lists (interpolations resolved); other values as-is."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=resolve)
    return node


def run_identity(cfg: Any) -> dict[str, Any]:
    """The plain, resolved config a run's checkpoints are bound to.

    The sections task, model, backbone, loss, optim, seed, and trainer without the run-control
    keys (steps, progress, threads, resume, diagnostics, compile, compile_mode): a run may continue
    for more steps, with other threads or compiled, but not with another batch size, task
    sampling, clipping or eval cadence.
    """

    def section(name: str) -> Any:
        node = cfg.get(name)
        try:
            return plain(node)
        except Exception:  # e.g. an interpolation that needs a live Hydra: compare it unresolved
            return plain(node, resolve=False)

    identity = {name: section(name) for name in IDENTITY_SECTIONS}
    trainer = section("trainer")
    if isinstance(trainer, dict):
        trainer = {k: v for k, v in trainer.items() if k not in RUN_CONTROL_KEYS}
    identity["trainer"] = trainer
    return identity


def refuse_existing_run(run_dir: str | Path, resume: bool) -> None:
    """UserError when `trainer.resume=false` but `run_dir` already holds a run (checkpoints/last.pt)."""
    if not resume and (Path(run_dir) / "checkpoints" / "last.pt").exists():
        raise UserError(
            f"trainer.resume=false but {run_dir} already holds a run (checkpoints/last.pt); "
            "pick another run dir or pass trainer.resume=true"
        )


def config_mismatch(saved: dict, current: dict, prefix: str = "") -> str | None:
    """First key where two plain config dicts differ, as 'key: saved vs current' (None if equal)."""
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            found = config_mismatch(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} in the checkpoint vs {b!r} now"
    return None
