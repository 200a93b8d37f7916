"""Schemas of the `logger` group: where the scalars of metrics.jsonl are also sent.

Each choice is placed at `logger.<name>` (`package`), so that several can be chosen at once:
`logger=[tensorboard,mlflow]`; its options are then `logger.<name>.<option>`. `requires` is the
module (and pip extra) a choice needs; the pre-flight check refuses a missing one.
"""

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass
class NoLogger:
    """metrics.jsonl only (default)."""

    group: ClassVar[str] = "logger"
    name: ClassVar[str] = "none"
    package: ClassVar[str] = "logger.none"

    _target_: str = "mtl_cli.loggers.NullLogger"


@dataclass
class TensorBoard:
    """Also log the metrics.jsonl scalars to TensorBoard (<run dir>/tensorboard; needs mtl_cli[tensorboard])."""

    group: ClassVar[str] = "logger"
    name: ClassVar[str] = "tensorboard"
    package: ClassVar[str] = "logger.tensorboard"
    requires: ClassVar[str] = "tensorboard"

    _target_: str = "mtl_cli.loggers.TensorBoardLogger"
    subdir: str = "tensorboard"
    flush_secs: int = field(default=10, metadata={"min": 1})


@dataclass
class MLflow:
    """Also log to MLflow: config as params, metrics per evaluation, metrics.json as artifact (needs mtl_cli[mlflow]).

    tracking_uri null: a file store in the run dir (file:<run dir>/mlruns); run_name null: the
    run dir's name.
    """

    group: ClassVar[str] = "logger"
    name: ClassVar[str] = "mlflow"
    package: ClassVar[str] = "logger.mlflow"
    requires: ClassVar[str] = "mlflow"

    _target_: str = "mtl_cli.mlflow_logger.MLflowLogger"
    tracking_uri: str | None = None
    experiment_name: str = "mtl_cli"
    run_name: str | None = None


@dataclass
class Wandb:
    """Also log to Weights & Biases, offline by default (<run dir>/wandb; needs mtl_cli[wandb]).

    mode offline: no network (`wandb sync <run dir>/wandb/offline-run-*` uploads later); dir null:
    the run dir.
    """

    group: ClassVar[str] = "logger"
    name: ClassVar[str] = "wandb"
    package: ClassVar[str] = "logger.wandb"
    requires: ClassVar[str] = "wandb"

    _target_: str = "mtl_cli.wandb_logger.WandbLogger"
    mode: str = field(default="offline", metadata={"choices": ["online", "offline", "disabled"]})
    project: str = "mtl_cli"
    entity: str | None = None
    dir: str | None = None
