"""Evaluation-side settings that `mtl eval run=<dir>` may change on a finished run (no retraining).

The keys are the `task:` and `model:` entries of `conf/eval.yaml` (null there = the run's own
value): episode shape and count at meta-val/test (`task.eval_ways`, `eval_shots`, ...) and how the
gradient-adapting learners evaluate (`model.eval_inner_steps`, `eval_inner_lr`, `bn_mode`). Every
other task or model key changes what was trained and is refused. No torch here (the CLI checks
overrides before starting).
"""

from __future__ import annotations

import dataclasses
import re
from functools import cache
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from mtl_cli.errors import UserError

#: the run-level keys of `mtl eval` itself (conf/eval.yaml)
EVAL_OPTIONS = ("run", "split", "checkpoint", "device")
DEFAULT_RESULT = "eval_metrics.json"


@cache
def allowed_keys() -> tuple[str, ...]:
    """`task.<key>` and `model.<key>` that `mtl eval` may override, as conf/eval.yaml lists them."""
    from mtl_cli.registry import CONF_DIR

    conf = OmegaConf.load(CONF_DIR / "eval.yaml")
    return tuple(f"{group}.{key}" for group in ("task", "model") for key in conf.get(group, {}))


def check_override_keys(overrides: list[str]) -> None:
    """Refuse (one line) a command-line override of `mtl eval` outside its own options, hydra.*
    and the evaluation-side keys."""
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key in EVAL_OPTIONS or key.split(".", 1)[0] == "hydra" or key in allowed_keys():
            continue
        raise UserError(
            f"{key}: mtl eval cannot change it (that needs retraining); allowed: "
            f"{', '.join((*EVAL_OPTIONS, *allowed_keys()))}"
        )


def given(cfg: DictConfig) -> dict[str, Any]:
    """The evaluation-side overrides set (non-null) in an `mtl eval` config: {"task.eval_ways": 5}."""
    out = {}
    for key in allowed_keys():
        group, name = key.split(".", 1)
        value = cfg[group][name] if cfg.get(group) is not None else None
        if value is not None:
            out[key] = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
    return out


def apply(cfg: DictConfig, overrides: dict[str, Any]) -> DictConfig:
    """A copy of a run's saved config with `overrides` set, each checked: the key must be an
    option of the run's task or model schema (e.g. `model.bn_mode` only for the gradient-adapting
    learners) and its value allowed there; `task.eval_ways` needs a learner that can use it."""
    from mtl_cli.config import check_eval_ways
    from mtl_cli.schemas.checks import check_value

    cfg = OmegaConf.create(OmegaConf.to_container(cfg))
    for key, value in overrides.items():
        if key not in allowed_keys():
            raise UserError(
                f"{key}: mtl eval cannot change it; allowed: {', '.join(allowed_keys())}"
            )
        group, name = key.split(".", 1)
        fields = _fields(group, cfg[group])
        if name not in fields and name not in cfg[group]:
            raise UserError(f"{key}: not an option of this run's {group} ({_choice(group, cfg)})")
        try:
            check_value(key, value, dict(fields[name].metadata) if name in fields else {})
        except TypeError:
            raise UserError(f"{key}: invalid value '{value}'") from None
        cfg[group][name] = value
    check_eval_ways(cfg.task, _schema(cfg.model, "model"))
    return cfg


def result_name(overrides: dict[str, Any]) -> str:
    """`eval_metrics.json` without overrides (what `mtl eval` always wrote), else
    `eval_metrics.<key=value+...>.json`: one file per setting, the others left untouched."""
    if not overrides:
        return DEFAULT_RESULT
    parts = [f"{key}={_compact(value)}" for key, value in sorted(overrides.items())]
    return "eval_metrics." + re.sub(r"[^A-Za-z0-9._=+-]", "_", "+".join(parts)) + ".json"


def _compact(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _schema(node: Any, group: str) -> type | None:
    """The schema a saved (untyped) section was composed from: the one with its `_target_`."""
    from mtl_cli.registry import schema_classes

    target = node.get("_target_") if isinstance(node, DictConfig) else None
    for cls in schema_classes():
        if cls.group == group and getattr(cls, "_target_", None) == target:
            return cls
    return None


def _fields(group: str, node: Any) -> dict[str, dataclasses.Field]:
    schema = _schema(node, group)
    return {f.name: f for f in dataclasses.fields(schema)} if schema else {}


def _choice(group: str, cfg: DictConfig) -> str:
    schema = _schema(cfg[group], group)
    return f"{group}={schema.name}" if schema else str(cfg[group].get("_target_"))
