"""task=multilabel/csv: images listed in a CSV with 0/1 label columns or `;`-separated label names,
on fabricated PNGs: known targets and pixels, splits, the decode cache, a real training run, and
one-line errors naming the file, line and column."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from mtl_cli.config import compose
from mtl_cli.errors import UserError
from mtl_cli.run import train
from mtl_cli.tasks.multilabel.csv_images import csv_image_labels

COMMON = ["trainer=debug", "device=cpu", "trainer.threads=1", "trainer.diagnostics=false"]
DEFAULTS = dict(
    image_column="image", label_columns=[], labels_column=None, label_names=[], image_size=8,
    channels=3, split_column=None, split_fractions=[0.7, 0.15, 0.15], split_seed=0,
    pos_weight=None, threshold=0.5,
)  # fmt: skip
#: 4 rows (train, train, val, test): the same labels in both encodings; "sun" has no train positive
NAMES = ["cat;dog", "", "sun", "dog ; sun"]
BINARY = [[1, 1, 0], [0, 0, 0], [0, 0, 1], [0, 1, 1]]
SPLIT = ["train", "train", "val", "test"]


def png(path: Path, gray: int, size=(6, 5)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (gray, gray, gray)).save(path)
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def build(path: Path, cache: Path, **options):
    data = {"root": None, "cache_dir": str(cache)}
    return csv_image_labels(path=str(path), **{**DEFAULTS, **options}, data=data)


@pytest.fixture
def four(tmp_path) -> Path:
    """tree/img/<i>.png (gray 40 * i) and two CSVs: names.csv and binary.csv."""
    tree = tmp_path / "tree"
    for i in range(4):
        png(tree / "img" / f"{i}.png", 40 * i)
    write_csv(tree / "names.csv", ["image", "labels", "split"],
              [[f"img/{i}.png", NAMES[i], SPLIT[i]] for i in range(4)])  # fmt: skip
    write_csv(tree / "binary.csv", ["split", "image", "cat", "dog", "sun"],
              [[SPLIT[i], f"img/{i}.png", *BINARY[i]] for i in range(4)])  # fmt: skip
    return tree


def twenty(tree: Path) -> Path:
    """20 rows, image i gray 10 * i, label a = i even, b = i % 3 == 0, c = i < 10."""
    rows = []
    for i in range(20):
        png(tree / "pics" / f"{i:02d}.png", 10 * i, size=(9, 7))
        rows.append([f"pics/{i:02d}.png", int(i % 2 == 0), int(i % 3 == 0), int(i < 10)])
    return write_csv(tree / "labels.csv", ["image", "a", "b", "c"], rows)


def test_both_encodings_give_the_same_targets_and_pixels(four, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="mtl_cli"):
        named = build(four / "names.csv", tmp_path / "cache", labels_column="labels",
                      split_column="split")  # fmt: skip
    binary = build(four / "binary.csv", tmp_path / "cache", split_column="split")
    assert named.task_names == binary.task_names == ["cat", "dog", "sun"]  # sorted / file order
    assert binary.input_shape == (3, 8, 8)
    for split, rows in (("train", [0, 1]), ("val", [2]), ("test", [3])):
        expected = torch.tensor([BINARY[r] for r in rows], dtype=torch.float32)
        assert torch.equal(named.splits[split].y, expected)
        assert torch.equal(binary.splits[split].y, expected)
        assert torch.equal(named.splits[split].x, binary.splits[split].x)
        gray = named.splits[split].x.mean(dim=(1, 2, 3)) * 255
        assert gray.tolist() == pytest.approx([40 * r for r in rows], abs=0.01)
    # "sun" has no positive among the training rows: warned and recorded, not refused
    assert named.info["labels_without_train_positive"] == ["sun"]
    assert "sun" in caplog.text and "no positive training row" in caplog.text
    assert named.info["positives"]["test"] == [0, 1, 1]


def test_label_names_fix_the_order_and_grey_channels(four, tmp_path):
    data = build(four / "names.csv", tmp_path / "cache", labels_column="labels",
                 label_names=["sun", "cat", "dog"], split_column="split", channels=1,
                 image_size=[4, 6])  # fmt: skip
    assert data.task_names == ["sun", "cat", "dog"] and data.input_shape == (1, 4, 6)
    assert data.splits["train"].y.tolist() == [[0, 1, 1], [0, 0, 0]]
    assert data.splits["test"].y.tolist() == [[1, 0, 1]]


def test_label_columns_choose_a_subset(four, tmp_path):
    data = build(four / "binary.csv", tmp_path / "cache", label_columns=["sun", "cat"],
                 split_column="split")  # fmt: skip
    assert data.task_names == ["sun", "cat"]
    assert data.splits["train"].y.tolist() == [[0, 1], [0, 0]]


def test_seeded_split_is_reproducible_and_partitions_the_rows(tmp_path):
    path = twenty(tmp_path / "tree")

    def rows_of(seed: int) -> dict[str, list[int]]:
        data = build(path, tmp_path / "cache", split_seed=seed)
        return {s: [round(v) for v in (data.splits[s].x.mean(dim=(1, 2, 3)) * 25.5).tolist()]
                for s in ("train", "val", "test")}  # fmt: skip

    first, again, other = rows_of(3), rows_of(3), rows_of(4)
    assert first == again and first != other
    assert [len(first[s]) for s in ("train", "val", "test")] == [14, 3, 3]
    assert sorted(first["train"] + first["val"] + first["test"]) == list(range(20))
    data = build(path, tmp_path / "cache", split_seed=3)
    for s in ("train", "val", "test"):  # each row keeps its own labels: a = row even
        expected = [float(r % 2 == 0) for r in first[s]]
        assert data.splits[s].y[:, 0].tolist() == expected


def test_relative_csv_path_resolves_against_data_root_and_paths_stay_inside(tmp_path):
    tree = tmp_path / "tree"
    for i in range(3):
        png(tree / "sub" / "img" / f"{i}.png", 50 * i)
    write_csv(tree / "sub" / "list.csv", ["image", "y", "split"],
              [["img/0.png", 1, "train"], ["./img/../img/1.png", 0, "val"],
               ["img\\2.png", 1, "test"]])  # fmt: skip
    data = csv_image_labels(path="sub/list.csv", **{**DEFAULTS, "split_column": "split"},
                            data={"root": str(tree), "cache_dir": str(tmp_path / "c")})  # fmt: skip
    assert data.info["csv"] == str(tree / "sub" / "list.csv")
    assert (data.splits["test"].x.mean() * 255).item() == pytest.approx(100, abs=0.01)


def test_decoded_images_are_cached_and_rebuilt_when_a_file_changes(tmp_path):
    path = twenty(tmp_path / "tree")
    cache = tmp_path / "cache"
    first = build(path, cache)
    entries = sorted(cache.glob("*.npz"))
    assert len(entries) == 1
    build(path, cache, split_seed=1)  # another split of the same files: same entry
    assert sorted(cache.glob("*.npz")) == entries
    before = first.splits["train"].x
    png(tmp_path / "tree" / "pics" / "00.png", 255, size=(9, 7))  # row 0 (train with seed 0)
    after = build(path, cache).splits["train"].x
    assert len(list(cache.glob("*.npz"))) == 2
    assert (before[0].mean() * 255).item() == pytest.approx(0, abs=0.01)
    assert (after[0].mean() * 255).item() == pytest.approx(255, abs=0.01)


def test_trains_through_the_cli_config(tmp_path):
    twenty(tmp_path / "tree")
    out = train(compose([*COMMON, "task=multilabel/csv", f"data.root={tmp_path / 'tree'}",
                         "task.path=labels.csv", "task.image_size=8", "task.pos_weight=auto",
                         "task.threshold=val_f1", "backbone=conv", "backbone.channels=[4,8]",
                         "backbone.fc_features=16", f"data.cache_dir={tmp_path / 'cache'}",
                         f"paths.output_dir={tmp_path / 'run'}"]))  # fmt: skip
    assert out["status"] == "finished" and out["tasks"] == ["a", "b", "c"]
    values = [v for v in out["test"].values() if isinstance(v, float)]
    assert values and all(math.isfinite(v) for v in values)


#: name -> (header, rows); images img/0.png .. img/3.png exist, img/bad.png is not an image
BAD_CSVS = {
    "names": (
        ["image", "labels"],
        [["img/0.png", "cat"], ["img/1.png", "dog"], ["img/2.png", "cat;bird"], ["img/3.png", ""]],
    ),
    "binary": (
        ["image", "cat", "dog"],
        [["img/0.png", 1, 0], ["img/1.png", 2, 0], ["img/2.png", 0, 1], ["img/3.png", 1, 1]],
    ),
    "semicolons": (
        ["image", "tags"],
        [["img/0.png", "cat;dog"], ["img/1.png", "0"], ["img/2.png", "1"]],
    ),
    "missing_image": (["image", "y"], [["img/0.png", 1], ["img/none.png", 0], ["img/2.png", 1]]),
    "unreadable": (["image", "y"], [["img/0.png", 1], ["img/1.png", 0], ["img/bad.png", 1]]),
    "absolute": (["image", "y"], [["img/0.png", 1], ["/etc/passwd.png", 0], ["img/2.png", 1]]),
    "escape": (["image", "y"], [["img/0.png", 1], ["img/../../x.png", 0], ["img/2.png", 1]]),
    "not_image": (["image", "y"], [["img/0.png", 1], ["img/1.png", 0], ["names.csv", 1]]),
    "image_only": (["image"], [["img/0.png"], ["img/1.png"], ["img/2.png"]]),
    "bad_split": (
        ["image", "y", "s"],
        [["img/0.png", 1, "train"], ["img/1.png", 0, "valid"], ["img/2.png", 1, "test"]],
    ),
    "no_test": (["image", "y", "s"], [["img/0.png", 1, "train"], ["img/1.png", 0, "val"]]),
    "two_rows": (["image", "y"], [["img/0.png", 1], ["img/1.png", 0]]),
    "header_only": (["image", "y"], []),
}
BAD_CASES = [
    ("names", {"labels_column": "labels", "label_names": ["cat", "dog"]},
     ["line 4", "column 'labels'", "unknown label 'bird'", "cat, dog"]),
    ("binary", {}, ["line 3", "column 'cat'", "'2'", "0 or 1"]),
    ("semicolons", {}, ["line 2", "column 'tags'", "task.labels_column=tags"]),
    ("missing_image", {}, ["line 3", "column 'image'", "'img/none.png' not found"]),
    ("unreadable", {}, ["line 4", "bad.png: not a readable image"]),
    ("absolute", {}, ["line 3", "'/etc/passwd.png' is absolute"]),
    ("escape", {}, ["line 3", "'img/../../x.png' leaves"]),
    ("not_image", {}, ["line 4", "'names.csv' is not an image file", ".png"]),
    ("binary", {"image_column": "picture"}, ["task.image_column", "no column 'picture'"]),
    ("binary", {"label_columns": ["cat", "cow"]}, ["task.label_columns", "no column 'cow'"]),
    ("binary", {"labels_column": "cat", "label_columns": ["dog"]}, ["set one, not both"]),
    ("binary", {"label_names": ["cat"]}, ["task.label_names", "only used with"]),
    ("names", {"labels_column": "labels", "label_names": ["a;b"]}, ["task.label_names"]),
    ("image_only", {}, ["no label column left", "task.labels_column"]),
    ("bad_split", {"split_column": "s"}, ["line 3", "column 's'", "'valid'", "train, val, test"]),
    ("no_test", {"split_column": "s"}, ["column 's'", "no test row"]),
    ("two_rows", {}, ["2 rows cannot be split", "task.split_column"]),
    ("header_only", {}, ["no data rows"]),
]  # fmt: skip


@pytest.mark.parametrize(("table", "options", "expected"), BAD_CASES)
def test_bad_inputs_fail_in_one_line_naming_the_place(tmp_path, table, options, expected):
    tree = tmp_path / "tree"
    for i in range(4):
        png(tree / "img" / f"{i}.png", 30 * i)
    (tree / "img" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    (tree / "names.csv").write_text("image\n")
    header, rows = BAD_CSVS[table]
    path = write_csv(tree / f"{table}.csv", header, rows)
    with pytest.raises(UserError) as info:
        build(path, tmp_path / "cache", **options)
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message
    if "task.label_names" not in message and "not both" not in message:
        assert str(path) in message, message


def test_missing_and_empty_csv_are_named(tmp_path):
    with pytest.raises(UserError, match=r"nothing\.csv: table file not found"):
        build(tmp_path / "nothing.csv", tmp_path / "cache")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UserError, match=r"empty\.csv: empty CSV"):
        build(tmp_path / "empty.csv", tmp_path / "cache")
    with pytest.raises(UserError, match="task.path: required"):
        build("", tmp_path / "cache")
