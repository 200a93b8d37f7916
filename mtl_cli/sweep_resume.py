"""Re-run a grid sweep in its own dir: finished jobs are skipped, interrupted ones resume, the rest run.

`mtl train -m resume_sweep=<sweep dir> [overrides]` reads the sweep's command-line overrides from
<sweep dir>/multirun.yaml (Hydra writes it), pins `hydra.sweep.dir` to that dir and forces
`trainer.resume=true`. Hydra numbers the jobs of the same overrides in the same order, so job i
lands in <sweep dir>/i again; each job then skips (finished), resumes (checkpoints/last.pt) or runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtl_cli.checkpoint_compare import IDENTITY_SECTIONS, RUN_CONTROL_KEYS
from mtl_cli.early_stopping import plateau_reached
from mtl_cli.errors import UserError
from mtl_cli.overrides import key, merge_overrides, quote

RESUME_KEYS = ("resume_sweep", "+resume_sweep", "++resume_sweep")
#: Hydra overrides of the first launch that are not copied: the sweep dir is pinned instead
_NOT_COPIED = ("hydra.sweep.dir=", "hydra.mode=")


def pop_resume_sweep(overrides: Sequence[str]) -> tuple[Path | None, list[str]]:
    """(sweep dir, the other overrides) from a command line holding `resume_sweep=<dir>`."""
    found = [o for o in overrides if o.split("=", 1)[0] in RESUME_KEYS]
    rest = [o for o in overrides if o.split("=", 1)[0] not in RESUME_KEYS]
    if not found:
        return None, rest
    value = found[-1].split("=", 1)[1].strip().strip("'\"")
    if not value:
        raise UserError(
            "resume_sweep: empty; give the sweep dir, e.g. resume_sweep=outputs/multirun/<stamp>"
        )
    return Path(value), rest


def _is_sweep(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([override])[0]
    except Exception:
        return False
    return parsed.is_sweep_override()


def resume_overrides(sweep_dir: Path, extra: Sequence[str]) -> list[str]:
    """The overrides that re-create the sweep of `sweep_dir` in place, `extra` applied last.

    `extra` may change how jobs run (launcher, threads, device, ...) but not the grid: a sweep
    value there is refused, since job i must meet the config it had the first time.
    """
    from omegaconf import OmegaConf

    saved_path = sweep_dir / "multirun.yaml"
    if not sweep_dir.is_dir():
        raise UserError(f"resume_sweep: {sweep_dir} does not exist or is not a directory")
    if not saved_path.is_file():
        raise UserError(
            f"resume_sweep: {sweep_dir} is not a grid sweep dir (no multirun.yaml); "
            "give a dir made by `mtl train -m`"
        )
    sweeping = [o for o in extra if _is_sweep(o)]
    if sweeping:
        raise UserError(
            f"resume_sweep: '{sweeping[0]}' would change the grid of {sweep_dir}; "
            "only single values may be added when resuming"
        )
    try:
        saved = OmegaConf.load(saved_path).hydra.overrides
        task = [str(o) for o in saved.task]
        hydra = [str(o) for o in saved.hydra if not str(o).startswith(_NOT_COPIED)]
    except Exception as exc:
        raise UserError(f"resume_sweep: {saved_path} is unreadable ({exc})") from None
    if any("hydra/sweeper=" in o and not o.endswith("=basic") for o in hydra + task):
        raise UserError(
            f"resume_sweep: {sweep_dir} was made by a search sweeper; only grid sweeps resume"
        )
    changing = [o for o in extra if _changes_runs(o) and o not in task]
    if changing:
        raise UserError(
            f"resume_sweep: '{changing[0]}' would change the runs of {sweep_dir} (their "
            "checkpoints hold another config); allowed: keys outside the run identity, e.g. "
            "device, hydra/launcher, " + ", ".join(f"trainer.{k}" for k in RUN_CONTROL_KEYS)
        )
    pinned = ["trainer.resume=true", f"hydra.sweep.dir={quote(str(sweep_dir))}"]
    return merge_overrides(hydra + task, list(extra) + pinned)


def _changes_runs(override: str) -> bool:
    """Whether an override may change a job's run identity (checkpoint_compare.run_identity)."""
    name = key(override)
    root = name.split(".", 1)[0].split("/", 1)[0]
    if root == "trainer" and name.count(".") == 1:
        return name.split(".", 1)[1] not in RUN_CONTROL_KEYS
    return root in (*IDENTITY_SECTIONS, "trainer", "experiment", "hparams_search")


def finished_summary(cfg: Any) -> dict[str, Any] | None:
    """The metrics.json of the run dir when it holds a finished run of this same config, else None.

    Same config = the same run identity as its checkpoint (checkpoint_compare.run_identity: task,
    model, ..., seed and the trainer but its run-control keys), and at least `trainer.steps` steps
    done, or stopped on a val plateau under this config's `trainer.patience`; a run stopped early
    otherwise or made by another config is not skipped.
    """
    from mtl_cli.io import read_json

    out = Path(cfg.paths.output_dir)
    if not cfg.trainer.resume or not (out / "metrics.json").is_file():
        return None
    try:
        summary = read_json(out / "metrics.json")
    except ValueError:
        return None
    if not isinstance(summary, dict) or summary.get("status") != "finished":
        return None
    short = int(summary.get("step") or 0) < int(cfg.trainer.steps)
    if short and summary.get("stopped") != "plateau":
        return None
    last = out / "checkpoints" / "last.pt"
    if not last.is_file():
        return None
    from mtl_cli.checkpoint import load_checkpoint
    from mtl_cli.checkpoint_compare import config_mismatch, run_identity

    identity = run_identity(cfg)
    try:
        state = load_checkpoint(last)
    except UserError:  # unreadable: let the run itself report it
        return None
    if config_mismatch(state.get("identity", {}), identity):
        return None
    if short and not plateau_reached(state.get("plateau", {}), int(cfg.trainer.patience)):
        return None
    return summary


def record_failure(out_dir: str | Path, message: str) -> None:
    """Mark a failed job in its metrics.json (status failed, error) unless the run already wrote
    how it ended: a finished run's results (or a failed/interrupted run's own record) stay."""
    from mtl_cli.io import read_json, write_json

    path = Path(out_dir) / "metrics.json"
    if not path.parent.is_dir():
        return
    try:
        status = read_json(path).get("status") if path.is_file() else None
    except (ValueError, AttributeError):
        status = None
    if status not in ("finished", "failed", "interrupted"):
        write_json(path, {"status": "failed", "error": message})
