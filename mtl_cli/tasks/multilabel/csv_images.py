"""Multi-label images listed in a CSV: one row per image, its labels as 0/1 columns or as one
column of `;`-separated names (the layout of e.g. the Kaggle "Planet: Understanding the Amazon
from Space" `train_v2.csv`, and of CelebA's attribute table turned into 0/1 columns).
See docs/data/own_data.md ("Multi-label from a CSV of images")."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import torch

from mtl_cli.data.images import IMAGE_SUFFIXES, image_size_pair
from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MultiLabelData, TaskSplit
from mtl_cli.tasks.common import SPLITS, check_fractions, label_options, split_indices

log = logging.getLogger("mtl_cli")
SEPARATOR = ";"


def csv_image_labels(
    path: str,
    image_column: str,
    label_columns: Sequence[str],
    labels_column,
    label_names: Sequence[str],
    image_size,
    channels: int,
    split_column,
    split_fractions: Sequence[float],
    split_seed: int,
    pos_weight,
    threshold,
    data: dict,
) -> MultiLabelData:
    """One binary label (task) per 0/1 column (`label_columns`; empty = every column but the image
    and split columns) or per name of `labels_column` (vocabulary `label_names`, else the sorted
    names found). Rows split by `split_column` (train/val/test) or by a seeded permutation
    (`split_fractions`, `split_seed`); images RGB (or grey) in [0, 1], resized to `image_size`."""
    from mtl_cli.data.image_folders import load_images
    from mtl_cli.data.tables import read_table

    options = label_options(pos_weight, threshold)
    height, width = image_size_pair(image_size, "task.image_size")
    if channels not in (1, 3):
        raise UserError(f"task.channels: got {channels!r}; allowed: 1 (grayscale) or 3 (RGB)")
    if not str(path or "").strip():
        raise UserError("task.path: required; allowed: a CSV file of image paths and labels")
    label_columns, label_names = list(label_columns or []), list(label_names or [])
    if label_columns and labels_column:
        raise UserError(
            f"task.label_columns / task.labels_column: set one, not both (got label_columns="
            f"{label_columns}, labels_column={labels_column!r}); label_columns = one 0/1 column "
            f"per label, labels_column = one column of '{SEPARATOR}'-separated label names"
        )
    if label_names and not labels_column:
        raise UserError(
            f"task.label_names: {label_names} is only used with task.labels_column; with 0/1 "
            "columns the labels are the column names (task.label_columns)"
        )
    bad = [n for n in label_names if not str(n).strip() or SEPARATOR in str(n)]
    if bad or len(set(label_names)) != len(label_names):
        raise UserError(
            f"task.label_names: {label_names}; allowed: distinct non-empty names without "
            f"'{SEPARATOR}'"
        )
    label_names = [str(n).strip() for n in label_names]
    file = Path(str(path)).expanduser()
    if not file.is_absolute() and data.get("root"):
        file = Path(str(data["root"])).expanduser() / file
    try:
        table = read_table(file)
        images = image_paths(table, table.column(image_column, "task.image_column"), image_column)
        if split_column:
            rows = column_split(
                table, table.column(split_column, "task.split_column"), split_column
            )
        else:
            rows = seeded_split(table, check_fractions(split_fractions), int(split_seed))
        if labels_column:
            cells = table.column(labels_column, "task.labels_column")
            names, y = named_labels(table, cells, labels_column, label_names)
        else:
            names = label_columns or [
                c for c in table.columns if c not in (image_column, split_column)
            ]
            y = binary_columns(table, names, used=(image_column, split_column))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"task.path: {exc}") from None
    try:
        pixels = load_images(images, file.parent, (height, width), channels, data.get("cache_dir"))
    except UserError as exc:  # decode_image names the file; add the row that lists it
        bad = [i for i, image in enumerate(images) if str(exc).startswith(f"{image}:")]
        if not bad:
            raise
        raise UserError(f"{table.where(bad[0])}: {exc}") from None
    x = torch.from_numpy(pixels)
    splits = {
        s: TaskSplit(x[torch.from_numpy(rows[s])].float().div_(255.0), y[rows[s]].clone())
        for s in SPLITS
    }
    silent = [
        n for n, count in zip(names, splits["train"].y.sum(0).tolist(), strict=True) if not count
    ]
    if silent:  # the family copes (AP is left out, pos_weight=auto clamps); say so once
        log.warning(
            "%s: label(s) %s have no positive training row: they are trained as always-absent "
            "and get no AP where a split has no positive",
            file, ", ".join(silent),
        )  # fmt: skip
    return MultiLabelData(
        task_names=names,
        input_shape=(channels, height, width),
        splits=splits,
        info={
            **options,
            "csv": str(file),
            "sizes": {s: len(splits[s]) for s in SPLITS},
            "positives": {s: splits[s].y.sum(0).int().tolist() for s in SPLITS},
            "labels_without_train_positive": silent,
        },
    )


def image_paths(table, cells: list[str], column: str) -> list[Path]:
    """Each row's image file: a relative path inside the CSV's folder, an existing image file."""
    folder = table.path.parent
    out = []
    for i, cell in enumerate(cells):
        where = f"{table.where(i)}: column '{column}'"
        if not cell:
            raise ValueError(f"{where}: empty; expected an image path relative to {folder}")
        relative = cell.replace("\\", "/")  # CSVs written on Windows
        if PurePosixPath(relative).is_absolute() or PureWindowsPath(cell).drive:
            raise ValueError(f"{where}: '{cell}' is absolute; allowed: a path inside {folder}")
        parts = PurePosixPath(os.path.normpath(relative)).parts
        if parts[0] == "..":
            raise ValueError(f"{where}: '{cell}' leaves {folder}; allowed: a path inside it")
        image = folder.joinpath(*parts)
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(
                f"{where}: '{cell}' is not an image file; allowed suffixes: "
                f"{', '.join(IMAGE_SUFFIXES)}"
            )
        if not image.is_file():
            raise ValueError(f"{where}: image '{cell}' not found ({image})")
        out.append(image)
    return out


def column_split(table, cells: list[str], column: str) -> dict[str, np.ndarray]:
    """Row indices per split from a column of train/val/test; every split must have a row."""
    for i, value in enumerate(cells):
        if value not in SPLITS:
            raise ValueError(
                f"{table.where(i)}: column '{column}': unknown split '{value}'; allowed: "
                f"{', '.join(SPLITS)}"
            )
    array = np.asarray(cells)
    rows = {s: np.flatnonzero(array == s) for s in SPLITS}
    for split, chosen in rows.items():
        if len(chosen) == 0:
            raise ValueError(f"{table.path}: column '{column}': no {split} row")
    return rows


def seeded_split(table, fractions: list[float], seed: int) -> dict[str, np.ndarray]:
    """A seeded permutation of the rows cut into train/val/test (val and test get at least one)."""
    n = len(table)
    if n < 3 or n - max(1, round(fractions[1] * n)) - max(1, round(fractions[2] * n)) < 1:
        raise ValueError(
            f"{table.path}: {n} rows cannot be split into train/val/test by split_fractions "
            f"{fractions}; add rows or a split column (task.split_column)"
        )
    return split_indices(n, fractions, seed)


def binary_columns(table, names: list[str], used: tuple) -> torch.Tensor:
    """float32 [N, L] from 0/1 columns; any other cell is an error naming its line and column."""
    if not names:
        raise ValueError(
            f"{table.path}: no label column left beside the image and split columns; set "
            f"task.label_columns or task.labels_column"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{table.path}: task.label_columns: {names} names a column twice")
    for name in names:
        table.column(name, "task.label_columns")
        if name in used:
            raise ValueError(
                f"{table.path}: task.label_columns: '{name}' is the image or split column"
            )
    y = torch.zeros(len(table), len(names))
    for j, name in enumerate(names):
        for i, cell in enumerate(table.columns[name]):
            if cell not in ("0", "1"):
                hint = (
                    f" (names separated by '{SEPARATOR}'? set task.labels_column={name})"
                    if SEPARATOR in cell
                    else ""
                )
                raise ValueError(
                    f"{table.where(i)}: column '{name}': '{cell or '(empty)'}' is not a label "
                    f"value; allowed: 0 or 1{hint}"
                )
            y[i, j] = float(cell == "1")
    return y


def named_labels(
    table, cells: list[str], column: str, vocabulary: list[str]
) -> tuple[list[str], torch.Tensor]:
    """(label names, float32 [N, L]) from `;`-separated names per row (empty cell = no label)."""
    per_row = [[n.strip() for n in cell.split(SEPARATOR) if n.strip()] for cell in cells]
    if vocabulary:
        names = vocabulary
    else:
        names = sorted({n for row in per_row for n in row})
        if not names:
            raise ValueError(f"{table.path}: column '{column}': no label name in any row")
    index = {n: j for j, n in enumerate(names)}
    y = torch.zeros(len(table), len(names))
    for i, row in enumerate(per_row):
        for name in row:
            if name not in index:
                raise ValueError(
                    f"{table.where(i)}: column '{column}': unknown label '{name}'; allowed "
                    f"(task.label_names): {', '.join(names)}"
                )
            y[i, index[name]] = 1.0
    return names, y
