"""Stopping on a validation plateau (`trainer.patience`, `trainer.min_delta`).

The rule of Keras's and Lightning's EarlyStopping: an evaluation improves when it beats the
reference value by more than min_delta in the metric's direction; the reference moves only on such
an improvement; a NaN never improves; training stops after `patience` evaluations in a row without
one (patience 0: never). The state is a plain dict so that it rides in `checkpoints/last.pt`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

NO_PLATEAU: dict[str, Any] = {"value": None, "since": 0}
"""The state before the first evaluation: no reference value, no evaluation without improvement."""


def improves(
    value: float, reference: float, higher_is_better: bool, min_delta: float = 0.0
) -> bool:
    """Whether `value` beats `reference` by more than `min_delta` in the metric's direction."""
    return value > reference + min_delta if higher_is_better else value < reference - min_delta


def next_plateau(
    plateau: Mapping[str, Any], value: float, higher_is_better: bool, min_delta: float
) -> dict[str, Any]:
    """The state after one more evaluation of the selected metric."""
    reference = plateau["value"]
    if math.isfinite(value) and (
        reference is None or improves(value, reference, higher_is_better, min_delta)
    ):
        return {"value": value, "since": 0}
    return {"value": reference, "since": int(plateau["since"]) + 1}


def plateau_reached(plateau: Mapping[str, Any], patience: int) -> bool:
    """`patience` evaluations in a row without an improvement (never when patience is 0)."""
    return patience > 0 and int(plateau.get("since", 0)) >= patience
