"""Preprocessed dense datasets as MTAN and LibMTL store them: `<split>/<modality>/<i>.npy`.

Liu, Johns & Davison (2019, MTAN; github.com/lorenmt/mtan, `im2im_pred/create_dataset.py`) and
LibMTL (Lin & Zhang 2023, `examples/nyu/create_dataset.py`) read, per sample i,
`image/<i>.npy` float [H, W, 3] in [0, 1], `label/<i>.npy` [H, W] (class, -1 = ignored),
`depth/<i>.npy` [H, W, 1] (0 = invalid) and `normal/<i>.npy` [H, W, 3] in [-1, 1], and move the
last axis first. This module finds such a folder, checks every file and returns [N, C, H, W]
arrays, optionally down-sampled (mtl_cli/data/dense_resize.py). Files are read with
`allow_pickle=False`; every problem is a one-line UserError naming the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mtl_cli.data.cache import cache_dir
from mtl_cli.data.dense_resize import resize_depth, resize_images, resize_labels, resize_normals
from mtl_cli.errors import UserError

_INDEX = re.compile(r"^\d+$")
_CHUNK = 32  # samples read (and down-sampled) at a time, to bound memory


@dataclass(frozen=True)
class DenseFolder:
    """One dataset's layout: its folder name, native size, class names and target folders."""

    name: str  # folder name under $MTL_DATA_DIR and the cache dir
    size: tuple[int, int]  # native (H, W)
    class_names: tuple[str, ...]
    folders: dict[str, str]  # task -> modality folder ("segmentation" -> "label", ...)
    where: str  # where users get it (printed when it is not found)

    @property
    def classes(self) -> int:
        return len(self.class_names)


def search_paths(dataset: DenseFolder, root: str | None, cache: str | None) -> list[Path]:
    """Folders searched, in order: root, root/<name>, $MTL_DATA_DIR/<name>, <cache dir>/<name>."""
    paths = [Path(root), Path(root) / dataset.name] if root else []
    env = os.environ.get("MTL_DATA_DIR")
    if env:
        paths.append(Path(env) / dataset.name)
    return [p.expanduser() for p in paths] + [cache_dir(cache) / dataset.name]


def find_folder(dataset: DenseFolder, root: str | None, cache: str | None) -> Path:
    """The first searched folder holding train/image and val/image."""
    paths = search_paths(dataset, root, cache)
    for path in paths:
        if (path / "train" / "image").is_dir() and (path / "val" / "image").is_dir():
            return path
    raise UserError(
        f"{dataset.name}: no folder with train/image and val/image among "
        f"{', '.join(str(p) for p in paths)}; get it from {dataset.where} and set data.root "
        "or $MTL_DATA_DIR"
    )


def sample_indices(folder: Path) -> list[int]:
    """The sample numbers i of `<folder>/image/<i>.npy`, sorted."""
    indices = []
    for path in (folder / "image").glob("*.npy"):
        if not _INDEX.match(path.stem):
            raise UserError(f"{path}: file name is not <integer>.npy (the MTAN layout)")
        indices.append(int(path.stem))
    if not indices:
        raise UserError(f"{folder / 'image'}: no <i>.npy files")
    return sorted(indices)


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path}: missing (its sample exists in {path.parent.parent / 'image'})")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(array, np.ndarray):
        raise UserError(f"{path}: expected one .npy array, got a .npz archive")
    return array


def _check(path: Path, array: np.ndarray, shape: tuple[int, ...], kinds: str) -> None:
    if array.shape != shape:
        raise UserError(f"{path}: shape {list(array.shape)}; expected {list(shape)}")
    if array.dtype.kind not in kinds:
        names = {"f": "float", "i": "int", "u": "uint"}
        allowed = " or ".join(names[k] for k in kinds)
        raise UserError(f"{path}: dtype {array.dtype}; expected {allowed}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise UserError(f"{path}: contains NaN or inf")


def read_sample(folder: Path, index: int, task: str, dataset: DenseFolder) -> np.ndarray:
    """One checked file: image float32 [3,H,W], label int64 [H,W], depth float32 [1,H,W] or
    normal float32 [3,H,W]."""
    h, w = dataset.size
    modality = "image" if task == "image" else dataset.folders[task]
    path = folder / modality / f"{index}.npy"
    array = _load(path)
    if task == "image":
        _check(path, array, (h, w, 3), "f")
        if array.min() < 0 or array.max() > 1:
            low, high = float(array.min()), float(array.max())
            raise UserError(f"{path}: values in [{low:g}, {high:g}]; expected RGB in [0, 1]")
        return np.moveaxis(array.astype(np.float32), -1, 0)
    if task == "segmentation":
        _check(path, array, (h, w), "fiu")
        bad = (array != np.round(array)) | (array < -1) | (array >= dataset.classes)
        if bad.any():
            value = array[bad].flat[0]
            raise UserError(
                f"{path}: label {value:g} out of range; allowed: -1 (ignored) or "
                f"integers 0..{dataset.classes - 1}"
            )
        return array.astype(np.int64)
    if task == "depth":
        _check(path, array, (h, w, 1), "f")
        if array.min() < 0:
            raise UserError(
                f"{path}: negative depth {float(array.min()):g}; expected >= 0 (0 = invalid)"
            )
        if not (array > 0).any():
            raise UserError(f"{path}: no positive depth; expected metres > 0 (0 = invalid)")
        return np.moveaxis(array.astype(np.float32), -1, 0)
    _check(path, array, (h, w, 3), "f")
    if np.abs(array).max() > 1 + 1e-3:
        raise UserError(
            f"{path}: normal component {float(np.abs(array).max()):g}; expected in [-1, 1]"
        )
    return np.moveaxis(array.astype(np.float32), -1, 0)


def read_split(
    folder: Path,
    indices: list[int],
    tasks: list[str],
    dataset: DenseFolder,
    size: tuple[int, int] | None = None,
) -> dict[str, torch.Tensor]:
    """Images and the chosen tasks' targets of `indices`, as tensors, down-sampled to `size`."""
    parts: dict[str, list[torch.Tensor]] = {key: [] for key in ["image", *tasks]}
    resize = {
        "image": resize_images,
        "segmentation": resize_labels,
        "depth": resize_depth,
        "normals": resize_normals,
    }
    for start in range(0, len(indices), _CHUNK):
        chunk = indices[start : start + _CHUNK]
        for key in parts:
            batch = torch.from_numpy(
                np.stack([read_sample(folder, i, key, dataset) for i in chunk])
            )
            if size is not None and tuple(size) != tuple(dataset.size):
                batch = resize[key](batch, tuple(size))
            parts[key].append(batch)
    return {key: torch.cat(values) for key, values in parts.items()}
