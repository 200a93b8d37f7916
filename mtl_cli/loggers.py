"""Where the scalars of metrics.jsonl also go: nowhere (default) or TensorBoard (`logger=tensorboard`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

#: metrics.jsonl keys that are not scalars to plot
NOT_SCALARS = ("step", "epoch", "split", "time")


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The finite numeric values of a metrics.jsonl row, keyed as in the row ("val/accuracy", ...)."""
    return {
        k: float(v)
        for k, v in row.items()
        if k not in NOT_SCALARS
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
    }


class NullLogger:
    """Logs nothing: metrics.jsonl is the record."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    def log(self, row: dict[str, Any]) -> None:
        """Ignore a metrics.jsonl row."""

    def close(self) -> None:
        """Nothing to flush."""


class TensorBoardLogger:
    """Every scalar of each metrics.jsonl row as a TensorBoard scalar at the row's step."""

    def __init__(
        self, out_dir: str | Path, subdir: str = "tensorboard", flush_secs: int = 10
    ) -> None:
        from mtl_cli.launch import require

        require("tensorboard", "logger=tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(out_dir) / subdir
        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=int(flush_secs))

    def log(self, row: dict[str, Any]) -> None:
        """Write the row's scalars at `row["step"]`."""
        step = int(row["step"])
        for key, value in scalars(row).items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


def open_logger(logger_cfg: Any, out_dir: str | Path) -> NullLogger | TensorBoardLogger:
    """Instantiate the `logger` group's choice for a run dir (no choice: NullLogger)."""
    if logger_cfg is None:
        return NullLogger(out_dir)
    from hydra.utils import instantiate

    return instantiate(logger_cfg, out_dir=str(out_dir))
