"""Evaluation metrics: accuracy, MSE, multi-label scores, confidence intervals and Δm.

Everything here works on numpy arrays; torch tensors are accepted and moved to the CPU first
(no torch import). Multi-label conventions (documented in docs/report.md):

- `scores` are probabilities in [0, 1] (apply a sigmoid to logits first); a label is predicted
  positive when `score >= threshold`.
- Empty ratios are defined, never NaN: precision = 1 when nothing is predicted and nothing is
  present, else 0; recall = 1 when nothing is present and nothing is predicted, else 0;
  F1 = 1 when nothing is predicted and nothing is present, else 0.
- Average precision of a label with no positive is undefined: `average_precision` returns NaN
  for it, `multilabel_metrics` reports it as None (JSON null) and leaves it out of mAP.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "average_precision",
    "binarize",
    "delta_m",
    "f1_score",
    "higher_is_better",
    "label_counts",
    "mean_ci",
    "mse",
    "multilabel_metrics",
    "precision",
    "recall",
    "t_critical",
    "tune_thresholds",
]

# Two-sided 95% Student-t critical values t_{0.975, df}, df = 1..30 (6 decimals).
_T_975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
    2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
    2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
    2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)  # fmt: skip
_Z_975 = NormalDist().inv_cdf(0.975)

_HIGHER_IS_BETTER = frozenset(
    {
        "accuracy", "acc", "top1", "top5", "f1", "micro_f1", "macro_f1", "precision", "recall",
        "ap", "map", "auc", "auroc", "subset_accuracy", "r2", "iou", "miou", "delta_m",
        "within_11_25", "within_22_5", "within_30",
    }
)  # fmt: skip
_LOWER_IS_BETTER = frozenset(
    {"loss", "nll", "mse", "rmse", "mae", "hamming", "hamming_loss", "error", "err"}
)


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """A numpy view of `x`; torch tensors are detached and moved to the CPU."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: not array-like ({exc})") from None


def accuracy(logits_or_pred: Any, target: Any) -> float:
    """Fraction of correct class predictions.

    `logits_or_pred` is either scores [..., C] (argmax over the last axis is the prediction) or
    integer class predictions with the same shape as the integer `target`.
    """
    pred = _as_numpy(logits_or_pred, "logits_or_pred")
    target = _as_numpy(target, "target")
    if pred.ndim == target.ndim + 1:
        pred = pred.argmax(axis=-1)
    if pred.shape != target.shape:
        raise ValueError(
            f"logits_or_pred: shape {pred.shape} does not match target {target.shape}; "
            "allowed: [..., C] scores or [...] class ids"
        )
    if target.size == 0:
        raise ValueError("target: empty; need at least one sample")
    return float(np.mean(pred == target))


def mse(pred: Any, target: Any) -> float:
    """Mean squared error over all elements (shapes must match exactly, no broadcasting)."""
    pred = _as_numpy(pred, "pred").astype(np.float64)
    target = _as_numpy(target, "target").astype(np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"pred: shape {pred.shape} does not match target {target.shape}")
    if target.size == 0:
        raise ValueError("target: empty; need at least one sample")
    return float(np.mean((pred - target) ** 2))


# --------------------------------------------------------------------------- multi-label


def _check_multilabel(scores: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate scores [N, L] in [0, 1] and boolean targets [N, L]; return float64/bool arrays."""
    scores = _as_numpy(scores, "scores").astype(np.float64)
    targets = _as_numpy(targets, "targets")
    if scores.ndim != 2:
        raise ValueError(f"scores: shape {scores.shape}; allowed: [N, L] (samples x labels)")
    if targets.shape != scores.shape:
        raise ValueError(f"targets: shape {targets.shape} does not match scores {scores.shape}")
    if scores.shape[0] == 0:
        raise ValueError("scores: no samples; need N >= 1")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores: contains NaN or inf; allowed: probabilities in [0, 1]")
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise ValueError(
            f"scores: values in [{scores.min():.4g}, {scores.max():.4g}]; allowed: probabilities "
            "in [0, 1] (apply a sigmoid to logits)"
        )
    if targets.dtype != np.bool_:
        if not np.all((targets == 0) | (targets == 1)):
            raise ValueError("targets: values other than 0/1; allowed: booleans or 0/1")
        targets = targets.astype(bool)
    return scores, targets


def binarize(scores: Any, thresholds: Any = 0.5) -> np.ndarray:
    """Predicted labels [N, L]: `scores >= thresholds` (a scalar or one threshold per label)."""
    scores = _as_numpy(scores, "scores").astype(np.float64)
    thresholds = _as_numpy(thresholds, "thresholds").astype(np.float64)
    if thresholds.ndim > 1 or (thresholds.ndim == 1 and thresholds.shape[0] != scores.shape[-1]):
        raise ValueError(
            f"thresholds: shape {thresholds.shape}; allowed: a scalar or [{scores.shape[-1]}]"
        )
    if not np.all((thresholds >= 0.0) & (thresholds <= 1.0)):
        raise ValueError(f"thresholds: {thresholds.tolist()}; allowed: values in [0, 1]")
    return scores >= thresholds


def label_counts(pred: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """True/false positives/negatives per label (sums over axis -2): keys tp, fp, fn, tn."""
    pred = np.asarray(pred, dtype=bool)
    targets = np.asarray(targets, dtype=bool)
    return {
        "tp": np.sum(pred & targets, axis=-2),
        "fp": np.sum(pred & ~targets, axis=-2),
        "fn": np.sum(~pred & targets, axis=-2),
        "tn": np.sum(~pred & ~targets, axis=-2),
    }


def _ratio(num: np.ndarray, den: np.ndarray, empty_value: np.ndarray) -> np.ndarray:
    """num / den, with `empty_value` where den == 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)
    return np.where(den > 0, out, empty_value)


def precision(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """tp / (tp + fp); when nothing is predicted: 1 if nothing is present (fn = 0) else 0."""
    return _ratio(tp, np.add(tp, fp), np.asarray(fn) == 0)


def recall(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """tp / (tp + fn); when nothing is present: 1 if nothing is predicted (fp = 0) else 0."""
    return _ratio(tp, np.add(tp, fn), np.asarray(fp) == 0)


def f1_score(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 = 2tp / (2tp + fp + fn) (van Rijsbergen 1979); 1 when tp = fp = fn = 0."""
    tp = np.asarray(tp)
    return _ratio(2 * tp, 2 * tp + np.asarray(fp) + np.asarray(fn), np.ones(np.shape(tp)))


def average_precision(scores: Any, targets: Any) -> np.ndarray:
    """Per-label average precision [L], no interpolation (sklearn's `average_precision_score`).

    AP = mean over positives of the precision at the positive's rank, where tied scores share the
    precision at the end of their tie group (Manning et al. 2008, ch. 8). NaN where a label has
    no positive.
    """
    scores, targets = _check_multilabel(scores, targets)
    n = scores.shape[0]
    order = np.argsort(-scores, axis=0, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=0)
    sorted_targets = np.take_along_axis(targets, order, axis=0)
    cum_tp = np.cumsum(sorted_targets, axis=0)
    # Index of the last row of each row's tie group: the next group end at or after the row.
    is_group_end = np.ones_like(sorted_scores, dtype=bool)
    is_group_end[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    rows = np.arange(n)[:, None]
    end_or_n = np.where(is_group_end, rows, n)
    group_end = np.minimum.accumulate(end_or_n[::-1], axis=0)[::-1]
    precision_at_rank = np.take_along_axis(cum_tp, group_end, axis=0) / (group_end + 1)
    positives = targets.sum(axis=0)
    total = np.sum(precision_at_rank * sorted_targets, axis=0)
    return np.divide(
        total, positives, out=np.full(total.shape, np.nan), where=positives > 0
    ).astype(np.float64)


def multilabel_metrics(
    scores: Any,
    targets: Any,
    thresholds: Any = 0.5,
    label_names: Sequence[str] | None = None,
    per_label: bool = True,
) -> dict[str, float | None]:
    """Multi-label summary (Tsoumakas & Katakis 2007; Zhang & Zhou 2014) from probabilities.

    Keys: micro_f1, macro_f1, map (mean AP over labels with a positive; None if none has one),
    hamming_loss, subset_accuracy; with `per_label`, "<label>/accuracy|precision|recall|f1|ap"
    (ap None for a label without positives). No value is ever NaN.
    """
    scores, targets = _check_multilabel(scores, targets)
    num_labels = scores.shape[1]
    if label_names is None:
        label_names = [f"label{i}" for i in range(num_labels)]
    elif len(label_names) != num_labels:
        raise ValueError(f"label_names: {len(label_names)} names for {num_labels} labels")
    pred = binarize(scores, thresholds)
    c = label_counts(pred, targets)
    f1 = f1_score(c["tp"], c["fp"], c["fn"])
    ap = average_precision(scores, targets)
    defined_ap = ap[~np.isnan(ap)]
    micro = f1_score(c["tp"].sum(), c["fp"].sum(), c["fn"].sum())
    out: dict[str, float | None] = {
        "micro_f1": float(micro),
        "macro_f1": float(f1.mean()),
        "map": float(defined_ap.mean()) if defined_ap.size else None,
        "hamming_loss": float(np.mean(pred != targets)),
        "subset_accuracy": float(np.mean(np.all(pred == targets, axis=1))),
    }
    if per_label:
        acc = (c["tp"] + c["tn"]) / scores.shape[0]
        prec = precision(c["tp"], c["fp"], c["fn"])
        rec = recall(c["tp"], c["fp"], c["fn"])
        for i, name in enumerate(label_names):
            out[f"{name}/accuracy"] = float(acc[i])
            out[f"{name}/precision"] = float(prec[i])
            out[f"{name}/recall"] = float(rec[i])
            out[f"{name}/f1"] = float(f1[i])
            out[f"{name}/ap"] = None if np.isnan(ap[i]) else float(ap[i])
    return out


def tune_thresholds(scores: Any, targets: Any, grid: Any = None) -> np.ndarray:
    """Per-label threshold [L] from `grid` that maximises F1 on (validation) data (Fan & Lin 2007).

    Ties go to the threshold closest to 0.5, then to the lower one. Default grid: 0.01..0.99
    in steps of 0.01. Memory: one boolean array of size len(grid) x N x L.
    """
    scores, targets = _check_multilabel(scores, targets)
    grid = np.arange(1, 100) / 100 if grid is None else _as_numpy(grid, "grid")
    grid = np.sort(np.asarray(grid, dtype=np.float64).ravel())
    if grid.size == 0 or grid[0] < 0.0 or grid[-1] > 1.0:
        raise ValueError(f"grid: {grid.tolist()[:5]}...; allowed: a non-empty list in [0, 1]")
    pred = scores[None, :, :] >= grid[:, None, None]  # [G, N, L]
    tp = np.sum(pred & targets[None], axis=1)
    fp = np.sum(pred & ~targets[None], axis=1)
    fn = targets.sum(axis=0)[None, :] - tp
    f1 = f1_score(tp, fp, fn)  # [G, L]
    is_best = f1 == f1.max(axis=0, keepdims=True)
    distance = np.where(is_best, np.abs(grid - 0.5)[:, None], np.inf)
    return grid[np.argmin(distance, axis=0)]  # argmin takes the first (lowest) of equal ones


# --------------------------------------------------------------------------- statistics


def t_critical(df: int) -> float:
    """Two-sided 95% Student-t critical value t_{0.975, df} (Student 1908).

    Table for df <= 30; above, the Cornish-Fisher expansion of Abramowitz & Stegun 26.7.5
    (error < 1e-4 there), which tends to 1.959964 as df grows.
    """
    if isinstance(df, bool) or int(df) != df or df < 1:
        raise ValueError(f"df: {df!r}; allowed: an integer >= 1")
    df = int(df)
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = _Z_975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def mean_ci(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95, method: str = "t"
) -> tuple[float, float, int]:
    """(mean, half width of the confidence interval, n) over independent runs (e.g. seeds).

    method "t": t_{0.975, n-1} * s / sqrt(n) (Student 1908; only confidence 0.95);
    "normal": z * s / sqrt(n), z from the normal quantile (1.96 at 0.95); s has ddof=1.
    With n = 1 the half width is NaN (no interval; tables show "—").
    """
    if method not in ("t", "normal"):
        raise ValueError(f"method: {method!r}; allowed: 't', 'normal'")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: {confidence!r}; allowed: a number in (0, 1)")
    if method == "t" and not math.isclose(confidence, 0.95):
        raise ValueError(f"confidence: {confidence!r} with method='t'; allowed: 0.95")
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("values: empty; need at least one value")
    if not np.all(np.isfinite(x)):
        bad = int((~np.isfinite(x)).sum())
        raise ValueError(f"values: {bad} of {x.size} are NaN or inf; allowed: finite numbers")
    n = int(x.size)
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, 1
    if method == "t":
        critical = t_critical(n - 1)
    else:
        critical = NormalDist().inv_cdf(0.5 + confidence / 2)
    return mean, float(critical * x.std(ddof=1) / math.sqrt(n)), n


# --------------------------------------------------------------------------- Δm


def higher_is_better(metric_name: str) -> bool:
    """Whether larger values of a metric are better, from its last path component.

    e.g. "digits/accuracy" -> True, "test/greek/loss" -> False; names ending in "_loss" or
    "_error" are lower-is-better, in "_accuracy" or "_f1" higher-is-better.
    """
    name = str(metric_name).rsplit("/", 1)[-1].lower()
    if name in _HIGHER_IS_BETTER or name.endswith(("_accuracy", "_acc", "_f1", "_ap", "_auc")):
        return True
    if name in _LOWER_IS_BETTER or name.endswith(("_loss", "_error", "_mse", "_mae")):
        return False
    known = ", ".join(sorted(_HIGHER_IS_BETTER | _LOWER_IS_BETTER))
    raise ValueError(f"metric {metric_name!r}: unknown direction; known names: {known}")


def delta_m(
    metrics: Mapping[str, float | None],
    baseline: Mapping[str, float | None],
    higher_is_better: Callable[[str], bool] = higher_is_better,
    over: str = "metrics",
) -> float:
    """Δm in % (Maninis et al. 2019; as in Liu et al. 2019, Navon et al. 2022); > 0 is better.

    The relative change of metric k is r_k = (-1)^{l_k} (M_k - B_k) / B_k (l_k = 1 if lower is
    better), over the keys present in both mappings. `over` picks how they are averaged:

    - "metrics" (default): Δm = (100/K) Σ_k r_k, a flat mean over all K keys of all tasks
      (Maninis et al. 2019; Navon et al. 2022, Nash-MTL).
    - "tasks": Δm = (100/T) Σ_t (1/K_t) Σ_{k in t} r_k, the mean over the T tasks of each task's
      mean over its K_t keys (LibMTL, Lin & Zhang 2023), so a task with many metrics weighs as
      much as one with a single metric. A key's task is everything before its last "/"
      ("seg/miou" -> "seg", "test/seg/miou" -> "test/seg"); a key without "/" is its own task.

    The two agree when every task has the same number of metrics. Keys whose value is None in
    either mapping are skipped; a NaN value gives a NaN result.
    """
    if over not in ("metrics", "tasks"):
        raise ValueError(f"over: {over!r}; allowed: 'metrics', 'tasks'")
    keys = [k for k in metrics if k in baseline and metrics[k] is not None]
    keys = [k for k in keys if baseline[k] is not None]
    if not keys:
        raise ValueError(
            f"baseline: no metric in common with metrics (metrics: {sorted(metrics)[:6]}, "
            f"baseline: {sorted(baseline)[:6]})"
        )
    m = np.array([float(metrics[k]) for k in keys])  # type: ignore[arg-type]
    b = np.array([float(baseline[k]) for k in keys])  # type: ignore[arg-type]
    zero = [k for k, v in zip(keys, b, strict=True) if v == 0.0]
    if zero:
        raise ValueError(f"baseline: {zero[0]!r} is 0; Δm divides by the baseline value")
    sign = np.array([1.0 if higher_is_better(k) else -1.0 for k in keys])
    relative = sign * (m - b) / b
    if over == "metrics":
        return float(100.0 * np.mean(relative))
    by_task: dict[str, list[float]] = {}
    for k, r in zip(keys, relative, strict=True):
        by_task.setdefault(k.rsplit("/", 1)[0], []).append(float(r))
    return float(100.0 * np.mean([np.mean(v) for v in by_task.values()]))
