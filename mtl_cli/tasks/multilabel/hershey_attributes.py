"""Hershey-glyph multi-label: geometric and alphabet-group attributes of each glyph (no download)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MultiLabelData, TaskSplit
from mtl_cli.tasks.common import label_options
from mtl_cli.tasks.hershey_common import _alphabet_names, _as_float, _render

#: alphabet-membership labels: group -> alphabet name prefixes (see docs/data/hershey.md)
ALPHABET_GROUPS = {
    "group_latin": ("latin_", "gothic_", "digits"),
    "group_greek": ("greek_",),
    "group_cyrillic": ("cyrillic_",),
    "group_japanese": ("japanese_",),
    "group_symbols": ("astrology", "markers", "math", "meteorology", "music", "symbolic"),
    "uppercase": ("*_upper",),
}


def _group_labels(alphabet_of_char: Sequence[str]) -> dict[str, np.ndarray]:
    out = {}
    for label, patterns in ALPHABET_GROUPS.items():
        hit = [
            any(a.endswith(p[1:]) if p.startswith("*") else a.startswith(p) for p in patterns)
            for a in alphabet_of_char
        ]
        out[label] = np.array(hit, dtype=bool)
    return out


def hershey_attribute_tasks(
    alphabets: Sequence[str],
    labels: Sequence[str],
    pos_weight,
    threshold,
    data_seed: int,
    render: dict,
    data: dict,
) -> MultiLabelData:
    """Multi-label: each glyph image gets its glyph's geometric attributes and alphabet-group labels."""
    from mtl_cli.data.hershey import load_alphabets
    from mtl_cli.data.hershey_attributes import ATTRIBUTES, attribute_matrix
    from mtl_cli.data.hershey_images import drawer_split

    names = _alphabet_names(alphabets)
    glyph_lists = load_alphabets(names)
    glyphs = [g for name in names for g in glyph_lists[name]]
    table = dict(zip(ATTRIBUTES, attribute_matrix(glyphs).T, strict=True))
    table.update(_group_labels([g.alphabet for g in glyphs]))
    chosen = list(labels) or list(table)
    unknown = [lab for lab in chosen if lab not in table]
    if unknown:
        raise UserError(f"task.labels: unknown label '{unknown[0]}'; allowed: {', '.join(table)}")
    if len(set(chosen)) != len(chosen):
        raise UserError(f"task.labels: a label is listed twice in {chosen}")
    targets = torch.from_numpy(np.stack([table[lab] for lab in chosen], axis=1)).float()  # [C, L]
    params, rendered = _render(names, data_seed, render, data)
    images = _as_float(rendered.images)
    splits = {}
    for split in ("train", "val", "test"):
        drawers = torch.from_numpy(drawer_split(split, params.drawers))
        x = images[:, drawers].reshape(-1, 1, params.size, params.size)
        splits[split] = TaskSplit(x, targets.repeat_interleave(len(drawers), dim=0))
    rates = {lab: float(targets[:, i].mean()) for i, lab in enumerate(chosen)}
    return MultiLabelData(
        task_names=chosen,
        input_shape=(1, params.size, params.size),
        splits=splits,
        info={
            "positive_rate": rates,
            "characters": len(glyphs),
            **label_options(pos_weight, threshold),
        },
    )
