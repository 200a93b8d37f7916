"""`mtl plot`: curves of a run, curves with seed bands and final bars of a sweep; PNG files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtl_cli.metrics import t_critical
from mtl_cli.plot import band
from tests.conftest import mtl, tiny_cli

PNG = b"\x89PNG\r\n\x1a\n"


def test_band_is_mean_and_t_interval_per_step():
    matrix = np.array([[1.0, 2.0, 5.0], [3.0, np.nan, 7.0], [5.0, np.nan, 9.0]])
    mean, half = band(matrix)
    np.testing.assert_allclose(mean, [3.0, 2.0, 7.0])
    assert half[0] == pytest.approx(t_critical(2) * 2.0 / math.sqrt(3))  # sd of 1,3,5 is 2
    assert math.isnan(half[1])  # one run: no band
    assert half[2] == pytest.approx(half[0])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("plot")
    mtl("train", "-m", *tiny_cli("model=hard_sharing,independent", "seed=0,1"), cwd=cwd, check=True)
    (path,) = (cwd / "outputs/multirun").iterdir()
    return path


@pytest.mark.slow
def test_plot_sweep_and_run_write_pngs(sweep, tmp_path):
    result = mtl("plot", str(sweep), cwd=tmp_path, check=True)
    paths = [sweep / "plots/curves.png", sweep / "plots/final.png"]
    assert result.stdout.split() == [
        str(p.relative_to(tmp_path)) if p.is_relative_to(tmp_path) else str(p) for p in paths
    ]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    result = mtl(
        "plot",
        str(sweep / "0"),
        f"out={tmp_path / 'one'}",
        "metric=val/loss",
        cwd=tmp_path,
        check=True,
    )
    assert (tmp_path / "one/curves.png").read_bytes().startswith(PNG)


@pytest.mark.slow
def test_plot_refuses_an_unknown_metric_and_a_missing_dir(sweep, tmp_path):
    result = mtl("plot", str(sweep), "metric=val/f1", cwd=tmp_path)
    assert (
        result.returncode == 2
        and "metric: 'val/f1' is not logged by these runs; allowed: accuracy" in result.stderr
    )
    result = mtl("plot", str(tmp_path / "none"), cwd=tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr
