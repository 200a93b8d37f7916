"""Schemas of the `logger` group: where the scalars of metrics.jsonl are also sent."""

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class NoLogger:
    """metrics.jsonl only (default)."""

    group: ClassVar[str] = "logger"
    name: ClassVar[str] = "none"

    _target_: str = "mtl_cli.loggers.NullLogger"


@dataclass
class TensorBoard:
    """Also log the metrics.jsonl scalars to TensorBoard (<run dir>/tensorboard; needs mtl_cli[tensorboard])."""

    group: ClassVar[str] = "logger"
    name: ClassVar[str] = "tensorboard"

    _target_: str = "mtl_cli.loggers.TensorBoardLogger"
    subdir: str = "tensorboard"
    flush_secs: int = field(default=10, metadata={"min": 1})
