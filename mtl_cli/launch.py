"""How a sweep job runs under Hydra's launchers and sweepers: threads, objective, optional extras.

No torch here: the CLI's pre-flight check imports it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from mtl_cli.errors import UserError

#: optional extra that provides each optional module (`pip install 'mtl_cli[<extra>]'`)
EXTRAS = {
    "matplotlib": "plots",
    "tensorboard": "tensorboard",
    "torch.utils.tensorboard": "tensorboard",
    "hydra_plugins.hydra_joblib_launcher": "launchers",
    "hydra_plugins.hydra_submitit_launcher": "launchers",
    "hydra_plugins.hydra_optuna_sweeper": "optuna",
}


def require(module: str, what: str) -> ModuleType:
    """Import an optional module, or raise a one-line UserError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module, module)
        raise UserError(
            f"{what} needs the '{extra}' extra: pip install 'mtl_cli[{extra}]'"
        ) from None


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def job_threads(configured: int, launcher: Mapping[str, Any] | None, cores: int) -> int:
    """torch threads for one job: `trainer.threads` if set, else cores / parallel jobs; 0 = torch's default.

    joblib runs `n_jobs` jobs at once (-1: one per core, -2: all but one, as joblib counts);
    submitit gives each job `cpus_per_task` cores when that is set.
    """
    if configured > 0:
        return configured
    if not launcher:
        return 0
    target = str(launcher.get("_target_", ""))
    if "JoblibLauncher" in target:
        n_jobs = int(launcher.get("n_jobs") or 1)
        parallel = n_jobs if n_jobs > 0 else max(cores + 1 + n_jobs, 1)
        return max(cores // parallel, 1)
    if "submitit" in target and launcher.get("cpus_per_task"):
        return int(launcher["cpus_per_task"])
    return 0


def hydra_launcher() -> dict[str, Any] | None:
    """The launcher config of the running Hydra job (None outside Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        return OmegaConf.to_container(HydraConfig.get().launcher, resolve=True)  # type: ignore[return-value]
    except Exception:
        return None


def objective_name(optimized_metric: str, select_metric: str) -> str:
    """The metrics.json key a sweeper optimises: `optimized_metric`, or best_val/<select metric> for auto."""
    if str(optimized_metric) != "auto":
        return str(optimized_metric)
    return f"best_val/{select_metric}"


def metric_value(summary: Mapping[str, Any], name: str) -> float:
    """summary["best_val"]["accuracy"] for "best_val/accuracy" (section, then the rest as one key)."""
    section, _, key = name.partition("/")
    node = summary.get(section)
    if key and isinstance(node, Mapping) and key in node:
        return float(node[key])
    if not key and isinstance(node, int | float) and not isinstance(node, bool):
        return float(node)
    found = [
        f"{k}/{m}" if isinstance(v, Mapping) else k
        for k, v in summary.items()
        if k in ("best_val", "best_test", "val", "test", "delta_m")
        for m in (v if isinstance(v, Mapping) else [None])
    ]
    allowed = ", ".join(found[:12]) + (", ..." if len(found) > 12 else "")
    raise UserError(f"optimized_metric: '{name}' is not in metrics.json; allowed: {allowed}")


def direction(metric: str) -> str:
    """'maximize' or 'minimize' for Optuna, from the metric's name (mtl_cli.metrics.higher_is_better)."""
    from mtl_cli.metrics import higher_is_better

    try:
        return "maximize" if higher_is_better(metric) else "minimize"
    except ValueError as exc:
        raise UserError(f"optimized_metric: {exc}") from None


def family_metrics(cfg: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(aggregate metrics, per-task Δm metrics) of the config's task family and kind, from
    mtl_cli.families.family_facts (no data, no torch)."""
    from omegaconf import OmegaConf

    from mtl_cli.config import task_kind
    from mtl_cli.families import family_facts

    task = cfg.task
    family = task.get("family") or getattr(OmegaConf.get_type(task), "family", None)
    try:
        facts = family_facts(str(family))
    except KeyError as exc:
        raise UserError(f"task.{exc.args[0]}") from None
    kind = task_kind(task)
    if kind not in facts.metrics:
        allowed = ", ".join(facts.metrics)
        raise UserError(
            f"task.kind: '{kind}' is not a kind of the {facts.name} family; allowed: {allowed}"
        )
    return facts.metrics_of(kind), facts.delta_m_metrics_of(kind)


def default_metric(cfg: Any) -> str:
    """The family's first metric for the task's kind (what `select_metric=auto` picks), read from
    the config without data (mtl_cli.families.family_facts)."""
    return family_metrics(cfg)[0][0]


#: the plugin module each launcher/sweeper choice needs (the project's presets and the plugins' own)
PLUGIN_CHOICES = {
    "hydra/launcher": {
        "parallel": "hydra_plugins.hydra_joblib_launcher",
        "joblib": "hydra_plugins.hydra_joblib_launcher",
        "local": "hydra_plugins.hydra_submitit_launcher",
        "slurm": "hydra_plugins.hydra_submitit_launcher",
        "submitit_local": "hydra_plugins.hydra_submitit_launcher",
        "submitit_slurm": "hydra_plugins.hydra_submitit_launcher",
    },
    "hydra/sweeper": {"optuna": "hydra_plugins.hydra_optuna_sweeper"},
}


def check_plugins(overrides: list[str]) -> None:
    """Refuse a launcher, sweeper or `hparams_search` whose Hydra plugin is not installed (names the extra)."""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        module = PLUGIN_CHOICES.get(key, {}).get(value)
        if key == "hparams_search" and value not in ("", "null"):
            module = "hydra_plugins.hydra_optuna_sweeper"
        if module:
            require(module, override)
