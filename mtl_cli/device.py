"""Resolve `device=auto|cpu|cuda|cuda:N|mps` to a torch.device, with one-line errors."""

from __future__ import annotations

import os

import torch

from mtl_cli.errors import UserError


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def auto_device(job_index: int | None = None) -> str:
    """cuda (spread over GPUs by job index in a sweep), then mps, then cpu."""
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        return f"cuda:{(job_index or 0) % count}"
    if _mps_available():
        return "mps"
    return "cpu"


def resolve_device(name: str, job_index: int | None = None) -> torch.device:
    """The torch.device for a `device` config value; unavailable devices are a UserError."""
    name = str(name)
    if name == "auto":
        return torch.device(auto_device(job_index))
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise UserError(
                "device: 'mps' is not available on this machine; use device=auto or cpu"
            )
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            hint = (
                " (CUDA_VISIBLE_DEVICES is empty)"
                if os.environ.get("CUDA_VISIBLE_DEVICES") == ""
                else ""
            )
            raise UserError(
                f"device: '{name}' is not available{hint}: this torch has no usable CUDA GPU; "
                "use device=auto or cpu"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise UserError(
                f"device: '{name}' does not exist; this machine has cuda:0..cuda:{count - 1}"
            )
        return torch.device(f"cuda:{index}")
    raise UserError(f"device: invalid value '{name}'; allowed: auto, cpu, cuda, cuda:N, mps")
