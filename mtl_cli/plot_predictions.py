"""`mtl plot` pictures: input, ground truth and prediction of each task on a few fixed test images,
from a run's best.pt, for families whose facts say `pictures` (dense scene understanding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtl_cli.families import family_facts

#: test images drawn per run (the first ones of the test split: the same for every run)
PICTURE_COUNT = 4


def has_pictures(run_dir: Path) -> bool:
    """Whether the run's family draws pictures and the run has a best checkpoint."""
    from omegaconf import OmegaConf

    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file() or not (run_dir / "checkpoints" / "best.pt").is_file():
        return False
    family = OmegaConf.select(OmegaConf.load(config), "task.family", default=None)
    return family is not None and family_facts(str(family)).pictures


def plot_predictions(run_dir: Path, path: Path, count: int = PICTURE_COUNT) -> Path:
    """A PNG grid at `path`: one row per test image, (input, truth, prediction per task) columns."""
    import torch

    from mtl_cli.finished_run import load_finished_run
    from mtl_cli.plot import _pyplot, _save

    run = load_finished_run(run_dir, checkpoint="best", device="cpu")
    with torch.no_grad():
        rows = run.family.pictures(run.model, count)
    classes = int(getattr(run.family.data, "classes", 1))
    plt = _pyplot()
    columns = len(rows[0])
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(1.9 * columns, 1.9 * len(rows)), squeeze=False
    )
    for r, row in enumerate(rows):
        ranges = _truth_ranges(row)
        for c, (title, array, style) in enumerate(row):
            ax = axes[r][c]
            _draw(ax, array, style, classes, ranges.get(_task(title)))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle(f"{run_dir.name}: best.pt on the first {len(rows)} test images", fontsize=9)
    return _save(fig, path)


def _task(title: str) -> str:
    return title.split(" (")[0]


def _truth_ranges(row: list[tuple]) -> dict[str, tuple[float, float]]:
    """Colour range of each task's value maps: its ground truth's, so both panels compare."""
    out = {}
    for title, array, style in row:
        if style == "values" and "truth" in title and np.isfinite(array).any():
            out[_task(title)] = (float(np.nanmin(array)), float(np.nanmax(array)))
    return out


def _draw(ax, array: np.ndarray, style: str, classes: int, value_range=None) -> None:
    if style == "rgb":
        ax.imshow(array, interpolation="nearest")
    elif style == "labels":
        shown = np.ma.masked_less(array, 0)  # ignored pixels: the axes' background
        cmap = "tab20" if classes <= 20 else "nipy_spectral"
        ax.imshow(shown, cmap=cmap, vmin=0, vmax=max(classes, 20) - 1, interpolation="nearest")
        ax.set_facecolor("black")
    else:
        low, high = value_range or (None, None)
        shown = np.ma.masked_invalid(array)
        ax.imshow(shown, cmap="viridis", vmin=low, vmax=high, interpolation="nearest")
        ax.set_facecolor("black")
