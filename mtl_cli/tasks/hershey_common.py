"""Helpers the Hershey-glyph builders share: render options, alphabet-name checks, rendering.

The glyphs are embedded (no download); the builders are tasks/multitask/hershey_alphabets.py,
tasks/multilabel/hershey_attributes.py and tasks/meta/hershey.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtl_cli.errors import UserError


def _render_params(render: dict):
    from mtl_cli.data.render import RenderParams

    for key in ("scale", "stroke_width"):
        low_high = list(render[key])
        if len(low_high) != 2 or not 0 < low_high[0] <= low_high[1]:
            raise UserError(
                f"task.render.{key}: expected [low, high] with 0 < low <= high, got {low_high}"
            )
    return RenderParams(
        size=int(render["size"]),
        drawers=int(render["drawers"]),
        rotation_deg=float(render["rotation_deg"]),
        shear=float(render["shear"]),
        scale=tuple(float(v) for v in render["scale"]),
        translate=float(render["translate"]),
        point_jitter=float(render["point_jitter"]),
        stroke_width=tuple(float(v) for v in render["stroke_width"]),
    )


def _alphabet_names(alphabets: Sequence[str]) -> list[str]:
    from mtl_cli.data.hershey import ALPHABETS

    names = list(alphabets)
    if not names:
        raise UserError(
            f"task.alphabets: no alphabet chosen; pick one or more of: {', '.join(ALPHABETS)}"
        )
    unknown = [a for a in names if a not in ALPHABETS]
    if unknown:
        raise UserError(
            f"task.alphabets: unknown alphabet '{unknown[0]}'; allowed: {', '.join(ALPHABETS)}"
        )
    if len(set(names)) != len(names):
        raise UserError(f"task.alphabets: an alphabet is listed twice in {names}")
    return names


def _render(names: list[str], data_seed: int, render: dict, data: dict):
    from mtl_cli.data.hershey_images import hershey_images

    params = _render_params(render)
    return params, hershey_images(
        names, params, seed=int(data_seed), cache_dir=data.get("cache_dir")
    )


def _as_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float().div_(255.0)
