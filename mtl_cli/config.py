"""Config schemas in Hydra's ConfigStore, composition for tests and the CLI, and value checks.

No torch here: `mtl list` and the CLI's pre-flight check must stay fast.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from mtl_cli.choices import CONF_DIR, config_groups, group_choices
from mtl_cli.errors import UserError

__all__ = ["CONF_DIR", "compose", "config_groups", "group_choices", "register_schemas", "validate"]
CONF_MODULE = "mtl_cli.conf"

#: config sections that must match a run's checkpoint to continue from it
RUN_IDENTITY_KEYS = ("task", "model", "backbone", "loss", "optim", "seed")


def schema_classes() -> list[type]:
    """Every schema dataclass (one with `group` and `name` class variables) in mtl_cli.schemas."""
    import mtl_cli.schemas as package

    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for obj in vars(module).values():
            if (
                dataclasses.is_dataclass(obj)
                and isinstance(obj, type)
                and obj.__module__ == module.__name__
                and "name" in vars(obj)
                and "group" in vars(obj)
            ):
                found.append(obj)
    return found


@cache
def register_schemas() -> None:
    """Store each schema as `schema/<group>/<name>` (the top-level one as `schema/main`)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for cls in schema_classes():
        group = f"schema/{cls.group}" if cls.group else "schema"
        name = cls.name
        if "/" in name:  # nested choice, e.g. task "multitask/hershey_alphabets"
            sub, name = name.rsplit("/", 1)
            group = f"{group}/{sub}"
        store.store(group=group, name=name, node=cls)


def compose(overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """Compose the experiment config as `mtl train` would (tests call this, then `train(cfg)`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONF_MODULE, version_base="1.3"):
            cfg = hydra_compose(
                "config", overrides=list(overrides), return_hydra_config=return_hydra_config
            )
    except Exception as exc:
        raise UserError(describe_compose_error(exc, overrides)) from None
    finally:
        GlobalHydra.instance().clear()
    return cfg


# ---------------------------------------------------------------- error messages


def describe_compose_error(exc: BaseException, overrides: Sequence[str] = ()) -> str:
    """Turn Hydra/OmegaConf composition errors into one line naming the key, value and what is allowed."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    text = str(exc)
    missing = re.search(r"Could not find '([^']+)'", text)
    if isinstance(exc, MissingConfigException) or missing:
        path = missing.group(1) if missing else text
        group, _, choice = path.partition("/")
        for candidate in sorted(config_groups(), key=len, reverse=True):
            if path.startswith(candidate + "/"):
                group, choice = candidate, path[len(candidate) + 1 :]
                break
        allowed = ", ".join(group_choices(group)) or "(none)"
        return f"{group}: unknown choice '{choice}'; allowed: {allowed}"
    cause = exc.__cause__ or exc.__context__
    node = cause if isinstance(cause, OmegaConfBaseException) else exc
    if isinstance(node, OmegaConfBaseException) and getattr(node, "full_key", None):
        first = str(node).splitlines()[0]
        return f"{node.full_key}: {first}"
    m = re.search(r"Could not override '([^']+)'", text)
    if m:
        return f"{m.group(1)}: no such key (append new keys with '+{m.group(1)}=...')"
    m = re.search(r"Could not append to config. An item is already at '([^']+)'", text)
    if m:
        return f"{m.group(1)}: key already exists; override it without '+'"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines[:3]) if lines else type(exc).__name__


# ---------------------------------------------------------------- value checks


def _schema_of(node: Any) -> type | None:
    try:
        t = OmegaConf.get_type(node)
    except Exception:
        return None
    return t if t is not None and dataclasses.is_dataclass(t) else None


def _check_field(key: str, value: Any, meta: dict) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        allowed = ", ".join(map(str, meta["choices"]))
        raise UserError(f"{key}: invalid value '{value}'; allowed: {allowed}")
    if "min" in meta and value < meta["min"]:
        raise UserError(f"{key}: {value} is below the minimum {meta['min']}")
    if "min_exclusive" in meta and value <= meta["min_exclusive"]:
        raise UserError(f"{key}: {value} must be greater than {meta['min_exclusive']}")
    if "max" in meta and value > meta["max"]:
        raise UserError(f"{key}: {value} is above the maximum {meta['max']}")


def _walk(node: Any, prefix: str) -> None:
    if isinstance(node, DictConfig):
        schema = _schema_of(node)
        if schema is not None:
            for f in dataclasses.fields(schema):
                if f.metadata and f.name in node:
                    _check_field(f"{prefix}{f.name}", node[f.name], dict(f.metadata))
        for key in node.keys():
            if str(key).startswith("_") or key == "hydra":
                continue
            try:
                child = node._get_node(key)
            except Exception:
                continue
            if isinstance(child, DictConfig | ListConfig):
                _walk(child, f"{prefix}{key}.")


def validate(cfg: DictConfig) -> None:
    """Check ranges, choices and compatibility of the chosen groups; raise UserError on the first problem."""
    _walk(cfg, "")
    task_schema = _schema_of(cfg.task)
    family = cfg.task.get("family") or getattr(task_schema, "family", None)
    model_schema = _schema_of(cfg.model)
    families = getattr(model_schema, "families", None)
    if family and families and family not in families:
        raise UserError(
            f"model: '{model_schema.name}' cannot serve the {family} family; "
            f"it serves: {', '.join(families)}"
        )
    kinds = getattr(model_schema, "kinds", None)
    kind = cfg.task.get("kind") or getattr(task_schema, "kind", None)
    if kinds and kind and kind not in kinds:
        raise UserError(
            f"model: '{model_schema.name}' does not do {kind} tasks; it does: {', '.join(kinds)}"
        )
    input_kind = getattr(task_schema, "input_kind", None)
    backbone_schema = _schema_of(cfg.backbone) if cfg.get("backbone") is not None else None
    inputs = getattr(backbone_schema, "inputs", None)
    if input_kind and inputs and input_kind not in inputs:
        raise UserError(
            f"backbone: '{backbone_schema.name}' needs {' or '.join(inputs)} inputs, "
            f"but task '{task_schema.name}' gives {input_kind} inputs"
        )
    loss_schema = _schema_of(cfg.loss)
    loss_families = getattr(loss_schema, "families", ("multitask", "multilabel"))
    if family and loss_schema is not None and family not in loss_families:
        raise UserError(
            f"loss: '{loss_schema.name}' cannot be used with the {family} family; "
            f"it serves: {', '.join(loss_families)}"
        )
    if cfg.loss.get("rep_grad"):
        if family != "multilabel" or not getattr(model_schema, "shared_representation", False):
            raise UserError(
                "loss.rep_grad: true needs one shared batch and a shared representation "
                "(multilabel family with model=hard_sharing); set loss.rep_grad=false"
            )
    trainer = cfg.trainer
    if trainer.task_sampling != "all" and cfg.task.get("family") == "multilabel":
        raise UserError(
            "trainer.task_sampling: multi-label tasks share one batch; only 'all' is allowed"
        )
    _check_device_string(str(cfg.device))


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _check_device_string(device: str) -> None:
    if not _DEVICE_RE.match(device):
        raise UserError(f"device: invalid value '{device}'; allowed: auto, cpu, cuda, cuda:N, mps")
