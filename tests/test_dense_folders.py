"""NYUv2 and Cityscapes in MTAN's preprocessed layout, on fabricated files in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl_cli.data.dense_resize import resize_depth, resize_labels, resize_normals
from mtl_cli.errors import UserError
from mtl_cli.tasks.dense.cityscapes import cityscapes_tasks
from mtl_cli.tasks.dense.nyuv2 import nyuv2_tasks

NYU = (288, 384)
CITY = (128, 256)


def _sample(rng, size, classes, normals=True):
    h, w = size
    label = rng.integers(-1, classes, size=(h, w)).astype(np.float32)
    depth = rng.uniform(0.5, 10.0, size=(h, w, 1)).astype(np.float32)
    depth[:4] = 0.0  # invalid rows, as in the real files
    out = {"image": rng.random((h, w, 3), dtype=np.float32), "depth": depth}
    if normals:
        normal = rng.normal(size=(h, w, 3)).astype(np.float32)
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        normal[:4] = 0.0
        out.update(label=label, normal=normal)
    else:
        out["label_7"] = label
    return out


def _fabricate(folder, size, classes, counts=None, normals=True):
    rng = np.random.default_rng(0)
    for split, count in (counts or {"train": 5, "val": 2}).items():
        for i in range(count):
            for modality, array in _sample(rng, size, classes, normals).items():
                path = folder / split / modality / f"{i}.npy"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, array)
    return folder


def _data(root=None, cache=None):
    return {"root": None if root is None else str(root), "download": False, "cache_dir": cache}


def _nyu(root, **overrides):
    options = dict(
        tasks=["segmentation", "depth", "normals"],
        image_size=None,
        val_fraction=0.1,
        split_seed=0,
        max_samples=None,
    )
    options.update(overrides)
    return nyuv2_tasks(**options, data=_data(root))


@pytest.fixture(scope="module")
def nyu_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    _fabricate(root / "nyuv2", NYU, 13)
    return root


def test_nyuv2_reads_the_mtan_layout(nyu_root):
    data = _nyu(nyu_root)
    assert data.task_names == ["segmentation", "depth", "normals"] and data.classes == 13
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 4, "val": 1, "test": 2}
    test = data.splits["test"]  # the official val folder is the test split
    folder = nyu_root / "nyuv2" / "val"
    image = np.load(folder / "image" / "1.npy")
    np.testing.assert_array_equal(test.x[1].numpy(), np.moveaxis(image, -1, 0))
    label = np.load(folder / "label" / "1.npy")
    assert test.targets["segmentation"].dtype == torch.int64
    np.testing.assert_array_equal(test.targets["segmentation"][1].numpy(), label.astype(int))
    depth = np.load(folder / "depth" / "1.npy")
    np.testing.assert_array_equal(test.targets["depth"][1, 0].numpy(), depth[..., 0])
    normal = np.load(folder / "normal" / "1.npy")
    np.testing.assert_array_equal(test.targets["normals"][1].numpy(), np.moveaxis(normal, -1, 0))
    assert test.x.shape == (2, 3, *NYU) and test.x.dtype == torch.float32
    assert data.info["root"] == str(nyu_root / "nyuv2")


def test_val_is_a_seeded_part_of_train(nyu_root):
    def images(data, split):
        return {bytes(x.numpy().tobytes()[:64]) for x in data.splits[split].x}

    first, again = _nyu(nyu_root, val_fraction=0.4), _nyu(nyu_root, val_fraction=0.4)
    assert len(first.splits["val"]) == 2 and len(first.splits["train"]) == 3
    assert images(first, "val") == images(again, "val")
    assert not images(first, "val") & images(first, "train")
    others = [images(_nyu(nyu_root, val_fraction=0.4, split_seed=s), "val") for s in range(1, 6)]
    assert any(o != images(first, "val") for o in others)


def test_max_samples_and_down_sampling(nyu_root):
    data = _nyu(nyu_root, image_size=[72, 96], max_samples=2, tasks=["depth", "normals"])
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 2, "val": 1, "test": 2}
    train = data.splits["train"]
    assert train.x.shape == (2, 3, 72, 96) and data.input_shape == (3, 72, 96)
    assert train.targets["depth"].shape == (2, 1, 72, 96)
    assert (train.targets["depth"][:, :, 0] == 0).all()  # 4 invalid rows -> the first row
    assert (train.targets["depth"][:, :, 1:] > 0).all()
    norms = train.targets["normals"][:, :, 1:].norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_search_order_env_then_cache_dir(tmp_path, monkeypatch, nyu_root):
    monkeypatch.setenv("MTL_DATA_DIR", str(nyu_root))
    assert _nyu(None).info["root"] == str(nyu_root / "nyuv2")
    monkeypatch.delenv("MTL_DATA_DIR")
    cached = _fabricate(tmp_path / "cache" / "nyuv2", NYU, 13, {"train": 2, "val": 1})
    data = nyuv2_tasks(["depth"], None, 0.5, 0, None, data=_data(cache=str(tmp_path / "cache")))
    assert data.info["root"] == str(cached)
    with pytest.raises(UserError, match="lorenmt/mtan"):
        nyuv2_tasks(["depth"], None, 0.1, 0, None, data=_data(tmp_path / "none", str(tmp_path)))


def test_cityscapes_segmentation_and_depth_only(tmp_path):
    _fabricate(tmp_path / "cityscapes", CITY, 7, {"train": 3, "val": 1}, normals=False)
    data = cityscapes_tasks(["segmentation", "depth"], None, 0.3, 0, None, data=_data(tmp_path))
    assert data.classes == 7 and data.outputs == [7, 1]
    assert data.splits["test"].targets["segmentation"].shape == (1, *CITY)
    with pytest.raises(UserError, match="task.tasks: invalid value 'normals'.*no 'normals'"):
        cityscapes_tasks(["normals"], None, 0.1, 0, None, data=_data(tmp_path))


def _save(path, array):
    np.save(path, array)


def _bad(kind):
    """(file to change, new content or None to delete, message expected)."""
    rng = np.random.default_rng(1)
    image = rng.random((*NYU, 3), dtype=np.float32)
    depth = np.ones((*NYU, 1), np.float32)
    label = np.zeros(NYU, np.float32)
    normal = np.zeros((*NYU, 3), np.float32)
    return {
        "missing depth file": ("train/depth/3.npy", None, "3.npy: missing"),
        "image wrong shape": ("train/image/0.npy", image[:100], r"shape \[100, 384, 3\]"),
        "image int dtype": ("val/image/1.npy", (image * 255).astype(np.uint8), "dtype uint8"),
        "image above 1": ("train/image/2.npy", image * 255, "expected RGB in"),
        "label out of range": ("train/label/1.npy", label + 13, "label 13 out of range"),
        "label not integer": ("train/label/1.npy", label + 0.5, "label 0.5 out of range"),
        "label below -1": ("val/label/0.npy", label - 2, "label -2 out of range"),
        "depth nan": ("train/depth/4.npy", np.where(depth > 0, np.nan, 0), "NaN or inf"),
        "depth negative": ("train/depth/0.npy", -depth, "negative depth"),
        "depth all zero": ("train/depth/0.npy", 0 * depth, "no positive depth"),
        "depth wrong layout": ("train/depth/0.npy", depth[..., 0], r"shape \[288, 384\]"),
        "normal inf": ("val/normal/0.npy", np.full_like(normal, np.inf), "NaN or inf"),
        "normal above 1": ("val/normal/0.npy", normal + 1.5, "expected in"),
        "object array": ("train/label/2.npy", np.array([{"a": 1}], dtype=object), "not a readable"),
        "bad file name": ("train/image/a.npy", image, "is not <integer>.npy"),
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "missing depth file", "image wrong shape", "image int dtype", "image above 1",
        "label out of range", "label not integer", "label below -1", "depth nan",
        "depth negative", "depth all zero", "depth wrong layout", "normal inf", "normal above 1",
        "object array", "bad file name",
    ],
)  # fmt: skip
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, kind):
    root = _fabricate(tmp_path / "nyuv2", NYU, 13, {"train": 5, "val": 2})
    relative, content, message = _bad(kind)
    path = root / relative
    if content is None:
        path.unlink()
    else:
        np.save(path, content, allow_pickle=True)
    with pytest.raises(UserError, match=message) as caught:
        _nyu(tmp_path)
    text = str(caught.value)
    assert str(path) in text and "\n" not in text


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"image_size": [300, 384]}, "task.image_size"),
        ({"image_size": [144]}, "task.image_size"),
        ({"val_fraction": 0.0}, "task.val_fraction"),
        ({"max_samples": 0}, "task.max_samples"),
        ({"tasks": ["segmentation", "segmentation"]}, "more than once"),
    ],
)
def test_bad_options(nyu_root, overrides, message):
    with pytest.raises(UserError, match=message):
        _nyu(nyu_root, **overrides)


def test_valid_aware_down_sampling_by_hand():
    # 4x4 -> 2x2; 0 marks invalid depth.
    depth = torch.tensor(
        [[1.0, 3.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [4.0, 4.0, 5.0, 0.0], [4.0, 4.0, 0.0, 7.0]]
    )[None, None]
    expected = torch.tensor([[(1 + 3 + 2) / 3, 0.0], [4.0, (5 + 7) / 2]])
    torch.testing.assert_close(resize_depth(depth, (2, 2))[0, 0], expected)
    normals = torch.zeros(1, 3, 4, 4)
    normals[0, 0, 0, 0] = 1.0  # top-left block: (1,0,0) and (0,1,0) -> (1,1,0)/sqrt 2
    normals[0, 1, 1, 1] = 1.0
    normals[0, 2, 2:, 2:] = -1.0  # bottom-right block: all (0,0,-1)
    out = resize_normals(normals, (2, 2))[0]
    s = 2**-0.5
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([s, s, 0.0]))
    torch.testing.assert_close(out[:, 1, 1], torch.tensor([0.0, 0.0, -1.0]))
    assert (out[:, 0, 1] == 0).all() and (out[:, 1, 0] == 0).all()  # no valid pixel: invalid
    labels = torch.tensor([[[0, 1, 2, 3], [4, 5, 6, 7], [-1, 9, 10, 11], [12, 13, 14, 15]]])
    assert resize_labels(labels, (2, 2)).tolist() == [[[0, 2], [-1, 10]]]
