"""Disk cache for arrays built from a dataset recipe: one .npz per (name, key), atomic writes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mtl_cli.io import atomic_write_bytes

CACHE_FORMAT = 1  # bump when the file layout changes: old entries are then ignored
_warned_dirs: set[str] = set()


def cache_dir(explicit: str | None = None) -> Path:
    """The cache folder: `explicit`, else $MTL_CACHE_DIR, else ~/.cache/mtl_cli."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("MTL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "mtl_cli"


def cache_key(name: str, key: dict) -> str:
    """First 16 hex digits of sha256 over canonical JSON of (format version, name, key)."""
    try:
        text = json.dumps(
            {"format": CACHE_FORMAT, "name": name, "key": key},
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"key: {key!r} is not plain JSON data ({exc}); allowed: JSON") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _read(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
        return None  # corrupt or truncated: rebuild


def cached_arrays(
    name: str,
    key: dict,
    build: Callable[[], dict[str, np.ndarray]],
    directory: str | None = None,
) -> dict[str, np.ndarray]:
    """Load `<dir>/<name>-<hash16>.npz` if valid, else call `build()` and store its arrays.

    A corrupt file is rebuilt; an unwritable folder warns once and returns the built arrays.
    """
    if not name or "/" in name or os.sep in name:
        raise ValueError(f"name: got {name!r}; allowed: a non-empty file-name stem without '/'")
    folder = cache_dir(directory)
    path = folder / f"{name}-{cache_key(name, key)}.npz"
    arrays = _read(path)
    if arrays is not None:
        return arrays
    arrays = build()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        if str(folder) not in _warned_dirs:
            _warned_dirs.add(str(folder))
            warnings.warn(
                f"cache dir {folder} is not writable ({exc}); data is rebuilt on every call",
                RuntimeWarning,
                stacklevel=2,
            )
    return arrays
