"""MLflow and W&B trackers (`logger=mlflow`, `logger=wandb`, several at once): real tiny runs,
read back from MLflow's file store and W&B's offline run file."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from mtl_cli.config import compose, validate
from mtl_cli.errors import UserError
from mtl_cli.io import read_jsonl
from mtl_cli.loggers import NullLogger, scalars
from mtl_cli.run import train
from tests.conftest import tiny

pytest.importorskip("mlflow")
pytest.importorskip("wandb")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network: W&B offline and silent; MLflow only ever sees a local store."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def mlflow_run(out: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(out / "mlruns").as_uri())
    run_id = (out / "mlflow_run_id").read_text().strip()
    return client, client.get_run(run_id)


def wandb_records(out: Path) -> list:
    """Every record of the offline run's .wandb file (LevelDB log format: 7-byte file header,
    32 KiB blocks of records with a 7-byte header: crc32c, length, type FULL/FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = out.glob("wandb/offline-run-*/run-*.wandb")
    data, pos, block, parts, records = path.read_bytes(), 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's zero trailer
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: one protobuf Record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            records.append(record)
            parts = b""
    return records


def name(item) -> str:
    """A W&B history/summary item's key (keys with '/' may come as a nested key)."""
    return item.key or "/".join(item.nested_key)


def test_mlflow_params_metrics_and_artifacts_match_the_run(tmp_path):
    out = tmp_path / "run"
    summary = train(compose(tiny(out, "logger=mlflow", "logger.mlflow.experiment_name=exp")))
    client, run = mlflow_run(out)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert client.get_experiment(run.info.experiment_id).name == "exp"
    params = run.data.params
    assert params["trainer.steps"] == str(summary["step"])
    assert params["loss._target_"] == "mtl_cli.loss.equal.Equal"
    assert params["logger.mlflow.experiment_name"] == "exp"
    rows = read_jsonl(out / "metrics.jsonl")
    for key in ("val/accuracy", "train/loss", "loss/weight/digits"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [(m.step, m.value) for m in history] == [(r["step"], r[key]) for r in rows]
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert artifacts == ["metrics.json"]
    local = client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == summary | {"resumed_from": None}


def test_mlflow_names_and_long_values():
    from mtl_cli.mlflow_logger import MAX_PARAM_LENGTH, mlflow_name, param_value

    assert mlflow_name("diag/cos/a-b") == "diag/cos/a-b"
    assert mlflow_name("val/x(y)") == "val/x_y_"
    long = param_value("x" * 10_000)
    assert len(long) == MAX_PARAM_LENGTH and long.endswith("...[truncated]")


def test_resumed_run_continues_the_same_mlflow_and_wandb_runs(tmp_path):
    out = tmp_path / "run"
    first = tiny(out, "logger=[mlflow,wandb]", "trainer.steps=3", "trainer.resume=true")
    train(compose(first))
    run_id = (out / "mlflow_run_id").read_text()
    wandb_id = (out / "wandb_run_id").read_text()
    train(compose(tiny(out, "logger=[mlflow,wandb]", "trainer.resume=true")))
    assert (out / "mlflow_run_id").read_text() == run_id
    assert (out / "wandb_run_id").read_text() == wandb_id
    client, run = mlflow_run(out)
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.steps"] == "3"  # MLflow params cannot change ...
    assert run.data.tags["resumed.trainer.steps"] == "6"  # ... the new value is a tag
    history = client.get_metric_history(run.info.run_id, "val/accuracy")
    rows = read_jsonl(out / "metrics.jsonl")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["val/accuracy"]) for r in rows]
    assert [m.step for m in history] == [3, 6]  # appended, nothing logged twice
    assert len(list(out.glob("wandb/offline-run-*"))) == 2  # W&B: one offline file per session


def test_wandb_offline_config_history_and_summary(tmp_path):
    out = tmp_path / "run"
    summary = train(compose(tiny(out, "logger=wandb")))
    records = wandb_records(out)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_id == (out / "wandb_run_id").read_text().strip()
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["trainer"]["steps"] == summary["step"]
    assert config["loss"]["_target_"] == "mtl_cli.loss.equal.Equal"
    history = [r.history for r in records if r.WhichOneof("record_type") == "history"]
    rows = read_jsonl(out / "metrics.jsonl")
    assert [h.step.num for h in history] == [r["step"] for r in rows]
    for h, row in zip(history, rows, strict=True):
        logged = {name(i): json.loads(i.value_json) for i in h.item}
        logged = {k: v for k, v in logged.items() if not k.startswith("_")}
        assert logged == pytest.approx(scalars(row))
    final = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            final.update({name(i): json.loads(i.value_json) for i in r.summary.update})
    assert final["status"] == "finished" and final["num_params"] == summary["num_params"]
    assert final["test/accuracy"] == pytest.approx(summary["test"]["accuracy"])
    (exit_record,) = [r.exit for r in records if r.WhichOneof("record_type") == "exit"]
    assert exit_record.exit_code == 0


def test_several_loggers_at_once_write_each(tmp_path):
    out = tmp_path / "run"
    cfg = compose(tiny(out, "logger=[tensorboard,mlflow]", "logger.tensorboard.subdir=tb"))
    assert sorted(cfg.logger) == ["mlflow", "tensorboard"]
    train(cfg)
    assert list((out / "tb").glob("events.out.tfevents.*"))
    client, run = mlflow_run(out)
    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl")]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == steps


def test_logger_options_and_missing_extras_are_refused(monkeypatch):
    with pytest.raises(UserError, match=r"^logger\.wandb\.mode: invalid value 'loud'; allowed"):
        validate(compose(["logger=wandb", "logger.wandb.mode=loud"]))
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    message = "logger=mlflow needs the 'mlflow' extra: pip install 'mtl_cli[mlflow]'"
    with pytest.raises(UserError, match=f"^{message}$".replace("[", r"\[").replace("]", r"\]")):
        validate(compose(["logger=[tensorboard,mlflow]"]))
    assert isinstance(NullLogger("."), NullLogger)
    assert os.environ["WANDB_MODE"] == "offline"
