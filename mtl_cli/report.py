"""Sweep reports: find run dirs, group runs by their differing overrides, mean ± 95% CI, Δm.

Used by `mtl report` and the multirun callback. No torch import: a report must be fast.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mtl_cli.families import FAMILIES, FamilyFacts
from mtl_cli.io import atomic_write_text, read_json, read_jsonl
from mtl_cli.metrics import delta_m, mean_ci

__all__ = [
    "DEFAULT_METRICS",
    "DELTA_M_CONVENTIONS",
    "RUN_CONTROL_KEYS",
    "MetricStat",
    "Row",
    "RunRecord",
    "Summary",
    "baseline_from_runs",
    "find_runs",
    "format_table",
    "summarize",
    "write_summary",
]

DEFAULT_METRICS = ("test/*", "diag/*")
"""Aggregate test metrics ("test/<name>") and run-mean gradient diagnostics ("diag/<name>")."""

DELTA_M_CONVENTIONS = ("metrics", "tasks")
"""How Δm averages (`summarize(..., delta_m_over=...)`, `mtl report ... delta_m=...`): a flat
mean over all per-task metrics (Navon et al. 2022), or over tasks of per-task means (LibMTL)."""

_DELTA_M_NOTES = {
    "metrics": "Δm convention: flat mean over all per-task metrics (delta_m=metrics; "
    "Navon et al. 2022).",
    "tasks": "Δm convention: mean over tasks of each task's mean over its metrics "
    "(delta_m=tasks; LibMTL, Lin & Zhang 2023).",
}

RUN_CONTROL_KEYS = (
    "hydra",
    "hydra.*",
    "hydra/*",
    "paths.*",
    "data.root",
    "data.cache_dir",
    "data.download",
    "trainer.resume",
    "trainer.progress",
    "baseline_run",
)
"""Override keys that never define a row: they change where or how a run runs, not its result."""

MISSING = "(default)"
"""Shown for an override key that a run did not set."""

DASH = "—"
_RUN_SECTIONS = ("test", "val", "best_val", "best_test", "diag")
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class RunRecord:
    """One run dir: its overrides, Hydra choices, config, flat metrics and status."""

    path: Path
    overrides: list[str]
    choices: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, float]
    status: str  # finished | failed | interrupted | incomplete
    error: str | None = None

    @property
    def model(self) -> str | None:
        """The `model` group choice (from hydra.yaml, else the model named in metrics.json)."""
        model = self.choices.get("model")
        return None if model is None else str(model)


@dataclass(frozen=True)
class MetricStat:
    """Mean and 95% t half width over a row's finished runs (half width NaN when n = 1)."""

    mean: float
    half_width: float
    n: int


@dataclass
class Row:
    """One configuration: its values of the differing override keys, its runs and statistics."""

    values: dict[str, str]
    runs: list[RunRecord]
    stats: dict[str, MetricStat] = field(default_factory=dict)
    delta_m: float | None = None

    @property
    def n(self) -> int:
        """Number of finished runs."""
        return sum(r.status == "finished" for r in self.runs)

    @property
    def failed(self) -> int:
        """Number of runs that did not finish (failed, interrupted or incomplete)."""
        return len(self.runs) - self.n


@dataclass
class Summary:
    """A sweep table: override columns, metric columns, rows, failures and notes."""

    keys: list[str]
    metrics: list[str]
    rows: list[Row]
    failures: list[RunRecord]
    has_delta_m: bool = False
    notes: list[str] = field(default_factory=list)
    delta_m_over: str = "metrics"  # one of DELTA_M_CONVENTIONS


# --------------------------------------------------------------------------- reading runs


def _natural_key(text: str) -> list[Any]:
    """Sort key that orders "2" before "10" inside strings."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text)]


def _load_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except (OSError, yaml.YAMLError):
        return None


def _get_path(data: Any, *keys: str) -> Any:
    """data[k1][k2]... or None when a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _flatten(prefix: str, value: Any, out: dict[str, float]) -> None:
    """Numeric leaves of nested dicts as "a/b/c" keys; None (JSON null) stays None."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}/{k}" if prefix else str(k), v, out)
    elif value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        out[prefix] = value  # type: ignore[assignment]


def _diag_means(path: Path) -> dict[str, float]:
    """Mean over evaluations of every numeric "diag/..." key of metrics.jsonl."""
    if not path.is_file():
        return {}
    sums: dict[str, list[float]] = {}
    for line in read_jsonl(path):
        for k, v in line.items():
            if k.startswith("diag/") and isinstance(v, int | float) and not isinstance(v, bool):
                if math.isfinite(v):
                    sums.setdefault(k, []).append(float(v))
    return {k: float(np.mean(v)) for k, v in sums.items()}


def _one_line(error: Any) -> str | None:
    """The message of an error string: a traceback's last line, else the first line."""
    if error is None:
        return None
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= 200 else line[:199] + "…"


def _read_run(run_dir: Path) -> RunRecord:
    overrides = _load_yaml(run_dir / ".hydra" / "overrides.yaml")
    config = _load_yaml(run_dir / ".hydra" / "config.yaml")
    choices = _get_path(
        _load_yaml(run_dir / ".hydra" / "hydra.yaml"), "hydra", "runtime", "choices"
    )
    choices = dict(choices) if isinstance(choices, Mapping) else {}
    metrics: dict[str, float] = {}
    status, error = "incomplete", "no metrics.json (run did not finish)"
    info: Any = None
    try:
        info = read_json(run_dir / "metrics.json")
    except FileNotFoundError:
        pass
    except ValueError as exc:
        status, error = "failed", str(exc)
    if isinstance(info, Mapping):
        raw_status = info.get("status")
        status = raw_status if raw_status in ("finished", "failed", "interrupted") else "incomplete"
        error = _one_line(info.get("error"))
        if status == "incomplete" and error is None:
            error = f"status {raw_status!r}"
        for k, v in info.items():
            if k in _RUN_SECTIONS or isinstance(v, Mapping):
                _flatten(str(k), v, metrics)
            elif isinstance(v, int | float) and not isinstance(v, bool):
                metrics[str(k)] = v
        if isinstance(info.get("model"), str):
            choices = {"model": info["model"], **choices}
    for k, v in _diag_means(run_dir / "metrics.jsonl").items():
        metrics.setdefault(k, v)
    if status == "finished":
        error = None
    return RunRecord(
        path=run_dir,
        overrides=[str(o) for o in overrides] if isinstance(overrides, list) else [],
        choices=choices,
        config=config if isinstance(config, dict) else {},
        metrics=metrics,
        status=status,
        error=error,
    )


def find_runs(dirs: Sequence[str | Path]) -> list[RunRecord]:
    """Every run dir (one holding .hydra/config.yaml) at or under `dirs`, sorted by path."""
    if isinstance(dirs, str | Path):
        dirs = [dirs]
    if not dirs:
        raise ValueError("dirs: none given; pass at least one run or sweep directory")
    found: dict[Path, None] = {}
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise ValueError(f"dirs: {str(d)!r} does not exist or is not a directory")
        before = len(found)
        for current, subdirs, _ in os.walk(root):
            here = Path(current)
            if (here / ".hydra" / "config.yaml").is_file():
                found.setdefault(here.resolve(), None)
                subdirs.clear()  # a run dir holds no further runs
            else:
                subdirs[:] = [s for s in subdirs if not s.startswith(".")]
        if len(found) == before:
            raise ValueError(f"dirs: {str(d)!r} holds no run (no */.hydra/config.yaml below it)")
    paths = sorted(found, key=lambda p: _natural_key(str(p)))
    return [_read_run(p) for p in paths]


# --------------------------------------------------------------------------- grouping


def _parse_override(text: str) -> tuple[str, str]:
    """("model", "mmoe") from "model=mmoe"; "+key=v"/"++key=v" -> key; "~key" -> (key, "~")."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if key.startswith("~"):
        return key[1:], "~" + (value if sep else "")
    return key.lstrip("+"), value.strip()


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Glob over "/"-paths: "*" matches within one component, "**" across components."""
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    table = {"**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(table.get(p, re.escape(p)) for p in parts) + r"\Z")


def _matches(key: str, patterns: Sequence[str]) -> bool:
    return any(_glob_regex(p).match(key) for p in patterns)


def _row_overrides(overrides: Sequence[str], ignore: Sequence[str]) -> dict[str, str]:
    """{key: value} of the overrides whose key matches none of the `ignore` globs."""
    pairs = (_parse_override(o) for o in overrides)
    return {key: value for key, value in pairs if not _matches(key, ignore)}


def _value_sort_key(value: str) -> tuple[Any, ...]:
    """Numbers first, numerically; then text, naturally; the missing marker last."""
    if value == MISSING:
        return (2, 0.0, [])
    try:
        return (0, float(value), [])
    except ValueError:
        return (1, 0.0, _natural_key(value))


def _per_task_keys(metrics: Mapping[str, Any], names: Sequence[str] | None = None) -> list[str]:
    """'test/<task>/<metric>' keys that enter Δm: metric in `names`, or any but 'loss' if None.

    Losses are left out by default: they are training objectives, not evaluation metrics.
    """
    keys = [k for k in metrics if k.startswith("test/") and k.count("/") >= 2]
    if names is None:
        return [k for k in keys if not k.endswith("/loss")]
    return [k for k in keys if k.rsplit("/", 1)[-1] in names]


def _mean_per_task(
    runs: Sequence[RunRecord], names: Sequence[str] | None = None
) -> dict[str, float | None]:
    """Per-task test metrics averaged over finished runs (None where no run defines one)."""
    values: dict[str, list[float]] = {}
    for run in runs:
        if run.status != "finished":
            continue
        for k in _per_task_keys(run.metrics, names):
            v = run.metrics[k]
            bucket = values.setdefault(k, [])
            if v is not None and math.isfinite(v):
                bucket.append(float(v))
    return {k: (float(np.mean(v)) if v else None) for k, v in values.items()}


def baseline_from_runs(
    runs: Sequence[RunRecord], delta_m_metrics: Sequence[str] | None = None
) -> dict[str, float]:
    """Per-task test metrics ("test/<task>/<metric>") averaged over the finished `runs`."""
    finished = [r for r in runs if r.status == "finished"]
    if not finished:
        raise ValueError(
            f"baseline: no finished run among {[str(r.path) for r in runs][:3]}; allowed: "
            "finished runs"
        )
    means = {k: v for k, v in _mean_per_task(finished, delta_m_metrics).items() if v is not None}
    if not means:
        raise ValueError(f"baseline: {str(finished[0].path)!r} has no per-task test metrics")
    return means


def _stat(values: list[float]) -> MetricStat | None:
    if not values:
        return None
    return MetricStat(*mean_ci(values))


def _baseline_row(row: Row, candidates: list[Row], keys: list[str]) -> Row | None:
    """The `independent` row agreeing with `row` on every non-model key both set (most exact)."""
    best: list[tuple[int, Row]] = []
    for cand in candidates:
        agree, ok = 0, True
        for k in keys:
            if k == "model":
                continue
            a, b = row.values.get(k, MISSING), cand.values.get(k, MISSING)
            if a == MISSING or b == MISSING:
                continue
            if a != b:
                ok = False
                break
            agree += 1
        if ok:
            best.append((agree, cand))
    if not best:
        return None
    top = max(a for a, _ in best)
    winners = [c for a, c in best if a == top]
    return winners[0] if len(winners) == 1 else None


def _families_of(runs: Sequence[RunRecord]) -> list[FamilyFacts]:
    """The facts of the families the `runs` belong to (unknown names are left out)."""
    names = {str((r.config.get("task") or {}).get("family")) for r in runs}
    return [FAMILIES[n] for n in sorted(names) if n in FAMILIES]


def summarize(
    runs: Sequence[RunRecord],
    metrics: Sequence[str] | None = DEFAULT_METRICS,
    group_ignore: Sequence[str] = ("seed",),
    baseline: Mapping[str, float] | None = None,
    delta_m_metrics: Sequence[str] | None = None,
    delta_m_over: str = "metrics",
) -> Summary:
    """Group runs into rows by the override keys that differ; mean ± 95% t CI per metric; Δm.

    `metrics` are globs over flat keys ("*" stays inside one "/" component, "**" crosses them;
    None: DEFAULT_METRICS). Δm (Maninis et al. 2019) is against `baseline` if given, else
    against the matching `model=independent` row when the runs include one; it averages the
    per-task metrics named in `delta_m_metrics` (e.g. ["accuracy"]; None: all but "loss"), over
    all of them ("metrics", default) or per task first ("tasks"), as `delta_m_over` says.
    """
    if delta_m_over not in DELTA_M_CONVENTIONS:
        raise ValueError(
            f"delta_m: invalid value {str(delta_m_over)!r}; allowed: "
            + ", ".join(DELTA_M_CONVENTIONS)
        )
    if metrics is None:
        metrics = DEFAULT_METRICS
    elif isinstance(metrics, str):
        metrics = [metrics]
    if not runs:
        raise ValueError("runs: empty; find_runs returns at least one run")
    ignore = tuple(group_ignore) + RUN_CONTROL_KEYS
    parsed = [_row_overrides(run.overrides, ignore) for run in runs]
    all_keys: dict[str, None] = {}
    for p in parsed:
        all_keys.update(dict.fromkeys(p))
    keys = [k for k in all_keys if len({p.get(k, MISSING) for p in parsed}) > 1]

    rows_by_values: dict[tuple[str, ...], Row] = {}
    for run, p in zip(runs, parsed, strict=True):
        values = tuple(p.get(k, MISSING) for k in keys)
        row = rows_by_values.setdefault(values, Row(dict(zip(keys, values, strict=True)), []))
        row.runs.append(run)
    rows = sorted(
        rows_by_values.values(),
        key=lambda r: [_value_sort_key(r.values[k]) for k in keys],
    )

    finished = [r for r in runs if r.status == "finished"]
    metric_names: dict[str, None] = {}
    for pattern in metrics:
        rx = _glob_regex(pattern)
        for run in finished:
            metric_names.update(dict.fromkeys(k for k in run.metrics if rx.match(k)))
    if finished and not metric_names:
        available = sorted({k for r in finished for k in r.metrics})
        raise ValueError(
            f"metrics: {list(metrics)} match no metric; available: {', '.join(available[:12])}"
            + (", ..." if len(available) > 12 else "")
        )
    for row in rows:
        done = [r for r in row.runs if r.status == "finished"]
        for name in metric_names:
            vals = [r.metrics.get(name) for r in done]
            stat = _stat([float(v) for v in vals if v is not None and math.isfinite(v)])
            if stat is not None:
                row.stats[name] = stat

    summary = Summary(keys, list(metric_names), rows, [r for r in runs if r.status != "finished"])
    summary.delta_m_over = delta_m_over
    for row in rows:
        summary.notes.extend(_config_drift(row, ignore))
    families = _families_of(runs)
    if delta_m_metrics is None and len(families) == 1:
        delta_m_metrics = families[0].delta_m_metrics_any_kind()
    # runs that do not name their family (hand-made dirs): the single-task model every family
    # with a baseline agrees on
    candidates = families or [f for f in FAMILIES.values() if f.baseline_model]
    baselines = {f.baseline_model for f in candidates}
    baseline_model = baselines.pop() if len(baselines) == 1 else None
    _add_delta_m(summary, baseline, delta_m_metrics, baseline_model)
    return summary


def _flat_config(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    """{"trainer.steps": "1000", ...}: every leaf of a composed config, values as JSON text."""
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flat_config(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value, sort_keys=True, default=str)
    return out


def _config_drift(row: Row, ignore: Sequence[str]) -> list[str]:
    """A note when runs of one row were composed differently in keys that no override sets: the
    config files changed during the sweep, or the runs come from sweeps with other defaults."""
    configs = [_flat_config("", run.config, {}) for run in row.runs]
    keys = sorted({k for c in configs for k in c if not _matches(k, ignore)})
    differing = [k for k in keys if len({c.get(k, MISSING) for c in configs}) > 1]
    if not differing:
        return []
    where = ", ".join(f"{k}={v}" for k, v in row.values.items()) or "the only row"
    shown = "; ".join(
        f"{k}: " + ", ".join(sorted({c.get(k, MISSING) for c in configs})[:3])
        for k in differing[:3]
    )
    more = f" (+{len(differing) - 3} more)" if len(differing) > 3 else ""
    return [
        f"Warning: runs of row {where} differ in config keys no override sets: {shown}{more}; "
        "the config files changed between runs (see each run's .hydra/config.yaml)."
    ]


def _add_delta_m(
    summary: Summary,
    baseline: Mapping[str, float] | None,
    names: Sequence[str] | None,
    baseline_model: str | None,
) -> None:
    """Fill Row.delta_m against `baseline` or the matching baseline-model row (the family's
    single-task model, e.g. independent); notes say why not."""
    independent = [
        row
        for row in summary.rows
        if baseline_model and row.runs and all(r.model == baseline_model for r in row.runs)
    ]
    if baseline is None and not independent:
        return
    summary.has_delta_m = True
    if baseline is not None:
        summary.notes.append("Δm (%): against the given baseline run (Maninis et al. 2019).")
    else:
        summary.notes.append(
            "Δm (%): against the model=independent row with the same other overrides "
            "(Maninis et al. 2019); > 0 is better."
        )
    summary.notes.append(_DELTA_M_NOTES[summary.delta_m_over])
    problems: dict[str, None] = {}
    for row in summary.rows:
        if baseline is not None:
            base: Mapping[str, float | None] = baseline
        else:
            match = _baseline_row(row, independent, summary.keys)
            if match is None:
                problems["no unique model=independent row matches some rows"] = None
                continue
            base = _mean_per_task(match.runs, names)
        mine = _mean_per_task(row.runs, names)
        if not mine:
            continue
        try:
            value = delta_m(mine, base, over=summary.delta_m_over)
        except ValueError as exc:
            problems[str(exc)] = None
            continue
        row.delta_m = value if math.isfinite(value) else None
    summary.notes.extend(f"Δm not computed for some rows: {p}" for p in problems)


# --------------------------------------------------------------------------- formatting


def _format_mean_ci(stat: MetricStat | None, row_n: int) -> str:
    """'0.912 ± 0.012' (CI to 2 significant digits, mean to the same decimals); '—' if none."""
    if stat is None:
        return DASH
    if math.isfinite(stat.half_width) and stat.half_width > 0:
        decimals = min(max(1 - math.floor(math.log10(stat.half_width)), 0), 8)
        text = f"{stat.mean:.{decimals}f} ± {stat.half_width:.{decimals}f}"
    elif math.isfinite(stat.half_width):  # all values equal
        text = f"{stat.mean:.4g} ± 0"
    else:
        text = f"{stat.mean:.4g} ± {DASH}"
    return text if stat.n == row_n else f"{text} (n={stat.n})"


def _format_delta(value: float | None) -> str:
    return DASH if value is None else f"{value:+.2f}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def format_table(summary: Summary) -> str:
    """The markdown table `mtl report` prints, then notes and one line per failed run."""
    header = [*summary.keys, "n", "failed", *summary.metrics]
    if summary.has_delta_m:
        header.append("Δm (%)")
    lines = [
        "| " + " | ".join(_md_cell(h) for h in header) + " |",
        "|" + "|".join("---" if i < len(summary.keys) else "--:" for i in range(len(header))) + "|",
    ]
    for row in summary.rows:
        cells = [row.values[k] for k in summary.keys] + [str(row.n), str(row.failed)]
        cells += [_format_mean_ci(row.stats.get(m), row.n) for m in summary.metrics]
        if summary.has_delta_m:
            cells.append(_format_delta(row.delta_m))
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    lines.append("")
    lines.append(
        "Mean ± half width of the 95% Student-t interval over seeds (n = finished runs); "
        "— = undefined (n=1, or no value); (n=k): only k runs define the metric."
    )
    lines.extend(summary.notes)
    if summary.failures:
        lines.append("")
        lines.append(f"Failed runs ({len(summary.failures)}):")
        for run in summary.failures:
            lines.append(f"- {run.path}: {run.status}: {run.error or 'no error message'}")
    return "\n".join(lines) + "\n"


def _csv_number(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def _format_csv(summary: Summary) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = [*summary.keys, "n", "failed"]
    for m in summary.metrics:
        header += [f"{m}_mean", f"{m}_ci95", f"{m}_n"]
    if summary.has_delta_m:
        header.append("delta_m")
    writer.writerow(header)
    for row in summary.rows:
        cells = [row.values[k] for k in summary.keys] + [row.n, row.failed]
        for m in summary.metrics:
            stat = row.stats.get(m)
            if stat is None:
                cells += ["", "", 0]
            else:
                cells += [_csv_number(stat.mean), _csv_number(stat.half_width), stat.n]
        if summary.has_delta_m:
            cells.append(_csv_number(row.delta_m))
        writer.writerow(cells)
    return buffer.getvalue()


def write_summary(summary: Summary, out_dir: str | Path) -> tuple[Path, Path]:
    """Atomically write summary.csv (mean, ci95, n per metric) and summary.md into `out_dir`."""
    out = Path(out_dir)
    if not out.is_dir():
        raise ValueError(f"out_dir: {str(out_dir)!r} does not exist or is not a directory")
    csv_path, md_path = out / "summary.csv", out / "summary.md"
    atomic_write_text(csv_path, _format_csv(summary))
    atomic_write_text(md_path, format_table(summary))
    return csv_path, md_path
