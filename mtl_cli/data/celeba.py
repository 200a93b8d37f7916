"""CelebA (Liu, Luo, Wang & Tang, "Deep Learning Face Attributes in the Wild", ICCV 2015): 202,599
aligned 178x218 face images with 40 binary attributes and an official train/val/test partition.

Read from a local copy (no download: the official host is Google Drive, without stable
checksummed URLs): `list_attr_celeba.txt`, `list_eval_partition.txt` and the images, either the
folder `img_align_celeba/` or `img_align_celeba.zip` read without extraction.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F

from mtl_cli.data.omniglot import check_member

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_FOLDER = "img_align_celeba"
IMAGE_ZIP = "img_align_celeba.zip"
NUM_ATTRIBUTES = 40
ALIGNED_SIZE = (218, 178)  # (H, W) of every aligned image
CROP = (
    178  # the usual center crop (e.g. Liu et al.'s aligned faces in DCGAN/VAE work) before resize
)
SPLIT_CODES = {"0": "train", "1": "val", "2": "test"}
_CHUNK = 512


def search_paths(root: str | Path | None = None) -> list[Path]:
    """Folders searched, in order: root, root/celeba, $MTL_DATA_DIR/celeba, ~/.cache/mtl_cli/celeba."""
    paths: list[Path] = []
    if root:
        paths += [Path(root), Path(root) / "celeba"]
    env = os.environ.get("MTL_DATA_DIR")
    if env:
        paths.append(Path(env) / "celeba")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return paths + [Path(base) / "mtl_cli" / "celeba"]


def locate(root: str | Path | None = None) -> Path:
    """The first searched folder holding both txt files and the image folder or zip."""
    paths = search_paths(root)
    for folder in paths:
        has_lists = (folder / ATTR_FILE).is_file() and (folder / PARTITION_FILE).is_file()
        if has_lists and ((folder / IMAGE_FOLDER).is_dir() or (folder / IMAGE_ZIP).is_file()):
            return folder
    raise FileNotFoundError(
        f"CelebA ({ATTR_FILE}, {PARTITION_FILE}, {IMAGE_FOLDER}/ or {IMAGE_ZIP}) not found in "
        f"{', '.join(str(p) for p in paths)}; see docs/data/own_data.md (CelebA) for where to get it"
    )


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """`list_attr_celeba.txt`: line 1 the image count, line 2 the 40 attribute names, then
    `<file> <+1|-1 x40>`. Returns (attribute names, files, labels uint8 [N, 40] in {0, 1})."""
    lines = [line.split() for line in path.read_text(encoding="utf-8").splitlines()]
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a count line and an attribute-name line")
    try:
        count = int(lines[0][0])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: line 1: expected the image count") from None
    names = lines[1]
    if len(names) != NUM_ATTRIBUTES:
        raise ValueError(f"{path}: line 2: {len(names)} attribute names; expected {NUM_ATTRIBUTES}")
    files, labels = [], []
    for number, fields in enumerate(lines[2:], start=3):
        if not fields:
            continue
        if len(fields) != NUM_ATTRIBUTES + 1:
            raise ValueError(
                f"{path}: line {number}: {len(fields) - 1} attribute values; expected "
                f"{NUM_ATTRIBUTES}"
            )
        if any(v not in ("1", "-1") for v in fields[1:]):
            raise ValueError(f"{path}: line {number}: attribute values must be 1 or -1")
        files.append(_check_file_name(fields[0], path, number))
        labels.append([v == "1" for v in fields[1:]])
    if len(files) != count:
        raise ValueError(f"{path}: line 1 says {count} images; {len(files)} rows follow")
    return names, files, np.array(labels, dtype=np.uint8).reshape(len(files), NUM_ATTRIBUTES)


def read_partition(path: Path) -> dict[str, str]:
    """`list_eval_partition.txt`: `<file> <0|1|2>` (train/val/test) -> file -> split."""
    split_of: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in SPLIT_CODES:
            raise ValueError(f"{path}: line {number}: expected '<file> <0|1|2>', got {line!r}")
        split_of[_check_file_name(fields[0], path, number)] = SPLIT_CODES[fields[1]]
    return split_of


def _check_file_name(name: str, path: Path, number: int) -> str:
    if "/" in name or "\\" in name or name in (".", "..") or not name:
        raise ValueError(f"{path}: line {number}: image name {name!r} must be a bare file name")
    return name


class ImageSource:
    """The aligned images: a folder, or the zip read without extraction (members checked)."""

    def __init__(self, folder: Path) -> None:
        self.zip_path = folder / IMAGE_ZIP
        self.folder = folder / IMAGE_FOLDER
        self.archive = None
        self.members: dict[str, zipfile.ZipInfo] = {}
        if not self.folder.is_dir():
            self.archive = zipfile.ZipFile(self.zip_path)
            for info in self.archive.infolist():
                check_member(info, self.zip_path)
                parts = PurePosixPath(info.filename).parts
                if not parts or parts[0] != IMAGE_FOLDER:
                    raise ValueError(
                        f"{self.zip_path}: member {info.filename!r} is outside {IMAGE_FOLDER}/"
                    )
                if not info.is_dir() and len(parts) == 2:
                    self.members[parts[1]] = info

    def stamp(self, files: list[str]) -> list:
        """What keys the cache: the zip's size and mtime, or each chosen file's."""
        if self.archive is not None:
            st = self.zip_path.stat()
            return [IMAGE_ZIP, st.st_size, st.st_mtime_ns]
        digest = hashlib.sha256()
        for name in files:
            st = self._path(name).stat()
            digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return [IMAGE_FOLDER, digest.hexdigest()]

    def _path(self, name: str) -> Path:
        path = self.folder / name
        if not path.is_file():
            raise ValueError(f"{path}: image listed in {ATTR_FILE} not found")
        return path

    def read(self, name: str) -> tuple[str, bytes | Path]:
        if self.archive is None:
            return str(self._path(name)), self._path(name)
        info = self.members.get(name)
        if info is None:
            raise ValueError(f"{self.zip_path}: no member {IMAGE_FOLDER}/{name}")
        return f"{self.zip_path}:{info.filename}", self.archive.read(info)

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def decode_faces(source: ImageSource, files: list[str], size: int, center_crop: bool) -> np.ndarray:
    """uint8 [N, 3, size, size]: each aligned image (resized to 178x218 first if it is not),
    center-cropped to 178x178 when asked, then resized (bilinear, antialiased) to size x size."""
    from mtl_cli.data.images import decode_images

    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for start in range(0, len(files), _CHUNK):
        items = [source.read(name) for name in files[start : start + _CHUNK]]
        if not center_crop:
            out[start : start + len(items)] = decode_images(items, size, 3)
            continue
        pixels = decode_images(items, ALIGNED_SIZE, 3)
        top = (ALIGNED_SIZE[0] - CROP) // 2
        left = (ALIGNED_SIZE[1] - CROP) // 2
        crop = torch.from_numpy(pixels[:, :, top : top + CROP, left : left + CROP]).float()
        resized = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True)
        out[start : start + len(items)] = resized.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def load_celeba(
    root: str | None,
    image_size: int,
    center_crop: bool,
    max_samples: int | None,
    cache_dir: str | None = None,
) -> dict[str, np.ndarray]:
    """Images and all 40 labels per split: `<split>_x` uint8 [N, 3, S, S], `<split>_y` uint8
    [N, 40], `attributes` [40]. `max_samples` keeps the first rows (file order) of each split.
    Decoded arrays are cached, keyed by the options, the chosen files and the files' sizes/mtimes."""
    from mtl_cli.data.cache import cached_arrays

    folder = locate(root)
    names, files, labels = read_attributes(folder / ATTR_FILE)
    split_of = read_partition(folder / PARTITION_FILE)
    chosen: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for index, name in enumerate(files):
        if name not in split_of:
            raise ValueError(f"{folder / PARTITION_FILE}: no split for image {name}")
        rows = chosen[split_of[name]]
        if max_samples is None or len(rows) < max_samples:
            rows.append(index)
    for split, rows in chosen.items():
        if not rows:
            raise ValueError(f"{folder / PARTITION_FILE}: no {split} image")
    source = ImageSource(folder)
    try:
        picked = [files[i] for rows in chosen.values() for i in rows]
        lists = [(folder / f).stat() for f in (ATTR_FILE, PARTITION_FILE)]
        key = {
            "construction": "celeba-v1",
            "image_size": int(image_size),
            "center_crop": bool(center_crop),
            "max_samples": max_samples,
            "files": hashlib.sha256("\n".join(picked).encode()).hexdigest(),
            "lists": [[s.st_size, s.st_mtime_ns] for s in lists],
            "images": source.stamp(picked),
            "folder": str(folder.resolve()),
        }

        def build() -> dict[str, np.ndarray]:
            arrays = {"attributes": np.array(names)}
            for split, rows in chosen.items():
                split_files = [files[i] for i in rows]
                arrays[f"{split}_x"] = decode_faces(source, split_files, image_size, center_crop)
                arrays[f"{split}_y"] = labels[rows]
            return arrays

        return cached_arrays("celeba", key, build, directory=cache_dir)
    finally:
        source.close()
