"""CelebA (folder and zip) and CIFAR-FS/FC100 (tarball, restricted unpickler) on fabricated files
in the real formats: known layouts, real training runs, and refused hostile inputs."""

from __future__ import annotations

import io
import math
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mtl_cli.config import compose
from mtl_cli.data.celeba import NUM_ATTRIBUTES
from mtl_cli.data.cifar100 import load_pickle, read_cifar100_archive
from mtl_cli.errors import UserError
from mtl_cli.run import train
from mtl_cli.tasks.meta import cifar_fewshot as fs

COMMON = ["trainer=debug", "device=cpu", "trainer.threads=1", "trainer.diagnostics=false"]
ATTRIBUTES = [f"Attr_{i}" for i in range(NUM_ATTRIBUTES)]
FINE = [*fs.CIFAR_FS_TRAIN, *fs.CIFAR_FS_VAL, *fs.CIFAR_FS_TEST]
COARSE = [*fs.FC100_TRAIN, *fs.FC100_VAL, *fs.FC100_TEST]


# ------------------------------------------------------------------ CelebA


def jpeg(value: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (178, 218), (value, value, value)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_celeba(folder: Path, n: int = 12, as_zip: bool = False, attr_names=ATTRIBUTES) -> Path:
    """Image i: gray level 20*i; attribute k of image i is +1 when (i + k) is even."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    lines = [str(n), " ".join(attr_names)]
    for i, name in enumerate(files):
        lines.append(name + " " + " ".join("1" if (i + k) % 2 == 0 else "-1"
                                           for k in range(NUM_ATTRIBUTES)))  # fmt: skip
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    splits = [0] * (n - 4) + [1, 1, 2, 2]
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{name} {s}\n" for name, s in zip(files, splits, strict=True))
    )
    if as_zip:
        with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as archive:
            for i, name in enumerate(files):
                archive.writestr(f"img_align_celeba/{name}", jpeg(20 * i))
    else:
        (folder / "img_align_celeba").mkdir()
        for i, name in enumerate(files):
            (folder / "img_align_celeba" / name).write_bytes(jpeg(20 * i))
    return folder


@pytest.mark.parametrize("as_zip", [False, True])
def test_celeba_reads_labels_partition_and_images(tmp_path, as_zip):
    from mtl_cli.tasks.multilabel.celeba import celeba_attribute_tasks

    write_celeba(tmp_path / "celeba", as_zip=as_zip)
    data = celeba_attribute_tasks(
        attributes=["Attr_0", "Attr_3"], image_size=16, center_crop=True, max_samples=None,
        pos_weight="auto", threshold=0.5,
        data={"root": str(tmp_path), "cache_dir": str(tmp_path / "cache")},
    )  # fmt: skip
    assert data.task_names == ["Attr_0", "Attr_3"] and data.input_shape == (3, 16, 16)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [8, 2, 2]
    # image i: Attr_0 = 1 iff i even, Attr_3 = 1 iff i odd; val holds images 8, 9
    assert data.splits["val"].y.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    gray = data.splits["test"].x.mean(dim=(1, 2, 3)) * 255  # images 10 and 11: gray 200, 220
    assert gray.tolist() == pytest.approx([200, 220], abs=2)
    assert data.info["pos_weight"] == "auto"


def test_celeba_trains_with_max_samples(tmp_path):
    root = write_celeba(tmp_path / "celeba", n=14, as_zip=True)
    out = train(compose([*COMMON, "task=multilabel/celeba", "task.image_size=16",
                         "task.max_samples=6", "task.attributes=[Attr_1,Attr_2,Attr_5]",
                         "backbone=conv", "backbone.channels=[4,8]", "backbone.fc_features=16",
                         f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
                         f"paths.output_dir={tmp_path / 'run'}"]))  # fmt: skip
    assert out["status"] == "finished" and out["tasks"] == ["Attr_1", "Attr_2", "Attr_5"]
    assert all(math.isfinite(v) for v in out["test"].values() if isinstance(v, float))


# ------------------------------------------------------------------ CIFAR-100


def cifar_pickles(per_class_train: int = 3, per_class_test: int = 1) -> dict[str, bytes]:
    """The real layout: dicts with bytes keys; fine class c has pixels c (train) / 100 + c (test);
    fine class c belongs to superclass c // 5."""

    def part(per_class: int, offset: int) -> bytes:
        fine = [c for _ in range(per_class) for c in range(100)]
        data = np.array([np.full(3072, offset + c, dtype=np.uint8) for c in fine])
        return pickle.dumps({b"data": data, b"fine_labels": fine,
                             b"coarse_labels": [c // 5 for c in fine]}, protocol=4)  # fmt: skip

    meta = {b"fine_label_names": [n.encode() for n in FINE],
            b"coarse_label_names": [n.encode() for n in COARSE]}  # fmt: skip
    return {"train": part(per_class_train, 0), "test": part(per_class_test, 100),
            "meta": pickle.dumps(meta, protocol=4)}  # fmt: skip


def write_cifar(folder: Path, members: dict[str, bytes] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cifar-100-python.tar.gz"
    members = members if members is not None else {
        f"cifar-100-python/{k}": v for k, v in cifar_pickles().items()
    }  # fmt: skip
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_cifar_archive_groups_images_by_class(tmp_path):
    arrays = read_cifar100_archive(write_cifar(tmp_path))
    images = arrays["images"]
    assert images.shape == (100, 4, 3, 32, 32) and images.dtype == np.uint8
    assert images[7, :, 0, 0, 0].tolist() == [7, 7, 7, 107]  # 3 train then 1 test
    assert arrays["fine_names"][0] == "dolphin" and arrays["coarse"][12] == 2
    assert len(set(fs.CIFAR_FS_TRAIN)) == 64 and len(set(fs.CIFAR_FS_VAL)) == 16
    assert len(set(FINE)) == 100 and len(set(COARSE)) == 20


@pytest.mark.parametrize(("task", "classes"), [("meta/cifar_fs", {"train": 64, "val": 16, "test": 20}),
                                               ("meta/fc100", {"train": 60, "val": 20, "test": 20})])  # fmt: skip
def test_cifar_few_shot_splits_and_training(tmp_path, task, classes):
    import torch

    from mtl_cli.run import build_family

    root = write_cifar(tmp_path / "data").parent
    cfg = compose([*COMMON, f"task={task}", "task.ways=5", "task.shots=1", "task.queries=1",
                   "task.eval_episodes=4", "task.meta_batch_size=2", "model=meta/protonet",
                   "backbone=conv4", "backbone.hidden_channels=4", f"data.root={root}",
                   f"data.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'run'}"])  # fmt: skip
    info = build_family(cfg, torch.device("cpu")).data.info
    assert info["classes"] == classes
    splits = {k: set(v) for k, v in info["splits"].items()}
    assert not splits["train"] & splits["val"] and not splits["train"] & splits["test"]
    if task == "meta/fc100":  # whole superclasses per split: fine c is in superclass c // 5
        supers = {k: {FINE.index(n) // 5 for n in v} for k, v in splits.items()}
        assert {COARSE[s] for s in supers["test"]} == set(fs.FC100_TEST)
    out = train(cfg)
    assert out["status"] == "finished" and 0.0 <= out["test"]["accuracy"] <= 1.0


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code_and_admits_arrays():
    with pytest.raises(ValueError, match=r"posix\.system|os\.system|nt\.system"):
        load_pickle(pickle.dumps({b"data": _Evil()}), "evil")
    arrays = load_pickle(pickle.dumps({b"data": np.arange(6, dtype=np.uint8)}), "ok")
    assert arrays["data"].tolist() == list(range(6))


# ------------------------------------------------------------------ hostile or broken inputs


def _bad_cifar(tmp_path, case):
    good = {f"cifar-100-python/{k}": v for k, v in cifar_pickles(1, 1).items()}
    if case == "evil_pickle":
        good["cifar-100-python/meta"] = pickle.dumps({b"x": _Evil()})
    elif case == "escaping_member":
        good["../evil"] = b"x"
    elif case == "absolute_member":
        good["/etc/evil"] = b"x"
    elif case == "missing_test":
        del good["cifar-100-python/test"]
    return write_cifar(tmp_path, good)


@pytest.mark.parametrize(("case", "expected"), [
    ("evil_pickle", ["cifar-100-python/meta", "system", "not allowed"]),
    ("escaping_member", ["'../evil'", "unsafe member path"]),
    ("absolute_member", ["'/etc/evil'", "unsafe member path"]),
    ("missing_test", ["missing member", "cifar-100-python/test"]),
])  # fmt: skip
def test_bad_cifar_archives_are_refused_naming_the_member(tmp_path, case, expected):
    path = _bad_cifar(tmp_path, case)
    with pytest.raises(ValueError) as info:
        read_cifar100_archive(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for part in expected:
        assert part in message, message


def _bad_celeba(tmp_path, case) -> Path:
    if case == "wrong_attribute_count":
        return write_celeba(tmp_path / "celeba", attr_names=ATTRIBUTES[:39])
    root = write_celeba(tmp_path / "celeba", as_zip=case.startswith("zip"))
    if case == "zip_member_outside":
        with zipfile.ZipFile(root / "img_align_celeba.zip", "a") as archive:
            archive.writestr("other/000001.jpg", b"x")
    elif case == "zip_member_escaping":
        with zipfile.ZipFile(root / "img_align_celeba.zip", "a") as archive:
            archive.writestr("img_align_celeba/../../evil.jpg", b"x")
    elif case == "bad_value":
        text = (root / "list_attr_celeba.txt").read_text().replace(" -1", " 0", 1)
        (root / "list_attr_celeba.txt").write_text(text)
    elif case == "missing_image":
        (root / "img_align_celeba" / "000003.jpg").unlink()
    return root


@pytest.mark.parametrize(("case", "expected"), [
    ("wrong_attribute_count", ["list_attr_celeba.txt", "line 2", "39 attribute names"]),
    ("zip_member_outside", ["img_align_celeba.zip", "'other/000001.jpg'", "outside"]),
    ("zip_member_escaping", ["img_align_celeba.zip", "../../evil.jpg", "unsafe member path"]),
    ("bad_value", ["list_attr_celeba.txt", "line 3", "1 or -1"]),
    ("missing_image", ["000003.jpg", "not found"]),
])  # fmt: skip
def test_bad_celeba_files_fail_in_one_line(tmp_path, case, expected):
    from mtl_cli.tasks.multilabel.celeba import celeba_attribute_tasks

    root = _bad_celeba(tmp_path, case)
    with pytest.raises(UserError) as info:
        celeba_attribute_tasks(attributes=[], image_size=8, center_crop=True, max_samples=None,
                               pos_weight=None, threshold=0.5,
                               data={"root": str(root), "cache_dir": str(tmp_path / "c")})  # fmt: skip
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message


def test_celeba_unknown_attribute_and_missing_data(tmp_path):
    from mtl_cli.tasks.multilabel.celeba import celeba_attribute_tasks

    root = write_celeba(tmp_path / "celeba")
    options = dict(image_size=8, center_crop=False, max_samples=None, pos_weight=None,
                   threshold=0.5)  # fmt: skip
    with pytest.raises(UserError, match="task.attributes: unknown 'Smiling'"):
        celeba_attribute_tasks(attributes=["Smiling"], **options,
                               data={"root": str(root), "cache_dir": str(tmp_path / "c")})  # fmt: skip
    with pytest.raises(UserError, match="CelebA .* not found in"):
        celeba_attribute_tasks(attributes=[], **options,
                               data={"root": str(tmp_path / "nowhere"), "cache_dir": None})  # fmt: skip
