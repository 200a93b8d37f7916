"""Users' image folders: multitask/folders, Office-31/Home, meta/folders, miniImageNet.

Every tree is fabricated with Pillow in tmp_path (8x8 PNG/JPEG/BMP files in the real formats).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mtl_cli.config import compose
from mtl_cli.data import image_folders
from mtl_cli.data.images import decode_image, decode_images
from mtl_cli.errors import UserError
from mtl_cli.run import build_family, train
from mtl_cli.tasks.multitask.folders import stratified_split

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = (".png", ".jpg", ".bmp")
META_TINY = ["task.eval_episodes=4", "task.meta_batch_size=2", "task.queries=1", "task.ways=2"]
PROTONET = ["model=meta/protonet", "backbone=conv4", "backbone.hidden_channels=4"]


def write_image(path: Path, value: int, size: int = 8, rgb=None) -> None:
    """An image whose pixels are `value` (grey) or `rgb`, with one brighter pixel per file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb is not None:
        pixels = np.zeros((size, size, 3), dtype=np.uint8) + np.array(rgb, dtype=np.uint8)
    else:
        pixels = np.full((size, size, 3), value, dtype=np.uint8)
    pixels[0, 0] = 255
    Image.fromarray(pixels).save(path)


def write_classes(folder: Path, counts: dict[str, int], start: int = 0) -> None:
    """`folder/<class>/<i>.<png|jpg|bmp>`; class k is drawn in grey level 40 * (k + 1)."""
    for k, (name, count) in enumerate(counts.items()):
        for i in range(count):
            write_image(folder / name / f"img{start + i:03d}{SUFFIXES[i % 3]}", 40 * (k + 1) % 256)


def multitask_tree(root: Path, tasks=("digits", "letters"), classes=3, images=6) -> Path:
    for task in tasks:
        write_classes(root / task, {f"c{k}": images for k in range(classes)})
    return root


def meta_tree(root: Path, classes: int = 10, images: int = 4) -> Path:
    write_classes(root, {f"class{k:02d}": images for k in range(classes)})
    return root


def run_overrides(tmp_path: Path, *overrides: str, size: int = 8) -> list[str]:
    return [
        f"paths.output_dir={tmp_path / 'run'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer=debug",
        "device=cpu",
        "trainer.threads=1",
        f"task.image_size={size}",
        *overrides,
    ]


def built(tmp_path: Path, *overrides: str):
    return build_family(compose(run_overrides(tmp_path, *overrides)), torch.device("cpu")).data


def finite_summary(summary: dict) -> None:
    assert summary["status"] == "finished"
    values = [v for v in summary["test"].values() if isinstance(v, float)]
    assert values and all(math.isfinite(v) for v in values)


# ------------------------------------------------------------------ decoding


def test_decode_known_pixels_from_path_and_bytes(tmp_path):
    path = tmp_path / "red.png"
    write_image(path, 0, size=8, rgb=(200, 100, 50))
    rgb = decode_image(path, "red.png", 8, 3)
    assert rgb.shape == (3, 8, 8) and rgb.dtype == np.uint8
    assert rgb[:, 4, 4].tolist() == [200, 100, 50]
    assert np.array_equal(rgb, decode_image(path.read_bytes(), "red.png", 8, 3))
    grey = decode_image(path, "red.png", (4, 6), 1)
    assert grey.shape == (1, 4, 6)
    luma = round((200 * 299 + 100 * 587 + 50 * 114) / 1000)  # ITU-R 601-2, Pillow's "L"
    assert abs(int(grey[0, 3, 3]) - luma) <= 1
    stack = decode_images([("a", path), ("b", path.read_bytes())], 4, 3)
    assert stack.shape == (2, 3, 4, 4) and np.array_equal(stack[0], stack[1])


def test_corrupt_image_names_the_member(tmp_path):
    with pytest.raises(UserError, match=r"^archive.zip:cls/a.png: not a readable image"):
        decode_image(b"\x89PNG\r\n\x1a\nbroken", "archive.zip:cls/a.png", 8, 1)


# ------------------------------------------------------------------ multitask/folders


def test_folders_train_end_to_end_grayscale(tmp_path):
    root = multitask_tree(tmp_path / "tree")
    (root / "digits" / "README.txt").write_text("ignored")  # other suffixes are ignored
    (root / "digits" / "c0" / ".hidden.png").write_bytes(b"not an image")  # hidden: ignored
    cfg = compose(run_overrides(tmp_path, "task=multitask/folders", f"data.root={root}"))
    data = build_family(cfg, torch.device("cpu")).data
    assert data.task_names == ["digits", "letters"] and data.outputs == [3, 3]
    assert data.input_shape == (1, 8, 8)
    assert data.info["images"]["train"] == {"digits": 12, "letters": 12}  # 6 -> 4/1/1 per class
    x = data.splits["train"][0].x
    assert x.dtype == torch.float32 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    finite_summary(train(cfg))


def test_folders_rgb_keeps_colour_and_task_root_wins(tmp_path):
    root = tmp_path / "tree"
    for k in range(2):
        for i in range(3):
            write_image(root / "colours" / f"c{k}" / f"{i}.png", 0, rgb=(250, 10 * k, 5))
    data = built(
        tmp_path, "task=multitask/folders", f"task.root={root}", "data.root=/does/not/exist",
        "task.channels=3", "task.split_fractions=[0.34,0.33,0.33]",
    )  # fmt: skip
    assert data.input_shape == (3, 8, 8)
    x = data.splits["train"][0].x
    assert torch.allclose(x[:, 0, 4, 4], torch.tensor(250 / 255))
    assert torch.allclose(x[:, 2, 4, 4], torch.tensor(5 / 255))


def test_stratified_split_is_disjoint_seeded_and_independent_of_other_tasks(tmp_path):
    write_classes(tmp_path / "t", {"a": 20, "b": 10, "c": 7})
    classes = image_folders.class_images(tmp_path / "t")
    fractions = [0.7, 0.15, 0.15]
    first = stratified_split("t", classes, fractions, seed=3)
    for name, files in classes.items():
        parts = [set(first[s][name]) for s in ("train", "val", "test")]
        assert set().union(*parts) == set(files) and sum(map(len, parts)) == len(files)
        n_val, n_test = round(0.15 * len(files)), round(0.15 * len(files))
        assert [len(p) for p in parts] == [len(files) - n_val - n_test, n_val, n_test]
    assert stratified_split("t", classes, fractions, seed=3) == first
    assert stratified_split("t", classes, fractions, seed=4) != first
    only_a = stratified_split("t", {"a": classes["a"]}, fractions, seed=3)
    assert only_a["val"]["a"] == first["val"]["a"]  # a class splits the same alone


def test_train_val_test_folders_are_used_as_given(tmp_path):
    root = tmp_path / "tree"
    for task in ("x", "y"):
        write_classes(root / task / "train", {"p": 4, "q": 3})
        write_classes(root / task / "val", {"p": 1, "q": 2})
        write_classes(root / task / "test", {"p": 2, "q": 2})
    data = built(tmp_path, "task=multitask/folders", f"data.root={root}", "task.tasks=[y]")
    assert data.task_names == ["y"] and data.info["layout"] == "train/val/test folders"
    assert data.info["images"] == {"train": {"y": 7}, "val": {"y": 3}, "test": {"y": 4}}
    assert data.splits["val"][0].y.tolist() == [0, 1, 1]


def test_decoded_images_are_cached_and_rebuilt_when_a_file_changes(tmp_path, monkeypatch):
    root = multitask_tree(tmp_path / "tree", tasks=("t",))
    calls = []
    real = image_folders.decode_images

    def counting(items, size, channels):
        calls.append(len(items))
        return real(items, size, channels)

    monkeypatch.setattr(image_folders, "decode_images", counting)
    args = ("task=multitask/folders", f"data.root={root}")
    first_data = built(tmp_path, *args)
    first = first_data.splits["train"][0].x
    second = built(tmp_path, *args).splits["train"][0].x
    assert calls == [18] and torch.equal(first, second)
    assert len(list((tmp_path / "cache").glob("image-folders-*.npz"))) == 1
    target = root / "t" / "c0" / "img000.png"
    stamp = target.stat()
    os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))  # touched: rebuilt
    built(tmp_path, *args)
    assert calls == [18, 18]
    write_image(target, 7, size=9)  # new content and size: rebuilt, and the new pixels are read
    changed = built(tmp_path, *args)
    assert calls == [18, 18, 18]
    before = torch.cat([p.x for s in ("train", "val", "test") for p in first_data.splits[s]])
    after = torch.cat([p.x for s in ("train", "val", "test") for p in changed.splits[s]])
    assert int((before != after).any(dim=(1, 2, 3)).sum()) == 1  # exactly the edited image
    built(tmp_path, *args, "task.channels=3")  # another channel count is another entry
    assert calls == [18, 18, 18, 18]


# ------------------------------------------------------------------ Office


def office31_tree(root: Path, classes: int = 31, images: int = 3) -> Path:
    for domain in ("amazon", "dslr", "webcam"):
        write_classes(root / domain / "images", {f"cls{k:02d}": images for k in range(classes)})
    return root


def test_office31_trains_one_task_per_domain(tmp_path):
    root = office31_tree(tmp_path / "office31")
    cfg = compose(run_overrides(tmp_path, "task=multitask/office31", f"data.root={root}"))
    data = build_family(cfg, torch.device("cpu")).data
    assert data.task_names == ["amazon", "dslr", "webcam"] and data.outputs == [31, 31, 31]
    assert data.input_shape == (3, 8, 8)
    assert data.info["images"]["train"] == {"amazon": 31, "dslr": 31, "webcam": 31}
    finite_summary(train(cfg))


def test_office_home_domain_subset_with_a_space_in_the_folder(tmp_path):
    root = tmp_path / "OfficeHomeDataset_10072016"
    for domain in ("Art", "Real World"):
        write_classes(root / domain, {f"Class_{k:02d}": 3 for k in range(65)})
    data = built(
        tmp_path, "task=multitask/office_home", f"task.root={root}", "task.domains=[real_world,art]"
    )
    assert data.task_names == ["real_world", "art"] and data.outputs == [65, 65]


# ------------------------------------------------------------------ meta/folders, miniImageNet


def test_meta_folders_flat_trains_with_protonet(tmp_path):
    root = meta_tree(tmp_path / "classes")
    cfg = compose(
        run_overrides(
            tmp_path, "task=meta/folders", f"data.root={root}", *META_TINY, *PROTONET, size=16
        )
    )
    data = build_family(cfg, torch.device("cpu")).data
    assert data.info["classes"] == {"train": 6, "val": 2, "test": 2}
    assert data.input_shape == (1, 16, 16)
    names = [set(v) for v in data.info["splits"].values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert data.info["images_per_class"] == 4
    finite_summary(train(cfg))


def test_meta_folders_grouped_split_by_group_keeps_groups_whole(tmp_path):
    root = tmp_path / "alphabets"
    for g in range(5):
        write_classes(root / f"group{g}", {f"char{k}": 3 for k in range(3)})
    args = ("task=meta/folders", f"data.root={root}", "task.split_by=group", "task.split_seed=2")
    data = built(tmp_path, *args, *META_TINY)
    groups = {s: {n.split("/")[0] for n in v} for s, v in data.info["splits"].items()}
    assert [len(g) for g in groups.values()] == [3, 1, 1]
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"])
    assert built(tmp_path, *args, *META_TINY).info["splits"] == data.info["splits"]


def test_meta_folders_unequal_classes_use_the_smallest_count(tmp_path):
    root = tmp_path / "classes"
    write_classes(root, {f"c{k}": 3 + k for k in range(10)})  # 3..12 images
    data = built(tmp_path, "task=meta/folders", f"data.root={root}", *META_TINY)
    assert data.info["images_per_class"] == 3 and data.info["unused_images"] == sum(range(10))
    two = built(
        tmp_path, "task=meta/folders", f"data.root={root}", "task.images_per_class=2", *META_TINY
    )
    assert two.info["images_per_class"] == 2 and two.info["unused_images"] == 75 - 20
    with pytest.raises(UserError, match=r"task.images_per_class: 4 exceeds the 3 images of class"):
        built(
            tmp_path,
            "task=meta/folders",
            f"data.root={root}",
            "task.images_per_class=4",
            *META_TINY,
        )


def test_meta_folders_split_files_as_class_lists_and_csv(tmp_path):
    root = meta_tree(tmp_path / "classes", classes=7)
    (root / "splits").mkdir()
    for split, names in {"train": [0, 1, 2], "val": [3, 4], "test": [5, 6]}.items():
        text = "# classes\n" + "\n".join(f"class{k:02d}" for k in names) + "\n\n"
        (root / "splits" / f"{split}.txt").write_text(text)
    args = [f"task.split_files.{s}=splits/{s}.txt" for s in ("train", "val", "test")]
    data = built(
        tmp_path, "task=meta/folders", f"data.root={root}", "task.split_by=files", *args, *META_TINY
    )
    assert data.info["splits"]["val"] == ["class03", "class04"]
    # the same classes as filename,label CSVs
    for split, names in {"train": [0, 1, 2], "val": [3, 4], "test": [5, 6]}.items():
        rows = [f"img{i:03d}{SUFFIXES[i % 3]},class{k:02d}" for k in names for i in range(4)]
        (root / f"{split}.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    args = [f"task.split_files.{s}={root / s}.csv" for s in ("train", "val", "test")]
    csv_data = built(
        tmp_path, "task=meta/folders", f"data.root={root}", "task.split_by=files", *args, *META_TINY
    )
    assert csv_data.info["splits"] == data.info["splits"]


def miniimagenet_tree(root: Path, counts=(4, 2, 2), images: int = 3) -> Path:
    """Ravi & Larochelle's layout: {train,val,test}.csv and every image in images/."""
    k = 0
    for split, n in zip(("train", "val", "test"), counts, strict=True):
        rows = []
        for _ in range(n):
            label = f"n{k:08d}"
            for i in range(images):
                name = f"{label}{i:08d}.jpg"
                write_image(root / "images" / name, 30 * k % 256, size=12)
                rows.append(f"{name},{label}")
            k += 1
        (root / f"{split}.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    return root


def test_miniimagenet_trains_on_csv_splits(tmp_path):
    root = miniimagenet_tree(tmp_path / "mini")
    cfg = compose(
        run_overrides(
            tmp_path, "task=meta/miniimagenet", f"data.root={root}", "task.check_counts=false",
            *META_TINY, *PROTONET, size=16,
        )
    )  # fmt: skip
    data = build_family(cfg, torch.device("cpu")).data
    assert data.info["classes"] == {"train": 4, "val": 2, "test": 2}
    assert data.input_shape == (3, 16, 16)
    finite_summary(train(cfg))


# ------------------------------------------------------------------ one-line errors


def _good_multitask(tmp_path: Path) -> Path:
    return multitask_tree(tmp_path / "tree", images=4)


def _corrupt(tmp_path: Path) -> Path:
    root = _good_multitask(tmp_path)
    (root / "digits" / "c1" / "img001.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return root


def _empty_class(tmp_path: Path) -> Path:
    root = _good_multitask(tmp_path)
    (root / "letters" / "c9").mkdir()
    (root / "letters" / "c9" / "notes.txt").write_text("no images here")
    return root


def _one_class(tmp_path: Path) -> Path:
    root = _good_multitask(tmp_path)
    write_classes(root / "solo", {"only": 4})
    return root


def _mixed_layout(tmp_path: Path) -> Path:
    root = _good_multitask(tmp_path)
    for split in ("train", "val", "test"):
        write_classes(root / "split_task" / split, {"a": 2, "b": 2})
    return root


def _split_missing_class(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    write_classes(root / "t" / "train", {"a": 2, "b": 2})
    write_classes(root / "t" / "val", {"a": 2, "b": 2})
    write_classes(root / "t" / "test", {"a": 2})
    return root


def _loose_images(tmp_path: Path) -> Path:
    root = _good_multitask(tmp_path)
    write_image(root / "digits" / "stray.png", 3)
    return root


def _office_wrong(tmp_path: Path) -> Path:
    return office31_tree(tmp_path / "office", classes=20)


def _office_missing_domain(tmp_path: Path) -> Path:
    root = office31_tree(tmp_path / "office", classes=31, images=1)
    (root / "dslr").rename(root / "DSLR_photos")
    return root


def _mini_missing_file(tmp_path: Path) -> Path:
    root = miniimagenet_tree(tmp_path / "mini")
    (root / "images" / "n0000000100000002.jpg").unlink()
    return root


def _mini_bad_header(tmp_path: Path) -> Path:
    root = miniimagenet_tree(tmp_path / "mini")
    text = (root / "val.csv").read_text().replace("filename,label", "file,class")
    (root / "val.csv").write_text(text)
    return root


def _mini_escaping_name(tmp_path: Path) -> Path:
    root = miniimagenet_tree(tmp_path / "mini")
    with (root / "test.csv").open("a") as handle:
        handle.write("../../etc/passwd,n00000007\n")
    return root


def _mini_overlap(tmp_path: Path) -> Path:
    root = miniimagenet_tree(tmp_path / "mini")
    with (root / "test.csv").open("a") as handle:
        handle.write("n0000000000000000.jpg,n00000000\n")
    return root


def _small_class(tmp_path: Path) -> Path:
    root = meta_tree(tmp_path / "classes", classes=6, images=4)
    for path in sorted((root / "class03").iterdir())[1:]:
        path.unlink()
    return root


def _unknown_class_in_list(tmp_path: Path) -> Path:
    root = meta_tree(tmp_path / "classes", classes=6)
    for split, text in {"train": "class00\nclass01\n", "val": "class02\nclassXX\n"}.items():
        (root / f"{split}.txt").write_text(text)
    (root / "test.txt").write_text("class04\nclass05\n")
    return root


SPLIT_TXT = [f"task.split_files.{s}={s}.txt" for s in ("train", "val", "test")]

BAD_CASES = {
    "root missing": (
        lambda p: p / "nowhere",
        ["task=multitask/folders"],
        r"data.root: .*nowhere does not exist",
    ),
    "no root at all": (
        None,
        ["task=multitask/folders"],
        r"task.root: not set and data.root is null",
    ),
    "empty root": (
        lambda p: (p / "empty").mkdir() or p / "empty",
        ["task=multitask/folders"],
        r"empty: no task folders",
    ),
    "unknown task": (
        _good_multitask,
        ["task=multitask/folders", "task.tasks=[digits,klingon]"],
        r"task.tasks: unknown task folder 'klingon'; allowed: digits, letters",
    ),
    "corrupt image": (
        _corrupt,
        ["task=multitask/folders"],
        r"digits/c1/img001.jpg: not a readable image",
    ),
    "empty class folder": (_empty_class, ["task=multitask/folders"], r"letters/c9: no image files"),
    "one class": (_one_class, ["task=multitask/folders"], r"solo: 1 class folder \(only\)"),
    "inconsistent splits": (
        _mixed_layout,
        ["task=multitask/folders"],
        r"inconsistent layout: task folder 'split_task' has train/val/test folders but 'digits'",
    ),
    "split lacks a class": (
        _split_missing_class,
        ["task=multitask/folders"],
        r"t/test: lacks class 'b'",
    ),
    "images beside classes": (
        _loose_images,
        ["task=multitask/folders"],
        r"digits: image stray.png lies beside",
    ),
    "too few per class": (
        _good_multitask,
        ["task=multitask/folders", "task.min_images_per_class=5"],
        r"digits/c0: 4 images; each class folder needs at least 5",
    ),
    "bad image_size": (
        _good_multitask,
        ["task=multitask/folders", "task.image_size=[8,0]"],
        r"task.image_size: got \[8, 0\]",
    ),
    "office wrong layout": (
        _office_wrong,
        ["task=multitask/office31"],
        r"amazon/images: 20 class folders; Office-31 has 31 per domain",
    ),
    "office missing domain": (
        _office_missing_domain,
        ["task=multitask/office31"],
        r"office/dslr: Office-31 domain folder not found",
    ),
    "office unknown domain": (
        _office_wrong,
        ["task=multitask/office31", "task.domains=[amazon,clipart]"],
        r"task.domains: unknown Office-31 domain 'clipart'; allowed: amazon, dslr, webcam",
    ),
    "class too small for K+Q": (
        _small_class,
        ["task=meta/folders", "task.shots=2", "task.queries=2", "task.ways=2"],
        r"class03: class .class03. \(meta-\w+\) has 1 images; .* = 2 \+ 2 need 4 per class",
    ),
    "split by group on a flat tree": (
        _small_class,
        ["task=meta/folders", "task.split_by=group"],
        r"task.split_by: group needs the grouped layout",
    ),
    "unknown class in a list": (
        _unknown_class_in_list,
        ["task=meta/folders", "task.split_by=files", *SPLIT_TXT],
        r"val.txt line 2: class folder .*classXX does not exist",
    ),
    "split files without split_by": (
        _unknown_class_in_list,
        ["task=meta/folders", *SPLIT_TXT],
        r"task.split_files.train: set, but split_by=fraction",
    ),
    "csv names a missing image": (
        _mini_missing_file,
        ["task=meta/miniimagenet", "task.check_counts=false"],
        r"train.csv row 7: image 'n0000000100000002.jpg' not found",
    ),
    "csv bad header": (
        _mini_bad_header,
        ["task=meta/miniimagenet", "task.check_counts=false"],
        r"val.csv: header \['file', 'class'\]; expected filename,label",
    ),
    "csv escaping name": (
        _mini_escaping_name,
        ["task=meta/miniimagenet", "task.check_counts=false"],
        r"test.csv row 8: filename '../../etc/passwd' is not a plain file",
    ),
    "csv overlapping splits": (
        _mini_overlap,
        ["task=meta/miniimagenet", "task.check_counts=false"],
        r"test.csv: class 'n00000000' is also in .*train.csv",
    ),
    "miniimagenet counts": (
        miniimagenet_tree,
        ["task=meta/miniimagenet"],
        r"train.csv: 4 classes; miniImageNet's",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES), ids=list(BAD_CASES))
def test_bad_trees_give_one_line_errors_naming_the_place(tmp_path, case):
    make, overrides, pattern = BAD_CASES[case]
    args = list(overrides)
    if make is not None:
        args.append(f"data.root={make(tmp_path)}")
    with pytest.raises(UserError) as info:
        built(tmp_path, *args)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message


# ------------------------------------------------------------------ the documented commands


def documented_commands() -> list[list[str]]:
    """The `mtl train` lines of the "Image folders" section (other sections belong to others)."""
    text = (ROOT / "docs" / "data" / "own_data.md").read_text()
    section = text.split("\n## Image folders\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln.strip() for ln in section.splitlines() if ln.strip().startswith("mtl train ")]
    return [shlex.split(ln)[2:] for ln in lines]


def test_every_documented_command_runs_on_fabricated_trees(tmp_path):
    trees = {
        "/path/to/tree": multitask_tree(tmp_path / "tree"),
        "/path/to/presplit": tmp_path / "presplit",
        "/path/to/classes": meta_tree(tmp_path / "classes", classes=25, images=6),
        "/path/to/alphabets": tmp_path / "alphabets",
        "/path/to/office31": office31_tree(tmp_path / "office31"),
        "/path/to/OfficeHomeDataset_10072016": tmp_path / "officehome",
        "/path/to/miniimagenet": miniimagenet_tree(
            tmp_path / "mini", counts=(64, 16, 20), images=6
        ),
    }
    for task in ("a", "b"):
        for split in ("train", "val", "test"):
            write_classes(trees["/path/to/presplit"] / task / split, {"x": 2, "y": 2})
    for g in range(4):
        write_classes(trees["/path/to/alphabets"] / f"g{g}", {f"c{k}": 6 for k in range(5)})
    for domain in ("Art", "Clipart", "Product", "Real World"):
        write_classes(
            trees["/path/to/OfficeHomeDataset_10072016"] / domain, {f"k{i}": 3 for i in range(65)}
        )
    for split, names in {"train": range(15), "val": range(15, 20), "test": range(20, 25)}.items():
        (trees["/path/to/classes"] / f"{split}.txt").write_text(
            "\n".join(f"class{k:02d}" for k in names) + "\n"
        )
    commands = documented_commands()
    assert len(commands) >= 8
    for number, args in enumerate(commands):
        args = [str(a) for a in args]
        for placeholder, path in trees.items():
            args = [a.replace(placeholder, str(path)) for a in args]
        out = tmp_path / f"run{number}"
        cfg = compose(
            [*args, f"paths.output_dir={out}", f"data.cache_dir={tmp_path / 'cache'}",
             "trainer=debug", "device=cpu", "trainer.threads=1", "task.image_size=16"]
            + (META_TINY[:2] if "task=meta/" in " ".join(args) else [])
        )  # fmt: skip
        finite_summary(train(cfg))


def test_missing_pillow_gives_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import Image` now raises ImportError
    with pytest.raises(UserError, match=r"^reading a.png needs Pillow .*mtl_cli\[images\]'$"):
        decode_image(b"", "a.png", 8, 1)


def test_own_split_refuses_split_options_and_named_datasets_refuse_download(tmp_path):
    root = tmp_path / "tree"
    for split in ("train", "val", "test"):
        write_classes(root / "t" / split, {"a": 2, "b": 2})
    with pytest.raises(UserError, match=r"^task.split_fractions/split_seed: .* have no effect"):
        built(tmp_path, "task=multitask/folders", f"data.root={root}", "task.split_seed=3")
    office = office31_tree(tmp_path / "office", images=1)
    with pytest.raises(UserError, match=r"^data.download: Office-31 is not downloaded"):
        built(tmp_path, "task=multitask/office31", f"data.root={office}", "data.download=true")
