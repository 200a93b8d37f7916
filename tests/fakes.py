"""Small files in the real formats of downloadable datasets, for end-to-end tests (no network)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX format: magic 0x00 0x00 0x08 ndim, big-endian uint32 dims, then uint8 data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def learnable_fashion(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is visible (a bright bar whose row depends on the class) plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, (n, 28, 28), dtype=np.int64)
    rows = 2 + 2 * labels
    images[np.arange(n), rows] += 180
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.int64)


def write_fake_fashion_mnist(directory: Path, n_train: int = 1200, n_test: int = 300) -> Path:
    """The four gzipped IDX files of Fashion-MNIST with learnable fake content."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    train = learnable_fashion(n_train, 0)
    test = learnable_fashion(n_test, 1)
    arrays = {
        "train_images": train[0],
        "train_labels": train[1],
        "test_images": test[0],
        "test_labels": test[1],
    }
    for key, name in FASHION_FILES.items():
        (directory / name).write_bytes(gzip.compress(idx_bytes(arrays[key])))
    return directory


def omniglot_png(char: int, drawer: int) -> bytes:
    """A 105x105 1-bit PNG as in Omniglot: white paper, a black stroke block whose height shows
    the character (3*(char+1) rows) and whose width shows the drawer (4*drawer columns)."""
    import io

    from PIL import Image

    image = np.ones((105, 105), dtype=bool)
    image[: 3 * (char + 1), : 4 * drawer] = False
    buffer = io.BytesIO()
    Image.fromarray(image).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def write_fake_omniglot_zip(path: Path, stem: str, alphabets: dict[str, int], start: int = 0):
    """An Omniglot zip in the official layout `<stem>/<Alphabet>/characterNN/NNNN_DD.png` (20
    drawers per character; members stored in reverse order). Returns (md5, sha256) of the file."""
    import hashlib
    import zipfile

    members, char = [], start
    for alphabet in sorted(alphabets):
        for c in range(1, alphabets[alphabet] + 1):
            for drawer in range(1, 21):
                name = f"{stem}/{alphabet}/character{c:02d}/{char + 1:04d}_{drawer:02d}.png"
                members.append((name, omniglot_png(char, drawer)))
            char += 1
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{stem}/", b"")
        for name, data in reversed(members):
            archive.writestr(name, data)
    blob = Path(path).read_bytes()
    return hashlib.md5(blob).hexdigest(), hashlib.sha256(blob).hexdigest()
