"""Shared fixtures: one render cache for the session, configs composed like `mtl train` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: a small, fast subset of alphabets for end-to-end tests
SMALL_ALPHABETS = "[digits,greek_sans_upper,markers]"


def pytest_addoption(parser):
    parser.addoption(
        "--slurm",
        action="store_true",
        help="run only the tests that need a SLURM cluster (`make test-slurm` starts a local one)",
    )


def pytest_collection_modifyitems(config, items):
    """Tests marked `slurm` run with --slurm (and then only they); without it they are deselected."""
    wanted = config.getoption("--slurm")
    keep = [item for item in items if (item.get_closest_marker("slurm") is not None) == wanted]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tests run on 2 shared cores: one torch thread each avoids oversubscription."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory) -> Path:
    """Renders are cached per session (not in the user's ~/.cache); subprocesses inherit it."""
    path = Path(os.environ.get("MTL_TEST_CACHE") or tmp_path_factory.mktemp("render-cache"))
    os.environ["MTL_CACHE_DIR"] = str(path)
    return path


def tiny(out: Path, *overrides: str) -> list[str]:
    """Overrides for a run of a few steps on three small alphabets."""
    return [
        f"paths.output_dir={out}",
        "trainer=debug",
        f"task.alphabets={SMALL_ALPHABETS}",
        "device=cpu",
        "trainer.threads=1",
        *overrides,
    ]


def mtl(*args: str, cwd: Path, timeout: float = 180, env: dict | None = None, check: bool = False):
    """Run the real console entry point (`python -m mtl_cli`) in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "mtl_cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"mtl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def tiny_cli(*overrides: str) -> list[str]:
    """Command-line overrides for a tiny `mtl train` (run dir chosen by Hydra under cwd/outputs)."""
    return [
        "trainer=debug",
        f"task.alphabets={SMALL_ALPHABETS}",
        "device=cpu",
        "trainer.threads=1",
        *overrides,
    ]


def preempt_after_first_evaluation(sweep_args: list[str], cwd: Path, preempt) -> tuple[Path, str]:
    """Start `mtl train -m <sweep_args>` (one job); once its first evaluation is on disk, call
    `preempt(run_dir)`; wait for the sweep to end. Returns the job's run dir and the sweep's stderr."""
    import time

    from mtl_cli.io import read_jsonl

    proc = subprocess.Popen(
        [sys.executable, "-m", "mtl_cli", "train", "-m", *sweep_args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    preempted = False
    while proc.poll() is None and time.monotonic() < deadline and not preempted:
        rows = list(cwd.glob("outputs/multirun/*/0/metrics.jsonl"))
        if rows and read_jsonl(rows[0]):
            preempted = preempt(rows[0].parent)
        time.sleep(0.02)
    _, err = proc.communicate(timeout=300)
    assert preempted, f"the job was not preempted after its first evaluation:\n{err}"
    assert proc.returncode == 0, err
    (run,) = cwd.glob("outputs/multirun/*/0")
    return run, err


def assert_resumed_like_uninterrupted(run: Path, twin: Path, *overrides: str) -> None:
    """`run` was stopped after its first evaluation, resumed and finished: its metrics equal those
    of the same tiny run trained without a stop (in `twin`)."""
    import json

    from mtl_cli.config import compose
    from mtl_cli.io import read_jsonl
    from mtl_cli.run import train

    summary = json.loads((run / "metrics.json").read_text())
    full = train(compose(tiny(twin, *overrides)))
    assert summary["status"] == "finished" and summary["step"] == full["step"]
    first_eval = read_jsonl(twin / "metrics.jsonl")[0]["step"]
    assert first_eval <= summary["resumed_from"] < full["step"]  # from the signal's checkpoint
    for key in ("best_step", "best_val", "val", "test", "best_test"):
        assert summary[key] == full[key], key

    def rows(path: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(path)]

    assert rows(run / "metrics.jsonl") == rows(twin / "metrics.jsonl")
