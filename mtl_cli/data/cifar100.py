"""CIFAR-100 (Krizhevsky 2009), python version: read from `cifar-100-python.tar.gz` without
extracting it, its pickles loaded through an unpickler that admits only numpy arrays."""

from __future__ import annotations

import io
import os
import pickle
import re
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from mtl_cli.data.download import download_first, file_digest

ARCHIVE = "cifar-100-python.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
#: md5sum of the python version, from the table on https://www.cs.toronto.edu/~kriz/cifar.html
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
FOLDER = "cifar-100-python"
CLASSES = 100
PER_CLASS = 600  # 500 train + 100 test images per class
IMAGE_SHAPE = (3, 32, 32)

#: the only globals a CIFAR pickle needs: numpy's array reconstructor (numpy 1 and 2 spellings)
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain data (dicts, lists, bytes, numbers) and numpy arrays; refuses every other
    global (e.g. `os.system`), so a crafted pickle cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"global '{module}.{name}' is not allowed; allowed: numpy arrays and plain data"
        )


def load_pickle(data: bytes, where: str) -> dict:
    """A CIFAR pickle (a dict with bytes or str keys) through `ArrayUnpickler`, keys as str."""
    try:
        obj = ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{where}: refused or unreadable pickle ({err})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def check_tar_member(info: tarfile.TarInfo, archive: str | Path) -> None:
    """Refuse a member whose path is absolute or contains `..`, or that is a link or device."""
    name = info.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise ValueError(f"{archive}: unsafe member path {name!r} (absolute or contains '..')")
    if not (info.isfile() or info.isdir()):
        raise ValueError(f"{archive}: member {name!r} is not a regular file or folder")


def read_cifar100_archive(path: str | Path) -> dict[str, np.ndarray]:
    """Every image of the archive grouped by fine class: images uint8 [100, 600, 3, 32, 32]
    (the 500 train images of a class, then its 100 test images, in file order), fine_names [100],
    coarse_names [20], coarse int64 [100] (the superclass of each fine class)."""
    path = Path(path)
    wanted = {f"{FOLDER}/{n}": n for n in ("train", "test", "meta")}
    found: dict[str, dict] = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for info in archive:
                check_tar_member(info, path)
                if info.name in wanted and info.isfile():
                    handle = archive.extractfile(info)
                    data = handle.read() if handle is not None else b""
                    found[wanted[info.name]] = load_pickle(data, f"{path}:{info.name}")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable tar.gz archive ({err})") from None
    missing = [f"{FOLDER}/{n}" for n in ("train", "test", "meta") if n not in found]
    if missing:
        raise ValueError(f"{path}: missing member(s) {', '.join(missing)}")
    meta = found["meta"]
    fine_names = _names(meta, "fine_label_names", CLASSES, path)
    coarse_names = _names(meta, "coarse_label_names", 20, path)
    images, fine, coarse = [], [], []
    for split in ("train", "test"):
        part = found[split]
        where = f"{path}:{FOLDER}/{split}"
        for key in ("data", "fine_labels", "coarse_labels"):
            if key not in part:
                raise ValueError(f"{where}: no '{key}' entry; keys: {', '.join(part)}")
        data = np.asarray(part["data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(
                f"{where}: data is {data.dtype} {data.shape}; expected uint8 [N, 3072]"
            )
        f_labels = np.asarray(part["fine_labels"], dtype=np.int64)
        c_labels = np.asarray(part["coarse_labels"], dtype=np.int64)
        if len(f_labels) != len(data) or len(c_labels) != len(data):
            raise ValueError(f"{where}: {len(data)} images but {len(f_labels)} fine labels")
        if (
            f_labels.min() < 0
            or f_labels.max() >= CLASSES
            or c_labels.min() < 0
            or c_labels.max() >= 20
        ):
            raise ValueError(f"{where}: labels out of range (fine 0..99, coarse 0..19)")
        images.append(data.reshape(-1, *IMAGE_SHAPE))
        fine.append(f_labels)
        coarse.append(c_labels)
    images_all, fine_all, coarse_all = (
        np.concatenate(images),
        np.concatenate(fine),
        np.concatenate(coarse),
    )
    counts = np.bincount(fine_all, minlength=CLASSES)
    if counts.min() != counts.max():
        raise ValueError(
            f"{path}: classes have {counts.min()}..{counts.max()} images; expected the same number"
        )
    order = np.argsort(fine_all, kind="stable")
    per_class = int(counts[0])
    superclass = np.zeros(CLASSES, dtype=np.int64)
    superclass[fine_all] = coarse_all
    return {
        "images": images_all[order].reshape(CLASSES, per_class, *IMAGE_SHAPE),
        "fine_names": np.array(fine_names),
        "coarse_names": np.array(coarse_names),
        "coarse": superclass,
    }


def _names(meta: dict, key: str, count: int, path: Path) -> list[str]:
    names = meta.get(key)
    if not isinstance(names, list) or len(names) != count:
        raise ValueError(f"{path}:{FOLDER}/meta: '{key}' must list {count} names")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def search_paths(root: str | Path | None = None) -> list[Path]:
    """Folders searched for the archive, in order: root, root/cifar100, $MTL_DATA_DIR,
    $MTL_DATA_DIR/cifar100, the user cache folder (~/.cache/mtl_cli/cifar100)."""
    paths: list[Path] = []
    if root:
        paths += [Path(root), Path(root) / "cifar100"]
    env = os.environ.get("MTL_DATA_DIR")
    if env:
        paths += [Path(env), Path(env) / "cifar100"]
    return paths + [_user_cache_dir()]


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mtl_cli" / "cifar100"


def locate_archive(root: str | Path | None, download: bool) -> Path:
    """The first `cifar-100-python.tar.gz` on the search path; with `download`, fetched (md5
    checked) into root, else $MTL_DATA_DIR/cifar100, else the user cache folder."""
    paths = search_paths(root)
    for folder in paths:
        if (folder / ARCHIVE).is_file():
            return folder / ARCHIVE
    if not download:
        raise FileNotFoundError(
            f"CIFAR-100 ({ARCHIVE}) not found in {', '.join(str(p) for p in paths)}; set data.root "
            f"or $MTL_DATA_DIR, or pass data.download=true (fetches {URL})"
        )
    env = os.environ.get("MTL_DATA_DIR")
    target = Path(root) if root else (Path(env) / "cifar100" if env else _user_cache_dir())
    return download_first([URL], target / ARCHIVE, md5=MD5)


def load_cifar100(
    root: str | None = None, download: bool = False, cache_dir: str | None = None
) -> dict[str, np.ndarray]:
    """CIFAR-100 grouped by class (see `read_cifar100_archive`), cached keyed by the archive's md5."""
    from mtl_cli.data.cache import cached_arrays

    archive = locate_archive(root, download)
    key = {"construction": "cifar100-v1", "md5": file_digest(archive, "md5")}
    return cached_arrays(
        "cifar100", key, lambda: read_cifar100_archive(archive), directory=cache_dir
    )
