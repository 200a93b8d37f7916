"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): IDX reader, local search, checksummed download."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from mtl_cli.data.download import download_first

CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

# Official mirrors: the link table of zalandoresearch/fashion-mnist's README, then the repository.
MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

# (md5 from the dataset's README, sha256 from torchvision's prototype datasets) of the .gz files.
CHECKSUMS: dict[str, tuple[str, str]] = {
    "train-images-idx3-ubyte.gz": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    ),
    "train-labels-idx1-ubyte.gz": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "bef4ecab320f06d8554ea6380940ec79",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ),
}

# Output key -> file stem (without .gz) and the IDX shape each file must have after the count.
_FILES: dict[str, tuple[str, tuple[int, ...]]] = {
    "train_images": ("train-images-idx3-ubyte", (28, 28)),
    "train_labels": ("train-labels-idx1-ubyte", ()),
    "test_images": ("t10k-images-idx3-ubyte", (28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte", ()),
}

_IDX_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path, item_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (raw or gzip, detected by content) as uint8 [N, *dims].

    Checks the magic number (0x0000 08 <ndim>), the per-item shape when `item_shape` is given and
    that the payload is exactly N*prod(dims) bytes; any violation is a one-line ValueError.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({err})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE or raw[3] == 0:
        raise ValueError(
            f"{path}: bad IDX magic 0x{raw[:4].hex()}; expected 0x000008NN (ubyte data, NN dims)"
        )
    ndim = raw[3]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} of {header_len} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if item_shape is not None and dims[1:] != tuple(item_shape):
        raise ValueError(f"{path}: IDX dims {dims}; expected N followed by {tuple(item_shape)}")
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise ValueError(
            f"{path}: {len(raw)} bytes but IDX dims {dims} need {expected}"
            f" ({'truncated' if len(raw) < expected else 'trailing data'})"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims).copy()


def _find_file(directory: Path, stem: str) -> Path | None:
    """The raw file `stem` if present, else `stem.gz`, else None."""
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _has_all_files(directory: Path) -> bool:
    return all(_find_file(directory, stem) is not None for stem, _ in _FILES.values())


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mtl_cli" / "fashion-mnist"


def search_paths(root: str | Path | None = None) -> list[Path]:
    """Directories searched, in order: root, root/fashion-mnist, $MTL_DATA_DIR,
    $MTL_DATA_DIR/fashion-mnist, /usr/share/datasets/fashion-mnist, the user cache directory."""
    paths: list[Path] = []
    if root is not None:
        paths += [Path(root), Path(root) / "fashion-mnist"]
    env = os.environ.get("MTL_DATA_DIR")
    if env:
        paths += [Path(env), Path(env) / "fashion-mnist"]
    paths += [DEBIAN_DIR, _user_cache_dir()]
    return paths


def _download_dir(root: str | Path | None) -> Path:
    """Where download=True writes: root, else the first writable of $MTL_DATA_DIR/fashion-mnist
    and the user cache directory."""
    if root is not None:
        return Path(root)
    candidates = []
    env = os.environ.get("MTL_DATA_DIR")
    if env:
        candidates.append(Path(env) / "fashion-mnist")
    candidates.append(_user_cache_dir())
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    raise FileNotFoundError(
        f"Fashion-MNIST: no writable download directory among {[str(c) for c in candidates]};"
        " set data.root to a writable directory"
    )


def download_fashion_mnist(directory: str | Path) -> Path:
    """Download the four official .gz files into `directory` (md5 and sha256 verified)."""
    directory = Path(directory)
    for name, (md5, sha256) in CHECKSUMS.items():
        if (directory / name).is_file():
            continue
        download_first([m + name for m in MIRRORS], directory / name, sha256=sha256, md5=md5)
    return directory


def load_fashion_mnist_dir(directory: str | Path) -> dict[str, np.ndarray]:
    """Load the four IDX files from one directory: images uint8 [N,28,28], labels int64 [N]."""
    directory = Path(directory)
    out: dict[str, np.ndarray] = {}
    for key, (stem, item_shape) in _FILES.items():
        path = _find_file(directory, stem)
        if path is None:
            raise FileNotFoundError(f"Fashion-MNIST: {directory / stem}[.gz] not found")
        array = read_idx(path, item_shape)
        if key.endswith("_labels"):
            if array.size and int(array.max()) >= len(CLASSES):
                raise ValueError(
                    f"{path}: label {int(array.max())} out of range; allowed: 0..{len(CLASSES) - 1}"
                )
            array = array.astype(np.int64)
        out[key] = array
    for split in ("train", "test"):
        n_images, n_labels = len(out[f"{split}_images"]), len(out[f"{split}_labels"])
        if n_images != n_labels:
            raise ValueError(
                f"{directory}: {split} split has {n_images} images but {n_labels} labels"
            )
    return out


def load_fashion_mnist(root: str | None = None, download: bool = False) -> dict[str, np.ndarray]:
    """Load Fashion-MNIST (Xiao et al., 2017) from the first directory of `search_paths(root)`
    holding all four files; with `download=True` fetch them when none does.

    Returns train_images uint8 [60000,28,28], train_labels int64 [60000], test_images,
    test_labels (10000) for the real dataset.
    """
    paths = search_paths(root)
    for directory in paths:
        if _has_all_files(directory):
            return load_fashion_mnist_dir(directory)
    if download:
        return load_fashion_mnist_dir(download_fashion_mnist(_download_dir(root)))
    raise FileNotFoundError(
        f"Fashion-MNIST not found in {', '.join(str(p) for p in paths)}; install Debian's "
        "dataset-fashion-mnist, set data.root or $MTL_DATA_DIR, or pass data.download=true"
    )
