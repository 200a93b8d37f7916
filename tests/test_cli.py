"""The real console entry point in subprocesses: commands, run dirs, sweeps, signals, resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtl_cli.io import read_jsonl
from tests.conftest import mtl, tiny_cli

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_\d{6}$")


def only_run_dir(cwd: Path) -> Path:
    runs = sorted((cwd / "outputs/runs/multitask/hershey_alphabets").iterdir())
    assert len(runs) == 1
    return runs[0]


def test_help_lists_commands(tmp_path):
    result = mtl("--help", cwd=tmp_path, check=True)
    for command in ("train", "eval", "report", "list"):
        assert command in result.stdout


def test_unknown_command_is_one_line_exit_2(tmp_path):
    result = mtl("frobnicate", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "frobnicate" in result.stderr and "train, eval, report, list" in result.stderr


def test_list_shows_groups_and_descriptions_without_torch(tmp_path):
    code = (
        "import sys; from mtl_cli.cli import main; main(['list']); "
        "assert 'torch' not in sys.modules, 'mtl list imported torch'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for group in ("task:", "model:", "backbone:", "loss:", "optim:", "trainer:"):
        assert group in out
    assert "multitask/hershey_alphabets" in out and "hard_sharing" in out
    assert "Handwriting per alphabet" in out


def test_list_shows_the_options_of_one_choice(tmp_path):
    result = mtl("list", "optim=adam", cwd=tmp_path, check=True)
    assert "lr: 0.001" in result.stdout


def test_train_then_eval_then_report(tmp_path):
    mtl("train", *tiny_cli(), cwd=tmp_path, check=True)
    run = only_run_dir(tmp_path)
    assert STAMP.match(run.name), run.name
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml", "train.log",
                 "metrics.jsonl", "metrics.json", "checkpoints/last.pt", "checkpoints/best.pt"):  # fmt: skip
        assert (run / name).is_file(), name
    assert "val accuracy" in (run / "train.log").read_text()
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "finished"
    assert summary["choices"]["model"] == "hard_sharing"

    result = mtl("eval", f"run={run}", "device=cpu", cwd=tmp_path, check=True)
    evaluated = json.loads((run / "eval_metrics.json").read_text())
    assert evaluated["metrics"]["accuracy"] == pytest.approx(summary["best_test"]["accuracy"])
    assert "accuracy" in result.stdout

    result = mtl("report", str(run), cwd=tmp_path, check=True)
    assert "test/accuracy" in result.stdout
    assert (run / "summary.csv").is_file() and (run / "summary.md").is_file()


def test_python_m_and_no_progress_bar_without_a_terminal(tmp_path):
    result = mtl("train", *tiny_cli("trainer.progress=true"), cwd=tmp_path, check=True)
    assert "it/s" not in result.stderr and "%|" not in result.stderr


def test_progress_bar_on_a_terminal(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real size
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtl_cli", "train", *tiny_cli("trainer.progress=true", "trainer.steps=30")],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=follower, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    assert re.search(rb"\d+/30 \[", b"".join(chunks))  # tqdm: "n/30 [elapsed<remaining, rate]"


def test_sweep_writes_one_dir_per_job_and_a_summary(tmp_path):
    mtl("train", "-m", *tiny_cli("seed=0,1"), cwd=tmp_path, check=True)
    sweeps = list((tmp_path / "outputs/multirun").iterdir())
    assert len(sweeps) == 1 and STAMP.match(sweeps[0].name)
    sweep = sweeps[0]
    assert (sweep / "0/metrics.json").is_file() and (sweep / "1/metrics.json").is_file()
    assert (sweep / "summary.csv").is_file() and (sweep / "summary.md").is_file()


def _start(cwd: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mtl_cli", "train", *tiny_cli(*overrides)],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_checkpoints(run_parent: Path, lines: int, proc: subprocess.Popen) -> Path:
    deadline = time.time() + 120
    while time.time() < deadline:
        for jsonl in run_parent.glob("*/metrics.jsonl"):
            if len(read_jsonl(jsonl)) >= lines and (jsonl.parent / "checkpoints/last.pt").exists():
                return jsonl.parent
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def _comparable(run: Path) -> tuple[dict, list[dict]]:
    summary = json.loads((run / "metrics.json").read_text())
    summary = {
        k: v for k, v in summary.items() if k not in ("steps_per_s", "wall_time_s", "resumed_from")
    }
    rows = [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(run / "metrics.jsonl")]
    return summary, rows


LONG = ("trainer.steps=1500", "trainer.eval_every=25", "seed=7")


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_killed_run_resumes_to_identical_metrics(tmp_path, how):
    reference = tmp_path / "reference"
    mtl("train", *tiny_cli(*LONG, f"hydra.run.dir={reference}"), cwd=tmp_path, check=True)

    proc = _start(tmp_path, *LONG)
    run = _wait_for_checkpoints(tmp_path / "outputs/runs/multitask/hershey_alphabets", 2, proc)
    sent = time.time()
    proc.send_signal(getattr(signal, how))
    proc.wait(timeout=30)
    if proc.returncode == 0:
        pytest.fail("the run finished before it could be interrupted; raise trainer.steps")
    if how in ("SIGTERM", "SIGINT"):
        assert proc.returncode == 128 + getattr(signal, how)
        assert time.time() - sent < 10
        assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    else:
        assert proc.returncode == -signal.SIGKILL

    mtl("train", f"hydra.run.dir={run}", cwd=tmp_path, check=True)
    assert _comparable(run) == _comparable(reference)
