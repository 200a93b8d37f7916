"""Hershey-glyph tasks for all three families (embedded data: no download).

Multi-task: one task per alphabet. Multi-label: geometric and alphabet-group attributes of each
glyph. Meta-learning: N-way K-shot episodes over characters, classes split by alphabet (like
Omniglot's background/evaluation) or by character.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtl_cli.errors import UserError
from mtl_cli.families.data import MetaData, MultiLabelData, MultiTaskData, TaskSplit
from mtl_cli.tasks.common import check_fractions, label_options, meta_samplers, split_indices

#: alphabet-membership labels: group -> alphabet name prefixes (see docs/data/hershey.md)
ALPHABET_GROUPS = {
    "group_latin": ("latin_", "gothic_", "digits"),
    "group_greek": ("greek_",),
    "group_cyrillic": ("cyrillic_",),
    "group_japanese": ("japanese_",),
    "group_symbols": ("astrology", "markers", "math", "meteorology", "music", "symbolic"),
    "uppercase": ("*_upper",),
}


def _render_params(render: dict):
    from mtl_cli.data.render import RenderParams

    for key in ("scale", "stroke_width"):
        low_high = list(render[key])
        if len(low_high) != 2 or not 0 < low_high[0] <= low_high[1]:
            raise UserError(
                f"task.render.{key}: expected [low, high] with 0 < low <= high, got {low_high}"
            )
    return RenderParams(
        size=int(render["size"]),
        drawers=int(render["drawers"]),
        rotation_deg=float(render["rotation_deg"]),
        shear=float(render["shear"]),
        scale=tuple(float(v) for v in render["scale"]),
        translate=float(render["translate"]),
        point_jitter=float(render["point_jitter"]),
        stroke_width=tuple(float(v) for v in render["stroke_width"]),
    )


def _alphabet_names(alphabets: Sequence[str]) -> list[str]:
    from mtl_cli.data.hershey import ALPHABETS

    names = list(alphabets)
    if not names:
        raise UserError(
            f"task.alphabets: no alphabet chosen; pick one or more of: {', '.join(ALPHABETS)}"
        )
    unknown = [a for a in names if a not in ALPHABETS]
    if unknown:
        raise UserError(
            f"task.alphabets: unknown alphabet '{unknown[0]}'; allowed: {', '.join(ALPHABETS)}"
        )
    if len(set(names)) != len(names):
        raise UserError(f"task.alphabets: an alphabet is listed twice in {names}")
    return names


def _render(names: list[str], data_seed: int, render: dict, data: dict):
    from mtl_cli.data.hershey_images import hershey_images

    params = _render_params(render)
    return params, hershey_images(
        names, params, seed=int(data_seed), cache_dir=data.get("cache_dir")
    )


def _as_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float().div_(255.0)


def hershey_alphabet_tasks(
    alphabets: Sequence[str], data_seed: int, render: dict, data: dict
) -> MultiTaskData:
    """One classification task per alphabet; its characters are the classes; drawers 70/15/15."""
    from mtl_cli.data.hershey_images import drawer_split

    names = _alphabet_names(alphabets)
    params, glyphs = _render(names, data_seed, render, data)
    images = _as_float(glyphs.images)  # [C, D, H, W]
    splits: dict[str, list[TaskSplit]] = {"train": [], "val": [], "test": []}
    outputs = []
    for name in names:
        chars = torch.from_numpy(
            np.flatnonzero(glyphs.alphabet == glyphs.alphabet_names.index(name))
        )
        outputs.append(len(chars))
        for split, parts in splits.items():
            drawers = torch.from_numpy(drawer_split(split, params.drawers))
            x = images[chars][:, drawers].reshape(-1, 1, params.size, params.size)
            y = torch.arange(len(chars)).repeat_interleave(len(drawers))
            parts.append(TaskSplit(x, y))
    return MultiTaskData(
        task_names=names,
        outputs=outputs,
        input_shape=(1, params.size, params.size),
        splits=splits,
        info={"classes": dict(zip(names, outputs, strict=True))},
    )


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


def hershey_meta_classes(
    kind: str,
    alphabets: Sequence[str],
    split_by: str,
    split_fractions: Sequence[float],
    split_seed: int,
    ways: int,
    shots: int,
    queries: int,
    rotations: bool,
    meta_batch_size: int,
    eval_episodes: int,
    eval_seed: int,
    data_seed: int,
    render: dict,
    data: dict,
) -> MetaData:
    """N-way K-shot episodes over Hershey characters; meta-train/val/test classes are disjoint."""
    names = _alphabet_names(alphabets)
    fractions = check_fractions(split_fractions)
    params, glyphs = _render(names, data_seed, render, data)
    if split_by == "alphabet":
        if len(names) < 3:
            raise UserError("task.split_by: 'alphabet' needs at least 3 alphabets; use 'class'")
        groups = split_indices(len(names), fractions, split_seed)
        classes = {
            split: np.flatnonzero(np.isin(glyphs.alphabet, idx)) for split, idx in groups.items()
        }
        detail = {split: [names[i] for i in idx] for split, idx in groups.items()}
    else:
        classes = split_indices(len(glyphs.alphabet), fractions, split_seed)
        detail = {split: [glyphs.char_names[i] for i in idx] for split, idx in classes.items()}
    images = torch.from_numpy(glyphs.images).unsqueeze(2)  # uint8 [C, D, 1, H, W]
    samplers = meta_samplers(images, classes, ways, shots, queries, rotations)
    return MetaData(
        kind="classification",
        input_shape=(1, params.size, params.size),
        ways=ways,
        samplers=samplers,
        meta_batch_size=meta_batch_size,
        eval_episodes=eval_episodes,
        eval_seed=eval_seed,
        info={
            "split_by": split_by,
            "splits": detail,
            "classes": {k: len(v) for k, v in classes.items()},
        },
    )
