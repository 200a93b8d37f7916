"""`mtl list`: config groups, their choices and one-line descriptions, from the registry (no torch)."""

from __future__ import annotations

from collections.abc import Sequence

from mtl_cli.errors import UserError
from mtl_cli.registry import choices, config_groups, find, group_choices


def list_choices(args: Sequence[str] = ()) -> str:
    """The listing for `mtl list [group ...] [group=choice ...]` (group=choice shows its options)."""
    groups = config_groups()
    shown = []
    for arg in args:
        group, _, choice = arg.partition("=")
        if group not in groups:
            raise UserError(f"unknown config group '{group}'; groups: {', '.join(groups)}")
        if choice:
            shown.append(_options(group, choice))
        else:
            shown.append(_group(group))
    if not args:
        shown = [_group(g) for g in groups]
        shown.append("keys: seed=<int>  device=auto|cpu|cuda|cuda:N|mps  baseline_run=<run dir>")
    return "\n\n".join(shown)


def _group(group: str) -> str:
    entries = choices(group)
    width = max((len(c.name) for c in entries), default=0)
    lines = [f"{group}:"]
    lines += [f"  {c.name:<{width}}  {c.description}" for c in entries]
    return "\n".join(lines)


def _options(group: str, choice: str) -> str:
    from omegaconf import OmegaConf

    from mtl_cli.config import compose

    entry = find(group, choice)
    if entry is None:
        allowed = ", ".join(group_choices(group))
        raise UserError(f"{group}: unknown choice '{choice}'; allowed: {allowed}")
    cfg = compose([f"{group}={choice}", "paths.output_dir=."])
    node = OmegaConf.select(cfg, group.replace("/", "."))
    body = OmegaConf.to_yaml(node).rstrip() if node is not None else "(no options)"
    head = f"{group}={choice}: {entry.description}"
    return head + "\n" + "\n".join("  " + line for line in body.splitlines())
