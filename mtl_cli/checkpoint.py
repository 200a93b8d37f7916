"""Checkpoints: everything a run needs to continue bit-identically, saved atomically, loaded weights_only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from mtl_cli.errors import UserError
from mtl_cli.io import atomic_write_bytes

FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save into memory, then one atomic write: a crash leaves the previous file intact."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with weights_only=True; a missing or corrupt file is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors: the file is damaged or not a checkpoint
        reason = type(exc).__name__
        if "Weights only load failed" in str(exc):
            reason = "not a weights-only torch file, or truncated"
        raise UserError(f"{path}: corrupt or unreadable checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not an mtl_cli checkpoint (format {FORMAT} expected)")
    return state
