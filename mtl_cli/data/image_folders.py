"""Users' image folders: list class folders and image files, decode them once, cache the arrays.

The layout rules shared by every folder reader (docs/data/own_data.md):
- a class is a folder of image files; its name is the folder name;
- image files end in .png, .jpg, .jpeg or .bmp (any case); hidden entries (names starting with
  ".") and files with other suffixes (README.txt, Thumbs.db, ...) are ignored;
- a class folder without image files, or images lying next to class folders, are errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtl_cli.data.images import IMAGE_SUFFIXES, decode_images, image_size_pair
from mtl_cli.errors import UserError

#: bump when the decoded arrays change for the same files (cache entries are keyed by it)
CONSTRUCTION = "image-folders-v1"


def resolve_root(task_root: str | None, data: dict, what: str) -> Path:
    """The folder to read: the task's `root` if set, else `data.root`; it must be a folder."""
    chosen = task_root if task_root not in (None, "") else data.get("root")
    key = "task.root" if task_root not in (None, "") else "data.root"
    if chosen in (None, ""):
        raise UserError(
            f"task.root: not set and data.root is null; {what} needs a folder: "
            "pass task.root=/path/to/tree or data.root=/path/to/tree"
        )
    root = Path(str(chosen)).expanduser()
    if not root.is_dir():
        state = "is not a folder" if root.exists() else "does not exist"
        raise UserError(f"{key}: {root} {state}; allowed: a folder holding the {what} tree")
    return root


def is_visible(path: Path) -> bool:
    return not path.name.startswith(".")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and is_visible(path) and path.is_file()


def subfolders(folder: Path) -> list[Path]:
    """The visible sub-folders of `folder`, sorted by name."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and is_visible(p)), key=_name)


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted by name."""
    return sorted((p for p in folder.iterdir() if is_image(p)), key=_name)


def _name(path: Path) -> str:
    return path.name


def class_images(folder: Path, min_images: int = 1) -> dict[str, list[Path]]:
    """{class name: its image files} for `folder/<class>/<image>`, classes sorted by name.

    One-line UserError naming the folder when it has no class folders, holds images beside its
    class folders, or a class folder has fewer than `min_images` images.
    """
    classes = subfolders(folder)
    if not classes:
        found = len(image_files(folder))
        hint = f" (it holds {found} images directly)" if found else ""
        raise UserError(
            f"{folder}: no class folders{hint}; expected {folder}/<class>/<image> "
            f"with images ending in {', '.join(IMAGE_SUFFIXES)}"
        )
    loose = image_files(folder)
    if loose:
        raise UserError(
            f"{folder}: image {loose[0].name} lies beside the class folders; "
            f"expected every image in {folder}/<class>/"
        )
    out = {}
    for path in classes:
        files = image_files(path)
        if len(files) < max(1, min_images):
            what = "no image files" if not files else f"{len(files)} images"
            raise UserError(
                f"{path}: {what}; each class folder needs at least {max(1, min_images)} "
                f"(files ending in {', '.join(IMAGE_SUFFIXES)})"
            )
        out[path.name] = files
    return out


def file_stamp(path: Path, root: Path) -> list:
    """[path relative to root, size in bytes, mtime in ns]: what keys the decoded cache."""
    stat = path.stat()
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        relative = path.resolve().as_posix()
    return [relative, int(stat.st_size), int(stat.st_mtime_ns)]


def load_images(
    files: list[Path],
    root: Path,
    image_size,
    channels: int,
    cache_dir: str | None,
    size_key: str = "task.image_size",
) -> np.ndarray:
    """Decode `files` (in this order) to uint8 [N, channels, H, W], cached on disk.

    The cache entry is keyed by the root folder, the sorted (relative path, size, mtime) of every
    file, the image size and the channels: editing, adding or removing a file rebuilds it.
    """
    from mtl_cli.data.cache import cached_arrays

    height, width = image_size_pair(image_size, size_key)
    if channels not in (1, 3):
        raise UserError(f"task.channels: got {channels!r}; allowed: 1 (grayscale) or 3 (RGB)")
    stamps = [file_stamp(p, root) for p in files]
    order = sorted(range(len(files)), key=lambda i: stamps[i][0])
    key = {
        "construction": CONSTRUCTION,
        "root": root.resolve().as_posix(),
        "files": [stamps[i] for i in order],
        "image_size": [height, width],
        "channels": int(channels),
    }

    def build() -> dict[str, np.ndarray]:
        items = [(str(files[i]), files[i]) for i in order]
        return {"images": decode_images(items, (height, width), int(channels))}

    sorted_images = cached_arrays("image-folders", key, build, directory=cache_dir)["images"]
    out = np.empty_like(sorted_images)
    out[np.asarray(order, dtype=np.int64)] = sorted_images
    return out
