"""Run the benchmarks: `python -m benchmarks [name ...]` (default: all)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "runner": "benchmarks.runner_overhead",
    "meta": "benchmarks.meta",
    "weighting": "benchmarks.weighting",
    "models": "benchmarks.models",
    "launchers": "benchmarks.launchers",
    "precision": "benchmarks.precision",
    "dense": "benchmarks.dense",
}


def main(argv: list[str]) -> None:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(
            f"bench: unknown benchmark '{unknown[0]}'; allowed: {', '.join(BENCHMARKS)}"
        )
    for name in names:
        print(f"== {name}")
        importlib.import_module(BENCHMARKS[name]).main()


if __name__ == "__main__":
    main(sys.argv[1:])
