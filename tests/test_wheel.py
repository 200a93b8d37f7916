"""The wheel ships conf/ and the embedded data: install it in a fresh venv and run `mtl` from it."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.conftest import ROOT, SMALL_ALPHABETS


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_source_tree(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(ROOT)],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    wheel = next(dist.glob("mtl_cli-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "mtl_cli/conf/config.yaml",
        "mtl_cli/conf/task/multitask/hershey_alphabets.yaml",
        "mtl_cli/conf/experiment/weighting_comparison.yaml",
        "mtl_cli/data/hershey/futural.jhf",
        "mtl_cli/data/hershey/NOTICE.txt",
    ):
        assert shipped in names, shipped

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # reuse the installed torch, numpy and hydra rather than downloading them again
    (site / "reuse_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    bin_dir = venv / "bin"
    subprocess.run(
        [str(bin_dir / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import mtl_cli; print(mtl_cli.__file__)"],
        check=True, capture_output=True, text=True, cwd=work,
    ).stdout  # fmt: skip
    assert str(site) in where, where

    listing = subprocess.run(
        [str(bin_dir / "mtl"), "list"], check=True, capture_output=True, text=True, cwd=work
    )
    assert "multitask/hershey_alphabets" in listing.stdout
    assert "pcgrad" in listing.stdout  # schema choices: registered from the installed package
    run = work / "run"
    subprocess.run(
        [str(bin_dir / "mtl"), "train", "trainer=debug", f"task.alphabets={SMALL_ALPHABETS}",
         "device=cpu", "trainer.threads=1", "loss=pcgrad", f"hydra.run.dir={run}"],
        check=True, capture_output=True, text=True, cwd=work,
    )  # fmt: skip
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
