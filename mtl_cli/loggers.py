"""Where the scalars of metrics.jsonl also go: nowhere (default), TensorBoard, MLflow or W&B.

The `logger` group places each choice at `logger.<name>`, so that several can be chosen at once
(`logger=[tensorboard,mlflow]`); `open_logger` builds one logger per entry and fans the rows out.
Every logger takes the run dir and the run's resolved config, and has `log(row)` and `close()`.
"""

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


def flat_config(config: dict[str, Any], sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """A nested config as one level of keys joined by `sep` ("trainer.steps": 20); lists stay
    values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, sep, f"{prefix}{key}{sep}"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def plain_config(cfg: Any) -> dict[str, Any]:
    """The run's config as plain containers, resolved where it can be (no Hydra: as written)."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(cfg, DictConfig):
        return dict(cfg or {})
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that needs a live Hydra (${hydra:...})
        return OmegaConf.to_container(cfg, resolve=False)


class NullLogger:
    """Logs nothing: metrics.jsonl is the record."""

    def __init__(self, out_dir: str | Path, config: dict[str, Any] | None = None) -> None:
        self.out_dir = Path(out_dir)

    def log(self, row: dict[str, Any]) -> None:
        """Ignore a metrics.jsonl row."""

    def close(self) -> None:
        """Nothing to flush."""


class TensorBoardLogger:
    """Every scalar of each metrics.jsonl row as a TensorBoard scalar at the row's step."""

    def __init__(
        self,
        out_dir: str | Path,
        config: dict[str, Any] | None = None,
        subdir: str = "tensorboard",
        flush_secs: int = 10,
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


class MultiLogger:
    """Several loggers at once (`logger=[tensorboard,mlflow]`): each row goes to every one."""

    def __init__(self, loggers: list[Any]) -> None:
        self.loggers = list(loggers)

    def log(self, row: dict[str, Any]) -> None:
        """Send the row to every logger."""
        for logger in self.loggers:
            logger.log(row)

    def close(self) -> None:
        """Close every logger, also when one of them fails (the first error is raised after)."""
        errors = []
        for logger in self.loggers:
            try:
                logger.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def open_logger(cfg: Any, out_dir: str | Path) -> Any:
    """The loggers the run's `logger` section names (`logger.<name>: {_target_, options}`), each
    given the run dir and the resolved config; one logger is returned as is, none as NullLogger."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    section = cfg.get("logger") if cfg is not None else None
    if not section:
        return NullLogger(out_dir)
    config = plain_config(cfg)
    loggers = []
    try:
        for name in section:
            if section[name] is None:
                continue
            options = OmegaConf.to_container(section[name], resolve=True)
            cls = get_class(
                options.pop("_target_")
            )  # called directly: its UserErrors stay one line
            loggers.append(cls(out_dir=str(out_dir), config=config, **options))
    except BaseException:
        MultiLogger(loggers).close()  # those already started end cleanly
        raise
    loggers = [lg for lg in loggers if not isinstance(lg, NullLogger)]
    if not loggers:
        return NullLogger(out_dir)
    return loggers[0] if len(loggers) == 1 else MultiLogger(loggers)
