"""Omniglot (Lake, Salakhutdinov & Tenenbaum, 2015): 1623 handwritten characters from 50 alphabets,
20 drawers each, read straight from the official zips (never extracted)."""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from mtl_cli.data.download import download_first, file_digest
from mtl_cli.data.multifashion import area_resize

URL_PREFIX = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"

# zip stem -> (md5 as in torchvision.datasets.Omniglot, sha256 as in torchvision's prototype).
ZIP_CHECKSUMS: dict[str, tuple[str, str]] = {
    "images_background": (
        "68d2efa1b9178cc56df9314c21c6e718",
        "ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640",
    ),
    "images_evaluation": (
        "6b91aef0f799c5bb55b94e3f2daec811",
        "1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee",
    ),
}

DRAWERS = 20
NATIVE_SIZE = 105
_PNG_NAME = re.compile(r"^\d+_(\d{2})\.png$")
_PNG_HINT = "pip install 'mtl_cli[png]'"


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mtl_cli" / "omniglot"


def search_paths(root: str | Path | None = None) -> list[Path]:
    """Directories searched for both zips, in order: root, root/omniglot, $MTL_DATA_DIR,
    $MTL_DATA_DIR/omniglot, the user cache directory (~/.cache/mtl_cli/omniglot)."""
    paths: list[Path] = []
    if root is not None:
        paths += [Path(root), Path(root) / "omniglot"]
    env = os.environ.get("MTL_DATA_DIR")
    if env:
        paths += [Path(env), Path(env) / "omniglot"]
    return paths + [_user_cache_dir()]


def _download_dir(root: str | Path | None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get("MTL_DATA_DIR")
    candidates = ([Path(env) / "omniglot"] if env else []) + [_user_cache_dir()]
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    raise FileNotFoundError(
        f"Omniglot: no writable download directory among {[str(c) for c in candidates]};"
        " set data.root to a writable directory"
    )


def check_member(info: zipfile.ZipInfo, archive: str | Path) -> None:
    """Refuse a zip member whose path is absolute or climbs out (`..`), or which is neither a
    regular file nor a directory (a symlink, device, ...): one-line ValueError naming it."""
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise ValueError(f"{archive}: unsafe member path {name!r} (absolute or contains '..')")
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        what = "a symlink" if stat.S_ISLNK(mode) else f"file type 0o{kind:o}"
        raise ValueError(f"{archive}: member {name!r} is {what}; only regular files are allowed")


def _decode_png(data: bytes, where: str) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"Omniglot needs Pillow to decode PNGs: {_PNG_HINT}") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except Exception as err:  # Pillow raises several types for bad data
        raise ValueError(f"{where}: not a readable PNG ({err})") from None


def read_omniglot_zip(path: str | Path, size: int = 28) -> dict[str, np.ndarray]:
    """Read one official zip (layout `<stem>/<Alphabet>/characterNN/NNNN_DD.png`, DD = drawer
    01..20) into images uint8 [C, 20, size, size] with strokes 255 on 0 background.

    Characters are ordered by alphabet name then character folder, drawers by DD. Every member
    is checked with `check_member` before anything is read.
    """
    path = Path(path)
    images: dict[tuple[str, str], dict[int, bytes]] = {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        for info in infos:
            check_member(info, path)
        for info in infos:
            if info.is_dir() or not info.filename.lower().endswith(".png"):
                continue
            parts = PurePosixPath(info.filename).parts
            match = _PNG_NAME.match(parts[-1])
            if len(parts) != 4 or match is None:
                raise ValueError(
                    f"{path}: member {info.filename!r} does not follow "
                    "<set>/<Alphabet>/<character>/<id>_<DD>.png"
                )
            drawer = int(match.group(1))
            if not 1 <= drawer <= DRAWERS:
                raise ValueError(f"{path}: member {info.filename!r}: drawer {drawer} not in 1..20")
            images.setdefault((parts[1], parts[2]), {})[drawer] = archive.read(info)
    if not images:
        raise ValueError(f"{path}: no character images found")
    keys = sorted(images)
    for alphabet, character in keys:
        found = sorted(images[(alphabet, character)])
        if found != list(range(1, DRAWERS + 1)):
            raise ValueError(
                f"{path}: {alphabet}/{character} has drawers {found}; expected 1..{DRAWERS}"
            )
    resized = np.empty((len(keys), DRAWERS, size, size), dtype=np.uint8)
    for index, (alphabet, character) in enumerate(keys):
        drawings = []
        for drawer in range(1, DRAWERS + 1):
            where = f"{path}:{alphabet}/{character}/{drawer:02d}"
            pixels = _decode_png(images[(alphabet, character)][drawer], where)
            if pixels.shape != (NATIVE_SIZE, NATIVE_SIZE):
                raise ValueError(
                    f"{where}: image is {pixels.shape[0]}x{pixels.shape[1]}; "
                    f"expected {NATIVE_SIZE}x{NATIVE_SIZE}"
                )
            drawings.append(255 - pixels)  # the PNGs draw black strokes on white
        resized[index] = area_resize(np.stack(drawings), size)
    alphabet_names = sorted({a for a, _ in keys})
    return {
        "images": resized,
        "alphabet": np.array([alphabet_names.index(a) for a, _ in keys], dtype=np.int64),
        "alphabet_names": np.array(alphabet_names),
        "char_names": np.array([f"{a}/{c}" for a, c in keys]),
    }


def _locate_zips(root: str | Path | None, download: bool) -> dict[str, Path]:
    paths = search_paths(root)
    for directory in paths:
        found = {stem: directory / f"{stem}.zip" for stem in ZIP_CHECKSUMS}
        if all(p.is_file() for p in found.values()):
            return found
    if not download:
        raise FileNotFoundError(
            f"Omniglot (images_background.zip, images_evaluation.zip) not found in "
            f"{', '.join(str(p) for p in paths)}; set data.root or $MTL_DATA_DIR, "
            "or pass data.download=true"
        )
    target = _download_dir(root)
    for stem, (md5, sha256) in ZIP_CHECKSUMS.items():
        dest = target / f"{stem}.zip"
        if not dest.is_file():
            download_first([f"{URL_PREFIX}{stem}.zip"], dest, sha256=sha256, md5=md5)
    return {stem: target / f"{stem}.zip" for stem in ZIP_CHECKSUMS}


def load_omniglot(
    root: str | None = None, download: bool = False, size: int = 28, cache_dir: str | None = None
) -> dict[str, np.ndarray]:
    """Load Omniglot (Lake et al., 2015), background set first then evaluation set.

    Returns images uint8 [C, 20, size, size] (strokes 255, resized by area averaging),
    alphabet int64 [C] indexing alphabet_names, alphabet_names str [A], char_names str [C]
    ("Alphabet/characterNN"), background bool [C]. Downloaded zips are verified against the official md5 and
    sha256; the decoded arrays are cached on disk, keyed by size and the zips' md5.
    """
    if not 1 <= size <= NATIVE_SIZE:
        raise ValueError(f"size: {size} out of range; allowed: 1..{NATIVE_SIZE}")
    zips = _locate_zips(root, download)
    # Downloads are verified against the official checksums; local files are checked by their
    # structure when read (a corrupt or foreign zip fails there with its name). The digest keys the cache.
    digests = {stem: file_digest(path, "md5") for stem, path in zips.items()}

    def build() -> dict[str, np.ndarray]:
        parts = [read_omniglot_zip(zips[stem], size) for stem in ZIP_CHECKSUMS]
        names = np.concatenate([p["alphabet_names"] for p in parts])
        offsets = np.cumsum([0] + [len(p["alphabet_names"]) for p in parts[:-1]])
        return {
            "images": np.concatenate([p["images"] for p in parts]),
            "alphabet": np.concatenate(
                [p["alphabet"] + o for p, o in zip(parts, offsets, strict=True)]
            ),
            "alphabet_names": names,
            "char_names": np.concatenate([p["char_names"] for p in parts]),
            "background": np.concatenate(
                [np.full(len(p["char_names"]), i == 0) for i, p in enumerate(parts)]
            ),
        }

    from mtl_cli.data.cache import cached_arrays  # imported late: the builders above need no cache

    key = {"construction": "omniglot-v1", "size": int(size), "zips_md5": digests}
    return cached_arrays("omniglot", key, build, directory=cache_dir)
