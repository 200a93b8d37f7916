"""Few-shot classification from users' image folders: N-way K-shot episodes over class folders.

Episodic training as in Vinyals et al. 2016 (Matching Networks); the class split is disjoint
between meta-train, meta-val and meta-test. Layouts `root/<class>/<image>` (flat) or
`root/<group>/<class>/<image>` (grouped, like Omniglot's alphabets); the split comes from seeded
fractions of the classes, of the groups, or from split files (one class per line, or the
`filename,label` CSVs of Ravi & Larochelle 2017). See docs/data/own_data.md.

The episode sampler needs the same number of images D in every class: D is `images_per_class`,
or (0) the smallest class's count; each class keeps its first D images sorted by file name.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from mtl_cli.data.image_folders import (
    class_images,
    image_files,
    load_images,
    resolve_root,
    subfolders,
)
from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MetaData
from mtl_cli.tasks.common import (
    SPLITS,
    check_fractions,
    meta_samplers,
    split_indices,
    split_settings,
)

#: {split: {class name: its image files}}
ClassSplit = dict[str, dict[str, list[Path]]]


def folder_meta_classes(
    kind: str,
    ways: int,
    shots: int,
    queries: int,
    rotations: bool,
    meta_batch_size: int,
    eval_episodes: int,
    eval_seed: int,
    root: str | None,
    layout: str,
    split_by: str,
    split_fractions: Sequence[float],
    split_seed: int,
    split_files: dict,
    image_size,
    channels: int,
    images_per_class: int,
    data: dict,
    eval_ways: int | None = None,
    eval_shots: int | None = None,
    eval_queries: int | None = None,
) -> MetaData:
    """Episodes over the class folders of `root` (task.root, else data.root)."""
    base = resolve_root(root, data, "meta/folders")
    files = {s: (split_files or {}).get(s) for s in SPLITS}
    if split_by == "files":
        if layout != "auto":
            raise UserError(
                f"task.layout: '{layout}' has no effect with split_by=files (the split files "
                "name the classes); leave it auto"
            )
        classes = read_split_files(base, files)
    else:
        given = [s for s in SPLITS if files[s]]
        if given:
            raise UserError(
                f"task.split_files.{given[0]}: set, but split_by={split_by}; "
                "use split_by=files or leave task.split_files empty"
            )
        classes = split_tree(base, layout, split_by, split_fractions, split_seed)
    episodes = episode_options(
        ways, shots, queries, rotations, meta_batch_size, eval_episodes, eval_seed, eval_ways,
        eval_shots, eval_queries,
    )  # fmt: skip
    return episode_data(
        base, classes, episodes, image_size, channels, images_per_class, data,
        {"split_by": split_by},
    )  # fmt: skip


def episode_options(
    ways, shots, queries, rotations, meta_batch_size, eval_episodes, eval_seed, eval_ways,
    eval_shots, eval_queries,
) -> dict:  # fmt: skip
    """The EpisodeOptions fields as one dict (see mtl_cli.schemas.task.EpisodeOptions)."""
    return {
        "ways": int(ways), "shots": int(shots), "queries": int(queries),
        "rotations": bool(rotations), "meta_batch_size": int(meta_batch_size),
        "eval_episodes": int(eval_episodes), "eval_seed": int(eval_seed),
        "eval_ways": eval_ways, "eval_shots": eval_shots, "eval_queries": eval_queries,
    }  # fmt: skip


def scan_tree(base: Path, layout: str) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """({class name: files}, {class name: group}) for a flat or grouped tree; `auto` is flat when
    a top-level folder holds images directly, else grouped."""
    if layout not in ("flat", "grouped", "auto"):
        raise UserError(f"task.layout: invalid value '{layout}'; allowed: flat, grouped, auto")
    tops = subfolders(base)
    if not tops:
        raise UserError(f"{base}: no class folders; expected {base}/<class>/<image>")
    if layout == "auto":
        layout = "flat" if any(image_files(p) for p in tops) else "grouped"
    if layout == "flat":
        found = class_images(base)
        return found, {name: "" for name in found}
    classes, groups = {}, {}
    for group in tops:
        for name, files in class_images(group).items():
            classes[f"{group.name}/{name}"] = files
            groups[f"{group.name}/{name}"] = group.name
    return classes, groups


def split_tree(
    base: Path, layout: str, split_by: str, fractions: Sequence[float], seed: int
) -> ClassSplit:
    """Seeded class split: by `fraction` of the classes, or by `group` (whole groups per split)."""
    fractions = check_fractions(fractions)
    classes, groups = scan_tree(base, layout)
    names = sorted(classes)
    if split_by == "fraction":
        parts = split_indices(len(names), fractions, seed)
        chosen = {s: [names[i] for i in idx] for s, idx in parts.items()}
    elif split_by == "group":
        group_names = sorted(set(groups.values()))
        if group_names == [""]:
            raise UserError(
                f"task.split_by: group needs the grouped layout {base}/<group>/<class>/<image>; "
                f"{base} is flat (use split_by=fraction or files)"
            )
        if len(group_names) < 3:
            raise UserError(
                f"task.split_by: group needs at least 3 group folders in {base}; "
                f"found {len(group_names)} ({', '.join(group_names)})"
            )
        parts = split_indices(len(group_names), fractions, seed)
        held = {s: {group_names[i] for i in idx} for s, idx in parts.items()}
        chosen = {s: [n for n in names if groups[n] in held[s]] for s in SPLITS}
    else:
        raise UserError(
            f"task.split_by: invalid value '{split_by}'; allowed: fraction, group, files"
        )
    return {s: {n: classes[n] for n in chosen[s]} for s in SPLITS}


def _safe_name(value: str, where: str, what: str, allow_slash: bool = False) -> str:
    """A relative name inside the root: no absolute path, no `..`, no backslash."""
    text = value.strip()
    parts = PurePosixPath(text).parts
    bad = (
        not text
        or text.startswith("/")
        or "\\" in text
        or ".." in parts
        or "." in parts
        or (not allow_slash and len(parts) != 1)
    )
    if bad:
        shape = "a relative folder path" if allow_slash else "a plain file or folder name"
        raise UserError(f"{where}: {what} '{value}' is not {shape} inside the root (no '..', '/')")
    return text


def read_split_files(base: Path, files: dict[str, str | None]) -> ClassSplit:
    """Classes of each split from its file: `.csv` = Ravi & Larochelle's `filename,label` rows,
    anything else = one class folder (relative to the root) per line. Relative paths of the
    split files themselves are read from the root."""
    out: ClassSplit = {}
    owner: dict[str, str] = {}
    for split in SPLITS:
        if not files[split]:
            raise UserError(
                f"task.split_files.{split}: not set; split_by=files needs a train, val and "
                "test file (one class per line, or a filename,label CSV)"
            )
        path = Path(str(files[split])).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise UserError(f"task.split_files.{split}: {path} does not exist")
        reader = read_label_csv if path.suffix.lower() == ".csv" else read_class_list
        out[split] = reader(base, path)
        for name in out[split]:
            if name in owner:
                raise UserError(
                    f"{path}: class '{name}' is also in {owner[name]}; the splits' classes "
                    "must be disjoint"
                )
            owner[name] = str(path)
    return out


def read_class_list(base: Path, path: Path) -> dict[str, list[Path]]:
    """One class folder per line (blank lines and lines starting with # are skipped)."""
    out: dict[str, list[Path]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path} line {number}"
        name = _safe_name(line, where, "class", allow_slash=True)
        if "," in name:
            raise UserError(
                f"{where}: '{name}' looks like CSV; a class list has one class folder per line "
                "(name a CSV file *.csv for filename,label rows)"
            )
        folder = base / name
        files = image_files(folder) if folder.is_dir() else []
        if not files:
            state = "has no image files" if folder.is_dir() else "does not exist"
            raise UserError(f"{where}: class folder {folder} {state}")
        if name in out:
            raise UserError(f"{where}: class '{name}' listed twice")
        out[name] = files
    if not out:
        raise UserError(f"{path}: no classes listed; expected one class folder per line")
    return out


def read_label_csv(base: Path, path: Path) -> dict[str, list[Path]]:
    """Rows `filename,label` under that header; the image is `root/<label>/<filename>`, else
    `root/images/<filename>` (the miniImageNet release)."""
    out: dict[str, list[Path]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        header = [h.strip() for h in next(rows, [])]
        if header != ["filename", "label"]:
            raise UserError(f"{path}: header {header}; expected filename,label")
        for number, row in enumerate(rows, start=2):
            if not row or not "".join(row).strip():
                continue
            where = f"{path} row {number}"
            if len(row) != 2:
                raise UserError(f"{where}: {len(row)} fields; expected filename,label")
            name = _safe_name(row[0], where, "filename")
            label = _safe_name(row[1], where, "label")
            image = base / label / name
            if not image.is_file():
                image = base / "images" / name
            if not image.is_file():
                raise UserError(
                    f"{where}: image '{name}' not found at {base / label / name} "
                    f"or {base / 'images' / name}"
                )
            out.setdefault(label, []).append(image)
    if not out:
        raise UserError(f"{path}: no rows after the header filename,label")
    return {label: sorted(set(files), key=lambda p: p.name) for label, files in sorted(out.items())}


def episode_data(
    base: Path,
    classes: ClassSplit,
    episodes: dict,
    image_size,
    channels: int,
    images_per_class: int,
    data: dict,
    info: dict,
) -> MetaData:
    """Equalise the classes to D images, decode them (cached) and build the episode samplers."""
    names = [n for s in SPLITS for n in classes[s]]
    counts = {n: len(f) for s in SPLITS for n, f in classes[s].items()}
    for split in SPLITS:
        if not classes[split]:
            raise UserError(f"{base}: the meta-{split} split has no classes")
    for split in SPLITS:
        settings = split_settings(
            split, episodes["ways"], episodes["shots"], episodes["queries"],
            episodes["eval_ways"], episodes["eval_shots"], episodes["eval_queries"],
        )  # fmt: skip
        (_, _), (k_key, k), (q_key, q) = settings.items()
        for name, files in classes[split].items():
            if len(files) < k + q:
                raise UserError(
                    f"{files[0].parent}: class '{name}' (meta-{split}) has {len(files)} images; "
                    f"task.{k_key} + task.{q_key} = {k} + {q} need {k + q} per class"
                )
    per_class = int(images_per_class) or min(counts.values())
    if int(images_per_class) < 0:
        raise UserError(f"task.images_per_class: {images_per_class} is below the minimum 0")
    for name, count in counts.items():
        if count < per_class:
            raise UserError(
                f"task.images_per_class: {per_class} exceeds the {count} images of class "
                f"'{name}'; allowed: 0 (the smallest class) up to {min(counts.values())}"
            )
    chosen = [f for s in SPLITS for files in classes[s].values() for f in files[:per_class]]
    images = load_images(chosen, base, image_size, int(channels), data.get("cache_dir"))
    images = torch.from_numpy(images).reshape(len(names), per_class, *images.shape[1:])
    index: dict[str, np.ndarray] = {}
    start = 0
    for split in SPLITS:
        index[split] = np.arange(start, start + len(classes[split]), dtype=np.int64)
        start += len(classes[split])
    samplers = meta_samplers(
        images, index, episodes["ways"], episodes["shots"], episodes["queries"],
        episodes["rotations"], episodes["eval_ways"], episodes["eval_shots"],
        episodes["eval_queries"],
    )  # fmt: skip
    return MetaData(
        kind="classification",
        input_shape=tuple(int(v) for v in images.shape[2:]),
        ways=episodes["ways"],
        samplers=samplers,
        meta_batch_size=episodes["meta_batch_size"],
        eval_episodes=episodes["eval_episodes"],
        eval_seed=episodes["eval_seed"],
        info={
            **info,
            "root": str(base),
            "classes": {s: len(classes[s]) for s in SPLITS},
            "splits": {s: list(classes[s]) for s in SPLITS},
            "images_per_class": per_class,
            "unused_images": sum(counts.values()) - per_class * len(names),
        },
    )
