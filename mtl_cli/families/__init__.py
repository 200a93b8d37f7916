"""Task families, registered by the name `task.family` holds (the one registration point)."""

from __future__ import annotations

from importlib import import_module

#: family name -> "module:Class"; imported lazily so `mtl list` never imports torch
FAMILIES = {
    "multitask": "mtl_cli.families.multitask:MultiTaskFamily",
    "multilabel": "mtl_cli.families.multilabel:MultiLabelFamily",
    "meta": "mtl_cli.families.meta:MetaFamily",
}


def family_class(name: str) -> type:
    """The Family class registered under `name`."""
    module, _, cls = FAMILIES[name].partition(":")
    return getattr(import_module(module), cls)
