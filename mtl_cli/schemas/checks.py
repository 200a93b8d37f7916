"""Checks of option values against a schema's field metadata (the one place allowed values live).

Field metadata keys: "choices", "min", "min_exclusive", "max". `mtl_cli.config.validate` applies
them to a composed config; implementations call `check_settings` with their constructor
arguments, so a method built directly from Python is held to the same limits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mtl_cli.errors import UserError


class InvalidSetting(UserError, ValueError):
    """A value outside what its schema field allows (a UserError for the CLI, a ValueError for
    Python callers)."""


def check_value(key: str, value: Any, meta: dict) -> None:
    """Raise InvalidSetting when `value` breaks the field metadata `meta` (None always passes)."""
    if value is None:
        return
    if "choices" in meta and not any(_is_choice(value, c) for c in meta["choices"]):
        allowed = ", ".join(map(_shown, meta["choices"]))
        raise InvalidSetting(f"{key}: invalid value '{_shown(value)}'; allowed: {allowed}")
    if "min" in meta and value < meta["min"]:
        raise InvalidSetting(f"{key}: {value} is below the minimum {meta['min']}")
    if "min_exclusive" in meta and value <= meta["min_exclusive"]:
        raise InvalidSetting(f"{key}: {value} must be greater than {meta['min_exclusive']}")
    if "max" in meta and value > meta["max"]:
        raise InvalidSetting(f"{key}: {value} is above the maximum {meta['max']}")


def _is_choice(value: Any, choice: Any) -> bool:
    """`value` is `choice`; a bool choice (e.g. trainer.compile's false | true | auto) matches only
    a bool or its YAML spelling ("true"/"false"), never 1 or 0."""
    if isinstance(choice, bool):
        if isinstance(value, str):
            return value.strip().lower() == _shown(choice)
        return isinstance(value, bool) and value is choice
    return not isinstance(value, bool) and value == choice


def _shown(value: Any) -> str:
    """A value as the command line spells it (bools as true/false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_settings(schema: type, **values: Any) -> None:
    """Check constructor arguments against the fields of `schema` (keys named `<group>.<field>`)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    prefix = f"{schema.group}." if getattr(schema, "group", "") else ""
    for name, value in values.items():
        if name not in fields:
            raise TypeError(f"{schema.__name__} has no field '{name}'")
        check_value(f"{prefix}{name}", value, dict(fields[name].metadata))
