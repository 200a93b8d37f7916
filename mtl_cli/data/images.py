"""Decode users' image files (PNG, JPEG, BMP) into uint8 arrays with Pillow (Clark et al., Pillow).

Every image is converted to the requested channels ("L" for 1, "RGB" for 3; alpha is dropped)
and resized to exactly (H, W) with Pillow's BILINEAR filter, ignoring the aspect ratio (as
torchvision's `Resize((H, W))` does). Pillow's BILINEAR widens its support by the scale factor
when it shrinks an image, so large downscales are antialiased without a separate BOX pass.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mtl_cli.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
PILLOW_HINT = "pip install 'mtl_cli[images]'"
_MODES = {1: "L", 3: "RGB"}


def require_pillow(what: str):
    """Return the `PIL.Image` module, or raise a one-line UserError saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise UserError(f"{what} needs Pillow to decode images: {PILLOW_HINT}") from None
    return Image


def image_size_pair(
    size: tuple[int, int] | list[int] | int, key: str = "image_size"
) -> tuple[int, int]:
    """(H, W) from an int or a pair of positive ints; one-line UserError naming `key` otherwise."""
    if isinstance(size, bool):
        pair = None
    elif isinstance(size, int):
        pair = (size, size)
    else:
        try:
            pair = tuple(size)
        except TypeError:
            pair = None
    if (
        pair is None
        or len(pair) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair)
    ):
        raise UserError(f"{key}: got {size!r}; allowed: a positive int or [H, W] of positive ints")
    return int(pair[0]), int(pair[1])


def _check_channels(channels: int) -> str:
    if channels not in _MODES:
        raise UserError(f"channels: got {channels!r}; allowed: 1 (grayscale) or 3 (RGB)")
    return _MODES[channels]


def decode_image(
    path_or_bytes: str | Path | bytes, name: str, size: tuple[int, int] | int, channels: int
) -> np.ndarray:
    """Decode one image file (a path, or its bytes) into uint8 [channels, H, W].

    `name` (the file or archive member) is what a failure names: any Pillow error becomes a
    one-line UserError "<name>: not a readable image (<reason>)".
    """
    height, width = image_size_pair(size)
    mode = _check_channels(channels)
    image_module = require_pillow(f"reading {name}")
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    try:
        with image_module.open(source) as image:
            image.load()
            converted = image.convert(mode)
            resized = converted.resize((width, height), image_module.Resampling.BILINEAR)
            pixels = np.asarray(resized, dtype=np.uint8)
    except image_module.UnidentifiedImageError:
        raise UserError(f"{name}: not a readable image (unknown or corrupt format)") from None
    except Exception as err:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
        raise UserError(f"{name}: not a readable image ({type(err).__name__}: {err})") from None
    if channels == 1:
        return pixels[None].copy()
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def decode_images(
    items: list[tuple[str, str | Path | bytes]], size: tuple[int, int] | int, channels: int
) -> np.ndarray:
    """Decode (name, path_or_bytes) pairs in order into uint8 [N, channels, H, W]."""
    height, width = image_size_pair(size)
    _check_channels(channels)
    out = np.empty((len(items), channels, height, width), dtype=np.uint8)
    for index, (name, source) in enumerate(items):
        out[index] = decode_image(source, name, (height, width), channels)
    return out
