"""Hydra callback: when a sweep ends (also after failures), write its summary table and note failures."""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("mtl_cli")

#: one line per failed job of the last sweep in this process (the CLI exits non-zero if any)
SWEEP_FAILURES: list[str] = []


class SweepSummary(Callback):
    """Writes summary.csv and summary.md in the sweep dir (the `mtl report` table)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mtl_cli.report import find_runs, format_table, summarize, write_summary

        sweep_dir = config.hydra.sweep.dir
        try:
            runs = find_runs([sweep_dir])
        except (ValueError, FileNotFoundError) as exc:
            SWEEP_FAILURES.append(f"sweep {sweep_dir}: {exc}")
            return
        failed = [r for r in runs if r.status != "finished"]
        for r in failed:
            SWEEP_FAILURES.append(f"{r.path}: {r.status}: {r.error or 'no metrics.json'}")
        try:
            summary = summarize(runs)
        except ValueError as exc:  # e.g. every job failed: nothing to tabulate
            SWEEP_FAILURES.append(f"sweep {sweep_dir}: {exc}")
            return
        write_summary(summary, sweep_dir)
        print(format_table(summary))
        if failed:
            log.error("%d of %d jobs did not finish (see summary.md)", len(failed), len(runs))
