"""The registry of choices: every config group, its choices, their schemas and descriptions.

A choice is either a schema dataclass (mtl_cli/schemas/, class variables `group` and `name`) or a
YAML preset under conf/ that carries real values (experiments, launcher presets, tasks with preset
ways/shots or alphabets). A schema is its own choice `<group>=<name>` unless it is marked
`preset_base` (only presets build on it) or a YAML preset of the same name specialises it. This one
registry drives composition (`mtl_cli.config.register_schemas`), `mtl list`, the tests that iterate
every method and `make bench`. Standard library and the schema modules only: `mtl list` must start
fast and never import torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CONF_DIR = Path(__file__).parent / "conf"
#: Hydra groups whose presets the project ships and lists (its logging internals are not listed)
_HYDRA_GROUPS = ("launcher", "sweeper")
_SCHEMA_REF = re.compile(r"/schema/([\w/]+)@_here_")


@dataclass(frozen=True)
class Choice:
    """One choice of a config group: its schema (if any) and its YAML preset (if any)."""

    group: str
    name: str
    schema: type | None
    preset: Path | None

    @property
    def description(self) -> str:
        """One line: the preset's first comment, else the schema's docstring summary."""
        if self.preset is not None:
            for line in self.preset.read_text().splitlines():
                line = line.strip()
                if line.startswith("# @package"):
                    continue
                if line.startswith("#"):
                    return line.lstrip("#").strip()
                if line:
                    break
        doc = (self.schema.__doc__ or "") if self.schema is not None else ""
        return " ".join(doc.strip().split("\n\n")[0].split())

    def has_option(self, key: str) -> bool:
        """Whether the schema has the field `key` (e.g. `rep_grad`: a gradient method)."""
        if self.schema is None:
            return False
        return any(f.name == key for f in dataclasses.fields(self.schema))

    def allows(self, key: str, value) -> bool:
        """Whether the schema has the field `key` and its metadata admits `value`."""
        from mtl_cli.schemas.checks import InvalidSetting, check_value

        fields = {f.name: f for f in dataclasses.fields(self.schema)} if self.schema else {}
        if key not in fields:
            return False
        try:
            check_value(key, value, dict(fields[key].metadata))
        except InvalidSetting:
            return False
        return True

    def fact(self, name: str, default=None):
        """A class variable of the schema (e.g. `families`, `kind`), or `default`."""
        return getattr(self.schema, name, default) if self.schema is not None else default


@cache
def schema_classes() -> tuple[type, ...]:
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
    return tuple(found)


def schema_of(group: str, name: str) -> type | None:
    """The schema registered as `schema/<group>/<name>`."""
    for cls in schema_classes():
        if cls.group == group and cls.name == name:
            return cls
    return None


def _preset_schema(path: Path) -> type | None:
    match = _SCHEMA_REF.search(path.read_text())
    if match is None:
        return None
    group, _, name = match.group(1).partition("/")
    return schema_of(group, name)


def _preset_dirs() -> dict[str, Path]:
    dirs = {p.name: p for p in sorted(CONF_DIR.iterdir()) if p.is_dir() and p.name != "hydra"}
    for name in _HYDRA_GROUPS:
        if (CONF_DIR / "hydra" / name).is_dir():
            dirs[f"hydra/{name}"] = CONF_DIR / "hydra" / name
    return dirs


@cache
def _all_choices() -> dict[str, dict[str, Choice]]:
    table: dict[str, dict[str, Choice]] = {}
    for group, base in _preset_dirs().items():
        for path in sorted(base.rglob("*.yaml")):
            name = str(path.relative_to(base).with_suffix(""))
            table.setdefault(group, {})[name] = Choice(group, name, _preset_schema(path), path)
    for cls in schema_classes():
        if not cls.group or vars(cls).get("preset_base", False):
            continue
        group_table = table.setdefault(cls.group, {})
        if cls.name not in group_table:  # a preset of the same name specialises the schema
            group_table[cls.name] = Choice(cls.group, cls.name, cls, None)
    return {g: dict(sorted(c.items())) for g, c in table.items() if c}


def config_groups() -> list[str]:
    """Config groups with choices: the schema groups and the preset-only ones (experiment, ...)."""
    groups = _all_choices()
    return sorted(g for g in groups if not g.startswith("hydra/")) + sorted(
        g for g in groups if g.startswith("hydra/")
    )


def choices(group: str) -> list[Choice]:
    """The choices of `group`, sorted by name (nested ones as 'sub/name')."""
    return list(_all_choices().get(group, {}).values())


def group_choices(group: str) -> list[str]:
    """The choice names of `group`."""
    return [c.name for c in choices(group)]


def find(group: str, name: str) -> Choice | None:
    """Choice `name` of `group`, or None."""
    return _all_choices().get(group, {}).get(name)


def schema_choices(group: str) -> list[Choice]:
    """The choices of `group` that are schemas themselves (no preset): e.g. every loss method."""
    return [c for c in choices(group) if c.preset is None]
