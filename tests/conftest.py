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
