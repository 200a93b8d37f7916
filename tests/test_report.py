"""Tests for mtl_cli.report on run dirs fabricated on disk in the trainer's layout."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mtl_cli.report import (
    baseline_from_runs,
    find_runs,
    format_table,
    summarize,
    write_summary,
)

T2 = 4.302653  # t_{0.975, 2}
T1 = 12.706205  # t_{0.975, 1}


def make_run(
    run_dir: Path,
    overrides: list[str],
    model: str,
    metrics: dict | None,
    jsonl: list[dict] | None = None,
) -> Path:
    """Write .hydra/*.yaml, metrics.json and metrics.jsonl as the trainer does."""
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "model": {"name": model}}))
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    choices = {"model": model, "task": "multitask/hershey_alphabets", "loss": "equal"}
    (hydra_dir / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}, "mode": "MULTIRUN"}})
    )
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if jsonl is not None:
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in jsonl))
    return run_dir


def finished(acc: float, greek: float, cyrillic: float, loss: float = 1.0, **extra) -> dict:
    return {
        "status": "finished",
        "error": None,
        "seed": 0,
        "model": "?",
        "test": {
            "accuracy": acc,
            "loss": loss,
            "greek/accuracy": greek,
            "cyrillic/accuracy": cyrillic,
            "greek/loss": loss,
        },
        "best_test": {"accuracy": acc + 0.01},
        "steps_per_s": 100.0,
        "num_params": 1234,
        **extra,
    }


# 2 models x 3 seeds; the independent seed-2 job fails. Per-seed values:
HARD = [(0.80, 0.9, 0.70, 0.5), (0.82, 0.9, 0.72, 0.6), (0.84, 0.9, 0.74, 0.7)]
INDEP = [(0.70, 0.8, 0.60, 2.0), (0.74, 0.8, 0.64, 3.0)]


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "multirun" / "2025-01-01_00-00-00_000001"
    job = 0
    for model, values in (("hard_sharing", HARD), ("independent", INDEP)):
        for seed in range(3):
            overrides = [f"model={model}", f"seed={seed}", "task.correlation=0.5"]
            overrides.append("trainer.resume=true")
            if seed < len(values):
                acc, greek, cyr, loss = values[seed]
                diag = [
                    {"step": s, "split": "val", "diag/grad_cosine": c}
                    for s, c in ((1, 0.2), (2, 0.4))
                ]
                make_run(root / str(job), overrides, model, finished(acc, greek, cyr, loss), diag)
            else:
                error = "Traceback (most recent call last):\n  File x\nRuntimeError: out of memory"
                make_run(root / str(job), overrides, model, {"status": "failed", "error": error})
            job += 1
    return root


def test_find_runs_reads_every_run_dir(sweep: Path):
    runs = find_runs([sweep])
    assert [r.path.name for r in runs] == ["0", "1", "2", "3", "4", "5"]
    assert [r.status for r in runs].count("finished") == 5
    assert runs[0].metrics["test/greek/accuracy"] == 0.9
    assert runs[0].metrics["best_test/accuracy"] == pytest.approx(0.81)
    assert runs[0].metrics["num_params"] == 1234
    assert runs[0].metrics["diag/grad_cosine"] == pytest.approx(0.3)  # mean over evaluations
    assert runs[0].choices["model"] == "hard_sharing"
    assert runs[5].status == "failed" and runs[5].error == "RuntimeError: out of memory"


def test_summary_groups_drops_constant_keys_and_computes_ci(sweep: Path):
    summary = summarize(find_runs([sweep]))
    # seed, trainer.resume: never rows; task.correlation: one value in all runs -> dropped
    assert summary.keys == ["model"]
    assert summary.metrics == ["test/accuracy", "test/loss", "diag/grad_cosine"]
    hard, indep = summary.rows
    assert hard.values == {"model": "hard_sharing"} and (hard.n, hard.failed) == (3, 0)
    assert indep.values == {"model": "independent"} and (indep.n, indep.failed) == (2, 1)
    stat = hard.stats["test/accuracy"]
    assert stat.mean == pytest.approx(0.82)
    assert stat.half_width == pytest.approx(T2 * 0.02 / math.sqrt(3))
    stat = indep.stats["test/accuracy"]
    assert stat.mean == pytest.approx(0.72)
    assert stat.half_width == pytest.approx(T1 * math.sqrt(0.0008) / math.sqrt(2))
    assert [r.path.name for r in summary.failures] == ["5"]


def test_delta_m_against_matching_independent_row(sweep: Path):
    hard, indep = summarize(find_runs([sweep])).rows
    # per-task accuracies, seeds averaged: hard (0.9, 0.72) vs independent (0.8, 0.62);
    # per-task losses are left out of Δm
    expected = 100 / 2 * ((0.9 - 0.8) / 0.8 + (0.72 - 0.62) / 0.62)
    assert hard.delta_m == pytest.approx(expected)
    assert indep.delta_m == pytest.approx(0.0)


def test_delta_m_metrics_selects_the_per_task_metrics(sweep: Path):
    runs = find_runs([sweep])
    hard, _ = summarize(runs, delta_m_metrics=["loss"]).rows
    # only test/greek/loss: hard mean 0.6 vs independent 2.5, lower is better
    assert hard.delta_m == pytest.approx(-100 * (0.6 - 2.5) / 2.5)
    hard, _ = summarize(runs, metrics=None, delta_m_metrics=["accuracy"]).rows
    assert hard.delta_m == pytest.approx(50 * ((0.9 - 0.8) / 0.8 + (0.72 - 0.62) / 0.62))


def test_explicit_baseline_and_baseline_from_runs(sweep: Path):
    runs = find_runs([sweep])
    base = baseline_from_runs(runs[:3])  # the hard_sharing runs
    assert base == pytest.approx({"test/greek/accuracy": 0.9, "test/cyrillic/accuracy": 0.72})
    hard, indep = summarize(runs, baseline=base).rows
    assert hard.delta_m == pytest.approx(0.0)
    assert indep.delta_m == pytest.approx(50 * ((0.8 - 0.9) / 0.9 + (0.62 - 0.72) / 0.72))
    with pytest.raises(ValueError, match="baseline: no finished run"):
        baseline_from_runs(runs[5:])


def test_markdown_table_text(sweep: Path):
    text = format_table(summarize(find_runs([sweep])))
    lines = text.splitlines()
    assert lines[0] == (
        "| model | n | failed | test/accuracy | test/loss | diag/grad_cosine | Δm (%) |"
    )
    assert lines[2].startswith("| hard_sharing | 3 | 0 | 0.820 ± 0.050 | 0.60 ± 0.25 |")
    assert lines[2].endswith("| 0.3 ± 0 | +14.31 |")
    assert lines[3].startswith("| independent | 2 | 1 | 0.72 ± 0.25 | 2.5 ± 6.4 |")
    assert lines[3].endswith("| +0.00 |")
    assert "RuntimeError: out of memory" in text and "Traceback" not in text
    assert "nan" not in text.lower()


def test_write_summary_csv_and_md_are_parseable(sweep: Path):
    summary = summarize(find_runs([sweep]), metrics=["test/**"])
    csv_path, md_path = write_summary(summary, sweep)
    assert (csv_path.name, md_path.name) == ("summary.csv", "summary.md")
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["hard_sharing", "independent"]
    assert float(rows[0]["test/cyrillic/accuracy_mean"]) == pytest.approx(0.72)
    assert float(rows[0]["test/cyrillic/accuracy_ci95"]) == pytest.approx(T2 * 0.02 / math.sqrt(3))
    assert rows[1]["test/accuracy_n"] == "2" and rows[1]["failed"] == "1"
    assert float(rows[0]["delta_m"]) == pytest.approx(14.3145, abs=1e-4)
    table = [line for line in md_path.read_text().splitlines() if line.startswith("|")]
    widths = {len(line.split(" | ")) for line in table if not line.startswith("|--")}
    assert len(table) == 4 and len(widths) == 1
    assert md_path.read_text() == format_table(summary)
    assert not list(sweep.glob(".*.tmp"))  # atomic writes leave no temp files


def test_n1_rows_numeric_sort_and_missing_metric_values(tmp_path: Path):
    for i, lr in enumerate(["0.01", "1e-4", "0.001"]):
        metrics = finished(0.5 + i / 10, 0.5, 0.5)
        if lr == "0.001":
            metrics["test"]["loss"] = None  # undefined (JSON null) in this run
        make_run(tmp_path / "runs" / f"r{i}", [f"optim.lr={lr}"], "hard_sharing", metrics)
    summary = summarize(find_runs([tmp_path / "runs"]))
    assert [r.values["optim.lr"] for r in summary.rows] == ["1e-4", "0.001", "0.01"]
    assert all(r.n == 1 and math.isnan(r.stats["test/accuracy"].half_width) for r in summary.rows)
    text = format_table(summary)
    assert "| 1e-4 | 1 | 0 | 0.6 ± — | 1 ± — |" in text
    assert "| 0.001 | 1 | 0 | 0.7 ± — | — |" in text
    assert "Δm" not in text  # no independent run, no baseline


def test_two_dirs_independent_without_loss_key_is_the_baseline_of_every_loss(tmp_path: Path):
    for i, seed in enumerate((0, 1)):
        make_run(
            tmp_path / "indep" / str(i), ["model=independent", f"seed={seed}"], "independent",
            finished(0.7, 0.8, 0.5),
        )  # fmt: skip
    for i, loss in enumerate(("pcgrad", "equal")):
        make_run(
            tmp_path / "mtl" / str(i), ["model=hard_sharing", f"loss={loss}"], "hard_sharing",
            finished(0.8, 0.8 + i / 10, 0.5),
        )  # fmt: skip
    summary = summarize(find_runs([tmp_path / "indep", tmp_path / "mtl"]))
    assert summary.keys == ["model", "loss"]
    by_loss = {r.values["loss"]: r for r in summary.rows}
    assert set(by_loss) == {"equal", "pcgrad", "(default)"}
    assert by_loss["pcgrad"].delta_m == pytest.approx(0.0)
    assert by_loss["equal"].delta_m == pytest.approx(50 * (0.9 - 0.8) / 0.8)


def test_incomplete_interrupted_and_missing_metrics(tmp_path: Path):
    make_run(tmp_path / "a", ["x=1"], "mmoe", finished(0.5, 0.5, 0.5))
    make_run(tmp_path / "b", ["x=2"], "mmoe", None)
    make_run(tmp_path / "c", ["x=3"], "mmoe", {"status": "running", "error": None})
    make_run(tmp_path / "d", ["x=4"], "mmoe", {"status": "interrupted", "error": "SIGTERM"})
    (tmp_path / "e" / ".hydra").mkdir(parents=True)
    (tmp_path / "e" / ".hydra" / "config.yaml").write_text("{}")
    (tmp_path / "e" / "metrics.json").write_text('{"status": "fin')  # torn
    runs = find_runs([tmp_path])
    assert [r.status for r in runs] == [
        "finished",
        "incomplete",
        "incomplete",
        "interrupted",
        "failed",
    ]
    summary = summarize(runs)
    assert [(r.n, r.failed) for r in summary.rows] == [(1, 0), (0, 1), (0, 1), (0, 1), (0, 1)]
    text = format_table(summary)
    assert "Failed runs (4):" in text and "interrupted: SIGTERM" in text
    assert "| 2 | 0 | 1 | — | — |" in text and "| (default) | 0 | 1 | — | — |" in text


def test_find_runs_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="dirs: '.*nope' does not exist"):
        find_runs([tmp_path / "nope"])
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="dirs: '.*empty' holds no run"):
        find_runs([tmp_path / "empty"])


def test_metric_patterns(sweep: Path):
    runs = find_runs([sweep])
    summary = summarize(runs, metrics=["best_test/*", "steps_per_s"])
    assert summary.metrics == ["best_test/accuracy", "steps_per_s"]
    assert "test/greek/accuracy" in summarize(runs, metrics=["test/**"]).metrics
    with pytest.raises(ValueError, match=r"metrics: \['val/\*'\] match no metric; available: "):
        summarize(runs, metrics=["val/*"])


def test_report_module_does_not_import_torch():
    code = "import sys, mtl_cli.report; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_runs_of_one_row_composed_from_different_config_files_are_flagged(tmp_path: Path):
    """Same overrides, but trainer.steps came out differently: the yaml changed mid-sweep."""
    for job, (seed, steps) in enumerate([(0, 1000), (1, 1000), (2, 2000)]):
        run = make_run(
            tmp_path / str(job), [f"seed={seed}"], "hard_sharing", finished(0.8, 0.9, 0.7)
        )
        config = {"seed": seed, "paths": {"output_dir": str(run)}, "trainer": {"steps": steps}}
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    summary = summarize(find_runs([tmp_path]))
    (note,) = [n for n in summary.notes if n.startswith("Warning")]
    assert "trainer.steps: 1000, 2000" in note and "seed" not in note and "paths" not in note
    assert note in format_table(summary)

    (tmp_path / "2" / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"seed": 2, "paths": {"output_dir": "x"}, "trainer": {"steps": 1000}})
    )  # seeds and paths differ by design: no warning
    assert not [n for n in summarize(find_runs([tmp_path])).notes if n.startswith("Warning")]


# An NYUv2-like 3-task table with a 2/2/5 metric split (the numbers of docs/report.md and of
# tests/test_metrics.py): baseline = the independent row, model = the hard_sharing row.
NYU_BASELINE = {
    "seg/miou": 0.40,
    "seg/acc": 0.80,
    "depth/abs_error": 0.50,
    "depth/rel_error": 0.20,
    "normal/mean_error": 20.0,
    "normal/median_error": 16.0,
    "normal/within_11_acc": 0.25,
    "normal/within_22_acc": 0.50,
    "normal/within_30_acc": 0.625,
}
NYU_MODEL = {
    "seg/miou": 0.42,  # +5 %
    "seg/acc": 0.82,  # +2.5 %
    "depth/abs_error": 0.45,  # lower is better: +10 %
    "depth/rel_error": 0.22,  # lower is better: -10 %
    "normal/mean_error": 21.0,  # lower is better: -5 %
    "normal/median_error": 17.0,  # lower is better: -6.25 %
    "normal/within_11_acc": 0.24,  # -4 %
    "normal/within_22_acc": 0.49,  # -2 %
    "normal/within_30_acc": 0.60,  # -4 %
}
# metrics: (5 + 2.5 + 10 - 10 - 5 - 6.25 - 4 - 2 - 4) / 9 = -13.75 / 9 = -1.5278 %
# tasks: ((5 + 2.5) / 2 + (10 - 10) / 2 + (-21.25) / 5) / 3 = (3.75 + 0 - 4.25) / 3 = -0.1667 %
NYU_DELTA_M_METRICS = -13.75 / 9
NYU_DELTA_M_TASKS = -0.5 / 3


@pytest.fixture
def nyu_sweep(tmp_path: Path) -> Path:
    """2 models x 2 seeds with equal values per seed (so seed means are the table values)."""
    root = tmp_path / "nyu"
    job = 0
    for model, per_task in (("hard_sharing", NYU_MODEL), ("independent", NYU_BASELINE)):
        for seed in range(2):
            metrics = {"status": "finished", "error": None, "seed": seed, "model": model}
            metrics["test"] = {"loss": 1.0, "seg/loss": 0.5, **per_task}
            make_run(root / str(job), [f"model={model}", f"seed={seed}"], model, metrics)
            job += 1
    return root


def test_summarize_delta_m_over_tasks_differs_from_the_default(nyu_sweep: Path):
    runs = find_runs([nyu_sweep])
    default = summarize(runs)
    hard, indep = default.rows
    assert hard.delta_m == pytest.approx(NYU_DELTA_M_METRICS)
    assert summarize(runs, delta_m_over="metrics").rows[0].delta_m == hard.delta_m
    tasks = summarize(runs, delta_m_over="tasks")
    assert tasks.rows[0].delta_m == pytest.approx(NYU_DELTA_M_TASKS)
    assert tasks.rows[1].delta_m == pytest.approx(0.0) and indep.delta_m == pytest.approx(0.0)
    assert abs(tasks.rows[0].delta_m - hard.delta_m) > 1.0
    assert "flat mean over all per-task metrics (delta_m=metrics" in format_table(default)
    text = format_table(tasks)
    assert "mean over tasks of each task's mean over its metrics (delta_m=tasks" in text
    assert "delta_m=metrics" not in text
    assert "| hard_sharing | 2 | 0 | 1 ± 0 | -0.17 |" in text
    with pytest.raises(
        ValueError, match=r"^delta_m: invalid value 'task'; allowed: metrics, tasks$"
    ):
        summarize(runs, delta_m_over="task")


def test_summary_csv_delta_m_follows_the_convention(nyu_sweep: Path, tmp_path: Path):
    runs = find_runs([nyu_sweep])
    for over, expected in (("metrics", NYU_DELTA_M_METRICS), ("tasks", NYU_DELTA_M_TASKS)):
        out = tmp_path / over
        out.mkdir()
        csv_path, _ = write_summary(summarize(runs, delta_m_over=over), out)
        with csv_path.open() as f:
            rows = list(csv.DictReader(f))
        header = ["model", "n", "failed", "test/loss_mean", "test/loss_ci95", "test/loss_n"]
        assert list(rows[0]) == [*header, "delta_m"]
        assert float(rows[0]["delta_m"]) == pytest.approx(expected)
        assert float(rows[1]["delta_m"]) == pytest.approx(0.0)


def test_mtl_report_delta_m_option(nyu_sweep: Path, tmp_path: Path):
    from tests.conftest import mtl

    result = mtl("report", str(nyu_sweep), "delta_m=tasks", cwd=tmp_path, check=True)
    assert "(delta_m=tasks; LibMTL, Lin & Zhang 2023)" in result.stdout
    assert "| hard_sharing | 2 | 0 | 1 ± 0 | -0.17 |" in result.stdout
    result = mtl("report", str(nyu_sweep), cwd=tmp_path, check=True)  # default: metrics
    assert "(delta_m=metrics; Navon et al. 2022)" in result.stdout
    assert "| hard_sharing | 2 | 0 | 1 ± 0 | -1.53 |" in result.stdout
    result = mtl("report", str(nyu_sweep), "delta_m=foo", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "mtl: error: delta_m: invalid value 'foo'; allowed: metrics, tasks\n"
