"""The CLI's pre-flight and argument handling, in process: Hydra flags in any position, typos in
appended keys, optimized_metric, the sweeper direction, run dirs that cannot be created."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtl_cli import cli
from mtl_cli.config import compose
from mtl_cli.launch import default_metric
from tests.conftest import mtl, tiny_cli


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty cwd: whatever the command writes (outputs/...) would land here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(argv: list[str], capsys, monkeypatch) -> str:
    """Run `mtl <argv>` in process; it must stop in the pre-flight (Hydra never launched) with one
    line on stderr and exit status 2. Returns that line."""

    def launched(*args, **kwargs):
        raise AssertionError(f"Hydra was launched: mtl {' '.join(argv)}")

    monkeypatch.setattr(cli, "_run", launched)
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert info.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith("mtl: error: "), err
    return lines[0]


def accepted(argv: list[str], monkeypatch) -> list[str]:
    """Run `mtl <argv>` in process up to the launch; returns the argv Hydra would get."""
    seen: list[list[str]] = []
    monkeypatch.setattr(cli, "_run", lambda name, task, args: seen.append(args))
    cli.main(argv)
    assert len(seen) == 1
    return seen[0]


# ------------------------------------------------------------------ Hydra flags in any position


@pytest.mark.parametrize(
    ("args", "flags", "overrides"),
    [
        (["--cfg", "job", "seed=1"], ["--cfg", "job"], ["seed=1"]),
        (["seed=1", "--cfg", "job"], ["--cfg", "job"], ["seed=1"]),
        (["seed=1", "-c", "hydra", "--resolve"], ["-c", "hydra", "--resolve"], ["seed=1"]),
        (["seed=1", "--info"], ["--info=all"], ["seed=1"]),
        (["--info", "seed=1"], ["--info=all"], ["seed=1"]),
        (["-i", "plugins", "seed=1"], ["-i", "plugins"], ["seed=1"]),
        (["seed=1", "-i", "defaults", "x=2"], ["-i", "defaults"], ["seed=1", "x=2"]),
        (["seed=1", "--cfg=job"], ["--cfg=job"], ["seed=1"]),
        (
            ["seed=1", "--cfg", "job", "-p", "trainer"],
            ["--cfg", "job", "-p", "trainer"],
            ["seed=1"],
        ),
        (["seed=0,1", "-m"], ["-m"], ["seed=0,1"]),
    ],
)
def test_split_args_keeps_each_flag_with_its_value(args, flags, overrides):
    assert cli.split_args(args) == (flags, overrides)


FLAG_CASES = [
    ["--cfg", "job"],
    ["-c", "job"],
    ["--cfg", "job", "--resolve"],
    ["--cfg", "job", "--package", "trainer"],
    ["--info"],
    ["--info", "defaults"],
    ["-i", "config"],
    ["--help"],
]


@pytest.mark.parametrize("flags", FLAG_CASES, ids=[" ".join(f) for f in FLAG_CASES])
def test_hydra_flags_before_or_after_the_overrides_give_the_same_output(flags, tmp_path):
    """`mtl train <flags> <overrides>` and `mtl train <overrides> <flags>` are the same command
    (subprocesses: Hydra configures logging once per process)."""
    overrides = ["experiment=mmoe_correlation", "trainer=debug", "paths.output_dir=somewhere"]
    outputs = []
    for argv in (["train", *flags, *overrides], ["train", *overrides, *flags]):
        result = mtl(*argv, cwd=tmp_path)
        assert result.returncode == 0 and not result.stderr, (argv, result.stderr)
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] and outputs[0].strip()
    if "job" in flags and "--package" not in flags:
        assert "correlation: 0.5" in outputs[0]  # the experiment's overrides were applied
    if "--package" in flags:
        assert "batch_size:" in outputs[0] and "task:" not in outputs[0]
    assert not list(tmp_path.iterdir())  # informational: nothing written


@pytest.mark.parametrize("flags", [["--info"], ["--cfg=job"], ["-c", "job"], ["--help"]])
def test_informational_flags_skip_the_preflight(flags, workdir, monkeypatch):
    """`--cfg`/`--info`/`--help` only print: a config that could not run is still shown."""
    argv = accepted(["train", "hydra.run.dir=/proc/mtl_test_run", *flags], monkeypatch)
    assert argv[-1] == "hydra.run.dir=/proc/mtl_test_run"


@pytest.mark.parametrize("flag", ["-m", "--multirun"])
def test_multirun_flag_before_or_after_the_overrides(flag, workdir, capsys, monkeypatch):
    lines = {
        refused(["train", *order, "hydra.sweep.dir="], capsys, monkeypatch)
        for order in ([flag, "seed=0,1"], ["seed=0,1", flag])
    }
    assert len(lines) == 1 and "hydra.sweep.dir" in lines.pop()  # checked as a sweep both times
    argv = accepted(["train", *tiny_cli("seed=0,1"), flag], monkeypatch)
    assert argv[0] == flag and "seed=0,1" in argv


# ------------------------------------------------------------------ keys the schema does not have


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("+trainer.stepz=5", "trainer.stepz: no such key; allowed: steps, batch_size, eval_every"),
        ("++trainer.stepz=5", "trainer.stepz: no such key; allowed: steps"),
        ("+unknown=1", "unknown: no such key; allowed: task, model"),
        ("+optim.lrr=0.1", "optim.lrr: no such key; allowed: "),
        ("+data.rooot=/x", "data.rooot: no such key; allowed: root, download, cache_dir"),
    ],
)
def test_appended_keys_outside_the_schema_are_refused(
    override, fragment, workdir, capsys, monkeypatch
):
    line = refused(["train", *tiny_cli(override)], capsys, monkeypatch)
    assert fragment in line
    assert not list(workdir.iterdir())


@pytest.mark.parametrize(
    "extra",
    [
        ["loss=static", "+loss.weights.cyrillic=2.5"],  # a free dict takes new keys
        ["+hydra.job.env_set.MTL_X=1"],  # Hydra's keys are Hydra's business
        ["++seed=3"],  # forcing an existing key
    ],
)
def test_appended_keys_where_they_are_allowed(extra, workdir, monkeypatch):
    argv = accepted(["train", *tiny_cli(*extra)], monkeypatch)
    assert set(extra) <= set(argv)


# ------------------------------------------------------------------ optimized_metric


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["optimized_metric=foo/bar"], "optimized_metric: 'foo/bar'"),
        (["optimized_metric=best_val/map"], "allowed: auto, delta_m, best_val/accuracy"),
        (["optimized_metric=best_val"], "optimized_metric: 'best_val'"),
        (["optimized_metric=best_val/digits/bogus"], "optimized_metric: 'best_val/digits/bogus'"),
        (["optimized_metric=delta_m"], "baseline_run"),
        (
            ["task=multilabel/hershey_attributes", "optimized_metric=best_val/accuracy"],
            "best_val/map",
        ),
    ],
)
def test_a_bad_optimized_metric_is_refused_before_training(
    extra, fragment, workdir, capsys, monkeypatch
):
    argv = tiny_cli(*extra) if "task=" not in extra[0] else ["trainer=debug", "device=cpu", *extra]
    line = refused(["train", *argv], capsys, monkeypatch)
    assert line.startswith("mtl: error: optimized_metric: ") and fragment in line


@pytest.mark.parametrize(
    "extra",
    [
        ["optimized_metric=auto"],
        ["optimized_metric=best_val/accuracy"],
        ["optimized_metric=test/loss"],
        ["optimized_metric=best_test/digits/accuracy"],
        ["task=multilabel/hershey_attributes", "optimized_metric=val/macro_f1"],
        ["task=multilabel/hershey_attributes", "optimized_metric=best_val/bold/ap"],
        ["task=multitask/synthetic_mmoe", "backbone=mlp", "optimized_metric=best_val/mse"],
    ],
)
def test_good_optimized_metrics_pass(extra, workdir, monkeypatch):
    argv = tiny_cli(*extra) if "task=" not in extra[0] else ["trainer=debug", "device=cpu", *extra]
    accepted(["train", *argv], monkeypatch)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], "accuracy"),
        (["task=multilabel/hershey_attributes"], "map"),
        (["task=multitask/synthetic_mmoe"], "mse"),
        (["task=meta/sinusoid", "model=meta/maml"], "mse"),
        (["task=meta/hershey_5w1s", "model=meta/protonet"], "accuracy"),
    ],
)
def test_default_metric_is_the_family_first(overrides, expected):
    assert default_metric(compose([*overrides, "paths.output_dir=."])) == expected


# ------------------------------------------------------------------ the optuna direction


def test_a_contradicting_sweeper_direction_is_refused_before_any_job(workdir, capsys, monkeypatch):
    argv = ["train", "-m", "hparams_search=optuna_lr", "hydra.sweeper.n_trials=1", *tiny_cli()]
    line = refused([*argv, "hydra.sweeper.direction=minimize"], capsys, monkeypatch)
    assert "hydra.sweeper.direction: 'minimize'" in line and "maximize" in line
    line = refused(
        [*argv, "optimized_metric=best_val/loss", "hydra.sweeper.direction=maximize"],
        capsys,
        monkeypatch,
    )
    assert "hydra.sweeper.direction: 'maximize'" in line and "minimize" in line
    assert not list(workdir.iterdir())
    got = accepted([*argv, "hydra.sweeper.direction=maximize"], monkeypatch)
    assert got.count("hydra.sweeper.direction=maximize") == 1
    got = accepted(argv, monkeypatch)
    assert "hydra.sweeper.direction=maximize" in got  # set from the metric when not given


# ------------------------------------------------------------------ run and sweep dirs


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["hydra.run.dir=/proc/mtl_test_run"], "hydra.run.dir: cannot create /proc/mtl_test_run"),
        (["hydra.run.dir=/proc/mtl_test_run/deeper"], "hydra.run.dir: cannot create"),
        (["hydra.run.dir="], "hydra.run.dir: empty"),
        (["hydra.run.dir=''"], "hydra.run.dir: empty"),
        (["-m", "seed=0,1", "hydra.sweep.dir="], "hydra.sweep.dir: empty"),
        (["-m", "seed=0,1", "hydra.sweep.dir=/proc/mtl_test_sweep"], "hydra.sweep.dir: cannot"),
    ],
)
def test_run_dirs_that_cannot_be_made_are_one_line_errors(
    argv, fragment, workdir, capsys, monkeypatch
):
    line = refused(["train", *tiny_cli(), *argv], capsys, monkeypatch)
    assert fragment in line
    assert not Path("/proc/mtl_test_run").exists() and not list(workdir.iterdir())


def test_the_writability_probe_leaves_nothing_behind(tmp_path):
    cli._check_writable(str(tmp_path / "a/b/c/${now:%H}"), "hydra.run.dir")
    cli._check_writable(str(tmp_path / "a/b/run_${now:%H}"), "hydra.run.dir")
    cli._check_writable(str(tmp_path), "hydra.run.dir")
    assert not list(tmp_path.iterdir())


def test_an_interpolated_run_dir_is_probed_in_the_current_dir(workdir, monkeypatch):
    import tempfile

    probed = []
    real = tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", lambda **kw: probed.append(kw["dir"]) or real(**kw))
    cli._check_writable("${now:%H}_run", "hydra.run.dir")
    cli._check_writable("runs/x_${now:%H}/y", "hydra.run.dir")
    assert probed == [workdir, workdir / "runs"]
    assert not list(workdir.iterdir())


def test_the_unwritable_run_dir_in_a_subprocess_has_no_traceback(tmp_path):
    result = mtl("train", *tiny_cli("hydra.run.dir=/proc/mtl_test_run"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr and "hydra.run.dir" in result.stderr
    assert not list(tmp_path.iterdir())


def test_the_preflight_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from mtl_cli.cli import preflight_train; "
        "preflight_train(['trainer=debug', 'optimized_metric=best_val/loss', "
        "'hparams_search=optuna_lr'], True); "
        "assert 'torch' not in sys.modules, 'the pre-flight imported torch'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.iterdir())


def test_the_preflight_expands_a_glob_over_a_group_from_the_registry():
    from mtl_cli.cli import expand_sweep
    from mtl_cli.registry import group_choices

    jobs = expand_sweep(["loss=glob(*,exclude=[nash])", "seed=0,1"])
    assert sorted({job[0] for job in jobs}) == [
        f"loss={n}" for n in group_choices("loss") if n != "nash"
    ]
    assert len(jobs) == 2 * (len(group_choices("loss")) - 1)
