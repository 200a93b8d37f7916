"""Multi-task data from a table (CSV or Parquet): per-user tasks (`task_column`) or one task per
target column (`target_columns`), numeric and one-hot features. See docs/data/own_data.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MultiTaskData, TaskSplit
from mtl_cli.tasks.common import SPLITS, check_fractions

#: how a task's rows are split: by the `split_column` values, or seeded fractions
SPLIT_VALUES = SPLITS


def table_tasks(
    path: str,
    features: Sequence[str],
    categorical: Sequence[str],
    task_column,
    target_columns: Sequence[str],
    target,
    kind: str,
    split_column,
    split_fractions: Sequence[float],
    split_seed: int,
    standardize: bool,
    min_rows_per_task: int,
    data: dict,
) -> MultiTaskData:
    """Tasks from the rows of one table.

    `task_column`: one task per distinct value (e.g. per user), each with its own rows, so its
    own p_i(x); `target` is its label column. `target_columns`: one task per column over all rows
    (every task sees the same x). `kind` applies to every task: classification labels map to
    0..C-1 per task in sorted order (numeric order when every label is a number); regression
    targets must be numbers. Features: numeric columns (`features`, empty = every column not used
    otherwise) then one-hot `categorical` columns (categories of the training rows; a category
    unseen in training encodes as all zeros). `standardize` z-scores numeric features with the
    training rows' mean and standard deviation (ddof 0; a constant column keeps std 1).
    """
    from mtl_cli.data.tables import read_table

    if not str(path or "").strip():
        raise UserError("task.path: required; allowed: a .csv, .parquet or .pq file")
    file = _resolve(str(path), data.get("root"))
    try:
        table = read_table(file)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        raise UserError(f"task.path: {exc}") from None
    target_columns = list(target_columns or [])
    if bool(task_column) == bool(target_columns):
        raise UserError(
            f"task.task_column / task.target_columns: set exactly one (got task_column="
            f"{task_column!r}, target_columns={target_columns}); task_column = one task per value, "
            "target_columns = one task per column"
        )
    if task_column and not target:
        raise UserError("task.target: required with task.task_column (the label column)")
    if target_columns and target:
        raise UserError(
            f"task.target: '{target}' is only used with task.task_column; with "
            "task.target_columns each listed column is a target"
        )
    try:
        return _build(
            table, list(features or []), list(categorical or []), task_column, target_columns,
            target, kind, split_column, split_fractions, int(split_seed), bool(standardize),
            int(min_rows_per_task),
        )  # fmt: skip
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _resolve(path: str, root) -> Path:
    file = Path(path).expanduser()
    if not file.is_absolute() and root:
        file = Path(root).expanduser() / file
    return file


def _build(
    table, features, categorical, task_column, target_columns, target, kind, split_column,
    fractions, seed, standardize, min_rows,
) -> MultiTaskData:  # fmt: skip
    used = {"task.task_column": task_column, "task.target": target,
            "task.split_column": split_column}  # fmt: skip
    for key, name in used.items():
        if name:
            table.column(name, key)
    for name in target_columns:
        table.column(name, "task.target_columns")
    for name in categorical:
        table.column(name, "task.categorical")
    for name in features:
        table.column(name, "task.features")
    taken = {n for n in used.values() if n} | set(target_columns)
    for key, names in (("task.features", features), ("task.categorical", categorical)):
        clash = [n for n in names if n in taken]
        if clash:
            raise ValueError(
                f"{table.path}: {key}: column '{clash[0]}' is also the task, target or split column"
            )
    both = [n for n in features if n in categorical]
    if both:
        raise ValueError(
            f"{table.path}: column '{both[0]}' is in task.features and task.categorical"
        )
    if not features:
        features = [n for n in table.columns if n not in taken and n not in categorical]
    if not features and not categorical:
        raise ValueError(f"{table.path}: task.features: no feature column left")

    tasks = _tasks(table, task_column, target_columns, target)
    for name, rows, _ in tasks:
        if len(rows) < min_rows:
            raise ValueError(
                f"{table.path}: task '{name}' has {len(rows)} rows; task.min_rows_per_task is "
                f"{min_rows}"
            )
    labels = {name: _targets(table, column, rows, kind) for name, rows, column in tasks}
    parts = _split(table, tasks, labels, kind, split_column, fractions, seed, target_columns)
    train_rows = np.unique(np.concatenate([parts[name]["train"] for name, _, _ in tasks]))
    x, encoding = _features(table, features, categorical, train_rows, standardize)
    x = torch.from_numpy(x)
    splits = {s: [] for s in SPLITS}
    outputs = []
    for name, rows, _ in tasks:
        y, classes = labels[name]
        position = {row: i for i, row in enumerate(rows)}
        for split in SPLITS:
            chosen = parts[name][split]
            local = torch.as_tensor([position[r] for r in chosen], dtype=torch.long)
            splits[split].append(TaskSplit(x[torch.as_tensor(chosen)], y[local].clone()))
        outputs.append(len(classes) if kind == "classification" else 1)
    return MultiTaskData(
        task_names=[name for name, _, _ in tasks],
        outputs=outputs,
        input_shape=(int(x.shape[1]),),
        splits=splits,
        kind=kind,
        info={
            "table": str(table.path),
            "classes": {name: labels[name][1] for name, _, _ in tasks},
            "rows": {name: {s: len(parts[name][s]) for s in SPLITS} for name, _, _ in tasks},
            **encoding,
        },
    )


def _sort_values(values) -> list[str]:
    """Distinct values, numerically sorted when all are numbers, else as strings."""
    distinct = set(values)
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)


def _tasks(table, task_column, target_columns, target) -> list[tuple[str, np.ndarray, str]]:
    """(task name, its row indices, its target column) per task."""
    if target_columns:
        everything = np.arange(len(table))
        return [(name, everything, name) for name in target_columns]
    values = table.columns[task_column]
    for i, value in enumerate(values):
        if not value:
            raise ValueError(f"{table.where(i)}: task.task_column '{task_column}' is empty")
    array = np.asarray(values)
    return [(value, np.flatnonzero(array == value), target) for value in _sort_values(values)]


def _targets(table, column: str, rows: np.ndarray, kind: str) -> tuple[torch.Tensor, list[str]]:
    """Targets of one task: class indices (classification) or float32 values (regression)."""
    values = [table.columns[column][r] for r in rows]
    for r, value in zip(rows, values, strict=True):
        if not value:
            raise ValueError(f"{table.where(r)}: target column '{column}' is empty")
    if kind == "regression":
        numbers = [_number(table, column, r) for r in rows]
        return torch.tensor(numbers, dtype=torch.float32), []
    classes = _sort_values(values)
    if len(classes) < 2:
        raise ValueError(
            f"{table.path}: column '{column}' holds the single class '{classes[0]}' for a task; "
            "classification needs at least 2"
        )
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor([index[v] for v in values], dtype=torch.long), classes


def _number(table, column: str, row: int) -> float:
    text = table.columns[column][row]
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        shown = text or "(empty)"
        raise ValueError(f"{table.where(row)}: column '{column}': '{shown}' is not a finite number")
    return value


def _split(table, tasks, labels, kind, split_column, fractions, seed, shared) -> dict:
    """task name -> split -> sorted row indices."""
    if split_column:
        values = table.columns[split_column]
        for i, value in enumerate(values):
            if value not in SPLIT_VALUES:
                raise ValueError(
                    f"{table.where(i)}: task.split_column '{split_column}': unknown split "
                    f"'{value}'; allowed: {', '.join(SPLIT_VALUES)}"
                )
        array = np.asarray(values)
        parts = {name: {s: rows[array[rows] == s] for s in SPLITS} for name, rows, _ in tasks}
    else:
        fractions = check_fractions(fractions)
        if (
            shared
        ):  # one split of the shared rows: a row is never train for one task, test for another
            rows = tasks[0][1]
            one = _stratified(np.zeros(len(rows), dtype=np.int64), fractions, seed, tasks[0][0])
            parts = {name: {s: rows[one[s]] for s in SPLITS} for name, rows, _ in tasks}
        else:
            parts = {}
            for t, (name, rows, _) in enumerate(tasks):
                y = labels[name][0].numpy() if kind == "classification" else np.zeros(len(rows))
                local = _stratified(y, fractions, seed + t, name)
                parts[name] = {s: rows[local[s]] for s in SPLITS}
    for name, _, _ in tasks:
        for s in SPLITS:
            if len(parts[name][s]) == 0:
                raise ValueError(f"{table.path}: task '{name}' has no {s} rows")
    return parts


def _stratified(labels: np.ndarray, fractions: list[float], seed: int, name: str) -> dict:
    """Seeded split of range(len(labels)) with exact sizes and each class spread over the splits
    in proportion: rows are grouped by label (random order inside a group), then test and val
    rows are taken at evenly spaced positions of that order."""
    n = len(labels)
    n_test = max(1, round(fractions[2] * n))
    n_val = max(1, round(fractions[1] * n))
    if n - n_test - n_val < 1:
        raise ValueError(f"task '{name}': {n} rows leave none for training")
    order = np.random.default_rng(seed).permutation(n)
    order = order[np.argsort(labels[order], kind="stable")]
    test_pos = _evenly(n, n_test)
    rest = np.setdiff1d(np.arange(n), test_pos)
    val_pos = rest[_evenly(len(rest), n_val)]
    train_pos = np.setdiff1d(rest, val_pos)
    return {
        "train": np.sort(order[train_pos]),
        "val": np.sort(order[val_pos]),
        "test": np.sort(order[test_pos]),
    }


def _evenly(n: int, k: int) -> np.ndarray:
    """k evenly spaced positions in range(n)."""
    return np.floor((np.arange(k) + 0.5) * n / k).astype(np.int64)


def _features(table, numeric, categorical, train_rows, standardize) -> tuple[np.ndarray, dict]:
    """float32 [N, D]: numeric columns (z-scored with training statistics when asked), then the
    one-hot blocks of the categorical columns (categories from the training rows)."""
    n = len(table)
    blocks = []
    info: dict = {"features": list(numeric), "categories": {}}
    if numeric:
        values = np.array(
            [[_number(table, c, r) for c in numeric] for r in range(n)], dtype=np.float64
        ).reshape(n, len(numeric))
        if standardize:
            mean = values[train_rows].mean(0)
            std = values[train_rows].std(0)
            std[std == 0] = 1.0
            values = (values - mean) / std
            info["mean"], info["std"] = mean.tolist(), std.tolist()
        blocks.append(values)
    for column in categorical:
        texts = table.columns[column]
        for r in range(n):
            if not texts[r]:
                raise ValueError(f"{table.where(r)}: categorical column '{column}' is empty")
        categories = _sort_values(texts[r] for r in train_rows)
        index = {c: i for i, c in enumerate(categories)}
        onehot = np.zeros((n, len(categories)))
        for r, text in enumerate(texts):
            if text in index:  # a category unseen in training stays all zeros
                onehot[r, index[text]] = 1.0
        blocks.append(onehot)
        info["categories"][column] = categories
    return np.concatenate(blocks, axis=1).astype(np.float32), info
