"""Users' own code without forking: the package in docs/examples/my_mtl_ext (a model, a weighting
method and their YAML files in its own conf/) trains through `mtl train --config-dir`, from the
source tree (fast) and from an installed wheel (slow). The test copies exactly the files the docs
show (docs/extending.md includes them), so the example cannot drift."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from mtl_cli.checkpoint import load_checkpoint
from mtl_cli.config import compose, validate
from mtl_cli.errors import UserError
from mtl_cli.io import read_jsonl
from tests.conftest import ROOT, mtl, tiny_cli

EXAMPLE = ROOT / "docs" / "examples" / "my_mtl_ext"
CHOICES = ("model=gated_heads", "loss=geometric", "model.gate_init=-1.0")


@pytest.fixture
def extension(tmp_path, monkeypatch):
    """The example package copied to tmp_path/ext and importable (also by subprocesses)."""
    ext = tmp_path / "ext"
    shutil.copytree(EXAMPLE, ext)
    monkeypatch.syspath_prepend(str(ext))
    monkeypatch.setenv("PYTHONPATH", str(ext))
    return ext


def assert_used_the_extension(run) -> None:
    """metrics.json names the user's choices; the checkpoint holds their model's gates; the
    diagnostic only their weighting method reports is in metrics.jsonl, with its known value."""
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "finished"
    assert summary["choices"]["model"] == "gated_heads"
    assert summary["choices"]["loss"] == "geometric"
    state = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    assert state["gates"].shape[0] == len(summary["tasks"])
    assert summary["num_params"] == sum(t.numel() for t in state.values())
    for row in read_jsonl(run / "metrics.jsonl"):
        weights = [row[f"loss/weight/{t}"] for t in summary["tasks"]]
        assert all(w > 0 for w in weights)  # G / (T L_i): positive, not the equal 1/T
        assert 0 < row["loss/geometric_mean"] < math.inf


def test_external_model_and_weighting_train_through_mtl(extension, tmp_path):
    run = tmp_path / "run"
    mtl(
        "train", "--config-dir", str(extension / "conf"), *CHOICES,
        *tiny_cli(f"hydra.run.dir={run}"), cwd=tmp_path, check=True,
    )  # fmt: skip
    assert_used_the_extension(run)
    state = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    assert float(state["gates"].mean()) == pytest.approx(-1.0, abs=0.05)  # gate_init acted


def test_hydra_searchpath_works_like_config_dir(extension, tmp_path):
    run = tmp_path / "run"
    search = f"hydra.searchpath=[file://{extension / 'conf'}]"
    mtl("train", search, *CHOICES, *tiny_cli(f"hydra.run.dir={run}"), cwd=tmp_path, check=True)
    assert_used_the_extension(run)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model._target_=my_mtl_ext.model.Missing"],
            r"^model\._target_: cannot import 'my_mtl_ext\.model\.Missing' \(.*\); install its package or put it on PYTHONPATH$",
        ),
        (
            ["+model.gate_inti=1"],
            r"^model\.gate_inti: not a parameter of 'my_mtl_ext\.model\.GatedHeads'; allowed: gate_init$",
        ),
        (
            ["+loss.epsilon=1"],
            r"^loss\.epsilon: not a parameter of 'my_mtl_ext\.weighting\.GeometricMean'; allowed: eps$",
        ),
        (
            ["task=meta/hershey_5w1s", "loss=equal"],
            r"^model\._target_: 'my_mtl_ext\.model\.GatedHeads' cannot serve the meta family; it serves: multitask, multilabel$",
        ),
        (
            ["task=meta/hershey_5w1s", "model=meta/protonet"],
            r"^loss\._target_: 'my_mtl_ext\.weighting\.GeometricMean' cannot be used with the meta family",
        ),
    ],
)
def test_external_choices_are_checked_before_the_run(extension, overrides, message):
    cfg = compose(["model=gated_heads", "loss=geometric", *overrides],
                  config_dirs=[str(extension / "conf")])  # fmt: skip
    with pytest.raises(UserError, match=message):
        validate(cfg)


def test_missing_target_is_one_line_from_the_cli(tmp_path):
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text("_target_: not_installed_pkg.Model\n")
    result = mtl("train", "--config-dir", str(tmp_path / "conf"), "model=mine", *tiny_cli(),
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "mtl: error: model._target_: cannot import 'not_installed_pkg.Model' (No module named "
        "'not_installed_pkg'); install its package or put it on PYTHONPATH"
    )
    assert not (tmp_path / "outputs").exists()  # refused before any run dir


@pytest.mark.slow
def test_external_package_with_an_installed_wheel(extension, tmp_path):
    """The same training with `mtl` from a wheel installed in a fresh venv, outside the tree."""
    dist, source = tmp_path / "dist", tmp_path / "source"
    # from a clean copy: a stale build/ in the checkout would ship files no longer in the tree
    skip = shutil.ignore_patterns(".*", "build", "outputs", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(source)],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "reuse_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*pip, str(next(dist.glob("mtl_cli-*.whl")))], check=True, capture_output=True)
    work = tmp_path / "work"
    work.mkdir()
    run = work / "run"
    env = {"PYTHONPATH": str(extension)}
    result = subprocess.run(
        [str(venv / "bin" / "mtl"), "train", "--config-dir", str(extension / "conf"), *CHOICES,
         *tiny_cli(f"hydra.run.dir={run}")],
        capture_output=True, text=True, cwd=work, env={**os.environ, **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert_used_the_extension(run)


def test_docs_show_exactly_the_example_files():
    doc = (ROOT / "docs" / "extending.md").read_text()
    files = sorted(p for p in EXAMPLE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert len(files) == 5
    for path in files:
        shown = f"`{path.relative_to(EXAMPLE)}`:\n\n```"
        assert shown in doc, path
        assert path.read_text().rstrip() + "\n```" in doc, path
