"""Rasteriser, disk cache and the cached character x drawer image array."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mtl_cli.data.hershey_images as images_module
from mtl_cli.data import cache
from mtl_cli.data.cache import cache_dir, cached_arrays
from mtl_cli.data.hershey import load_alphabets
from mtl_cli.data.hershey_images import DRAWER_SPLITS, drawer_split, hershey_images, sample_seed
from mtl_cli.data.render import RenderParams, render

STILL = dict(rotation_deg=0.0, shear=0.0, scale=(1.0, 1.0), translate=0.0, point_jitter=0.0)
HORIZONTAL = (np.array([[0.0, 0.0], [10.0, 0.0]], dtype=np.float32),)
SMALL = RenderParams(size=16, drawers=4)


def _glyphs(n: int = 3) -> list[tuple[np.ndarray, ...]]:
    return [g.strokes for g in load_alphabets(["markers"])["markers"][:n]]


def test_shape_dtype_and_range():
    images = render(_glyphs(3), np.array([1, 2, 3]), RenderParams())
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0


def test_horizontal_segment_is_a_bar_on_the_centre_rows():
    # Box (10 x 0 units) is centred at y = 14 px and spans 0.72 * 28 = 20.16 px in x.
    # Pixel centres y = 13.5 and 14.5 lie 0.5 px away: ink = w/2 + 0.5 - 0.5 = w/2.
    thin = render([HORIZONTAL], np.array([0]), RenderParams(**STILL, stroke_width=(1.0, 1.0)))[0]
    assert (thin[13, 5:23] == 128).all()  # rint(0.5 * 255)
    rows = np.flatnonzero(thin.any(axis=1))
    assert rows.tolist() == [13, 14]
    cols = np.flatnonzero(thin.any(axis=0))
    assert cols.tolist() == list(range(3, 25))  # endpoints at x = 3.92 and 24.08
    thick = render([HORIZONTAL], np.array([0]), RenderParams(**STILL, stroke_width=(2.0, 2.0)))[0]
    assert (thick[13:15, 5:23] == 255).all() and not thick[:13].any() and not thick[15:].any()


def test_single_point_renders_a_dot():
    dot = (np.array([[3.0, 4.0]], dtype=np.float32),)
    image = render([dot], np.array([0]), RenderParams(**STILL, stroke_width=(2.0, 2.0)))[0]
    assert np.flatnonzero(image.any(axis=1)).tolist() == [13, 14]
    assert image[13:15, 13:15].min() > 0


def test_same_seed_same_bytes_different_seed_different_image():
    glyphs = _glyphs(2)
    a = render(glyphs, np.array([7, 8]), RenderParams())
    b = render(glyphs, np.array([7, 8]), RenderParams())
    c = render(glyphs, np.array([9, 10]), RenderParams())
    assert a.tobytes() == b.tobytes()
    assert all(not np.array_equal(a[i], c[i]) for i in range(2))


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError, match="seeds: "):
        render(_glyphs(2), np.array([1]), RenderParams())
    with pytest.raises(ValueError, match=r"render\.scale: got \(1\.2, 0\.9\); allowed"):
        RenderParams(scale=(1.2, 0.9))
    with pytest.raises(ValueError, match="glyph_strokes: "):
        render([()], np.array([1]), RenderParams())


def test_drawer_splits():
    assert DRAWER_SPLITS == {
        "train": tuple(range(14)),
        "val": (14, 15, 16),
        "test": (17, 18, 19),
    }
    for drawers in (3, 4, 7, 10, 33):
        parts = [drawer_split(s, drawers) for s in ("train", "val", "test")]
        assert all(len(p) >= 1 for p in parts)
        assert np.concatenate(parts).tolist() == list(range(drawers))
    with pytest.raises(ValueError, match="split: got 'dev'; allowed: train, val, test"):
        drawer_split("dev", 20)


def test_sample_seed_is_stable_and_distinct():
    assert sample_seed(0, "markers", "markers", 33, 0) == sample_seed(
        0, "markers", "markers", 33, 0
    )
    seeds = {sample_seed(s, "a", "f", i, d) for s in (0, 1) for i in (1, 2) for d in (0, 1)}
    assert len(seeds) == 8
    assert 0 <= sample_seed(0, "a", "f", 1, 0) < 2**63


def test_images_drawers_differ_and_metadata(tmp_path):
    data = hershey_images(["markers", "astrology_zodiac"], SMALL, seed=0, cache_dir=str(tmp_path))
    n_markers = len(load_alphabets(["markers"])["markers"])
    assert data.images.shape == (n_markers + 10, 4, 16, 16)
    assert data.alphabet.dtype == np.int64
    assert data.alphabet.tolist() == [0] * n_markers + [1] * 10
    assert data.alphabet_names == ["markers", "astrology_zodiac"]
    assert data.char_names[0] == "markers/markers#33"
    assert not np.array_equal(data.images[0, 0], data.images[0, 1])
    assert (data.images.reshape(len(data.images), 4, -1).max(-1) > 0).all()


def test_images_same_seed_identical_without_cache_other_seed_differs(tmp_path):
    a = hershey_images(["markers"], SMALL, seed=3, cache_dir=str(tmp_path / "a"))
    b = hershey_images(["markers"], SMALL, seed=3, cache_dir=str(tmp_path / "b"))
    c = hershey_images(["markers"], SMALL, seed=4, cache_dir=str(tmp_path / "a"))
    assert a.images.tobytes() == b.images.tobytes()
    assert not np.array_equal(a.images, c.images)


def test_second_call_hits_the_cache(tmp_path, monkeypatch):
    first = hershey_images(["markers"], SMALL, seed=0, cache_dir=str(tmp_path))

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again despite a cache entry")

    monkeypatch.setattr(images_module, "render", no_render)
    second = hershey_images(["markers"], SMALL, seed=0, cache_dir=str(tmp_path))
    assert second.images.tobytes() == first.images.tobytes()
    with pytest.raises(AssertionError, match="rendered again"):
        hershey_images(["markers"], RenderParams(size=16, drawers=5), 0, str(tmp_path))


def test_corrupt_cache_file_is_rebuilt(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"x": np.arange(5)}

    cached_arrays("demo", {"a": 1}, build, str(tmp_path))
    (path,) = tmp_path.glob("demo-*.npz")
    path.write_bytes(b"not a zip file")
    again = cached_arrays("demo", {"a": 1}, build, str(tmp_path))
    assert again["x"].tolist() == [0, 1, 2, 3, 4] and len(calls) == 2
    assert cached_arrays("demo", {"a": 1}, build, str(tmp_path))["x"].tolist() == [0, 1, 2, 3, 4]
    assert len(calls) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_key_changes_file_and_key_order_does_not(tmp_path):
    def build():
        return {"x": np.zeros(1)}

    cached_arrays("demo", {"a": 1, "b": 2}, build, str(tmp_path))
    cached_arrays("demo", {"b": 2, "a": 1}, build, str(tmp_path))
    assert len(list(tmp_path.glob("demo-*.npz"))) == 1
    cached_arrays("demo", {"a": 1, "b": 3}, build, str(tmp_path))
    assert len(list(tmp_path.glob("demo-*.npz"))) == 2


def test_unwritable_cache_dir_warns_once_and_returns_arrays(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    monkeypatch.setattr(cache, "_warned_dirs", set())
    with pytest.warns(RuntimeWarning, match="not writable"):
        out = cached_arrays("demo", {}, lambda: {"x": np.ones(2)}, str(blocker / "sub"))
    assert out["x"].tolist() == [1.0, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached_arrays("demo", {}, lambda: {"x": np.ones(2)}, str(blocker / "sub"))


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("MTL_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert cache_dir() == tmp_path / "env"
    monkeypatch.delenv("MTL_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "mtl_cli"
