"""Config groups, their choices and one-line descriptions, read straight from conf/ (no imports
beyond the standard library: `mtl list` must start fast and never import torch)."""

from __future__ import annotations

from pathlib import Path

CONF_DIR = Path(__file__).parent / "conf"


def group_choices(group: str) -> list[str]:
    """Choices of a config group, read from the YAML files (nested ones as 'sub/name')."""
    base = CONF_DIR / group
    if not base.is_dir():
        return []
    return sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.yaml"))


def config_groups() -> list[str]:
    """Top-level config groups shipped in conf/ (hydra/ presets included as 'hydra/launcher' etc.)."""
    groups = [p.name for p in sorted(CONF_DIR.iterdir()) if p.is_dir() and p.name != "hydra"]
    hydra_dir = CONF_DIR / "hydra"
    if hydra_dir.is_dir():  # the project's launcher/sweeper presets, not its logging internals
        groups += [f"hydra/{p.name}" for p in sorted(hydra_dir.iterdir())
                   if p.is_dir() and p.name in ("launcher", "sweeper")]  # fmt: skip
    return groups


def choice_description(group: str, choice: str) -> str:
    """The first-line comment of a choice's YAML file."""
    path = CONF_DIR / group / f"{choice}.yaml"
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("# @package"):
            continue
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line:
            break
    return ""
