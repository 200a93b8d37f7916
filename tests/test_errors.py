"""Bad input: a one-line message naming the problem, a non-zero exit, and no existing run touched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import mtl, tiny_cli


def snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A finished run (to check nothing touches it), a non-run dir, a file, a run without checkpoints."""
    root = tmp_path_factory.mktemp("errors")
    run = root / "existing"
    mtl("train", *tiny_cli(f"hydra.run.dir={run}"), cwd=root, check=True)
    (root / "empty").mkdir()
    (root / "a_file").write_text("x")
    return root, run


CASES = [
    # (name, argv with {run}/{root} placeholders, what the message must mention)
    ("unknown group choice", ["train", "loss=nope"], "loss: unknown choice 'nope'"),
    ("unknown task choice", ["train", "task=multitask/nope"], "unknown choice 'multitask/nope'"),
    ("wrong type", ["train", "optim.lr=abc"], "optim.lr"),
    ("negative lr", ["train", "optim.lr=-0.1"], "optim.lr"),
    ("zero steps", ["train", "trainer.steps=0"], "trainer.steps"),
    ("zero tasks", ["train", "task.alphabets=[]"], "task.alphabets"),
    ("unknown alphabet", ["train", "task.alphabets=[klingon]"], "klingon"),
    ("unknown key", ["train", "trainer.speed=3"], "trainer.speed"),
    ("bad sampling", ["train", "trainer.task_sampling=often"], "trainer.task_sampling"),
    ("too many tasks per step", ["train", "trainer.task_sampling=uniform", "trainer.tasks_per_step=9"], "trainer.tasks_per_step"),
    ("unavailable device", ["train", "device=cuda"], "device: 'cuda' is not available"),
    ("invalid device", ["train", "device=tpu"], "device: invalid value 'tpu'"),
    ("model for another family", ["train", "model=meta/protonet"], "cannot serve the multitask family"),
    ("unwritable output dir", ["train", "hydra.run.dir={root}/a_file/run"], "not a directory"),
    ("resume with another model", ["train", "hydra.run.dir={run}", "model=independent"], "different config"),
    ("resume refused", ["train", "hydra.run.dir={run}", "trainer.resume=false"], "trainer.resume=false"),
    ("resume with another batch size", ["train", "hydra.run.dir={run}", "trainer.batch_size=4"], "trainer.batch_size: 8 in the checkpoint vs 4 now"),
    ("appended key outside the schema", ["train", "+trainer.stepz=5"], "trainer.stepz: no such key; allowed: steps,"),
    ("appended top-level key", ["train", "+unknown=1"], "unknown: no such key"),
    ("unknown optimized metric", ["train", "optimized_metric=foo/bar"], "optimized_metric: 'foo/bar'"),
    ("run dir under /proc", ["train", "hydra.run.dir=/proc/mtl_test_run"], "hydra.run.dir: cannot create /proc/mtl_test_run"),
    ("empty run dir", ["train", "hydra.run.dir="], "hydra.run.dir: empty"),
    ("sweeper direction against the metric", ["train", "-m", "hparams_search=optuna_lr", "hydra.sweeper.direction=minimize"], "hydra.sweeper.direction: 'minimize' but 'best_val/accuracy' should be maximized"),
    ("eval of a non-run dir", ["eval", "run={root}/empty"], "not a run dir"),
    ("eval of a missing dir", ["eval", "run={root}/missing"], "not a run dir"),
    ("eval bad checkpoint name", ["eval", "run={run}", "checkpoint=middle"], "checkpoint: invalid value 'middle'"),
    ("report of an empty dir", ["report", "{root}/empty"], "{root}/empty"),
    ("report of a missing dir", ["report", "{root}/missing"], "{root}/missing"),
    ("unknown command", ["frobnicate"], "unknown command 'frobnicate'"),
    ("unknown list group", ["list", "colour"], "unknown config group 'colour'"),
]  # fmt: skip


@pytest.mark.parametrize("name, argv, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input(workspace, name, argv, fragment):
    root, run = workspace
    before = snapshot(run)
    argv = [a.format(run=run, root=root) for a in argv]
    if argv[0] == "train":
        argv = ["train", *tiny_cli(), *argv[1:]]
    result = mtl(*argv, cwd=root)
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mtl: error: ")
    assert fragment.format(run=run, root=root) in lines[0]
    assert snapshot(run) == before


def test_missing_and_corrupt_checkpoints(tmp_path):
    run = tmp_path / "run"
    mtl("train", *tiny_cli(f"hydra.run.dir={run}"), cwd=tmp_path, check=True)
    (run / "checkpoints/best.pt").unlink()
    result = mtl("eval", f"run={run}", cwd=tmp_path)
    assert result.returncode == 2 and "best.pt: checkpoint not found" in result.stderr
    (run / "checkpoints/last.pt").write_bytes(b"garbage")
    before = snapshot(run)
    result = mtl("train", f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 2
    assert "corrupt or unreadable checkpoint" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert snapshot(run) == before
