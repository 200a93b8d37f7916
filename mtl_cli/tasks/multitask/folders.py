"""Multi-task classification from users' image folders: one task per top-level folder.

`root/<task>/<class>/<image>` (a seeded, per-class stratified split) or
`root/<task>/{train,val,test}/<class>/<image>` (the user's own split). Each task has its own label
space: its class folders, sorted by name, are labels 0..C-1. See docs/data/own_data.md.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mtl_cli.data.image_folders import class_images, load_images, resolve_root, subfolders
from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MultiTaskData, TaskSplit
from mtl_cli.tasks.common import SPLITS, check_fractions

#: the schema's default split (a different value is refused when the tree brings its own split)
DEFAULT_FRACTIONS = [0.7, 0.15, 0.15]
#: {task: {split: {class: [image files]}}}
Layout = dict[str, dict[str, dict[str, list[Path]]]]


def folder_tasks(
    root: str | None,
    tasks: Sequence[str],
    image_size,
    channels: int,
    split_fractions: Sequence[float],
    split_seed: int,
    min_images_per_class: int,
    data: dict,
) -> MultiTaskData:
    """One classification task per folder of `root` (task.root, else data.root)."""
    base = resolve_root(root, data, "multitask/folders")
    found = {p.name: p for p in subfolders(base)}
    if not found:
        raise UserError(
            f"{base}: no task folders; expected {base}/<task>/<class>/<image> "
            "or <task>/{train,val,test}/<class>/<image>"
        )
    names = choose(list(tasks), sorted(found), "task.tasks", "task folder")
    if all(has_split_folders(found[n]) for n in names):
        if [float(f) for f in split_fractions] != DEFAULT_FRACTIONS or int(split_seed) != 0:
            raise UserError(
                f"task.split_fractions/split_seed: {list(split_fractions)}/{split_seed} have no "
                f"effect: every task folder of {base} has train/val/test folders; leave the defaults"
            )
    return folder_task_data(
        base, {n: found[n] for n in names}, image_size, channels, split_fractions, split_seed,
        min_images_per_class, data,
    )  # fmt: skip


def choose(wanted: list[str], available: list[str], key: str, what: str) -> list[str]:
    """`wanted` (all of `available` when empty), checked: known names, no repeats."""
    if not wanted:
        return available
    for name in wanted:
        if name not in available:
            raise UserError(f"{key}: unknown {what} '{name}'; allowed: {', '.join(available)}")
    if len(set(wanted)) != len(wanted):
        raise UserError(f"{key}: {wanted} names a {what} twice")
    return list(wanted)


def folder_task_data(
    base: Path,
    task_dirs: dict[str, Path],
    image_size,
    channels: int,
    split_fractions: Sequence[float],
    split_seed: int,
    min_images_per_class: int,
    data: dict,
    class_folders: dict[str, Path] | None = None,
) -> MultiTaskData:
    """Read, split and decode the tasks `{name: folder}`; `class_folders` overrides where a task's
    class folders are (Office-31 keeps them in `<domain>/images/`)."""
    if int(min_images_per_class) < 1:
        raise UserError(f"task.min_images_per_class: {min_images_per_class} is below the minimum 1")
    fractions = check_fractions(split_fractions)
    class_dirs = {n: (class_folders or {}).get(n, d) for n, d in task_dirs.items()}
    with_splits = {n: has_split_folders(d) for n, d in class_dirs.items()}
    if len(set(with_splits.values())) > 1:
        split = next(n for n, s in with_splits.items() if s)
        plain = next(n for n, s in with_splits.items() if not s)
        raise UserError(
            f"{base}: inconsistent layout: task folder '{split}' has train/val/test folders but "
            f"'{plain}' does not; use <task>/<class>/<image> for every task or "
            "<task>/{train,val,test}/<class>/<image> for every task"
        )
    presplit = all(with_splits.values())
    if presplit:
        layout = {
            n: read_split_folders(d, int(min_images_per_class)) for n, d in class_dirs.items()
        }
    else:
        layout = {
            n: stratified_split(
                n, class_images(d, int(min_images_per_class)), fractions, split_seed
            )
            for n, d in class_dirs.items()
        }
    for name, splits in layout.items():
        if len(splits["train"]) < 2:
            raise UserError(
                f"{class_dirs[name]}: {len(splits['train'])} class folder "
                f"({', '.join(splits['train'])}); a classification task needs at least 2"
            )
    return decode_layout(base, layout, image_size, int(channels), data, presplit)


def has_split_folders(folder: Path) -> bool:
    """Whether `folder` uses the train/val/test layout (refused when only some are there)."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; expected a task folder of class folders")
    names = {p.name for p in subfolders(folder)}
    present = [s for s in SPLITS if s in names]
    if present and len(present) < len(SPLITS):
        missing = [s for s in SPLITS if s not in names]
        raise UserError(
            f"{folder}: has {', '.join(present)} but not {', '.join(missing)}; "
            "a task folder holds either all of train/val/test or only class folders"
        )
    if present and names - set(SPLITS):
        extra = sorted(names - set(SPLITS))[0]
        raise UserError(
            f"{folder}: folder '{extra}' beside train/val/test; expected only train, val, test"
        )
    return bool(present)


def read_split_folders(folder: Path, min_images: int) -> dict[str, dict[str, list[Path]]]:
    """`folder/{train,val,test}/<class>/<image>`: every split must have train's classes."""
    out = {"train": class_images(folder / "train", min_images)}
    for split in SPLITS[1:]:
        out[split] = class_images(folder / split)
        if sorted(out[split]) != sorted(out["train"]):
            missing = sorted(set(out["train"]) - set(out[split]))
            extra = sorted(set(out[split]) - set(out["train"]))
            what = f"lacks class '{missing[0]}'" if missing else f"has class '{extra[0]}'"
            raise UserError(
                f"{folder / split}: {what} (train has {len(out['train'])} classes); "
                "every split needs exactly the class folders of train"
            )
    return out


def stratified_split(
    task: str, classes: dict[str, list[Path]], fractions: list[float], seed: int
) -> dict[str, dict[str, list[Path]]]:
    """Split each class's images by `fractions` (val and test rounded, train the rest).

    The order is a permutation seeded by (seed, crc32 of "<task>/<class>"), so a class splits the
    same way whatever other tasks or classes are chosen. Each split keeps its files sorted.
    """
    out: dict[str, dict[str, list[Path]]] = {s: {} for s in SPLITS}
    for name, files in classes.items():
        rng = np.random.default_rng([int(seed), zlib.crc32(f"{task}/{name}".encode())])
        order = rng.permutation(len(files))
        n_val = round(fractions[1] * len(files))
        n_test = round(fractions[2] * len(files))
        n_train = len(files) - n_val - n_test
        if n_train < 1:
            raise UserError(
                f"{files[0].parent}: {len(files)} images leave none for train with "
                f"task.split_fractions={fractions}; add images or raise the train fraction"
            )
        cuts = {"train": order[:n_train], "val": order[n_train : n_train + n_val]}
        cuts["test"] = order[n_train + n_val :]
        for split, idx in cuts.items():
            out[split][name] = [files[i] for i in sorted(idx)]
    for split in SPLITS:
        if not any(out[split].values()):
            folder = next(iter(classes.values()))[0].parent.parent
            raise UserError(
                f"{folder}: too few images for a {split} split with task.split_fractions="
                f"{fractions}; add images or use <task>/{{train,val,test}}/<class>/ folders"
            )
    return out


def decode_layout(
    base: Path, layout: Layout, image_size, channels: int, data: dict, presplit: bool
) -> MultiTaskData:
    """Decode every file once (cached) and build one TaskSplit per task and split."""
    files: list[Path] = []
    labels: list[int] = []
    spans: dict[tuple[str, str], slice] = {}
    for task, splits in layout.items():
        class_names = sorted(splits["train"])
        for split in SPLITS:
            start = len(files)
            for label, name in enumerate(class_names):
                files += splits[split][name]
                labels += [label] * len(splits[split][name])
            spans[(task, split)] = slice(start, len(files))
    images = load_images(files, base, image_size, channels, data.get("cache_dir"))
    x_all = torch.from_numpy(images).float().div_(255.0)
    y_all = torch.tensor(labels, dtype=torch.int64)
    parts = {
        s: [TaskSplit(x_all[spans[(t, s)]].clone(), y_all[spans[(t, s)]].clone()) for t in layout]
        for s in SPLITS
    }
    return MultiTaskData(
        task_names=list(layout),
        outputs=[len(s["train"]) for s in layout.values()],
        input_shape=tuple(int(v) for v in images.shape[1:]),
        splits=parts,
        info={
            "root": str(base),
            "layout": "train/val/test folders" if presplit else "stratified split",
            "classes": {t: sorted(s["train"]) for t, s in layout.items()},
            "images": {
                s: {t: spans[(t, s)].stop - spans[(t, s)].start for t in layout} for s in SPLITS
            },
        },
    )
