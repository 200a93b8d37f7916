"""Fashion-MNIST IDX reading and search, checksummed downloads, MultiFashion and mosaics."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from mtl_cli.data import fashion_mnist as fm
from mtl_cli.data.download import download
from mtl_cli.data.fashion_mosaic import make_mosaic
from mtl_cli.data.multifashion import area_matrix, area_resize, make_multifashion
from tests.fakes import idx_bytes

STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def fake_fashion(n_train: int = 7, n_test: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train).astype(np.int64),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test).astype(np.int64),
    }


def write_fashion(directory: Path, data: dict[str, np.ndarray], gz_keys=("train_images",)) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in STEMS.items():
        write_idx(directory / stem, data[key], gz=key in gz_keys)


@pytest.fixture
def no_system_data(tmp_path, monkeypatch):
    """Hide the Debian directory, $MTL_DATA_DIR and the user cache from the search."""
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.delenv("MTL_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


# ---------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_raw_and_gzip(tmp_path, gz):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    path = write_idx(tmp_path / "imgs", images, gz=gz)
    out = fm.read_idx(path, (28, 28))
    assert out.dtype == np.uint8 and out.shape == (3, 28, 28)
    np.testing.assert_array_equal(out, images)


def test_read_idx_rejects_bad_magic_naming_the_file(tmp_path):
    path = tmp_path / "bad-idx"
    data = bytearray(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    data[2] = 0x0D  # float data type code, not unsigned bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bad-idx: bad IDX magic 0x00000d03"):
        fm.read_idx(path, (28, 28))


def test_read_idx_rejects_truncated_raw_file(tmp_path):
    path = tmp_path / "short-idx"
    path.write_bytes(idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-10])
    with pytest.raises(ValueError, match=r"short-idx: .*truncated"):
        fm.read_idx(path, (28, 28))


def test_read_idx_rejects_truncated_gzip(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.ones((4, 28, 28), np.uint8)))[:-20])
    with pytest.raises(ValueError, match=r"short.gz: corrupt or truncated gzip"):
        fm.read_idx(path)


def test_read_idx_rejects_wrong_item_shape_and_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "odd", np.zeros((2, 27, 28), np.uint8), gz=False)
    with pytest.raises(ValueError, match=r"odd: IDX dims \(2, 27, 28\)"):
        fm.read_idx(path, (28, 28))
    path.write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8)) + b"xx")
    with pytest.raises(ValueError, match="trailing data"):
        fm.read_idx(path, (28, 28))


# ---------------------------------------------------------------- search and load


def test_load_from_root_mixes_gz_and_raw(tmp_path, no_system_data):
    data = fake_fashion()
    write_fashion(tmp_path / "fm", data, gz_keys=("train_images", "test_labels"))
    out = fm.load_fashion_mnist(root=str(tmp_path / "fm"))
    assert set(out) == set(STEMS)
    for key, value in data.items():
        np.testing.assert_array_equal(out[key], value)
    assert out["train_labels"].dtype == np.int64 and out["train_images"].dtype == np.uint8


def test_env_subdirectory_is_searched(tmp_path, no_system_data, monkeypatch):
    data = fake_fashion(n_train=5)
    write_fashion(tmp_path / "env" / "fashion-mnist", data)
    monkeypatch.setenv("MTL_DATA_DIR", str(tmp_path / "env"))
    assert len(fm.load_fashion_mnist()["train_labels"]) == 5


def test_root_comes_before_env(tmp_path, no_system_data, monkeypatch):
    write_fashion(tmp_path / "root", fake_fashion(n_train=4))
    write_fashion(tmp_path / "env", fake_fashion(n_train=6))
    monkeypatch.setenv("MTL_DATA_DIR", str(tmp_path / "env"))
    assert len(fm.load_fashion_mnist(root=str(tmp_path / "root"))["train_labels"]) == 4


def test_missing_dataset_error_lists_paths_and_remedies(tmp_path, no_system_data):
    with pytest.raises(FileNotFoundError) as info:
        fm.load_fashion_mnist(root=str(tmp_path / "empty"))
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "empty") in message and "no-debian" in message
    assert "dataset-fashion-mnist" in message and "data.download=true" in message


def test_label_out_of_range_is_refused(tmp_path, no_system_data):
    data = fake_fashion()
    data["test_labels"][0] = 10
    write_fashion(tmp_path / "fm", data)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: label 10 out of range"):
        fm.load_fashion_mnist(root=str(tmp_path / "fm"))


def test_image_label_count_mismatch_is_refused(tmp_path, no_system_data):
    data = fake_fashion()
    data["train_labels"] = data["train_labels"][:-1]
    write_fashion(tmp_path / "fm", data)
    with pytest.raises(ValueError, match="train split has 7 images but 6 labels"):
        fm.load_fashion_mnist(root=str(tmp_path / "fm"))


def _mirror(tmp_path: Path, data: dict[str, np.ndarray]) -> tuple[str, dict]:
    """A file:// mirror holding the four .gz files, and their (md5, sha256)."""
    mirror = tmp_path / "mirror"
    write_fashion(mirror, data, gz_keys=tuple(STEMS))
    checksums = {}
    for stem in STEMS.values():
        blob = (mirror / f"{stem}.gz").read_bytes()
        checksums[f"{stem}.gz"] = (hashlib.md5(blob).hexdigest(), hashlib.sha256(blob).hexdigest())
    return mirror.as_uri() + "/", checksums


def test_download_true_fetches_into_root(tmp_path, no_system_data, monkeypatch):
    data = fake_fashion()
    url, checksums = _mirror(tmp_path, data)
    monkeypatch.setattr(fm, "MIRRORS", ("file:///nonexistent-mirror/", url))
    monkeypatch.setattr(fm, "CHECKSUMS", checksums)
    out = fm.load_fashion_mnist(root=str(tmp_path / "dl"), download=True)
    np.testing.assert_array_equal(out["test_images"], data["test_images"])
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == sorted(checksums)


def test_download_true_with_wrong_checksum_leaves_nothing(tmp_path, no_system_data, monkeypatch):
    url, checksums = _mirror(tmp_path, fake_fashion())
    name = "train-images-idx3-ubyte.gz"
    checksums[name] = ("0" * 32, checksums[name][1])
    monkeypatch.setattr(fm, "MIRRORS", (url,))
    monkeypatch.setattr(fm, "CHECKSUMS", checksums)
    with pytest.raises(ValueError, match=rf"{name} .*md5 mismatch: expected 0{{32}}"):
        fm.load_fashion_mnist(root=str(tmp_path / "dl"), download=True)
    assert not (tmp_path / "dl" / name).exists()
    assert not [p for p in (tmp_path / "dl").iterdir() if p.name.endswith(".part")]


def test_official_checksum_table_is_complete():
    assert set(fm.CHECKSUMS) == {f"{stem}.gz" for stem in STEMS.values()}
    for md5, sha256 in fm.CHECKSUMS.values():
        assert len(md5) == 32 and len(sha256) == 64
    assert fm.CHECKSUMS["train-images-idx3-ubyte.gz"][0] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert len(fm.CLASSES) == 10 and fm.CLASSES[9] == "Ankle boot"


@pytest.mark.skipif(not fm.DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist absent")
def test_real_debian_files(monkeypatch):
    monkeypatch.delenv("MTL_DATA_DIR", raising=False)
    data = fm.load_fashion_mnist_dir(fm.DEBIAN_DIR)
    assert data["train_images"].shape == (60000, 28, 28)
    assert data["test_images"].shape == (10000, 28, 28)
    for split in ("train", "test"):
        labels = data[f"{split}_labels"]
        assert labels.min() == 0 and labels.max() == 9
        assert np.all(np.bincount(labels) == len(labels) // 10)  # balanced classes


# ---------------------------------------------------------------- download()


def test_download_file_url_good_and_bad_checksums(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"omniglot and fashion" * 1000)
    blob = source.read_bytes()
    md5, sha = hashlib.md5(blob).hexdigest(), hashlib.sha256(blob).hexdigest()
    dest = download(source.as_uri(), tmp_path / "out" / "copy.bin", sha256=sha, md5=md5)
    assert dest.read_bytes() == blob

    bad = "f" * 64
    with pytest.raises(ValueError) as info:
        download(source.as_uri(), tmp_path / "out" / "other.bin", sha256=bad)
    assert f"other.bin (from {source.as_uri()}): sha256 mismatch: expected {bad}, got {sha}" == (
        str(info.value)
    )
    with pytest.raises(ValueError, match=f"md5 mismatch: expected {'0' * 32}, got {md5}"):
        download(source.as_uri(), tmp_path / "out" / "copy.bin", md5="0" * 32)
    assert dest.read_bytes() == blob  # a failed download leaves the old file alone
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["copy.bin"]


# ---------------------------------------------------------------- area resampling


def test_area_matrix_known_answers():
    np.testing.assert_allclose(area_matrix(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    np.testing.assert_allclose(area_matrix(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    weights = area_matrix(36, 28)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights.sum(axis=0), 28 / 36)  # every input pixel counts equally


def test_area_resize_averages_blocks_and_keeps_mean():
    image = np.array([[[0, 100, 10, 10], [200, 100, 30, 50], [7, 7, 0, 0], [9, 9, 0, 4]]], np.uint8)
    np.testing.assert_array_equal(area_resize(image, 2), [[[100, 25], [8, 1]]])
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (5, 36, 36), dtype=np.uint8)
    small = area_resize(big, 28)
    assert small.shape == (5, 28, 28)
    np.testing.assert_allclose(small.mean(axis=(1, 2)), big.mean(axis=(1, 2)), atol=0.6)


# ---------------------------------------------------------------- MultiFashion


def constant_pool(per_class: int = 3, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Items whose every pixel is (class + 1) * 20: the class is readable from any pixel."""
    labels = np.repeat(np.arange(num_classes), per_class)
    images = np.broadcast_to(
        ((labels + 1) * 20).astype(np.uint8)[:, None, None], (len(labels), 28, 28)
    )
    return np.ascontiguousarray(images), labels


def test_multifashion_places_items_in_corners_and_merges_by_max():
    images, labels = constant_pool()
    out = make_multifashion(images, labels, n=200, seed=3, out_size=36, max_shift=0)
    x, left, right = out["x"], out["y_left"], out["y_right"]
    assert x.shape == (200, 36, 36) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:, 0, 0], (left + 1) * 20)  # top-left corner: left only
    np.testing.assert_array_equal(x[:, 35, 35], (right + 1) * 20)
    np.testing.assert_array_equal(x[:, 20, 20], (np.maximum(left, right) + 1) * 20)  # overlap
    np.testing.assert_array_equal(x[:, 0, 35], 0)  # the other two corners stay empty
    np.testing.assert_array_equal(x[:, 35, 0], 0)


def test_multifashion_items_have_different_classes_and_cover_all():
    images, labels = constant_pool()
    out = make_multifashion(images, labels, n=3000, seed=0)
    assert np.all(out["y_left"] != out["y_right"])
    assert out["x"].shape == (3000, 28, 28) and out["y_left"].dtype == np.int64
    counts = np.bincount(out["y_left"], minlength=10)
    assert counts.min() > 200  # ~300 each: left items are uniform over the pool


def test_multifashion_shifts_are_uniform_in_0_to_max_shift():
    images, labels = constant_pool()
    out = make_multifashion(images, labels, n=2000, seed=1, out_size=36, max_shift=4)
    nonzero = out["x"] > 0
    rows, cols = nonzero.any(axis=2), nonzero.any(axis=1)
    first_row = rows.argmax(axis=1)  # top-left item's dy
    last_col = 35 - cols[:, ::-1].argmax(axis=1)  # bottom-right item's right edge
    assert set(first_row.tolist()) == {0, 1, 2, 3, 4}
    assert set((35 - last_col).tolist()) == {0, 1, 2, 3, 4}


def test_multifashion_is_deterministic_per_seed():
    images, labels = constant_pool()
    a = make_multifashion(images, labels, n=50, seed=7)
    b = make_multifashion(images, labels, n=50, seed=7)
    c = make_multifashion(images, labels, n=50, seed=8)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["y_left"], c["y_left"])


def test_multifashion_rejects_bad_arguments():
    images, labels = constant_pool()
    with pytest.raises(ValueError, match="size: 30 cannot hold a 28x28 item shifted by up to 4"):
        make_multifashion(images, labels, n=5, seed=0, size=30)
    with pytest.raises(ValueError, match="at least two classes"):
        make_multifashion(images, np.zeros_like(labels), n=5, seed=0)
    with pytest.raises(ValueError, match="labels: expected shape"):
        make_multifashion(images, labels[:-1], n=5, seed=0)


# ---------------------------------------------------------------- mosaic


def test_mosaic_labels_match_the_cells_drawn():
    images, labels = constant_pool()
    out = make_mosaic(images, labels, n=500, seed=2, grid=2, items=(1, 3), out_size=None)
    x, y = out["x"], out["y"]
    assert x.shape == (500, 56, 56) and y.shape == (500, 10) and y.dtype == bool
    cells = x.reshape(500, 2, 28, 2, 28).transpose(0, 1, 3, 2, 4).reshape(500, 4, 28 * 28)
    values = cells[:, :, 0]  # every pixel of a cell equals its item's value (or 0 if empty)
    assert np.all(cells == values[..., None])
    filled = values > 0
    assert filled.sum(axis=1).min() == 1 and filled.sum(axis=1).max() == 3
    expected = np.zeros((500, 10), bool)
    rows, slots = np.nonzero(filled)
    expected[rows, values[rows, slots] // 20 - 1] = True
    np.testing.assert_array_equal(y, expected)


def test_mosaic_item_range_extremes_and_resize():
    images, labels = constant_pool()
    empty = make_mosaic(images, labels, n=20, seed=0, items=(0, 0))
    assert not empty["x"].any() and not empty["y"].any()
    full = make_mosaic(images, labels, n=20, seed=0, items=(4, 4), out_size=None)
    cells = full["x"].reshape(20, 2, 28, 2, 28)[:, :, 0, :, 0]
    assert np.all(cells > 0)
    assert make_mosaic(images, labels, n=4, seed=0, grid=3)["x"].shape == (4, 28, 28)
    with pytest.raises(ValueError, match=r"items: range \(1, 5\) invalid for a 2x2 grid"):
        make_mosaic(images, labels, n=4, seed=0, items=(1, 5))


# ---------------------------------------------------------------- cached split builders


def test_multifashion_split_builder_uses_its_pool_and_caches(tmp_path, no_system_data):
    from mtl_cli.data.multifashion import multifashion

    data = fake_fashion(n_train=40, n_test=20)
    data["test_labels"] = np.array([3, 8] * 10)  # the test pool holds only classes 3 and 8
    write_fashion(tmp_path / "fm", data)
    kwargs = {"root": str(tmp_path / "fm"), "cache_dir": str(tmp_path / "cache")}
    test = multifashion("test", n=64, seed=1, **kwargs)
    assert test["x"].shape == (64, 28, 28)
    assert set(test["y_left"].tolist()) | set(test["y_right"].tolist()) == {3, 8}
    for path in (tmp_path / "fm").iterdir():
        path.unlink()  # a second call must come from the cache, not the (now gone) files
    again = multifashion("test", n=64, seed=1, **kwargs)
    for key in test:
        np.testing.assert_array_equal(again[key], test[key])
    with pytest.raises(ValueError, match="split: unknown split 'val'; allowed: train, test"):
        multifashion("val", n=4, **kwargs)


def test_fashion_mosaic_split_builder(tmp_path, no_system_data):
    from mtl_cli.data.fashion_mosaic import fashion_mosaic

    write_fashion(tmp_path / "fm", fake_fashion(n_train=30))
    out = fashion_mosaic(
        "train", n=16, seed=0, root=str(tmp_path / "fm"), cache_dir=str(tmp_path / "c"), grid=3
    )
    assert out["x"].shape == (16, 28, 28) and out["y"].shape == (16, 10)
    assert out["y"].any(axis=1).all()  # items=(1, 4): every mosaic shows at least one item
