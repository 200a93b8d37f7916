"""The input encoder of the set-based black-box learners (CNP, in-context transformer)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mtl_cli.models.meta.base import make_encoder


def point_encoder(
    name: str, input_shape: tuple[int, ...], make_backbone: Callable[[], nn.Module] | None
) -> tuple[nn.Module, int]:
    """`make_encoder` plus 'auto': the backbone for images (an input shape of 2+ axes, e.g. the CNP
    paper's conv encoder on Omniglot), the raw input for vectors (its MLP on 1-D regression)."""
    if name == "auto":
        name = "backbone" if len(input_shape) >= 2 else "flatten"
    return make_encoder(name, input_shape, make_backbone)
