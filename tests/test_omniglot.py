"""Omniglot from fabricated zips in the official layout: shapes, inversion, order, safety."""

from __future__ import annotations

import hashlib
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mtl_cli.data import omniglot as om
from tests.fakes import write_fake_omniglot_zip

# zip stem -> {alphabet: number of characters}; names chosen so sorting differs from zip order.
LAYOUT = {
    "images_background": {"Latin": 2, "Greek": 1},
    "images_evaluation": {"Tengwar": 1, "Angelic": 2},
}


def expected_block(char: int, drawer: int) -> np.ndarray:
    strokes = np.zeros((105, 105), dtype=np.uint8)
    strokes[: 3 * (char + 1), : 4 * drawer] = 255
    return strokes


def write_zip(path: Path, stem: str, alphabets: dict[str, int], start: int = 0) -> list[str]:
    """The fake zip (members stored in reverse order: the loader must sort); returns the expected
    character order."""
    write_fake_omniglot_zip(path, stem, alphabets, start)
    return [f"{a}/character{c:02d}" for a in sorted(alphabets) for c in range(1, alphabets[a] + 1)]


@pytest.fixture
def omniglot_root(tmp_path, monkeypatch):
    """Both fake zips in tmp_path/data, their md5 registered as the official ones."""
    monkeypatch.delenv("MTL_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "data"
    root.mkdir()
    orders, start = [], 0
    for stem, alphabets in LAYOUT.items():
        orders += write_zip(root / f"{stem}.zip", stem, alphabets, start)
        start += sum(alphabets.values())
        blob = (root / f"{stem}.zip").read_bytes()
        sums = (hashlib.md5(blob).hexdigest(), hashlib.sha256(blob).hexdigest())
        monkeypatch.setitem(om.ZIP_CHECKSUMS, stem, sums)
    return root, orders


def test_native_size_images_are_inverted_and_ordered(omniglot_root, tmp_path):
    root, order = omniglot_root
    data = om.load_omniglot(root=str(root), size=105, cache_dir=str(tmp_path / "cache"))
    assert data["images"].shape == (6, 20, 105, 105) and data["images"].dtype == np.uint8
    assert data["char_names"].tolist() == order
    for c in range(6):
        for d in (1, 7, 20):
            np.testing.assert_array_equal(data["images"][c, d - 1], expected_block(c, d))


def test_alphabets_and_background_flags(omniglot_root, tmp_path):
    root, _ = omniglot_root
    data = om.load_omniglot(root=str(root), cache_dir=str(tmp_path / "cache"))
    assert data["alphabet_names"].tolist() == ["Greek", "Latin", "Angelic", "Tengwar"]
    assert data["alphabet"].tolist() == [0, 1, 1, 2, 2, 3]
    assert data["alphabet"].dtype == np.int64
    assert data["background"].tolist() == [True, True, True, False, False, False]


def test_resized_images_keep_the_stroke_mass(omniglot_root, tmp_path):
    root, _ = omniglot_root
    data = om.load_omniglot(root=str(root), size=28, cache_dir=str(tmp_path / "cache"))
    images = data["images"]
    assert images.shape == (6, 20, 28, 28)
    for c, d in ((0, 1), (3, 10), (5, 20)):
        native_mean = expected_block(c, d).mean()
        assert abs(images[c, d - 1].mean() - native_mean) < 0.5  # area averaging keeps mass
        assert images[c, d - 1, -1, -1] == 0  # background stays 0 after inversion


def test_download_verifies_checksums(omniglot_root, monkeypatch, tmp_path):
    """data.download=true fetches the zips (here from a file:// mirror) and checks md5/sha256."""
    root, order = omniglot_root
    monkeypatch.setattr(om, "URL_PREFIX", root.as_uri() + "/")
    fresh = tmp_path / "fresh"
    data = om.load_omniglot(root=str(fresh), download=True, cache_dir=str(tmp_path / "c1"))
    assert data["char_names"].tolist() == order
    assert (fresh / "images_background.zip").is_file()
    monkeypatch.setitem(om.ZIP_CHECKSUMS, "images_evaluation", ("0" * 32, "0" * 64))
    with pytest.raises(ValueError, match=r"images_evaluation.zip .*mismatch: expected 0{32}"):
        om.load_omniglot(
            root=str(tmp_path / "other"), download=True, cache_dir=str(tmp_path / "c2")
        )
    assert not (tmp_path / "other" / "images_evaluation.zip").exists()


@pytest.mark.parametrize(
    "name", ["images_background/../../evil.png", "/etc/evil.png", "C:/evil.png"]
)
def test_escaping_member_is_refused(tmp_path, name):
    path = tmp_path / "images_background.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, b"x")
    with pytest.raises(ValueError, match="unsafe member path"):
        om.read_omniglot_zip(path)


def test_symlink_member_is_refused(tmp_path):
    path = tmp_path / "images_background.zip"
    link = zipfile.ZipInfo("images_background/Latin/character01/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(ValueError, match=r"link.png' is a symlink; only regular files"):
        om.read_omniglot_zip(path)


def test_missing_drawer_is_refused(tmp_path):
    path = tmp_path / "images_background.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for drawer in range(1, 20):  # drawer 20 missing
            archive.writestr(f"images_background/A/character01/0001_{drawer:02d}.png", b"")
    with pytest.raises(ValueError, match=r"A/character01 has drawers .*; expected 1..20"):
        om.read_omniglot_zip(path)


def test_missing_zips_error_lists_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("MTL_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(FileNotFoundError, match="not found in .*nowhere.*data.download=true"):
        om.load_omniglot(root=str(tmp_path / "nowhere"))


def test_download_from_file_url(omniglot_root, tmp_path, monkeypatch):
    root, order = omniglot_root
    monkeypatch.setattr(om, "URL_PREFIX", root.as_uri() + "/")
    target = tmp_path / "fresh"
    data = om.load_omniglot(root=str(target), download=True, cache_dir=str(tmp_path / "c"))
    assert data["char_names"].tolist() == order
    assert sorted(p.name for p in target.iterdir()) == [
        "images_background.zip",
        "images_evaluation.zip",
    ]


def test_missing_pillow_gives_install_hint(omniglot_root, monkeypatch):
    root, _ = omniglot_root
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install 'mtl_cli\[png\]'"):
        om.read_omniglot_zip(root / "images_background.zip")


def test_official_checksums_are_recorded():
    assert om.ZIP_CHECKSUMS["images_background"][0] == "68d2efa1b9178cc56df9314c21c6e718"
    assert om.ZIP_CHECKSUMS["images_evaluation"][0] == "6b91aef0f799c5bb55b94e3f2daec811"
