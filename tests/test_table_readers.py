"""task=multitask/table: CSV/Parquet reading, one-hot and standardisation known answers, per-user
task splits, real training runs and one-line errors naming file, line and column."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.run import train
from mtl_cli.tasks.multitask.table import table_tasks

COMMON = ["trainer=debug", "device=cpu", "trainer.threads=1", "trainer.diagnostics=false",
          "backbone=mlp", "backbone.hidden=[8]"]  # fmt: skip
DEFAULTS = dict(
    features=[], categorical=[], task_column=None, target_columns=[], target=None,
    kind="classification", split_column=None, split_fractions=[0.6, 0.2, 0.2], split_seed=0,
    standardize=True, min_rows_per_task=3,
)  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def build(path: Path, **options):
    return table_tasks(path=str(path), **{**DEFAULTS, **options}, data={"root": None})


@pytest.fixture
def small(tmp_path) -> Path:
    """4 rows: two train, one val, one test; `green` appears only at val."""
    return write_csv(tmp_path / "small.csv", ["a", "b", "color", "y", "split"], [
        [1, 10, "red", "cat", "train"],
        [3, 10, "blue", "dog", "train"],
        [5, 10, "green", "cat", "val"],
        [7, 10, "red", "dog", "test"],
    ])  # fmt: skip


@pytest.fixture
def users(tmp_path) -> Path:
    """Two users of 20 rows each, a per-user shift in p(x); label = a above the user's shift."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        user = "ann" if i % 2 else "bob"
        shift = 2.0 if user == "ann" else -2.0
        a = float(rng.normal()) + shift
        rows.append([user, a, float(rng.normal()), ["x", "y", "z"][i % 3], int(a > shift), a * 2])
    return write_csv(tmp_path / "users.csv", ["user", "a", "b", "kind", "label", "score"], rows)


def test_one_hot_and_standardisation_use_training_rows_only(small):
    data = build(small, categorical=["color"], target_columns=["y"], split_column="split")
    # a: train values 1, 3 -> mean 2, std 1; b is constant -> std 1 (kept, centred to 0)
    # color: train categories [blue, red]; green (val only) -> all zeros
    assert data.info["categories"] == {"color": ["blue", "red"]}
    assert data.info["mean"] == [2.0, 10.0] and data.info["std"] == [1.0, 1.0]
    x = {s: data.splits[s][0].x for s in ("train", "val", "test")}
    assert torch.equal(x["train"], torch.tensor([[-1.0, 0, 0, 1], [1.0, 0, 1, 0]]))
    assert torch.equal(x["val"], torch.tensor([[3.0, 0, 0, 0]]))
    assert torch.equal(x["test"], torch.tensor([[5.0, 0, 0, 1]]))
    assert data.outputs == [2] and data.info["classes"] == {"y": ["cat", "dog"]}
    assert data.splits["test"][0].y.tolist() == [1]


def test_without_standardize_features_are_raw(small):
    data = build(small, features=["a"], target_columns=["y"], split_column="split",
                 standardize=False)  # fmt: skip
    assert data.splits["val"][0].x.tolist() == [[5.0]]


def test_per_user_tasks_hold_only_their_rows_and_split_disjointly(users):
    data = build(users, task_column="user", target="label", categorical=["kind"],
                 features=["a", "b"], split_fractions=[0.6, 0.2, 0.2], split_seed=3)  # fmt: skip
    assert data.task_names == ["ann", "bob"] and data.outputs == [2, 2]
    mean, std = data.info["mean"][0], data.info["std"][0]
    for t, sign in ((0, 1.0), (1, -1.0)):  # ann's raw a is around +2, bob's around -2
        sizes = [len(data.splits[s][t]) for s in ("train", "val", "test")]
        assert sizes == [12, 4, 4]
        rows = torch.cat([data.splits[s][t].x[:, 0] for s in ("train", "val", "test")])
        raw = rows * std + mean
        assert (raw * sign).mean() > 1.0
        assert len({tuple(r.tolist()) for r in rows.unsqueeze(1)}) == 20  # no row twice
    assert data.info["rows"]["ann"] == {"train": 12, "val": 4, "test": 4}
    again = build(users, task_column="user", target="label", categorical=["kind"],
                  features=["a", "b"], split_seed=3)  # fmt: skip
    assert torch.equal(again.splits["test"][0].x, data.splits["test"][0].x)  # seeded


def test_target_columns_share_one_row_split(users):
    data = build(users, target_columns=["label", "score"], kind="regression",
                 features=["a"], split_seed=1)  # fmt: skip
    for split in ("train", "val", "test"):
        assert torch.equal(data.splits[split][0].x, data.splits[split][1].x)
    assert data.kind == "regression" and data.outputs == [1, 1]
    assert data.splits["train"][0].y.dtype == torch.float32


def test_parquet_reads_like_the_csv(tmp_path, users):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    with open(users, newline="") as f:
        rows = list(csv.reader(f))
    columns = {name: [r[i] for r in rows[1:]] for i, name in enumerate(rows[0])}
    typed = {k: ([float(v) for v in vals] if k in ("a", "b", "score") else vals)
             for k, vals in columns.items()}  # fmt: skip
    typed["label"] = [int(v) for v in columns["label"]]
    pq.write_table(pa.table(typed), tmp_path / "users.parquet")
    options = dict(task_column="user", target="label", categorical=["kind"], features=["a", "b"])
    from_csv = build(users, **options)
    from_parquet = build(tmp_path / "users.parquet", **options)
    for split in ("train", "val", "test"):
        for a, b in zip(from_csv.splits[split], from_parquet.splits[split], strict=True):
            assert torch.allclose(a.x, b.x) and torch.equal(a.y, b.y)


def test_relative_path_resolves_against_data_root(small):
    data = table_tasks(path="small.csv", **{**DEFAULTS, "target_columns": ["y"],
                       "split_column": "split", "features": ["a"]},
                       data={"root": str(small.parent)})  # fmt: skip
    assert data.info["table"] == str(small)


def test_per_user_classification_trains(tmp_path, users):
    out = train(compose([*COMMON, "task=multitask/table", f"task.path={users}",
                         "task.task_column=user", "task.target=label", "task.categorical=[kind]",
                         "task.features=[a,b]", f"paths.output_dir={tmp_path / 'run'}"]))  # fmt: skip
    assert out["status"] == "finished" and out["tasks"] == ["ann", "bob"]
    assert all(math.isfinite(v) for v in out["test"].values())
    assert 0.0 <= out["test"]["accuracy"] <= 1.0


def test_target_columns_regression_trains_with_mmoe(tmp_path, users):
    out = train(compose([*COMMON, "task=multitask/table", f"task.path={users}",
                         "task.target_columns=[score,label]", "task.kind=regression",
                         "task.features=[a,b]", "model=mmoe",
                         f"paths.output_dir={tmp_path / 'run'}"]))  # fmt: skip
    assert set(out["test"]) == {"score/mse", "label/mse", "mse"}
    assert all(math.isfinite(v) for v in out["test"].values())


BAD_TABLES = {
    "nan_feature": (["a", "y"], [[1, 0], ["nan", 1], [2, 0], [3, 1]]),
    "empty_feature": (["a", "y"], [[1, 0], [2, 1], ["", 0], [3, 1]]),
    "text_feature": (["a", "y"], [[1, 0], [2, 1], [3, 0], ["abc", 1]]),
    "bad_split": (["a", "y", "s"], [[1, 0, "train"], [2, 1, "valid"], [3, 0, "test"]]),
    "ragged": (["a", "y"], [[1, 0], [2, 1, 9], [3, 0]]),
    "regression_text": (["a", "y"], [[1, 0.5], [2, "high"], [3, 0.1], [4, 0.2]]),
    "few_rows": (["u", "a", "y"], [["p", 1, 0], ["p", 2, 1], ["p", 3, 0], ["q", 1, 0]]),
    "duplicate_header": (["a", "a", "y"], [[1, 2, 0]]),
    "one_class": (["a", "y"], [[1, "b"], [2, "b"], [3, "b"]]),
}
BAD_CASES = [
    ("nan_feature", {"target_columns": ["y"]}, ["line 3", "column 'a'", "'nan'"]),
    ("empty_feature", {"target_columns": ["y"]}, ["line 4", "column 'a'", "(empty)"]),
    ("text_feature", {"target_columns": ["y"]}, ["line 5", "column 'a'", "'abc'"]),
    ("bad_split", {"target_columns": ["y"], "split_column": "s"}, ["line 3", "'valid'", "train"]),
    ("ragged", {"target_columns": ["y"]}, ["line 3", "3 fields", "header has 2"]),
    ("regression_text", {"target_columns": ["y"], "kind": "regression"},
     ["line 3", "column 'y'", "'high'"]),
    ("few_rows", {"task_column": "u", "target": "y"}, ["task 'q'", "1 rows", "min_rows_per_task"]),
    ("duplicate_header", {"target_columns": ["y"]}, ["column 'a' appears twice"]),
    ("nan_feature", {"target_columns": ["nope"]}, ["task.target_columns", "no column 'nope'"]),
    ("nan_feature", {"target_columns": ["y"], "features": ["zzz"]},
     ["task.features", "no column 'zzz'"]),
    ("nan_feature", {}, ["task.task_column / task.target_columns", "exactly one"]),
    ("nan_feature", {"task_column": "a", "target_columns": ["y"]}, ["exactly one"]),
    ("nan_feature", {"task_column": "a"}, ["task.target: required"]),
    ("nan_feature", {"target_columns": ["y"], "categorical": ["y"]}, ["task.categorical", "'y'"]),
    ("one_class", {"target_columns": ["y"]}, ["column 'y'", "single class 'b'"]),
]  # fmt: skip


@pytest.mark.parametrize(("table", "options", "expected"), BAD_CASES)
def test_bad_tables_fail_in_one_line_naming_the_place(tmp_path, table, options, expected):
    header, rows = BAD_TABLES[table]
    path = write_csv(tmp_path / f"{table}.csv", header, rows)
    with pytest.raises(UserError) as info:
        build(path, **options)
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message
    if "task.target" not in message and "exactly one" not in message:
        assert str(path) in message


def test_missing_file_and_missing_path_are_named(tmp_path):
    with pytest.raises(UserError, match=r"nothing\.csv: table file not found"):
        build(tmp_path / "nothing.csv", target_columns=["y"])
    with pytest.raises(UserError, match="task.path: required"):
        table_tasks(path="", **{**DEFAULTS, "target_columns": ["y"]}, data={})


def test_missing_pyarrow_names_the_extra(tmp_path, monkeypatch, small):
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError("no pyarrow")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    with pytest.raises(UserError, match=r"mtl_cli\[parquet\]"):
        build(tmp_path / "t.parquet", target_columns=["y"])
