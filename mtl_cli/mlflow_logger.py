"""`logger=mlflow`: the run's config as MLflow params, each evaluation's scalars as metrics at its
step, metrics.json (and plots/, if written) as artifacts when the run ends.

MLflow (https://mlflow.org/docs/latest/ml/tracking/): by default a file store in the run dir,
`file:<run dir>/mlruns` (`mlflow ui --backend-store-uri <run dir>/mlruns`). MLflow 3 keeps that
store in maintenance mode and refuses it unless MLFLOW_ALLOW_FILE_STORE=true, which this default
sets for the process (a per-run `sqlite:///...` store would spend seconds on its schema
migrations before the first step); any other `tracking_uri` (sqlite, a server) is used as given.
The MLflow run id is kept in `<run dir>/mlflow_run_id`, so that a resumed run logs into the same
MLflow run instead of starting another.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from mtl_cli.loggers import flat_config, scalars

#: MLflow's limit on a param value (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH, MLflow >= 2.6)
MAX_PARAM_LENGTH = 6000
#: params per log_batch call (mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH)
PARAMS_PER_BATCH = 100
TRUNCATED = "...[truncated]"
#: what MLflow admits in a metric or param name (alphanumerics, _ - . space / and, off Windows, :)
_BAD_NAME_CHARS = re.compile(r"[^/\w.\- :]")
RUN_ID_FILE = "mlflow_run_id"


def mlflow_name(key: str) -> str:
    """`key` with the characters MLflow refuses in metric and param names replaced by '_'."""
    return _BAD_NAME_CHARS.sub("_", key)


def param_value(value: Any) -> str:
    """A config value as an MLflow param: its text, cut to MLflow's length limit with a marker."""
    text = str(value)
    if len(text) > MAX_PARAM_LENGTH:
        text = text[: MAX_PARAM_LENGTH - len(TRUNCATED)] + TRUNCATED
    return text


class MLflowLogger:
    """The run as an MLflow run: params = the resolved config (dot keys), metrics at each
    evaluation, metrics.json and plots/ as artifacts at close."""

    def __init__(
        self,
        out_dir: str | Path,
        config: dict[str, Any] | None = None,
        tracking_uri: str | None = None,
        experiment_name: str = "mtl_cli",
        run_name: str | None = None,
    ) -> None:
        from mtl_cli.launch import require

        require("mlflow", "logger=mlflow")
        from mlflow.entities import Param, RunStatus
        from mlflow.tracking import MlflowClient

        self.out_dir = Path(out_dir).resolve()
        if tracking_uri is None:
            tracking_uri = (self.out_dir / "mlruns").as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=tracking_uri)
        id_file = self.out_dir / RUN_ID_FILE
        params = {mlflow_name(k): param_value(v) for k, v in flat_config(config or {}).items()}
        if id_file.is_file():  # a resumed run continues its MLflow run
            self.run_id = id_file.read_text().strip()
            self.client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            logged = self.client.get_run(self.run_id).data.params
            for key in [k for k in params if k in logged]:
                if logged[key] != params[key]:  # MLflow params cannot change: keep it as a tag
                    self.client.set_tag(self.run_id, f"resumed.{key}", params[key])
                del params[key]
        else:
            experiment = self.client.get_experiment_by_name(experiment_name)
            if experiment is None:
                experiment_id = self.client.create_experiment(experiment_name)
            else:
                experiment_id = experiment.experiment_id
            run = self.client.create_run(experiment_id, run_name=run_name or self.out_dir.name)
            self.run_id = run.info.run_id
            id_file.write_text(self.run_id + "\n")
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + PARAMS_PER_BATCH])
        self.closed = False

    def log(self, row: dict[str, Any]) -> None:
        """The row's scalars as metrics at `row["step"]`."""
        import time

        from mlflow.entities import Metric

        step, stamp = int(row["step"]), int(time.time() * 1000)
        metrics = [Metric(mlflow_name(k), v, stamp, step) for k, v in scalars(row).items()]
        for i in range(0, len(metrics), 1000):  # MAX_METRICS_PER_BATCH
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def close(self) -> None:
        """Upload metrics.json and plots/ (when present) and end the MLflow run with the run's
        status (finished -> FINISHED, interrupted -> KILLED, failed -> FAILED)."""
        if self.closed:
            return
        self.closed = True
        summary = self.out_dir / "metrics.json"
        status = "FAILED"
        if summary.is_file():
            self.client.log_artifact(self.run_id, str(summary))
            ended = json.loads(summary.read_text()).get("status")
            status = {"finished": "FINISHED", "interrupted": "KILLED"}.get(ended, "FAILED")
        if (self.out_dir / "plots").is_dir():
            self.client.log_artifacts(self.run_id, str(self.out_dir / "plots"), "plots")
        self.client.set_terminated(self.run_id, status=status)
