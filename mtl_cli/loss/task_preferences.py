"""Per-task preference vectors (`loss.pref_vector`) of the gradient methods that take one.

A preference vector is given per task name, like `loss=static`'s weights:
`'+loss.pref_vector={greek: 2.0, cyrillic: 1.0, gothic: 1.0}'`. Empty means the method's own
default (the mean 1/T over the step's tasks, or ones). When given, it must name every task of the
run, with non-negative values, so that a typo cannot silently leave a task at some default; the
values are used as given (not renormalised), for the tasks of each step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import numpy as np

from mtl_cli.loss.base import GradientWeighting, TaskSetup


def checked_preferences(given: Mapping[str, float] | None, key: str) -> dict[str, float]:
    """The preferences as {task name: value}; refuses negative or non-finite values."""
    values = {str(k): float(v) for k, v in dict(given or {}).items()}
    for name, value in values.items():
        if not np.isfinite(value):
            raise ValueError(f"{key}.{name}: {value} is not a finite number")
        if value < 0:
            raise ValueError(f"{key}.{name}: {value} is below the minimum 0.0")
    return values


def preference_array(
    given: Mapping[str, float], task_names: list[str], key: str
) -> np.ndarray | None:
    """The preferences in task-index order (float64), or None when none were given."""
    if not given:
        return None
    unknown = sorted(set(given) - set(task_names))
    if unknown:
        raise ValueError(
            f"{key}: unknown task name(s) {', '.join(unknown)}; allowed: {', '.join(task_names)}"
        )
    missing = [n for n in task_names if n not in given]
    if missing:
        raise ValueError(
            f"{key}: no value for task(s) {', '.join(missing)}; give every task or none"
        )
    return np.array([given[n] for n in task_names], dtype=np.float64)


def step_preferences(preferences: np.ndarray | None, index: np.ndarray, mean: bool) -> np.ndarray:
    """The preferences of the step's tasks `index`; when none were given, 1/T for each of the T
    tasks of the step (`mean`) or ones."""
    if preferences is not None:
        return preferences[np.asarray(index, dtype=np.int64)]
    num = len(index)
    return np.full(num, 1.0 / num if mean else 1.0)


class PreferenceWeighting(GradientWeighting):
    """A gradient method with a per-task preference vector `pref_vector` (UPGrad, DualProj,
    Aligned-MTL, ConFIG): checked at construction, laid out in task order by `setup`, and read
    for the step's tasks by `step_preferences`."""

    #: what an empty `pref_vector` means: 1/T for the T tasks of the step (True) or ones (False)
    mean_by_default: bool = True

    def __init__(self, pref_vector: Mapping[str, float] | None = None, rep_grad: bool = False):
        super().__init__(rep_grad=rep_grad)
        self.pref_vector = checked_preferences(pref_vector, "loss.pref_vector")
        self.preferences: np.ndarray | None = None

    def setup(self, tasks: TaskSetup) -> Self:
        super().setup(tasks)
        self.preferences = preference_array(self.pref_vector, self.task_names, "loss.pref_vector")
        return self

    def step_preferences(self, index: np.ndarray) -> np.ndarray:
        """The preferences of the step's tasks `index`."""
        return step_preferences(self.preferences, index, self.mean_by_default)
