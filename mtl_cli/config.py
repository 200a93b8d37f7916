"""Config schemas in Hydra's ConfigStore, composition for tests and the CLI, and value checks.

No torch here: `mtl list` and the CLI's pre-flight check must stay fast.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from mtl_cli.errors import UserError
from mtl_cli.families import family_facts
from mtl_cli.registry import (
    CONF_DIR,
    choices,
    config_groups,
    group_choices,
    schema_choices,
    schema_classes,
)
from mtl_cli.schemas.checks import check_value

__all__ = ["CONF_DIR", "compose", "config_groups", "group_choices", "register_schemas", "validate"]
CONF_MODULE = "mtl_cli.conf"


@cache
def register_schemas() -> None:
    """Store every schema as `schema/<group>/<name>` (what YAML presets build on), and each schema
    that the registry lists as a choice also as `<group>/<name>` (the top-level one as
    `schema/main`)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()

    def put(group: str, name: str, node: type, package: str | None = None) -> None:
        if "/" in name:  # nested choice, e.g. task "multitask/synthetic_mmoe"
            sub, name = name.rsplit("/", 1)
            group = f"{group}/{sub}"
        store.store(group=group, name=name, node=node, package=package)

    for cls in schema_classes():
        put(f"schema/{cls.group}" if cls.group else "schema", cls.name, cls)
    for group in config_groups():
        for choice in schema_choices(group):  # `package`: where a choice goes (logger.<name>)
            put(group, choice.name, choice.schema, choice.fact("package"))


def compose(
    overrides: Sequence[str] = (),
    return_hydra_config: bool = False,
    config_dirs: Sequence[str] = (),
) -> DictConfig:
    """Compose the experiment config as `mtl train` would (tests call this, then `train(cfg)`);
    `config_dirs` are searched for choices too, as `mtl train --config-dir <dir>` does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register_schemas()
    overrides = with_config_dirs(overrides, config_dirs)
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


def with_config_dirs(overrides: Sequence[str], config_dirs: Sequence[str]) -> list[str]:
    """`overrides` with the user's config dirs added to `hydra.searchpath` (where `--config-dir`
    puts them), after any search path the overrides already give."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = list(overrides)
    if not config_dirs:
        return overrides
    paths = [f"file://{Path(d).absolute()}" for d in config_dirs]
    for i, item in enumerate(overrides):
        parsed = OverridesParser.create().parse_overrides([item])[0]
        if parsed.get_key_element() == "hydra.searchpath" and isinstance(parsed.value(), list):
            paths = [str(p) for p in parsed.value()] + paths
            del overrides[i]
            break
    return overrides + ["hydra.searchpath=[" + ",".join(f"'{p}'" for p in paths) + "]"]


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


def _walk(node: Any, prefix: str) -> None:
    if isinstance(node, DictConfig):
        schema = _schema_of(node)
        if schema is not None:
            for f in dataclasses.fields(schema):
                if f.metadata and f.name in node:
                    check_value(f"{prefix}{f.name}", node[f.name], dict(f.metadata))
        for key in node.keys():
            if str(key).startswith("_") or key == "hydra":
                continue
            try:
                child = node._get_node(key)
            except Exception:
                continue
            if isinstance(child, DictConfig | ListConfig):
                _walk(child, f"{prefix}{key}.")


def task_kind(task: Any) -> str:
    """`classification` or `regression`: the task's `kind` key, else its schema's class variable."""
    kind = task.get("kind") if isinstance(task, DictConfig) else None
    return str(kind or getattr(_schema_of(task), "kind", None) or "classification")


def validate(cfg: DictConfig) -> None:
    """Check ranges, choices and compatibility of the chosen groups; raise UserError on the first problem."""
    _walk(cfg, "")
    check_loggers(cfg)
    external = external_targets(cfg)

    def facts(group: str) -> Any:
        """Where a choice's compatibility facts live: its schema, or a user's imported target."""
        node = cfg.get(group)
        return (
            _schema_of(node) if node is not None and group not in external else external.get(group)
        )

    def label(group: str) -> str:
        if group in external:
            return f"{group}._target_: '{cfg[group]._target_}'"
        return f"{group}: '{getattr(facts(group), 'name', group)}'"

    task_schema, model_schema, backbone_schema = facts("task"), facts("model"), facts("backbone")
    task_name = getattr(task_schema, "name", "(yours)")
    family = family_facts(cfg.task.family)
    families = getattr(model_schema, "families", None)
    if families and family.name not in families:
        raise UserError(
            f"{label('model')} cannot serve the {family.name} family; "
            f"it serves: {', '.join(families)}"
        )
    kinds = getattr(model_schema, "kinds", None)
    kind = task_kind(cfg.task)
    if kinds and kind not in kinds:
        raise UserError(f"{label('model')} does not do {kind} tasks; it does: {', '.join(kinds)}")
    check_eval_ways(cfg.task, model_schema)
    input_kind = getattr(task_schema, "input_kind", None)
    inputs = getattr(backbone_schema, "inputs", None)
    if input_kind and inputs and input_kind not in inputs:
        raise UserError(
            f"{label('backbone')} needs {' or '.join(inputs)} inputs, "
            f"but task '{task_name}' gives {input_kind} inputs"
        )
    ours = "task" not in external  # a user's builder may download as it likes
    if ours and cfg.get("data") and cfg.data.get("download"):
        if not getattr(task_schema, "downloads", False):
            allowed = [c.name for c in choices("task") if c.fact("downloads", False)]
            raise UserError(
                f"data.download: true, but task '{task_name}' has nothing to download "
                f"(embedded data or files you provide); allowed: false (tasks that download: "
                f"{', '.join(allowed)})"
            )
    wanted = getattr(task_schema, "backbone_output", "vector")
    output = getattr(backbone_schema, "output", "vector")
    if backbone_schema is not None and output != wanted:
        allowed = [
            c.name for c in schema_choices("backbone") if c.fact("output", "vector") == wanted
        ]
        raise UserError(
            f"{label('backbone')} gives a {output}, but task '{task_name}' "
            f"needs a feature {wanted}; allowed: {', '.join(allowed)}"
        )
    loss_schema = facts("loss")
    if family.single_objective and not getattr(loss_schema, "single_objective", False):
        allowed = [c.name for c in schema_choices("loss") if c.fact("single_objective", False)]
        raise UserError(
            f"{label('loss')} cannot be used with the {family.name} family (one objective per "
            f"step); allowed: {', '.join(allowed)} (or a class with single_objective = True)"
        )
    if cfg.loss.get("rep_grad"):
        if not family.shared_batch or not getattr(model_schema, "shared_representation", False):
            raise UserError(
                "loss.rep_grad: true needs one shared batch and a shared representation "
                "(a shared-batch family such as multilabel, with model=hard_sharing); "
                "set loss.rep_grad=false"
            )
    samples = getattr(loss_schema, "samples_per_step", 1)
    if samples > 1 and cfg.trainer.task_sampling != "all":
        raise UserError(
            f"trainer.task_sampling: loss '{getattr(loss_schema, 'name', cfg.loss._target_)}' "
            f"draws {samples} independent "
            "batches of the same tasks per step; only 'all' is allowed"
        )
    if cfg.trainer.task_sampling != "all" and family.shared_batch:
        raise UserError(
            f"trainer.task_sampling: {family.name} tasks share one batch; only 'all' is allowed"
        )
    _check_device_string(str(cfg.device))
    device = str(cfg.device)
    if device != "auto":  # auto is resolved (and checked) when the run starts
        problem = precision_error(str(cfg.trainer.get("precision", "32")), device.split(":")[0])
        if problem:
            raise UserError(problem)


def check_eval_ways(task: Any, model_schema: type | None) -> None:
    """`task.eval_ways` other than `task.ways` needs a learner without a `ways`-sized output layer
    (its schema's `any_eval_ways`); the others are evaluated at the N they were trained at."""
    eval_ways, ways = task.get("eval_ways"), task.get("ways")
    if eval_ways is None or eval_ways == ways or getattr(model_schema, "any_eval_ways", False):
        return
    allowed = [c.name for c in schema_choices("model") if c.fact("any_eval_ways", False)]
    raise UserError(
        f"task.eval_ways: {eval_ways} differs from task.ways={ways}, but "
        f"model={getattr(model_schema, 'name', 'model')} has an output layer of task.ways units "
        f"and is evaluated at the N it was trained at; set task.eval_ways=null or use one of: "
        f"{', '.join(allowed)}"
    )


def precision_error(precision: str, device_type: str) -> str | None:
    """Why `trainer.precision` cannot run on a device of type `device_type`, or None."""
    if precision == "16-mixed" and device_type != "cuda":
        return (
            f"trainer.precision: 16-mixed needs a CUDA device; the run's device is "
            f"{device_type}; allowed there: 32, bf16"
        )
    return None


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _check_device_string(device: str) -> None:
    if not _DEVICE_RE.match(device):
        raise UserError(f"device: invalid value '{device}'; allowed: auto, cpu, cuda, cuda:N, mps")


# ---------------------------------------------------------------- loggers and users' own choices


def check_loggers(cfg: DictConfig) -> None:
    """Each chosen logger (`logger.<name>`) must have its extra installed."""
    from importlib.util import find_spec

    section = cfg.get("logger")
    for name in section or {}:
        module = getattr(_schema_of(section[name]), "requires", None)
        if module and find_spec(module) is None:
            raise UserError(
                f"logger={name} needs the '{module}' extra: pip install 'mtl_cli[{module}]'"
            )


#: groups where a user's own config dir may add choices: a YAML file with `_target_` and options
EXTERNAL_GROUPS = ("task", "model", "backbone", "loss")
#: arguments the run passes itself to each group's target (not options of the YAML file)
RUN_ARGUMENTS = {
    "task": ("data",),
    "model": ("task_outputs", "input_shape", "make_backbone"),
    "backbone": ("input_shape",),
    "loss": (),
}


def external_targets(cfg: DictConfig) -> dict[str, Any]:
    """Choices without a schema of ours (a user's `model/my_model.yaml` with `_target_:
    my_pkg.MyModel`), by group: each target imported, its options checked to be parameters of it.
    `validate` reads their compatibility facts from the target's attributes, named as our schemas
    name them (`families`, `kinds` of a model, `inputs` of a backbone, `input_kind` of a task
    builder, `single_objective` of a weighting method), and skips the ones a target lacks."""
    targets = {}
    for group in EXTERNAL_GROUPS:
        node = cfg.get(group)
        if isinstance(node, DictConfig) and _schema_of(node) is None and "_target_" in node:
            targets[group] = _import_target(group, node)
    return targets


def _import_target(group: str, node: DictConfig) -> Any:
    """The object `<group>._target_` names; its options must be parameters of it."""
    import importlib
    import inspect

    path = str(node._target_)
    module_name, _, attr = path.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UserError(
            f"{group}._target_: cannot import '{path}' ({exc}); install its package or put it "
            "on PYTHONPATH"
        ) from None
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return target
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return target
    allowed = [p.name for p in parameters if p.name not in RUN_ARGUMENTS[group]]
    for key in node:
        if key != "_target_" and not (group == "task" and key == "family") and key not in allowed:
            raise UserError(
                f"{group}.{key}: not a parameter of '{path}'; allowed: {', '.join(allowed) or '(none)'}"
            )
    return target
