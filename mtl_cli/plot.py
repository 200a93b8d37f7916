"""`mtl plot`: PNG learning curves of a run, and of a sweep (one curve per configuration, band over
seeds) with a bar chart of the final test metric per configuration. Needs matplotlib (`plots` extra).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtl_cli.io import atomic_write_bytes, read_jsonl
from mtl_cli.metrics import t_critical
from mtl_cli.report import RunRecord, find_runs, summarize

#: aggregate val metrics tried, in order, when neither `metric` nor the run's optimized metric says
PREFERRED = ("accuracy", "map", "mse", "macro_f1", "loss")


def _curves(run: RunRecord) -> dict[str, np.ndarray]:
    """metrics.jsonl as columns: 'step' and every numeric key (NaN where a row lacks it)."""
    path = run.path / "metrics.jsonl"
    rows = read_jsonl(path) if path.is_file() else []
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, int | float)})
    return {k: np.array([float(r.get(k, math.nan)) for r in rows]) for k in keys}


def pick_metric(runs: Sequence[RunRecord], metric: str | None) -> str:
    """The aggregate val metric to plot, as 'accuracy' (without 'val/'), checked against the runs."""
    available = {
        k.split("/", 1)[1]
        for run in runs
        for k in _header(run)
        if k.startswith("val/") and k.count("/") == 1
    }
    if metric:
        name = metric.removeprefix("val/").removeprefix("best_val/")
        if name not in available:
            allowed = ", ".join(sorted(available)) or "(none: no metrics.jsonl)"
            raise ValueError(f"metric: '{metric}' is not logged by these runs; allowed: {allowed}")
        return name
    for run in runs:
        name = str(run.metrics.get("optimized_metric") or "").rsplit("/", 1)[-1]
        if name in available:
            return name
    for name in PREFERRED:
        if name in available:
            return name
    if not available:
        raise ValueError(f"dirs: no val metric logged under {runs[0].path} (no metrics.jsonl rows)")
    return sorted(available)[0]


def _header(run: RunRecord) -> list[str]:
    path = run.path / "metrics.jsonl"
    rows = read_jsonl(path) if path.is_file() else []
    return list(rows[0]) if rows else []


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(run: RunRecord, metric: str, out: Path) -> Path:
    """curves.png of one run: per-task train loss (left) and per-task val `metric` (right)."""
    plt = _pyplot()
    data = _curves(run)
    if "step" not in data:
        raise ValueError(f"dirs: {run.path} has no metrics.jsonl rows to plot")
    step = data["step"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    losses = {k: v for k, v in data.items() if k.startswith("train/") and k.endswith("/loss")}
    for key, values in sorted(losses.items()):
        left.plot(step, values, label=key.removeprefix("train/").removesuffix("/loss"))
    if not losses and "train/loss" in data:
        left.plot(step, data["train/loss"], label="all tasks")
    per_task = {
        k: v
        for k, v in data.items()
        if k.startswith("val/") and k.endswith(f"/{metric}") and k.count("/") == 2
    }
    for key, values in sorted(per_task.items()):
        right.plot(step, values, label=key.split("/")[1], alpha=0.8)
    if f"val/{metric}" in data:
        right.plot(step, data[f"val/{metric}"], color="black", linewidth=2, label="mean")
    left.set(title="train loss per task", xlabel="step", ylabel="loss")
    right.set(title=f"val {metric} per task", xlabel="step", ylabel=metric)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, ncol=2 if len(ax.lines) > 8 else 1)
    fig.suptitle(str(run.path.name))
    return _save(fig, out / "curves.png")


def band(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, 95% Student-t half width) per column of a runs x steps matrix; NaN cells are ignored.

    Columns with fewer than two values get a NaN half width (no band), as in `mtl report`.
    """
    finite = np.isfinite(matrix)
    n = finite.sum(axis=0)
    values = np.where(finite, matrix, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, values.sum(axis=0) / n, np.nan)
        squares = np.where(finite, (matrix - mean) ** 2, 0.0).sum(axis=0)
        sd = np.sqrt(squares / (n - 1))
    critical = np.full(n.shape, np.nan)
    for k in np.unique(n[n > 1]):  # one t quantile per distinct run count
        critical[n == k] = t_critical(int(k) - 1)
    half = np.where(n > 1, critical * sd / np.sqrt(np.maximum(n, 1)), np.nan)
    return mean, half


def _label(values: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "all runs"


def plot_sweep(runs: Sequence[RunRecord], metric: str, out: Path) -> list[Path]:
    """curves.png (val `metric` per configuration, band over seeds) and final.png (test bars)."""
    plt = _pyplot()
    summary = summarize(runs, metrics=[f"test/{metric}"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for row in summary.rows:
        series = [_curves(r) for r in row.runs if r.status == "finished"]
        series = [s for s in series if "step" in s and f"val/{metric}" in s]
        if not series:
            continue
        steps = np.unique(np.concatenate([s["step"] for s in series]))
        matrix = np.full((len(series), len(steps)), np.nan)
        for i, s in enumerate(series):
            matrix[i, np.searchsorted(steps, s["step"])] = s[f"val/{metric}"]
        mean, half = band(matrix)
        (line,) = ax.plot(steps, mean, label=f"{_label(row.values)} (n={len(series)})")
        ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2)
    ax.set(title=f"val {metric}: mean and 95% CI over seeds", xlabel="step", ylabel=metric)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    paths = [_save(fig, out / "curves.png")]

    rows = [r for r in summary.rows if f"test/{metric}" in r.stats]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 2), 4.5))
    means = [r.stats[f"test/{metric}"].mean for r in rows]
    halves = [r.stats[f"test/{metric}"].half_width for r in rows]
    errors = [h if math.isfinite(h) else 0.0 for h in halves]
    ax.bar(range(len(rows)), means, yerr=errors, capsize=4, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(rows)), [_label(r.values) for r in rows], rotation=30, ha="right")
    ax.set(title=f"final test {metric} per configuration (95% CI over seeds)", ylabel=metric)
    ax.grid(alpha=0.3, axis="y")
    paths.append(_save(fig, out / "final.png"))
    return paths


def plot_dir(
    path: str | Path, metric: str | None = None, out: str | Path | None = None
) -> list[Path]:
    """Plots for a run dir (curves.png) or a sweep dir (curves.png, final.png) in <dir>/plots/."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"dirs: {str(path)!r} does not exist or is not a directory")
    runs = find_runs([root])
    target = Path(out) if out else root / "plots"
    target.mkdir(parents=True, exist_ok=True)
    name = pick_metric(runs, metric)
    single = len(runs) == 1 and runs[0].path == root.resolve()
    paths = [plot_run(runs[0], name, target)] if single else plot_sweep(runs, name, target)
    return paths + _predictions(runs, root.resolve(), target)


def _predictions(runs: Sequence[RunRecord], root: Path, target: Path) -> list[Path]:
    """predictions.png of each run whose family draws pictures (dense): in plots/ for one run,
    in plots/predictions/<run path>.png for a sweep."""
    from mtl_cli.plot_predictions import has_pictures, plot_predictions

    paths = []
    for run in runs:
        if not has_pictures(run.path):
            continue
        if run.path == root:
            path = target / "predictions.png"
        else:
            name = "_".join(run.path.relative_to(root).parts)
            path = target / "predictions" / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
        paths.append(plot_predictions(run.path, path))
    return paths
